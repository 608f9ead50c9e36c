import copy
import subprocess
import sys

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils import estimator_checks
from skorch.callbacks import EarlyStopping
from skorch.dataset import ValidSplit
from skorch.exceptions import NotInitializedError

from fscc_sklearn import Conv6Embedder

# scikit-learn's check suite needs 2D input; these checks do not, and run here.
API_CHECKS = [
    "check_estimator_cloneable",
    "check_get_params_invariance",
    "check_parameters_default_constructible",
    "check_estimator_repr",
    "check_mixin_order",
]
# check -> (the error it raises, why)
EXPECTED_FAILED = {
    "check_no_attributes_set_in_init": (
        AssertionError,
        "skorch's NeuralNet.__init__ sets history_/initialized_ and stores module__* "
        "kwargs as attributes",
    ),
    "check_set_params": (
        AttributeError,
        "skorch's set_params re-initialises components on set",
    ),
}


@pytest.mark.parametrize("check", API_CHECKS)
def test_sklearn_api_checks(check, tiny_embedder):
    getattr(estimator_checks, check)("Conv6Embedder", tiny_embedder())


@pytest.mark.parametrize("check", sorted(EXPECTED_FAILED))
def test_documented_expected_failures_still_fail(check, tiny_embedder):
    # if skorch changes, these start passing and belong in API_CHECKS
    error, _ = EXPECTED_FAILED[check]
    with pytest.raises(error):
        getattr(estimator_checks, check)("Conv6Embedder", tiny_embedder())


def test_fit_transform_shapes_and_non_negative(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    emb = tiny_embedder(max_epochs=1).fit(X, y)
    feats = emb.transform(X[:5])
    assert feats.dtype == np.float32 and feats.shape == (5, emb.module_.num_features)
    assert (feats >= 0).all()
    assert emb.classes_.tolist() == sorted(set(y))
    assert emb.transform(X[:5, None]).tolist() == feats.tolist()  # (n, 1, D, H, W)
    assert len(emb.history) == 1 and 0 <= emb.history[-1, "train_acc"] <= 1


def test_training_reduces_loss_and_learns_base_classes(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    # constant lr, no augmentation: tests that optimisation works at all on tiny
    # data in few steps (the default recipe is tested in test_recipes.py)
    emb = tiny_embedder(max_epochs=12, lr=0.01, augment=None, lr_schedule=None)
    emb.fit(X, y)
    losses = emb.history[:, "train_loss"]
    assert losses[-1] < 0.7 * losses[0]
    assert emb.history[-1, "train_acc"] > 0.8
    logits = emb.module_.eval()(torch.from_numpy(X[:, None]))[0]
    assert (logits.argmax(1).numpy() == y).mean() > 0.8


def test_same_random_state_same_features(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    a = tiny_embedder(max_epochs=2, random_state=5).fit(X, y).transform(X)
    b = tiny_embedder(max_epochs=2, random_state=5).fit(X, y).transform(X)
    c = tiny_embedder(max_epochs=2, random_state=6).fit(X, y).transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_state_leaves_global_torch_rng_alone(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    tiny_embedder(max_epochs=1).fit(X, y)
    assert torch.rand(1) == expected


def test_string_labels_and_sup_con_weight_zero(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    labels = np.array([f"c{v}" for v in y])
    emb = tiny_embedder(max_epochs=1, sup_con_weight=0.0).fit(X, labels)
    assert emb.classes_[0] == "c0"
    assert emb.criterion_.sup_con_weight == 0.0


def test_params_reach_module_and_criterion(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    emb = tiny_embedder(
        max_epochs=1, module__width=4, temperature=0.2, sup_con_weight=0.1
    ).fit(X, y)
    assert emb.module_.num_features == 4
    assert emb.criterion_.supcon.temperature == 0.2
    assert emb.criterion_.sup_con_weight == 0.1
    assert clone(emb).get_params()["module__width"] == 4


def test_fit_leaves_every_param_as_given(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    emb = tiny_embedder(max_epochs=1, callbacks=[("stop", EarlyStopping("train_loss"))])
    before = emb.get_params(deep=False)
    emb.fit(X, y)
    after = emb.get_params(deep=False)
    assert after.keys() == before.keys()
    changed = [
        k for k in before if not (after[k] is before[k] or after[k] == before[k])
    ]
    assert changed == []
    assert after["device"] == "auto"
    assert emb.device_ == ("cuda" if torch.cuda.is_available() else "cpu")
    # what clone compares: the constructor params of a fresh copy
    assert clone(emb).get_params(deep=False).keys() == before.keys()
    # skorch's forward (and its scoring callbacks) may pass device="auto"
    logits, _ = emb.forward(X[:3, None], device="auto")
    assert logits.shape == (3, len(emb.classes_))


def test_train_split_with_early_stopping_on_valid_loss(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    stop = EarlyStopping(monitor="valid_loss", patience=2, threshold=10.0)
    emb = tiny_embedder(
        max_epochs=8,
        train_split=ValidSplit(4, stratified=True),
        callbacks=[("stop", stop)],
    ).fit(X, y)
    # threshold 10: no epoch improves enough, so training stops after patience
    assert len(emb.history) == 3 < emb.max_epochs
    for row in emb.history:
        assert np.isfinite(row["valid_loss"])
        assert row["valid_loss"] == pytest.approx(
            row["valid_ce"] + 0.05 * row["valid_supcon"], rel=1e-5
        )
    assert emb.history[0, "valid_batch_count"] >= 1


def test_loss_terms_are_recorded_per_batch_and_per_epoch(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    emb = tiny_embedder(max_epochs=2).fit(X, y)
    for row in emb.history:
        for batch in row["batches"]:
            assert batch["train_loss"] == pytest.approx(
                batch["train_ce"] + 0.05 * batch["train_supcon"], rel=1e-5
            )
        sizes = [b["train_batch_size"] for b in row["batches"]]
        ce = [b["train_ce"] for b in row["batches"]]
        assert row["train_ce"] == pytest.approx(np.average(ce, weights=sizes))
        assert "valid_ce" not in row  # no train_split: nothing validated
    plain = tiny_embedder(max_epochs=1, sup_con_weight=0).fit(X, y)
    assert "train_supcon" not in plain.history[-1]
    assert plain.history[-1, "train_ce"] == pytest.approx(
        plain.history[-1, "train_loss"]
    )


def test_lr_schedule_callback_only_with_the_cosine_schedule(tiny_embedder):
    from fscc_sklearn.embedding._callbacks import WarmupCosineLR

    names = dict(tiny_embedder(warmup_epochs=0.5).get_default_callbacks())
    assert isinstance(names["lr_schedule"], WarmupCosineLR)
    assert names["lr_schedule"].warmup_epochs == 0.5
    assert list(names)[-1] == "print_log"
    assert {"epoch_timer", "train_loss", "valid_loss", "precise_bn"} <= set(names)
    constant = dict(tiny_embedder(lr_schedule=None).get_default_callbacks())
    assert "lr_schedule" not in constant


def test_joblib_round_trip(toy_data, tmp_path, tiny_embedder):
    X, y, _, _ = toy_data
    emb = tiny_embedder(max_epochs=1).fit(X, y)
    joblib.dump(emb, tmp_path / "emb.joblib")
    loaded = joblib.load(tmp_path / "emb.joblib")
    np.testing.assert_array_equal(loaded.transform(X), emb.transform(X))


def test_model_saved_for_cuda_loads_on_cpu(toy_data, tmp_path, tiny_embedder):
    """A net pickled with device='cuda' must load and embed on a CPU-only machine."""
    X, y, _, _ = toy_data
    emb = tiny_embedder(max_epochs=1).fit(X, y)
    expected = emb.transform(X[:4])
    emb.device_ = "cuda"  # as if trained with device="auto" on a GPU machine
    joblib.dump(emb, tmp_path / "gpu.joblib")
    np.save(tmp_path / "x.npy", X[:4])
    code = (
        "import joblib, numpy as np, warnings\n"
        "warnings.simplefilter('ignore')\n"
        f"emb = joblib.load(r'{tmp_path / 'gpu.joblib'}')\n"
        "assert (emb.device, emb.device_) == ('auto', 'cpu'), emb.device_\n"
        f"x = np.load(r'{tmp_path / 'x.npy'}')\n"
        f"np.save(r'{tmp_path / 'out.npy'}', emb.transform(x))\n"
    )
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": "", "PYTHONPATH": ":".join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.zeros((4, 8, 8)), [0, 0, 1, 1], "got \\(4, 8, 8\\)"),
        (np.zeros((4, 2, 8, 8, 8)), [0, 0, 1, 1], "\\(n_samples, 1, D, H, W\\)"),
        (np.full((4, 8, 8, 8), np.nan), [0, 0, 1, 1], "NaN or infinite values"),
        (np.zeros((0, 8, 8, 8)), [], "no subtomograms"),
        (np.zeros((4, 8, 8, 6)), [0, 0, 1, 1], "cubic"),
        (np.zeros((4, 8, 8, 8)), [0, 0, 0, 0], "at least 2 base classes"),
        (np.zeros((3, 8, 8, 8)), [0, 0, 1], "class '1' has only 1 sample"),
        (np.zeros((4, 8, 8, 8)), [0, 1], "y must have shape \\(4,\\)"),
        (np.zeros((4, 8, 8, 8), dtype=complex), [0, 0, 1, 1], "real numbers"),
    ],
)
def test_fit_rejects_bad_input(X, y, match, tiny_embedder):
    with pytest.raises(ValueError, match=match):
        tiny_embedder().fit(X, y)


def test_transform_checks(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    with pytest.raises(NotInitializedError):
        Conv6Embedder().transform(X)
    emb = tiny_embedder(max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="trained on \\(1, 16, 16, 16\\)"):
        emb.transform(np.zeros((2, 8, 8, 8)))
    bad = X[:3].copy()
    bad[1, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="first at index 1"):
        emb.transform(bad)


def test_batch_size_too_small_for_classes(toy_data, tiny_embedder):
    X, y, _, _ = toy_data
    with pytest.raises(ValueError, match="cannot hold 2 samples of each of 6 classes"):
        tiny_embedder(batch_size=8).fit(X, y)


@pytest.fixture(scope="module")
def fitted_48(toy_data, tiny_embedder):
    """One fitted tiny embedder (batch_size 48) shared by the transform tests."""
    X, y, _, _ = toy_data
    return tiny_embedder(max_epochs=1, batch_size=48).fit(X, y)


def test_transform_streams_and_names_bad_values_in_later_batches(toy_data, fitted_48):
    X = toy_data[0]
    emb = fitted_48
    bad = X.copy()
    bad[[100, 130, 170]] = np.nan  # all after the first two batches
    with pytest.raises(ValueError, match="in 3 subtomogram\\(s\\), first at index 100"):
        emb.transform(bad)
    with pytest.raises(ValueError, match="real numbers"):
        emb.transform(np.zeros((2, 16, 16, 16), dtype=complex))
    with pytest.raises(ValueError, match="no subtomograms"):
        emb.transform(np.zeros((0, 16, 16, 16)))
    with pytest.raises(ValueError, match="\\(n_samples, 1, D, H, W\\)"):
        emb.transform(np.zeros((2, 3, 16, 16, 16)))


def test_transform_reports_progress(toy_data, fitted_48):
    X = toy_data[0]
    calls = []
    emb = copy.deepcopy(fitted_48)
    emb.set_params(progress=lambda done, total: calls.append((done, total)))
    emb.transform(X[:100])
    assert calls == [(48, 100), (96, 100), (100, 100)]
    emb.set_params(progress=True)  # stderr is not a terminal under pytest: silent
    assert emb.transform(X[:2]).shape == (2, emb.module_.num_features)


@pytest.mark.parametrize(
    ("param", "value", "match"),
    [
        ("channels_last", "yes", "True, False or \"inference\"; got 'yes'"),
        ("amp", 1, "amp must be True or False; got 1"),
        ("progress", "bar", "progress must be True, False or a callable"),
    ],
)
def test_speed_params_are_validated(
    toy_data, tiny_embedder, fitted_48, param, value, match
):
    X, y, _, _ = toy_data
    with pytest.raises(ValueError, match=match):
        tiny_embedder(max_epochs=1, **{param: value}).fit(X, y)
    emb = copy.deepcopy(fitted_48)
    setattr(emb, param, value)
    with pytest.raises(ValueError, match=match):
        emb.transform(X[:2])


def test_speed_params_are_plain_estimator_params(tiny_embedder):
    emb = tiny_embedder(channels_last=False, amp=True, progress=True)
    params = clone(emb).get_params()
    assert (params["channels_last"], params["amp"], params["progress"]) == (
        False,
        True,
        True,
    )


# Recorded from the code before issue 19 reshaped the callbacks, the device
# handling and the checkpoint resume: the same seed must give the same model.
PINNED = {
    "transfer": (
        {},
        [1.480027973651886, 1.5944257378578186],
        [[1.7781, 0.0, 1.705737, 0.0], [0.486766, 0.0, 0.304763, 0.335333]],
        33.48342426121235,
    ),
    "paper": (
        dict(lr=0.01, augment=None, lr_schedule=None),
        [1.4574052095413208, 1.2386557459831238],
        [[0.844704, 0.0, 0.319066, 0.143599], [0.0, 0.305612, 0.0, 0.0]],
        37.51431944966316,
    ),
}


@pytest.mark.parametrize("recipe", sorted(PINNED))
def test_same_seed_gives_the_recorded_model(recipe):
    from fscc_sklearn.datasets._toy import make_toy_volumes

    params, loss, features, total = PINNED[recipe]
    X, y = make_toy_volumes(n_classes=3, n_per_class=8, box=8, random_state=0)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the reduction order of the recording
    try:
        emb = Conv6Embedder(
            module__width=4, max_epochs=2, batch_size=12, random_state=0, **params
        ).fit(X, y)
        F = emb.transform(X)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(emb.history[:, "train_loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(F[:2], features, rtol=1e-4, atol=1e-5)
    assert float(F.astype(np.float64).sum()) == pytest.approx(total, rel=1e-5)


def test_set_output_pandas_names_the_feature_columns(toy_data, fitted_48):
    X = toy_data[0]
    with pytest.raises(NotInitializedError):
        Conv6Embedder().get_feature_names_out()
    emb = copy.deepcopy(fitted_48).set_output(transform="pandas")
    frame = emb.transform(X[:3])
    n = fitted_48.module_.num_features
    assert list(frame.columns) == [f"conv6embedder{i}" for i in range(n)]
    assert list(emb.get_feature_names_out()) == list(frame.columns)
    np.testing.assert_array_equal(frame.to_numpy(), fitted_48.transform(X[:3]))
    assert clone(emb).set_output(transform="default").get_params()["device"] == "auto"


def test_model_state_round_trip_and_checks(toy_data, fitted_48):
    import json

    X = toy_data[0]
    emb = fitted_48
    meta, arrays = emb._get_model_state()
    json.dumps(meta)  # JSON-able
    assert meta["input_shape"] == [1, 16, 16, 16]
    assert len(meta["history"]) == len(emb.history)
    assert "batches" not in meta["history"][0]
    weights = [a for k, a in arrays.items() if "num_batches" not in k]
    assert weights and all(a.dtype == np.float32 for a in weights)
    params = {"module__width": 8, "batch_size": 48, "random_state": 0}
    loaded = Conv6Embedder._from_model_state(params, meta, arrays)
    np.testing.assert_allclose(loaded.transform(X[:5]), emb.transform(X[:5]), atol=1e-6)
    assert loaded.get_params()["device"] == "cpu" and loaded.device_ == "cpu"
    assert loaded.classes_.tolist() == emb.classes_.tolist()

    key = next(k for k in arrays if k.endswith("weight"))
    bad = [
        ({**meta, "input_shape": [1, 16, 16]}, arrays, "input_shape"),
        ({**meta, "history": [{"a": [1]}]}, arrays, "history"),
        (meta, {**arrays, key: arrays[key].astype(np.float64)}, key),
        (meta, {k: v for k, v in arrays.items() if k != key}, "missing"),
        (meta, {**arrays, key: np.full_like(arrays[key], np.nan)}, "non-finite"),
    ]
    for m, a, match in bad:
        with pytest.raises(ValueError, match=match):
            Conv6Embedder._from_model_state(params, m, a)
