"""Speed levers of Conv6Embedder.transform give the features of the plain network."""

import copy
import warnings

import joblib
import numpy as np
import pytest
import torch

import fscc_sklearn.embedding._embedder as embedder_mod
from fscc_sklearn.embedding import _runtime
from fscc_sklearn.nn import Conv6


@pytest.fixture(scope="module")
def fitted(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    return tiny_embedder(max_epochs=2).fit(X, y), X


def _plain_features(emb, X):
    """Features of module_ as trained: unfused, default layout, float32, one batch."""
    net = Conv6(len(emb.classes_), width=8, volume_size=16)
    net.load_state_dict(emb.module_.state_dict())
    with torch.no_grad():
        return net.eval()(torch.from_numpy(X[:, None]))[1].numpy()


def test_transform_equals_unfused_network(fitted):
    emb, X = fitted
    np.testing.assert_allclose(
        emb.transform(X), _plain_features(emb, X), rtol=1e-4, atol=1e-5
    )
    # the trained network itself keeps its BatchNorm layers
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in emb.module_.modules())


def test_channels_last_and_default_layout_agree(fitted):
    emb, X = fitted
    other = copy.deepcopy(emb)
    other.channels_last = False
    a, b = emb.transform(X), other.transform(X)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert other._inference_cache_[1].blocks[0][0].weight.is_contiguous()


@pytest.mark.parametrize("micro", [1, 3, 48])
def test_micro_batch_and_batch_size_do_not_change_features(fitted, micro, monkeypatch):
    emb, X = fitted
    expected = emb.transform(X)
    monkeypatch.setattr(embedder_mod, "_CPU_MICRO_BATCH", micro)
    other = copy.deepcopy(emb)
    other.batch_size = 7
    # other batch shapes pick other float32 kernels: equal to rounding at the
    # features' own scale, not to an absolute 1e-5
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(
        other.transform(X), expected, rtol=1e-4, atol=1e-5 * scale
    )


def test_amp_bfloat16_is_close_to_float32(fitted, monkeypatch):
    emb, X = fitted
    other = copy.deepcopy(emb)
    other.amp = True
    monkeypatch.setattr(_runtime, "cpu_has_native_bfloat16", lambda: True)
    a, b = emb.transform(X), other.transform(X)
    assert b.dtype == np.float32
    rel = np.linalg.norm(a - b) / np.linalg.norm(a)
    assert 0 < rel < 0.05  # bfloat16 rounding happened, and stayed small


@pytest.mark.parametrize("native", [True, False])
def test_amp_warns_on_a_cpu_that_would_emulate_bfloat16(fitted, monkeypatch, native):
    emb, X = fitted
    other = copy.deepcopy(emb)
    other.amp = True
    monkeypatch.setattr(_runtime, "cpu_has_native_bfloat16", lambda: native)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        other.transform(X[:2])
    slow = [w for w in seen if "without native bfloat16" in str(w.message)]
    assert len(slow) == (0 if native else 1)
    assert all(w.category is RuntimeWarning for w in slow)


def test_memory_mapped_input_gives_same_features(fitted, tmp_path):
    emb, X = fitted
    np.save(tmp_path / "x.npy", X.astype(np.float64))  # converted per batch
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_array_equal(emb.transform(mm), emb.transform(X))
    np.testing.assert_array_equal(emb.transform(mm[10:50]), emb.transform(X[10:50]))


def test_inference_copy_follows_weight_changes(fitted):
    emb, X = fitted
    emb = copy.deepcopy(emb)
    before = emb.transform(X[:8])
    cached = emb._inference_cache_[1]
    assert emb._inference_module() is cached  # reused while weights are unchanged
    with torch.no_grad():
        emb.module_.blocks[0][0].weight.mul_(2.0)  # in place, as an optimiser step
    after = emb.transform(X[:8])
    assert emb._inference_cache_[1] is not cached
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _plain_features(emb, X[:8]), rtol=1e-4, atol=1e-5)


def test_inference_copy_is_not_pickled(fitted, tmp_path):
    emb, X = fitted
    emb.transform(X[:2])
    joblib.dump(emb, tmp_path / "emb.joblib")
    loaded = joblib.load(tmp_path / "emb.joblib")
    assert "_inference_cache_" not in vars(loaded)
    np.testing.assert_array_equal(loaded.transform(X), emb.transform(X))


def test_refit_rebuilds_inference_copy(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    emb = tiny_embedder(max_epochs=1, random_state=0).fit(X, y)
    first = emb.transform(X[:6])
    emb.set_params(random_state=1).fit(X, y)
    np.testing.assert_allclose(
        emb.transform(X[:6]), _plain_features(emb, X[:6]), rtol=1e-4, atol=1e-5
    )
    assert not np.allclose(first, emb.transform(X[:6]))


def test_channels_last_training_matches_default_layout(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    a = tiny_embedder(max_epochs=1, channels_last=True).fit(X, y)
    b = tiny_embedder(max_epochs=1, channels_last=False).fit(X, y)
    assert a.module_.blocks[1][0].weight.is_contiguous(
        memory_format=torch.channels_last_3d
    )
    assert b.module_.blocks[1][0].weight.is_contiguous()
    # same seed, same batches: one epoch apart only by float rounding
    np.testing.assert_allclose(
        a.history[:, "train_loss"], b.history[:, "train_loss"], rtol=1e-3
    )
    np.testing.assert_allclose(a.transform(X), b.transform(X), rtol=1e-2, atol=1e-3)


def test_channels_last_inference_trains_in_the_default_layout(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    a = tiny_embedder(max_epochs=1, channels_last="inference").fit(X, y)
    b = tiny_embedder(max_epochs=1, channels_last=False).fit(X, y)
    assert a.module_.blocks[1][0].weight.is_contiguous()
    assert not a.module_.blocks[1][0].weight.is_contiguous(
        memory_format=torch.channels_last_3d
    )
    # identical training; only transform runs in channels_last_3d
    np.testing.assert_array_equal(
        a.history[:, "train_loss"], b.history[:, "train_loss"]
    )
    a.amp = True  # no oneDNN prepacking: the fused blocks in channels_last_3d
    fused = a._inference_module()
    assert fused.blocks[1][0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    a.amp = False
    np.testing.assert_allclose(a.transform(X), b.transform(X), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("params", "packed"),
    [
        ({}, torch.backends.mkldnn.is_available()),
        ({"channels_last": "inference"}, torch.backends.mkldnn.is_available()),
        ({"channels_last": False}, False),
        ({"amp": True}, False),
    ],
)
def test_cpu_transform_prepacks_only_the_float32_fast_path(fitted, params, packed):
    emb, X = fitted
    other = copy.deepcopy(emb).set_params(**params)
    blocks = other._inference_module().blocks
    assert (type(blocks[0]).__name__ == "_ToOneDNN") == packed
    weights = [m.weight for m in blocks.modules() if hasattr(m, "weight")]
    assert len(weights) == 6 and all(w.is_mkldnn == packed for w in weights)
    # switching back and forth rebuilds the copy (amp and layout are in its key)
    other.set_params(**{k: emb.get_params()[k] for k in params})
    assert (type(other._inference_module().blocks[0]).__name__ == "_ToOneDNN") == (
        torch.backends.mkldnn.is_available()
    )


def test_amp_leaves_training_in_float32(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    a = tiny_embedder(max_epochs=2, amp=True).fit(X, y)
    b = tiny_embedder(max_epochs=2, amp=False).fit(X, y)
    assert a.history[:, "train_loss"] == b.history[:, "train_loss"]
    for pa, pb in zip(a.module_.parameters(), b.module_.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not np.array_equal(a.transform(X[:4]), b.transform(X[:4]))  # bfloat16
