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
    ModelInputError,
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


def test_paper_recipe_classifier_roundtrip(data, tmp_path):
    from fscc_sklearn import DistributionCalibrationClassifier

    # the paper's recipe, fitted by a logistic regression (lbfgs)
    Xb, yb, Xn, yn = data
    pre = _pipeline().set_params(
        clf=DistributionCalibrationClassifier(
            solver="lbfgs", n_samples=20, random_state=0
        )
    )
    pre.fit(Xb, yb)
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
    embed = meta["model"]["steps"][1]
    assert embed["name"] == "embed" and embed["class"] == "Conv6Embedder"
    history = embed["meta"]["history"]
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
        t["clf/base/means"] = t["clf/base/means"] + 1e-3

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
        t["embed/module.fc.weight"] = np.zeros((4, 5), dtype=np.float32)

    _rewrite(saved, tmp_path / "bad.safetensors", grow)
    with pytest.raises(ValueError, match=r"module.fc.weight.*\(4, 5\)"):
        load_model(tmp_path / "bad.safetensors")


def test_missing_network_tensor_refused(saved, tmp_path):
    def drop(t):
        del t["embed/module.fc.bias"]

    _rewrite(saved, tmp_path / "bad.safetensors", drop)
    with pytest.raises(ValueError, match="missing.*fc.bias"):
        load_model(tmp_path / "bad.safetensors")


def test_unexpected_metadata_refused(saved, tmp_path):
    def inject(info):
        info["model"]["steps"][1]["params"]["callbacks"] = "os.system"

    _rewrite(saved, tmp_path / "bad.safetensors", edit_info=inject)
    match = "unexpected Conv6Embedder parameter 'callbacks'"
    with pytest.raises(ValueError, match=match):
        load_model(tmp_path / "bad.safetensors")

    def object_labels(info):
        info["model"]["steps"][2]["meta"]["classes"]["dtype"] = "O"

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
    with pytest.raises(ModelInputError, match=r"data: box 28\^3 voxels.*32\^3") as e:
        check_model_input(meta, 28, 10.0, source="data")
    assert (e.value.option, e.value.expected, e.value.actual) == ("box", 32, 28)
    assert "--" not in str(e.value)  # the library names no command-line flag
    with pytest.raises(ModelInputError, match="voxel size 13.7 A.*10 A") as e:
        check_model_input(meta, 32, 13.7)
    assert (e.value.option, e.value.expected, e.value.actual) == (
        "voxel_size",
        10.0,
        13.7,
    )
    assert isinstance(e.value, ValueError)


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


# ---------------------------------------------------------------------------
# the generic loop: any pipeline of the package's estimators


@pytest.fixture(scope="module")
def embedder(models):
    return models[0].named_steps["embed"]


def _saveable_classifiers():
    from fscc_sklearn.baselines import (
        BaselineClassifier,
        BaselinePlusPlusClassifier,
        PrototypeClassifier,
        TukeyLogisticRegression,
    )

    return [
        BaselineClassifier(max_epochs=5, random_state=0),
        BaselinePlusPlusClassifier(max_epochs=5, random_state=0),
        PrototypeClassifier(tukey_lambda=0.5),
        PrototypeClassifier(),
        TukeyLogisticRegression(random_state=0),
        CalibratedFewShotClassifier(random_state=0),
    ]


@pytest.mark.parametrize("clf", _saveable_classifiers(), ids=lambda c: type(c).__name__)
def test_pipeline_with_each_classifier_roundtrips(embedder, data, tmp_path, clf):
    from fscc_sklearn.model_selection import freeze

    Xb, yb, Xn, yn = data
    pipe = Pipeline(
        [("norm", SubtomogramNormalizer()), ("emb", freeze(embedder)), ("head", clf)]
    ).fit(Xn, yn)
    loaded, meta = _roundtrip(pipe, tmp_path / "any.safetensors")
    X = np.concatenate([Xb, Xn])
    assert [type(s).__name__ for _, s in loaded.steps] == [
        "SubtomogramNormalizer",
        "FrozenEstimator",
        type(clf).__name__,
    ]
    np.testing.assert_array_equal(loaded[:-1].transform(X), pipe[:-1].transform(X))
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    np.testing.assert_array_equal(
        loaded.decision_function(X), pipe.decision_function(X)
    )
    assert loaded[-1].get_params() == pipe[-1].get_params()
    assert meta["box_size"] == 8 and meta["classes"] == ["c4", "c5"]


def test_shapes_the_old_format_refused_now_load(embedder, data, tmp_path):
    from fscc_sklearn.baselines import PrototypeClassifier

    Xb, yb, Xn, yn = data
    # a bare embedder, and a pipeline of other steps (no calibrated classifier)
    loaded, meta = _roundtrip(embedder, tmp_path / "emb.safetensors")
    assert isinstance(loaded, Conv6Embedder)
    np.testing.assert_array_equal(loaded.transform(Xn), embedder.transform(Xn))
    assert meta["kind"] == "fitted" and meta["box_size"] == 8
    proto = Pipeline([("e", embedder), ("p", PrototypeClassifier())]).fit(Xb, yb)
    loaded, _ = _roundtrip(proto, tmp_path / "proto.safetensors")
    np.testing.assert_array_equal(loaded.predict(Xn), proto.predict(Xn))


def test_a_new_constructor_parameter_needs_no_edit(data, tmp_path):
    from fscc_sklearn.baselines import PrototypeClassifier
    from fscc_sklearn.persistence._state import register_saveable

    @register_saveable
    class _PrototypeWithAnOption(PrototypeClassifier):
        def __init__(self, *, tukey_lambda=None, new_option="x"):
            super().__init__(tukey_lambda=tukey_lambda)
            self.new_option = new_option

    F = np.abs(np.random.default_rng(0).normal(size=(8, 3)))
    clf = _PrototypeWithAnOption(new_option="kept").fit(F, [0, 0, 1, 1] * 2)
    loaded, _ = _roundtrip(clf, tmp_path / "new.safetensors")
    assert type(loaded) is _PrototypeWithAnOption
    assert loaded.new_option == "kept"
    np.testing.assert_array_equal(loaded.centroids_, clf.centroids_)


def _edit_step(saved, tmp_path, edit):
    def edit_info(info):
        edit(info["model"]["steps"])

    bad = tmp_path / "edited.safetensors"
    _rewrite(saved, bad, edit_info=edit_info)
    return bad


def test_unknown_class_refused(saved, tmp_path):
    def rename(steps):
        steps[2]["class"] = "subprocess.Popen"

    bad = _edit_step(saved, tmp_path, rename)
    with pytest.raises(ValueError, match="unknown estimator class 'subprocess.Popen'"):
        load_model(bad)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ([1, 2], "parameter 'k' must be a number, string, boolean or null"),
        ({"__class__": "x"}, "parameter 'k' must be a number"),
        ("two", "The 'k' parameter of CalibratedFewShotClassifier must be"),
        (-3, "The 'k' parameter of CalibratedFewShotClassifier must be"),
    ],
)
def test_bad_param_type_refused(saved, tmp_path, value, match):
    def set_k(steps):
        steps[2]["params"]["k"] = value

    with pytest.raises(ValueError, match=match):
        load_model(_edit_step(saved, tmp_path, set_k))


def test_unread_and_malformed_state_refused(saved, tmp_path):
    def extra(t):
        t["clf/payload"] = np.zeros(3)

    _rewrite(saved, tmp_path / "bad.safetensors", extra)
    with pytest.raises(ValueError, match=r"unexpected tensors \['clf/payload'\]"):
        load_model(tmp_path / "bad.safetensors")

    def no_meta(steps):
        del steps[1]["meta"]["input_shape"]

    with pytest.raises(ValueError, match="'input_shape' is missing"):
        load_model(_edit_step(saved, tmp_path, no_meta))

    def nan_coef(t):
        t["clf/coef"] = np.full_like(t["clf/coef"], np.nan)

    _rewrite(saved, tmp_path / "nan.safetensors", nan_coef)
    with pytest.raises(ValueError, match="'coef' holds non-finite values"):
        load_model(tmp_path / "nan.safetensors")


def test_frozen_steps_stay_frozen(models, tmp_path):
    from sklearn.frozen import FrozenEstimator

    adapted = models[1]
    frozen = [isinstance(s, FrozenEstimator) for _, s in adapted.steps]
    assert any(frozen)
    loaded, _ = _roundtrip(adapted, tmp_path / "f.safetensors")
    assert [isinstance(s, FrozenEstimator) for _, s in loaded.steps] == frozen


# ---------------------------------------------------------------------------
# files of format version 1 (what fscc-sklearn wrote before issue 19)

V1 = __import__("pathlib").Path(__file__).parent / "data" / "model_v1"


@pytest.mark.parametrize(
    "name", ["bayes_base", "bayes_adapted", "paper_base", "paper_adapted"]
)
def test_version_1_files_load_identically(name, tmp_path):
    X, _ = make_toy_volumes(n_classes=6, n_per_class=10, box=8, random_state=0)
    expected = np.load(V1 / "expected.npz")
    model, meta = load_model(V1 / f"{name}.safetensors", return_metadata=True)
    assert meta["format_version"] == 1
    np.testing.assert_array_equal(model.predict_proba(X), expected[name])
    np.testing.assert_array_equal(model[:-1].transform(X), expected[f"{name}_features"])
    # saving a re-loaded version-1 model writes the current format
    again, meta2 = _roundtrip(model, tmp_path / "v2.safetensors")
    assert meta2["format_version"] == 2 and "structure" not in meta2
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))


def test_version_1_files_are_checked_like_new_ones(tmp_path):
    src = V1 / "bayes_adapted.safetensors"

    def inject(info):
        info["structure"]["embed"]["params"]["callbacks"] = "os.system"

    _rewrite(src, tmp_path / "a.safetensors", edit_info=inject)
    with pytest.raises(ValueError, match="unexpected Conv6Embedder parameter"):
        load_model(tmp_path / "a.safetensors")

    def payload(t):
        t["payload"] = np.zeros(3)

    _rewrite(src, tmp_path / "b.safetensors", payload)
    with pytest.raises(ValueError, match=r"unexpected tensors \['payload'\]"):
        load_model(tmp_path / "b.safetensors")

    def shape(t):
        t["clf.base.means"] = np.ascontiguousarray(t["clf.base.means"][:, :2])

    _rewrite(src, tmp_path / "c.safetensors", shape)
    with pytest.raises(ValueError, match=r"clf/base \(BaseStatistics\): tensor"):
        load_model(tmp_path / "c.safetensors")


def test_unfreeze_is_the_one_unwrap(models):
    from sklearn.frozen import FrozenEstimator

    from fscc_sklearn.model_selection import freeze, unfreeze

    emb = models[0].named_steps["embed"]
    assert unfreeze(FrozenEstimator(freeze(emb))) is emb
    assert unfreeze(emb) is emb
    plain = unfreeze(models[1])
    assert plain is not models[1]
    assert plain.steps[1][1] is models[1].steps[1][1].estimator
    assert not any(isinstance(s, FrozenEstimator) for _, s in plain.steps)


def test_labels_with_a_huge_string_width_refused(saved, tmp_path):
    def widen(steps):
        steps[2]["meta"]["classes"]["dtype"] = "<U50000000"

    with pytest.raises(ValueError, match="wider than its labels"):
        load_model(_edit_step(saved, tmp_path, widen))
