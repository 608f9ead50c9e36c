"""Model files: the safe format, joblib, metadata and refusal of bad files."""

import json
import warnings

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from fscc_sklearn import (
    CalibratedFewShotClassifier,
    Conv6Embedder,
    adapt,
    load_model,
    save_model,
)
from fscc_sklearn.datasets._toy import make_toy_volumes
from fscc_sklearn.io import SubtomogramNormalizer
from fscc_sklearn.persistence._model_file import (
    UnsafeModelFileWarning,
    _content_hash,
    check_model_input,
)


@pytest.fixture(scope="module")
def data():
    X, y = make_toy_volumes(n_classes=6, n_per_class=10, box=8, random_state=0)
    y = np.array([f"c{v}" for v in y])
    base = np.isin(y, ["c0", "c1", "c2", "c3"])
    return X[base], y[base], X[~base], y[~base]


def _pipeline(**clf):
    return Pipeline(
        [
            ("normalize", SubtomogramNormalizer()),
            ("embed", Conv6Embedder(module__width=4, max_epochs=1, random_state=0)),
            ("clf", CalibratedFewShotClassifier(random_state=0, **clf)),
        ]
    )


@pytest.fixture(scope="module")
def models(data):
    Xb, yb, Xn, yn = data
    pre = _pipeline().fit(Xb, yb)
    return pre, adapt(pre, Xn, yn)


def _roundtrip(model, path, **kw):
    save_model(model, path, {"voxel_size": 10.0, "seed": 0}, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafeModelFileWarning)
        return load_model(path, return_metadata=True)


@pytest.mark.parametrize("which", [0, 1], ids=["pretrained", "adapted"])
@pytest.mark.parametrize("suffix", ["safetensors", "joblib"])
def test_roundtrip_gives_identical_predictions(models, data, tmp_path, which, suffix):
    model = models[which]
    X = np.concatenate([data[0], data[2]])
    loaded, meta = _roundtrip(model, tmp_path / f"m.{suffix}")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    fitted = [a for a in ("support_scatter_", "n_iter_") if hasattr(model[-1], a)]
    assert fitted == [a for a in fitted if hasattr(loaded[-1], a)]
    for a in fitted:
        np.testing.assert_array_equal(getattr(loaded[-1], a), getattr(model[-1], a))
    assert meta["kind"] == ("pretrained", "adapted")[which]
    assert meta["voxel_size"] == 10.0 and meta["seed"] == 0 and meta["box_size"] == 8


def test_logistic_regression_classifier_roundtrip(data, tmp_path):
    # the paper's recipe ends in a LogisticRegression (logreg_)
    paper = {"method": "paper", "solver": "lbfgs"}
    Xb, yb, Xn, yn = data
    pre = _pipeline(n_samples=20, **paper).fit(Xb, yb)
    assert hasattr(pre[-1], "logreg_")
    for model in (pre, adapt(pre, Xn, yn)):
        loaded, _ = _roundtrip(model, tmp_path / "p.safetensors", overwrite=True)
        np.testing.assert_array_equal(loaded.predict_proba(Xn), model.predict_proba(Xn))


def test_binary_adapted_model(models, data, tmp_path):
    _, _, Xn, yn = data
    two = adapt(models[0], Xn, yn)  # 2 novel classes: c4, c5
    assert len(two.classes_) == 2
    loaded, _ = _roundtrip(two, tmp_path / "two.safetensors")
    np.testing.assert_array_equal(loaded.predict_proba(Xn), two.predict_proba(Xn))


def test_adapting_a_loaded_model_equals_adapting_the_original(models, data, tmp_path):
    pre = models[0]
    _, _, Xn, yn = data
    loaded, _ = _roundtrip(pre, tmp_path / "pre.safetensors")
    a, b = adapt(pre, Xn[::2], yn[::2]), adapt(loaded, Xn[::2], yn[::2])
    np.testing.assert_array_equal(a.predict_proba(Xn), b.predict_proba(Xn))


def test_metadata_contents(models, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(models[1], path, {"voxel_size": 10.0, "seed": 7, "note": "hello"})
    _, meta = load_model(path, return_metadata=True)
    assert meta["base_classes"] == ["c0", "c1", "c2", "c3"]
    assert meta["novel_classes"] == ["c4", "c5"] and meta["classes"] == ["c4", "c5"]
    assert meta["seed"] == 7 and meta["user"] == {"note": "hello"}
    assert meta["normalization"]["lowpass"] is None
    assert meta["training"]["embedder"]["max_epochs"] == 1
    assert set(meta["versions"]) >= {"fscc_sklearn", "torch", "scikit-learn", "numpy"}
    assert len(meta["content_sha256"]) == 64
    history = meta["structure"]["embed"]["history"]
    assert len(history) == 1 and "train_loss" in history[0]


def test_joblib_warns_about_code_execution(models, tmp_path):
    path = tmp_path / "m.joblib"
    save_model(models[0], path)
    with pytest.warns(UnsafeModelFileWarning, match="execute arbitrary code"):
        load_model(path)


def test_existing_file_needs_overwrite(models, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(models[0], path)
    with pytest.raises(FileExistsError, match="already exists"):
        save_model(models[0], path)
    save_model(models[0], path, overwrite=True)


def test_safe_format_refuses_other_models(tmp_path):
    clf = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(ValueError, match="save to a .joblib|Save other models"):
        save_model(clf, tmp_path / "m.safetensors")
    save_model(clf, tmp_path / "m.joblib")  # any estimator pickles
    with pytest.raises(ValueError, match="suffix"):
        save_model(clf, tmp_path / "m.bin")


def _rewrite(src, dst, edit_tensors=None, edit_info=None, rehash=True):
    """Copy a model file with edits (optionally re-signing the content hash)."""
    with safe_open(str(src), framework="numpy") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        info = json.loads(f.metadata()["fscc_sklearn"])
    if edit_tensors:
        edit_tensors(tensors)
    if edit_info:
        edit_info(info)
    if rehash:
        info["content_sha256"] = _content_hash(tensors, info)
    save_file(tensors, str(dst), metadata={"fscc_sklearn": json.dumps(info)})


@pytest.fixture()
def saved(models, tmp_path):
    path = tmp_path / "good.safetensors"
    save_model(models[1], path, {"voxel_size": 10.0})
    return path


def test_modified_file_fails_the_hash(saved, tmp_path):
    def nudge(t):
        t["clf.base.means"] = t["clf.base.means"] + 1e-3

    _rewrite(saved, tmp_path / "bad.safetensors", nudge, rehash=False)
    with pytest.raises(ValueError, match="content hash mismatch"):
        load_model(tmp_path / "bad.safetensors")


def test_unexpected_tensor_refused(saved, tmp_path):
    def extra(t):
        t["payload"] = np.zeros(3)

    _rewrite(saved, tmp_path / "bad.safetensors", extra)
    with pytest.raises(ValueError, match="unexpected tensors.*payload"):
        load_model(tmp_path / "bad.safetensors")


def test_wrong_shape_refused(saved, tmp_path):
    def grow(t):
        t["embed.module.fc.weight"] = np.zeros((4, 5), dtype=np.float32)

    _rewrite(saved, tmp_path / "bad.safetensors", grow)
    with pytest.raises(ValueError, match=r"embed.module.fc.weight.*\(4, 5\)"):
        load_model(tmp_path / "bad.safetensors")


def test_missing_network_tensor_refused(saved, tmp_path):
    def drop(t):
        del t["embed.module.fc.bias"]

    _rewrite(saved, tmp_path / "bad.safetensors", drop)
    with pytest.raises(ValueError, match="missing.*fc.bias"):
        load_model(tmp_path / "bad.safetensors")


def test_unexpected_metadata_refused(saved, tmp_path):
    def inject(info):
        info["structure"]["embed"]["params"]["callbacks"] = "os.system"

    _rewrite(saved, tmp_path / "bad.safetensors", edit_info=inject)
    with pytest.raises(ValueError, match="unexpected embedder parameter 'callbacks'"):
        load_model(tmp_path / "bad.safetensors")

    def object_labels(info):
        info["structure"]["clf"]["classes"]["dtype"] = "O"

    _rewrite(saved, tmp_path / "bad2.safetensors", edit_info=object_labels)
    with pytest.raises(ValueError, match="forbidden dtype"):
        load_model(tmp_path / "bad2.safetensors")


def test_not_a_model_file(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match="not a readable safetensors model file"):
        load_model(tmp_path / "x.safetensors")
    save_file({"a": np.zeros(2)}, str(tmp_path / "y.safetensors"))
    with pytest.raises(ValueError, match="not an fscc-sklearn model"):
        load_model(tmp_path / "y.safetensors")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "z.safetensors")


def test_check_model_input():
    meta = {"box_size": 32, "voxel_size": 10.0}
    check_model_input(meta, 32, 10.0)
    check_model_input(meta, 32, None)  # unknown voxel size: accepted
    with pytest.raises(ValueError, match=r"box 28\^3 voxels.*32\^3"):
        check_model_input(meta, 28, 10.0, source="data")
    with pytest.raises(ValueError, match="voxel size 13.7 A.*10 A"):
        check_model_input(meta, 32, 13.7)


def test_embedder_settings_are_restored(data, tmp_path):
    Xb, yb, _, _ = data
    emb = Conv6Embedder(module__width=4, max_epochs=1, random_state=0, lr=0.01)
    if "channels_last" in emb.get_params():
        emb.set_params(channels_last=False)
    pipe = Pipeline([("embed", emb), ("clf", CalibratedFewShotClassifier())])
    pipe.fit(Xb, yb)
    loaded, _ = _roundtrip(pipe, tmp_path / "e.safetensors")
    got = loaded.named_steps["embed"].get_params()
    for key in ("lr", "module__width", "max_epochs", "random_state", "channels_last"):
        if key in emb.get_params():
            assert got[key] == emb.get_params()[key], key
    np.testing.assert_array_equal(loaded.predict_proba(Xb), pipe.predict_proba(Xb))


def test_model_file_has_the_usual_permissions(models, tmp_path):
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    path = save_model(models[0], tmp_path / "m.safetensors")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
