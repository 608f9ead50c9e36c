"""A model file is untrusted input: crafted files are refused at load, naming
the field, before anything large is built (issue 21); optional signing."""

import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file
from sklearn.pipeline import Pipeline

from fscc_sklearn import CalibratedFewShotClassifier, Conv6Embedder, load_model
from fscc_sklearn import save_model as save
from fscc_sklearn.datasets._toy import make_toy_volumes
from fscc_sklearn.io import SubtomogramNormalizer
from fscc_sklearn.nn import Conv6
from fscc_sklearn.persistence._format import content_hash
from fscc_sklearn.persistence._schema import MAX_JSON_DEPTH

V1 = Path(__file__).parent / "data" / "model_v1" / "bayes_adapted.safetensors"


@pytest.fixture(scope="module")
def data():
    X, y = make_toy_volumes(n_classes=4, n_per_class=8, box=8, random_state=0)
    return X, np.array([f"c{v}" for v in y])


@pytest.fixture(scope="module")
def model_file(data, tmp_path_factory):
    X, y = data
    pipe = Pipeline(
        [
            ("normalize", SubtomogramNormalizer()),
            ("embed", Conv6Embedder(module__width=4, max_epochs=1, random_state=0)),
            ("clf", CalibratedFewShotClassifier(random_state=0)),
        ]
    ).fit(X, y)
    path = tmp_path_factory.mktemp("trust") / "good.safetensors"
    save(pipe, path, {"voxel_size": 10.0, "seed": 0})
    return path


def _read(path):
    with safe_open(str(path), framework="numpy") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        return tensors, json.loads(f.metadata()["fscc_sklearn"])


def _craft(src, dst, edit_tensors=None, edit_info=None, text=None):
    """Edit a real model file as an attacker would: change it, recompute the
    content hash (it has no key), write it back."""
    tensors, info = _read(src)
    if edit_tensors:
        edit_tensors(tensors)
    if edit_info:
        edit_info(info)
    info["content_sha256"] = content_hash(tensors, info)
    meta = json.dumps(info) if text is None else text(info)
    save_file(tensors, str(dst), metadata={"fscc_sklearn": meta})
    return dst


def _step(i, part, key, value):
    return lambda info: info["model"]["steps"][i][part].__setitem__(key, value)


def _nest(info):
    deep = "[" * 100_000 + "]" * 100_000
    return json.dumps({**info, "user": "HOLE"}).replace('"HOLE"', deep)


def _nest_to(depth):
    def text(info):
        return json.dumps({**info, "user": "HOLE"}).replace(
            '"HOLE"', "[" * depth + "]" * depth
        )

    return text


def _header(key, value):
    return lambda info: info.__setitem__(key, value)


# (edit of the metadata, text the error must hold): each case of issue 21's
# "Found" list that the metadata decides
SCHEMA_CASES = {
    "batch_size -1": (_step(1, "params", "batch_size", -1), "embed.params.batch_size"),
    "batch_size 0": (_step(1, "params", "batch_size", 0), "embed.params.batch_size"),
    "batch_size 2.5": (
        _step(1, "params", "batch_size", 2.5),
        "embed.params.batch_size = 2.5 must be an int",
    ),
    "width 1e5": (
        _step(1, "params", "module__width", 100000),
        "embed.params.module__width = 100000 exceeds the maximum 4096",
    ),
    "proj_dim 1e9": (
        _step(1, "params", "module__proj_dim", 1e9),
        "embed.params.module__proj_dim = 1000000000.0 must be an int",
    ),
    "input_shape 40000^3": (
        _step(1, "meta", "input_shape", [1, 40000, 40000, 40000]),
        "embed.meta.input_shape[1] = 40000 exceeds the maximum 1024",
    ),
    "params []": (_step(1, "params", "params", None), None),  # replaced below
    "n_features_in inf": (
        _step(2, "meta", "n_features_in", float("inf")),
        "clf.meta.n_features_in = inf must be an int",
    ),
    "tukey_lambda NaN": (
        _step(2, "params", "tukey_lambda", float("nan")),
        "params.tukey_lambda is NaN",
    ),
    "tukey_lambda -1e308": (
        _step(2, "params", "tukey_lambda", -1e308),
        "clf.params.tukey_lambda = -1e+308 is outside [0, 10]",
    ),
    "statistics tukey_lambda NaN": (
        lambda info: info["model"]["steps"][2]["meta"]["base_statistics"][
            "meta"
        ].__setitem__("tukey_lambda", float("nan")),
        "base_statistics.meta.tukey_lambda is NaN",
    ),
    "voxel_size [1, 2]": (_header("voxel_size", [1, 2]), "voxel_size = [1, 2]"),
    "box_size 'eight'": (_header("box_size", "eight"), 'box_size = "eight"'),
    "kind 'evil'": (_header("kind", "evil"), 'kind = "evil" is not one of'),
    "classes dtype <U10000000": (
        lambda info: info["model"]["steps"][2]["meta"]["classes"].__setitem__(
            "dtype", "<U10000000"
        ),
        'clf.meta.classes.dtype = "<U10000000" is wider than its labels',
    ),
    "100001 classes": (
        lambda info: info["model"]["steps"][2]["meta"]["classes"].__setitem__(
            "values", ["c"] * 100_001
        ),
        "clf.meta.classes.values holds 100001 labels; the maximum is 100000",
    ),
    "long class name": (
        _header("classes", ["x" * 5000]),
        "classes[0] is a label of 5000 characters",
    ),
    "unknown header field": (_header("payload", 1), "payload is not a field"),
    "support digests not a list": (
        _header("user", {"support_sha256": {"a": 1}}),
        'user.support_sha256 = {"a": 1} must be a list of digests',
    ),
}
SCHEMA_CASES["params []"] = (
    lambda info: info["model"]["steps"][1].__setitem__("params", []),
    "embed.params = [] must be a JSON object",
)


@pytest.fixture()
def nothing_built(monkeypatch):
    """Fail the test if any Conv6 network is built, even on the meta device."""

    def refuse(*args, **kwargs):
        raise AssertionError("a Conv6 network was built from a crafted file")

    monkeypatch.setattr(Conv6, "__init__", refuse)


def _refused_fast(path, match):
    tracemalloc.start()
    start = time.process_time()
    try:
        with pytest.raises(ValueError) as err:
            load_model(path)
    finally:
        seconds = time.process_time() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    message = str(err.value)
    assert match in message, message
    assert "\n" not in message  # one line for the command line
    assert seconds < 2.0, seconds  # CPU time: milliseconds, however busy the machine
    assert peak < 64 * 2**20, peak  # the metadata's size, nothing it asks for
    return message


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_crafted_metadata_is_refused_before_anything_is_built(
    case, model_file, tmp_path, nothing_built
):
    edit, match = SCHEMA_CASES[case]
    bad = _craft(model_file, tmp_path / "m.safetensors", edit_info=edit)
    message = _refused_fast(bad, match)
    assert str(bad) in message


def test_deeply_nested_json_is_refused_without_recursion(model_file, tmp_path):
    bad = _craft(model_file, tmp_path / "m.safetensors", text=_nest)
    _refused_fast(
        bad, f"metadata nests too deep; the maximum depth is {MAX_JSON_DEPTH}"
    )
    # deeper than the format allows, shallower than the decoder's limit
    bad = _craft(model_file, tmp_path / "m.safetensors", text=_nest_to(40))
    message = _refused_fast(bad, "nests deeper than the maximum depth 32")
    assert ": user[0][0][0]" in message


def test_version_1_method_must_be_a_known_recipe(tmp_path, nothing_built):
    def evil(info):
        info["structure"]["clf"]["params"]["method"] = "evil"

    bad = _craft(V1, tmp_path / "v1.safetensors", edit_info=evil)
    _refused_fast(bad, "clf.params.method = 'evil' is not one of ['bayes', 'paper']")

    def no_params(info):
        info["structure"]["embed"]["params"] = []

    bad = _craft(V1, tmp_path / "v1b.safetensors", edit_info=no_params)
    _refused_fast(bad, "embedder params must be a JSON object")


def _full(t, key, value):
    t[key] = np.full_like(t[key], value)


# (edit of the tensors, text the error must hold)
TENSOR_CASES = {
    "NaN coef": (
        lambda t: _full(t, "clf/coef", np.nan),
        "tensor 'coef' holds non-finite values",
    ),
    "1-row coef for 4 classes": (
        lambda t: t.update(
            {
                "clf/coef": t["clf/coef"][:1].copy(),
                "clf/intercept": t["clf/intercept"][:1].copy(),
            }
        ),
        "tensor 'coef' has 1 rows; 4 classes need 4",
    ),
    "NaN conv weights": (
        lambda t: _full(t, "embed/module.blocks.0.0.weight", np.nan),
        "tensor 'module.blocks.0.0.weight' holds non-finite values",
    ),
    "conv weight 1e38": (
        lambda t: t["embed/module.blocks.0.0.weight"].flat.__setitem__(0, 1e38),
        "tensor 'module.blocks.0.0.weight' holds a value of magnitude 1e+38",
    ),
    "negative BN running_var": (
        lambda t: _full(t, "embed/module.blocks.2.1.running_var", -1.0),
        "tensor 'module.blocks.2.1.running_var' holds negative variances",
    ),
    "negative covariance diagonal": (
        lambda t: t.__setitem__(
            "clf/base_statistics_/covariances",
            -t["clf/base_statistics_/covariances"],
        ),
        "tensor 'covariances' holds negative variances on its diagonal",
    ),
    "float32 statistics": (
        lambda t: t.__setitem__(
            "clf/base_statistics_/means",
            t["clf/base_statistics_/means"].astype(np.float32),
        ),
        "tensor 'means' has dtype float32",
    ),
}


@pytest.mark.parametrize("case", sorted(TENSOR_CASES))
def test_crafted_tensors_are_refused_naming_the_tensor(case, model_file, tmp_path):
    edit, match = TENSOR_CASES[case]
    bad = _craft(model_file, tmp_path / "m.safetensors", edit_tensors=edit)
    _refused_fast(bad, match)


def test_a_bf16_tensor_is_refused_by_its_dtype(model_file, tmp_path):
    import torch
    from safetensors.torch import save_file as save_torch

    tensors, info = _read(model_file)
    as_torch = {k: torch.from_numpy(v) for k, v in tensors.items()}
    key = "embed/module.fc.weight"
    as_torch[key] = as_torch[key].to(torch.bfloat16)
    bad = tmp_path / "bf16.safetensors"
    save_torch(as_torch, str(bad), metadata={"fscc_sklearn": json.dumps(info)})
    _refused_fast(bad, f"tensor '{key}' has dtype BF16")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("module__width", 4096, r"shape (4, 1, 3, 3, 3); expected float32 (4096,"),
        ("module__proj_dim", 65536, "network tensors do not match the module"),
    ],
    ids=["width 4096", "proj_dim 65536"],
)
def test_sizes_within_the_limits_allocate_nothing_without_their_tensors(
    model_file, tmp_path, key, value, match
):
    # a width of 4096 would take 9 GB: the file's tensors are compared with a
    # network built on the meta device first, which holds no memory
    bad = _craft(
        model_file, tmp_path / "m.safetensors", edit_info=_step(1, "params", key, value)
    )
    _refused_fast(bad, match)


def test_the_header_must_describe_the_model_built(model_file, tmp_path):
    # callers (the command line, reports) trust the header's classes and box
    for key, value, match in [
        ("classes", ["a", "b"], "classes = ['a', 'b'] is not what the model holds"),
        ("box_size", 16, "box_size = 16 is not what the model holds (8)"),
        ("kind", "adapted", "kind = adapted is not what the model holds"),
    ]:
        bad = _craft(
            model_file, tmp_path / f"{key}.safetensors", edit_info=_header(key, value)
        )
        _refused_fast(bad, match)


def test_steps_whose_features_do_not_fit_are_refused(data, model_file, tmp_path):
    from fscc_sklearn.baselines import PrototypeClassifier

    # the classifier of another feature space, with every tensor of its own
    F = np.abs(np.random.default_rng(0).normal(size=(8, 5)))
    proto = save(
        PrototypeClassifier().fit(F, [0, 1] * 4), tmp_path / "proto.safetensors"
    )
    p_tensors, p_info = _read(proto)

    def swap(info):
        step = dict(p_info["model"]["steps"][0], name="clf", frozen=False)
        info["model"]["steps"][2] = step
        info["classes"], info["kind"], info["base_classes"] = [0, 1], "fitted", []

    def tensors(t):
        for k in [k for k in t if k.startswith("clf/")]:
            del t[k]
        t.update({"clf/" + k.split("/", 1)[1]: v for k, v in p_tensors.items()})

    bad = _craft(model_file, tmp_path / "m.safetensors", tensors, swap)
    _refused_fast(bad, "Conv6Embedder makes 4 features, PrototypeClassifier expects")


def test_saving_refuses_what_loading_would_refuse(data, model_file, tmp_path):
    model = load_model(model_file)
    with pytest.raises(ValueError, match="voxel_size must be a number"):
        save(model, tmp_path / "a.safetensors", {"voxel_size": -1.0})
    with pytest.raises(ValueError, match=r"module__width = 5000 exceeds"):
        model.named_steps["embed"].module__width = 5000
        save(model, tmp_path / "b.safetensors")
    assert not (tmp_path / "b.safetensors").exists()


# ---------------------------------------------------------------------------
# signing


def test_a_signed_file_loads_with_its_key_and_an_edited_one_is_refused(
    data, model_file, tmp_path
):
    X, _ = data
    model = load_model(model_file)
    path = save(model, tmp_path / "s.safetensors", key="secret")
    loaded = load_model(path, key="secret")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    load_model(path)  # without a key nothing is checked beyond the hash

    with pytest.raises(ValueError, match="signature does not match the key"):
        load_model(path, key="other")
    # an attacker edits the file and recomputes the content hash
    edited = _craft(path, tmp_path / "e.safetensors", edit_info=_header("seed", 7))
    load_model(edited)
    with pytest.raises(ValueError, match="signature does not match the key"):
        load_model(edited, key=b"secret")
    with pytest.raises(ValueError, match="is not signed, and a key is set"):
        load_model(model_file, key="secret")


def test_the_environment_key_signs_and_checks(data, model_file, tmp_path, monkeypatch):
    from fscc_sklearn.embedding._weights import pretrained_path

    model = load_model(model_file)
    save(model, tmp_path / "m.joblib")
    monkeypatch.setenv("FSCC_MODEL_KEY", "from-env")
    path = save(model, tmp_path / "s.safetensors")
    load_model(path)
    with pytest.raises(ValueError, match="is not signed"):
        load_model(model_file)
    with pytest.raises(ValueError, match="signature does not match"):
        load_model(path, key="another")
    # the shipped model is as trusted as the package's code
    load_model(pretrained_path("general"))
    with pytest.raises(ValueError, match="joblib file cannot be verified"):
        load_model(tmp_path / "m.joblib")
    with pytest.raises(ValueError, match="only the safe format"):
        save(model, tmp_path / "n.joblib")
    monkeypatch.delenv("FSCC_MODEL_KEY")
    with pytest.raises(ValueError, match="key must be a non-empty string"):
        save(model, tmp_path / "t.safetensors", key=b"")


def test_the_error_is_a_value_error_naming_file_and_field(model_file, tmp_path):
    from fscc_sklearn.persistence import ModelFileError

    edit = _step(1, "params", "module__width", 100000)
    bad = _craft(model_file, tmp_path / "w.safetensors", edit_info=edit)
    with pytest.raises(ModelFileError) as err:
        load_model(bad)
    assert isinstance(err.value, ValueError)
    assert err.value.field == "embed.params.module__width"
    assert err.value.source == bad
    assert str(err.value) == (
        f"model file '{bad}': embed.params.module__width = 100000 exceeds the "
        "maximum 4096."
    )


@pytest.mark.parametrize("temperature", [1e-308, 1e-30, 1e30])
def test_an_extreme_temperature_gives_finite_probabilities(
    data, model_file, tmp_path, temperature
):
    # found by the model-file fuzz (seed 3, cases 40375 and 81870): 1e-308
    # overflowed the scores to inf and the probabilities to NaN
    X, _ = data
    edit = _step(2, "meta", "temperature", temperature)
    model = load_model(_craft(model_file, tmp_path / "t.safetensors", edit_info=edit))
    proba = model.predict_proba(X[:6])
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0)
    if temperature < 1:  # the winner takes all
        assert list(model.classes_[proba.argmax(1)]) == list(model.predict(X[:6]))
    else:  # no preference left
        np.testing.assert_allclose(proba, 1 / len(model.classes_))


# ---------------------------------------------------------------------------
# mutations of a valid file: the loader answers ValueError or a working model

_ODD_VALUES = [
    *(None, True, -1, 0, 2.5, 1e9, 10**12, -(10**20), "", "evil", "x" * 70_000),
    *([], {}, [1, 2], {"a": 1}, float("inf"), float("nan"), [[[[[]]]]], ["a", 1]),
]


def _json_paths(obj, path=()):
    if path:
        yield path
    if isinstance(obj, (dict, list)):
        items = obj.items() if isinstance(obj, dict) else enumerate(obj[:4])
        for key, sub in items:
            yield from _json_paths(sub, (*path, key))


def _mutate(info, tensors, rng):
    if rng.random() < 0.8:
        paths = list(_json_paths(info))
        *parents, last = paths[rng.integers(len(paths))]
        target = info
        for key in parents:
            target = target[key]
        target[last] = _ODD_VALUES[rng.integers(len(_ODD_VALUES))]
        return
    name = sorted(tensors)[rng.integers(len(tensors))]
    arr, how = tensors[name], rng.integers(4)
    if how == 0:
        tensors[name] = arr.astype(
            np.float32 if arr.dtype == np.float64 else np.float64
        )
    elif how == 1:
        tensors[name] = np.ascontiguousarray(arr[None])
    elif how == 2 and arr.ndim:
        tensors[name] = np.ascontiguousarray(arr[:-1])
    else:
        tensors[name] = np.asarray(-np.abs(arr) - 1, dtype=arr.dtype)


@pytest.mark.parametrize("source", ["format 2", "format 1"])
def test_mutated_files_load_or_raise_value_error(data, model_file, tmp_path, source):
    X, _ = data
    src = model_file if source == "format 2" else V1
    tensors0, info0 = _read(src)
    rng = np.random.default_rng(0)
    outcomes = {"refused": 0, "loaded": 0}
    for i in range(60):
        info, tensors = json.loads(json.dumps(info0)), dict(tensors0)
        for _ in range(rng.integers(1, 3)):
            _mutate(info, tensors, rng)
        info["content_sha256"] = content_hash(tensors, info)
        path = tmp_path / f"{i}.safetensors"
        save_file(tensors, str(path), metadata={"fscc_sklearn": json.dumps(info)})
        try:
            model = load_model(path)
        except ValueError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1  # a harmless edit (a note, a version string)
        assert model.predict(X[:2]).shape == (2,)
    assert outcomes["refused"] >= 30 and outcomes["loaded"] >= 3, outcomes
