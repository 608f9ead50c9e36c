"""Conv6Embedder trained from a SubtomogramStream; starting from saved weights."""

import numpy as np
import pytest
import torch
from sklearn.pipeline import Pipeline
from skorch.callbacks import Callback

from fscc_sklearn import (
    AtomicCheckpoint,
    CalibratedFewShotClassifier,
    Conv6Embedder,
    pretrained_model,
    save_model,
)
from fscc_sklearn.datasets import SubtomogramStream, make_procedural_maps
from fscc_sklearn.embedding._pretrained import embedder_from


@pytest.fixture(scope="module")
def stream():
    maps = make_procedural_maps(8, random_state=0).maps
    return SubtomogramStream(
        maps,
        classes_per_batch=4,
        per_class=2,
        box=16,
        batches_per_epoch=2,
        eval_batches=2,
    )


def _embedder(**kw):
    return Conv6Embedder(
        **{"module__width": 4, "random_state": 0, "max_epochs": 2, **kw}
    )


def test_fit_from_a_stream(stream):
    emb = _embedder().fit(stream)
    assert list(emb.classes_) == stream.class_names
    assert emb.input_shape_ == (1, 16, 16, 16)
    assert len(emb.history) == 2 and len(emb.history[0, "batches"]) == 2
    X, _ = stream.batch(99)
    F = emb.transform(X)
    assert F.shape == (8, emb.module_.num_features) and (F >= 0).all()
    # same seed, same model; DataLoader workers change nothing
    again = _embedder(iterator_train__num_workers=2).fit(stream)
    np.testing.assert_array_equal(F, again.transform(X))
    other = Conv6Embedder(module__width=4, random_state=1, max_epochs=2).fit(stream)
    assert not np.allclose(F, other.transform(X))


def test_every_epoch_reads_new_batches(stream):
    seen = []
    emb = _embedder(max_epochs=3)
    original = emb.train_step_single

    def spy(batch, **kw):
        seen.append(np.asarray(batch[0][:1]).ravel()[:50].copy())
        return original(batch, **kw)

    emb.train_step_single = spy
    emb.fit(stream)
    assert len(seen) == 6
    assert len({a.tobytes() for a in seen}) == 6


class _StopAfter(Callback):
    """Interrupt training after ``n`` epochs, as Ctrl-C or a kill would."""

    def __init__(self, n):
        self.n = n

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.n:
            raise KeyboardInterrupt


def test_resumed_stream_fit_equals_uninterrupted(stream, tmp_path):
    X, _ = stream.batch(7)
    full = _embedder(max_epochs=3).fit(stream).transform(X)  # cosine schedule
    ckpt = ("ckpt", AtomicCheckpoint(tmp_path))
    stopped = _embedder(max_epochs=3, callbacks=[ckpt, ("stop", _StopAfter(1))])
    assert len(stopped.fit(stream).history) == 1
    resumed = _embedder(max_epochs=3, callbacks=[ckpt]).fit(stream)
    assert resumed.callbacks[0][1].resumed_from_ == 1
    np.testing.assert_array_equal(full, resumed.transform(X))


def test_stream_with_y_is_refused(stream):
    with pytest.raises(ValueError, match="carries its own labels"):
        _embedder().fit(stream, np.zeros(3))


@pytest.fixture(scope="module")
def model_file(stream, tmp_path_factory):
    emb = _embedder().fit(stream)
    X, y = stream.batch(1)
    X2, y2 = stream.batch(2)
    F = emb.transform(np.concatenate([X, X2]))
    clf = CalibratedFewShotClassifier().fit(F, np.concatenate([y, y2]))
    path = tmp_path_factory.mktemp("m") / "m.safetensors"
    save_model(Pipeline([("embed", emb), ("clf", clf)]), path)
    return path, emb


def test_initial_weights_copy_all_but_the_class_layer(model_file):
    path, source = model_file
    X = np.random.default_rng(0).normal(size=(6, 16, 16, 16)).astype(np.float32)
    y = np.repeat(["a", "b", "c"], 2)
    emb = _embedder(initial_weights=str(path), max_epochs=1, lr=0.0)
    emb.fit(X, y)  # lr 0: the weights stay as initialised
    start, src = emb.module_.state_dict(), source.module_.state_dict()
    for key in src:
        if key.startswith("fc."):
            assert start[key].shape != src[key].shape  # 3 classes, not 8
        elif "running" not in key and "num_batches" not in key:  # BN stats refit
            torch.testing.assert_close(start[key], src[key], msg=key)
    assert emb.initial_weights == str(path)  # fit never rewrites a parameter


def test_initial_weights_of_another_shape_are_refused(model_file):
    X = np.zeros((4, 16, 16, 16), np.float32)
    emb = Conv6Embedder(module__width=8, initial_weights=str(model_file[0]))
    with pytest.raises(ValueError, match="module__width"):
        emb.fit(X, [0, 0, 1, 1])


def test_embedder_from_a_model_file(model_file):
    path, source = model_file
    emb = embedder_from(str(path))
    assert list(emb.classes_) == list(source.classes_)
    X = np.random.default_rng(1).normal(size=(3, 16, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(emb.transform(X), source.transform(X), rtol=1e-6)


def test_unknown_pretrained_name():
    with pytest.raises(ValueError, match="Unknown pretrained model 'nope'"):
        pretrained_model("nope")


def test_same_seed_gives_the_recorded_stream_model(stream):
    # recorded before issue 19 reshaped callbacks, device handling and resume
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        emb = _embedder().fit(stream)
        F = emb.transform(stream.batch(7)[0])
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(
        emb.history[:, "train_loss"], [2.678497791290283, 2.6671050786972046], rtol=1e-5
    )
    expected = [[0.76041, 0.074302, 0.666477, 0.0], [4.181711, 0.0, 2.341061, 0.0]]
    np.testing.assert_allclose(F[:2], expected, rtol=1e-4, atol=1e-5)
    assert float(F.astype(np.float64).sum()) == pytest.approx(
        32.69574914127588, rel=1e-5
    )
