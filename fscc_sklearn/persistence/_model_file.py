"""Save and load fitted FSCC pipelines: a safe safetensors format, or joblib.

The safe format stores every array (network weights, base-class statistics,
logistic-regression coefficients) as a tensor of a ``.safetensors`` file and
everything else (hyper-parameters, class names, box and voxel size, versions,
seed, training history) as JSON in the file's metadata. Loading it runs no
code from the file: the pipeline is rebuilt from the library's own classes and
the tensors are checked against what those classes expect.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import warnings
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SAFE_SUFFIXES",
    "UnsafeModelFileWarning",
    "check_model_input",
    "load_model",
    "model_metadata",
    "save_model",
]

FORMAT_NAME = "fscc-sklearn-model"
FORMAT_VERSION = 1
SAFE_SUFFIXES = (".safetensors", ".fscc")
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
_META_KEY = "fscc_sklearn"

# Parameters of the estimators that the safe format restores; anything else
# (custom modules, callbacks, iterators) needs joblib.
# Conv6Embedder parameters never stored: classes and objects (only the defaults
# are supported), the device (chosen when loading) and skorch internals.
_EMBEDDER_EXCLUDED = frozenset(
    {
        "module",
        "criterion",
        "optimizer",
        "iterator_train",
        "iterator_valid",
        "dataset",
        "callbacks",
        "initial_weights",  # where training started; the weights are saved
        "train_split",
        "torch_load_kwargs",
        "device",
    }
)
_EMBEDDER_PREFIXES = ("module__", "criterion__", "optimizer__")
# fitted arrays of CalibratedFewShotClassifier restored when the saved one had them
_CLASSIFIER_ARRAYS = (
    "coef_",
    "intercept_",
    "n_iter_",
    "support_scatter_",
    "temperature_",
)
_STATS_ARRAYS = {"means": "float64", "covariances": "float64", "counts": "int64"}
_LOGREG_SCALARS = (
    "C",
    "class_weight",
    "dual",
    "fit_intercept",
    "intercept_scaling",
    "l1_ratio",
    "max_iter",
    "random_state",
    "solver",
    "tol",
)


class UnsafeModelFileWarning(UserWarning):
    """Loading a pickle-based (joblib) model file, which can execute code."""


# ----------------------------------------------------------------------------
# small helpers


def _scalar(value, where: str):
    """A JSON scalar copy of ``value`` or a ValueError naming ``where``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    raise ValueError(
        f"{where}={value!r} cannot be stored in the safe model format (only "
        "numbers, strings, booleans and None); save to a .joblib file instead."
    )


def _labels_to_json(labels) -> dict:
    labels = np.asarray(labels)
    if labels.dtype.kind == "O":
        if not all(isinstance(v, (str, Integral)) for v in labels.tolist()):
            raise ValueError(
                "Class labels must be strings or integers to be stored in the safe "
                f"model format; got {labels[:5].tolist()}."
            )
        values = [v if isinstance(v, str) else int(v) for v in labels.tolist()]
        return {"dtype": "object", "values": values}
    if labels.dtype.kind not in "Uiub":
        raise ValueError(
            "Class labels must be strings, integers or booleans to be stored in the "
            f"safe model format; got dtype {labels.dtype}."
        )
    return {"dtype": labels.dtype.str, "values": labels.tolist()}


def _labels_from_json(entry, where: str) -> np.ndarray:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "values"}:
        raise ValueError(f"Model file: {where} is malformed.")
    dtype, values = entry["dtype"], entry["values"]
    if not isinstance(values, list) or not all(
        isinstance(v, (str, int, bool)) for v in values
    ):
        raise ValueError(f"Model file: {where} must list strings or integers.")
    if dtype == "object":
        return np.array(values, dtype=object)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(
            f"Model file: {where} has an unknown dtype {dtype!r}."
        ) from None
    if dt.kind not in "Uiub":
        raise ValueError(f"Model file: {where} has a forbidden dtype {dtype!r}.")
    return np.array(values, dtype=dt)


def _unwrap(step):
    """The estimator inside a ``FrozenEstimator`` (and whether it was frozen)."""
    from sklearn.frozen import FrozenEstimator

    if isinstance(step, FrozenEstimator):
        return step.estimator, True
    return step, False


def _versions() -> dict:
    import sklearn
    import skorch
    import torch

    from .._version import __version__

    return {
        "fscc_sklearn": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "skorch": skorch.__version__,
        "python": platform.python_version(),
    }


def _content_hash(tensors: dict[str, np.ndarray], info: dict) -> str:
    """SHA-256 over the tensors (name, dtype, shape, bytes) and the JSON."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.array(tensors[name], order="C")
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    body = {k: v for k, v in info.items() if k != "content_sha256"}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------
# describing a pipeline


def _pipeline_parts(model):
    """``(normalizer or None, embedder, classifier, frozen flags)`` of a model."""
    from sklearn.pipeline import Pipeline

    from ..calibration._calibration import CalibratedFewShotClassifier
    from ..embedding._embedder import Conv6Embedder
    from ..io import SubtomogramNormalizer

    expected = (
        "Pipeline([('normalize', SubtomogramNormalizer()), ('embed', "
        "Conv6Embedder()), ('clf', CalibratedFewShotClassifier())]) (normalizer "
        "optional)"
    )
    if not isinstance(model, Pipeline):
        raise ValueError(
            f"The safe model format stores a fitted {expected}; got "
            f"{type(model).__name__}. Save other models to a .joblib file."
        )
    steps = [(name, *_unwrap(step)) for name, step in model.steps]
    kinds = [type(est) for _, est, _ in steps]
    if kinds == [Conv6Embedder, CalibratedFewShotClassifier]:
        steps = [(None, None, False), *steps]
    elif kinds != [SubtomogramNormalizer, Conv6Embedder, CalibratedFewShotClassifier]:
        raise ValueError(
            f"The safe model format stores a fitted {expected}; got steps "
            f"{[k.__name__ for k in kinds]}. Save other models to a .joblib file."
        )
    return steps


def model_metadata(model) -> dict:
    """Facts read off a fitted pipeline: box, classes, parameters, kind.

    Parameters
    ----------
    model : Pipeline
        A fitted ``[normalizer,] Conv6Embedder, CalibratedFewShotClassifier``
        pipeline.

    Returns
    -------
    dict
        ``kind`` ("pretrained" or "adapted"), ``box_size``, ``base_classes``,
        ``classes`` (what ``predict`` returns), ``novel_classes`` (adapted
        models), ``normalization`` and ``training`` (embedder and classifier
        parameters), all JSON-serialisable.
    """
    (_, norm, _), (_, emb, _), (_, clf, _) = _pipeline_parts(model)
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(clf)
    emb.check_is_fitted(["module_", "input_shape_"])
    adapted = clf.base is not None
    base = np.asarray(clf.base_statistics_.classes).tolist()
    classes = np.asarray(clf.classes_).tolist()
    return {
        "kind": "adapted" if adapted else "pretrained",
        "box_size": int(emb.input_shape_[-1]),
        "base_classes": base,
        "classes": classes,
        "novel_classes": classes if adapted else [],
        "normalization": (
            None
            if norm is None
            else {
                "per_subtomogram": "zero mean, unit variance",
                "lowpass": norm.lowpass,
            }
        ),
        "training": {
            "embedder": _embedder_params(emb),
            "classifier": _classifier_params(clf),
            "n_base_features": int(clf.base_statistics_.n_features),
            "epochs_run": len(emb.history),
        },
    }


def _embedder_params(emb) -> dict:
    from ..embedding._embedder import Conv6Embedder

    params = emb.get_params(deep=False)
    defaults = Conv6Embedder().get_params(deep=False)
    for name in ("module", "criterion", "optimizer"):
        if params[name] is not defaults[name]:
            raise ValueError(
                f"The safe model format supports the default {name} "
                f"({defaults[name].__name__}); this embedder uses "
                f"{params[name]!r}. Save it to a .joblib file."
            )
    out = {}
    for key, value in params.items():
        if key.startswith(_EMBEDDER_PREFIXES):
            out[key] = _scalar(value, f"Conv6Embedder {key}")
        elif key in _EMBEDDER_EXCLUDED or key.startswith("_") or callable(value):
            continue  # not needed to predict (e.g. a progress callback)
        else:
            out[key] = _scalar(value, f"Conv6Embedder {key}")
    return out


def _embedder_param_allowed(key: str) -> bool:
    from ..embedding._embedder import Conv6Embedder

    if key.startswith(_EMBEDDER_PREFIXES):
        return True
    names = Conv6Embedder().get_params(deep=False)
    return key in names and key not in _EMBEDDER_EXCLUDED and not key.startswith("_")


def _classifier_params(clf) -> dict:
    params = clf.get_params(deep=False)
    return {
        k: _scalar(v, f"CalibratedFewShotClassifier {k}")
        for k, v in params.items()
        if k != "base"
    }


def _stats_scalars(stats) -> dict:
    """Non-array fields of a BaseStatistics (e.g. its feature space)."""
    return {
        f.name: _scalar(getattr(stats, f.name), f"BaseStatistics {f.name}")
        for f in dataclasses.fields(stats)
        if not f.name.startswith("_")
        and f.name not in _STATS_ARRAYS
        and f.name not in ("classes", "proba_temperatures")
    }


def _temperatures_to_json(table) -> list:
    return [[int(shots), float(t)] for shots, t in table]


def _temperatures_from_json(entry) -> tuple:
    """``proba_temperatures`` of a model file (absent before they existed)."""
    if entry is None:
        return ()
    ok = isinstance(entry, list) and all(
        isinstance(pair, list)
        and len(pair) == 2
        and isinstance(pair[0], int)
        and pair[0] >= 1
        and isinstance(pair[1], (int, float))
        and np.isfinite(pair[1])
        and pair[1] > 0
        for pair in entry
    )
    if not ok:
        raise ValueError(
            f"probability temperatures {entry!r} are not [shots, temperature] pairs "
            "of a positive integer and a positive number."
        )
    return tuple((shots, float(t)) for shots, t in entry)


def _history(emb) -> list:
    rows = []
    for row in emb.history:
        rows.append(
            {
                k: _scalar(v, f"history {k}")
                for k, v in row.items()
                if k != "batches" and isinstance(v, (Real, str, bool, type(None)))
            }
        )
    return rows


# ----------------------------------------------------------------------------
# saving


def save_model(
    model,
    path: str | os.PathLike,
    metadata: dict | None = None,
    *,
    format: str = "auto",
    overwrite: bool = False,
) -> Path:
    """Save a fitted pipeline with its metadata.

    Parameters
    ----------
    model : Pipeline
        For the safe format: a fitted ``Pipeline`` of an optional
        :class:`~fscc_sklearn.io.SubtomogramNormalizer`, a
        :class:`Conv6Embedder` and a :class:`CalibratedFewShotClassifier`
        (steps may be wrapped in ``FrozenEstimator``, as :func:`adapt` does).
        Any estimator for joblib.
    path : str or path-like
        Output file. ``.safetensors`` (or ``.fscc``) selects the safe format,
        ``.joblib``/``.pkl`` joblib.
    metadata : dict, optional
        Extra JSON-serialisable facts to store (e.g. ``voxel_size`` in
        Angstrom, ``seed``). Box size, classes, parameters, versions and a
        content hash are added automatically.
    format : {"auto", "safetensors", "joblib"}, default="auto"
        ``"auto"`` follows the suffix.
    overwrite : bool, default=False
        Whether an existing file may be replaced.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If the model cannot be stored in the safe format, or the metadata is
        not JSON-serialisable.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.pipeline import Pipeline
    >>> from fscc_sklearn import CalibratedFewShotClassifier, Conv6Embedder
    >>> from fscc_sklearn.datasets._toy import make_toy_volumes
    >>> X, y = make_toy_volumes(n_classes=3, n_per_class=4, box=8, random_state=0)
    >>> pipe = Pipeline([
    ...     ("embed", Conv6Embedder(module__width=2, max_epochs=1, random_state=0)),
    ...     ("clf", CalibratedFewShotClassifier()),
    ... ]).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_model(pipe, os.path.join(tmp, "m.safetensors"),
    ...                       {"voxel_size": 10.0, "seed": 0})
    ...     loaded, meta = load_model(path, return_metadata=True)
    >>> bool((loaded.predict(X) == pipe.predict(X)).all()), meta["box_size"]
    (True, 8)
    """
    from ..io._write import _FILE_MODE, atomic_output

    path = Path(path)
    fmt = _format_of(path, format)
    user = dict(metadata or {})
    try:
        json.dumps(user)
    except TypeError as exc:
        raise ValueError(f"metadata must be JSON-serialisable: {exc}") from None
    info = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "versions": _versions(),
        "voxel_size": user.pop("voxel_size", None),
        "seed": user.pop("seed", None),
        "user": user,
    }
    if fmt == "joblib":
        try:
            info.update(model_metadata(model))
        except ValueError:
            pass  # any estimator may be pickled; describe what we can
        import joblib

        info["content_sha256"] = None
        with atomic_output(path, overwrite=overwrite) as tmp:
            joblib.dump({"format": FORMAT_NAME, "metadata": info, "model": model}, tmp)
        return path

    info.update(model_metadata(model))
    tensors, structure = _to_tensors(model)
    # safetensors writes raw memory: Fortran-ordered arrays (LogisticRegression's
    # coef_) would come back transposed
    tensors = {k: np.array(v, order="C") for k, v in tensors.items()}
    info["structure"] = structure
    info["content_sha256"] = _content_hash(tensors, info)
    from safetensors.numpy import save_file

    with atomic_output(path, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(info)})
        os.chmod(tmp, _FILE_MODE)  # safetensors recreates the file as 0600
    return path


def _to_tensors(model) -> tuple[dict[str, np.ndarray], dict]:
    (n_name, norm, n_frozen), (e_name, emb, e_frozen), (c_name, clf, _) = (
        _pipeline_parts(model)
    )
    tensors = {}
    for key, value in emb.module_.state_dict().items():
        tensors[f"embed.module.{key}"] = value.detach().cpu().numpy().copy()
    stats = clf.base_statistics_
    for name, dtype in _STATS_ARRAYS.items():
        tensors[f"clf.base.{name}"] = np.asarray(getattr(stats, name), dtype=dtype)
    arrays = [a for a in _CLASSIFIER_ARRAYS if hasattr(clf, a)]
    for a in arrays:
        tensors[f"clf.{a.rstrip('_')}"] = np.asarray(getattr(clf, a))
    lr = getattr(clf, "logreg_", None)
    logreg = None
    if lr is not None:
        tensors["clf.logreg.coef"] = np.asarray(lr.coef_, dtype=np.float64)
        tensors["clf.logreg.intercept"] = np.asarray(lr.intercept_, dtype=np.float64)
        tensors["clf.logreg.n_iter"] = np.asarray(lr.n_iter_, dtype=np.int64)
        lr_params = lr.get_params()
        logreg = {
            "params": {
                k: _scalar(lr_params[k], f"LogisticRegression {k}")
                for k in _LOGREG_SCALARS
                if k in lr_params
            },
            "classes": _labels_to_json(lr.classes_),
        }
    structure = {
        "normalize": (
            None
            if norm is None
            else {
                "name": n_name,
                "frozen": n_frozen,
                "lowpass": _scalar(norm.lowpass, "SubtomogramNormalizer lowpass"),
            }
        ),
        "embed": {
            "name": e_name,
            "frozen": e_frozen,
            "params": _embedder_params(emb),
            "classes": _labels_to_json(emb.classes_),
            "input_shape": [int(s) for s in emb.input_shape_],
            "history": _history(emb),
        },
        "clf": {
            "name": c_name,
            "params": _classifier_params(clf),
            "has_base": clf.base is not None,
            "classes": _labels_to_json(clf.classes_),
            "base_classes": _labels_to_json(stats.classes),
            "base_scalars": _stats_scalars(stats),
            "proba_temperatures": _temperatures_to_json(stats.proba_temperatures),
            "n_features_in": int(clf.n_features_in_),
            "arrays": arrays,
            "logreg": logreg,
        },
    }
    return tensors, structure


def _format_of(path: Path, format: str) -> str:
    if format not in ("auto", "safetensors", "joblib"):
        raise ValueError(
            f"format must be 'auto', 'safetensors' or 'joblib'; got {format!r}."
        )
    if format != "auto":
        return format
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return "joblib"
    if suffix in SAFE_SUFFIXES:
        return "safetensors"
    raise ValueError(
        f"Cannot tell the model format of '{path}' from its suffix; use "
        f"{SAFE_SUFFIXES[0]} (safe, recommended) or .joblib."
    )


# ----------------------------------------------------------------------------
# loading


def load_model(
    path: str | os.PathLike,
    *,
    format: str = "auto",
    device: str = "cpu",
    return_metadata: bool = False,
):
    """Load a model saved by :func:`save_model`.

    The safe format (``.safetensors``) rebuilds the pipeline from the
    library's classes without running code from the file; its tensors,
    shapes, metadata and content hash are checked. A joblib file is unpickled
    after a :class:`UnsafeModelFileWarning`: unpickling can run arbitrary code,
    so load only files you trust.

    Parameters
    ----------
    path : str or path-like
        The model file.
    format : {"auto", "safetensors", "joblib"}, default="auto"
        ``"auto"`` follows the suffix.
    device : str, default="cpu"
        Torch device of the embedder (``"auto"``: CUDA when available). Only
        used by the safe format.
    return_metadata : bool, default=False
        Also return the metadata dict.

    Returns
    -------
    model : Pipeline
        The fitted pipeline; ``predict`` gives what the saved one gave.
    metadata : dict
        Only with ``return_metadata=True``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a model file of this library, was modified
        (content hash), or holds unexpected tensors, shapes or metadata.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Model file not found: '{path}'")
    if not path.is_file():
        raise ValueError(f"Model path '{path}' is not a file.")
    fmt = _format_of(path, format)
    if fmt == "joblib":
        model, info = _load_joblib(path)
    else:
        model, info = _load_safe(path, device)
    return (model, info) if return_metadata else model


def _load_joblib(path: Path):
    import joblib

    warnings.warn(
        f"'{path}' is a joblib (pickle) file: loading it can execute arbitrary code. "
        f"Load only files you trust; the {SAFE_SUFFIXES[0]} format does not run "
        "code.",
        UnsafeModelFileWarning,
        stacklevel=3,
    )
    obj = joblib.load(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT_NAME:
        return obj["model"], obj["metadata"]
    return obj, {}


def _load_safe(path: Path, device: str):
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(
            f"'{path}' is not a readable safetensors model file ({exc}). A joblib "
            "model must end in .joblib."
        ) from None
    if _META_KEY not in header:
        raise ValueError(
            f"'{path}' is a safetensors file but not an fscc-sklearn model."
        )
    try:
        info = json.loads(header[_META_KEY])
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"'{path}': model metadata is not valid JSON ({exc})."
        ) from None
    if not isinstance(info, dict) or info.get("format") != FORMAT_NAME:
        raise ValueError(f"'{path}' is not an fscc-sklearn model file.")
    if info.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"'{path}' has model format version {info.get('format_version')!r}; "
            f"this fscc-sklearn reads version {FORMAT_VERSION}."
        )
    if info.get("content_sha256") != _content_hash(tensors, info):
        raise ValueError(
            f"'{path}': content hash mismatch; the file is corrupt or was modified."
        )
    try:
        model = _rebuild(tensors, info["structure"], device)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"'{path}': malformed model metadata ({exc!r}).") from None
    except ValueError as exc:
        raise ValueError(f"'{path}': {exc}") from None
    return model, info


def _check_tensor(tensors, name, shape, dtype):
    arr = tensors[name]
    if arr.dtype != np.dtype(dtype) or tuple(arr.shape) != tuple(shape):
        raise ValueError(
            f"tensor '{name}' has dtype {arr.dtype} and shape {tuple(arr.shape)}; "
            f"expected {np.dtype(dtype)} {tuple(shape)}."
        )
    return arr


def _rebuild(tensors: dict, structure: dict, device: str):
    import torch
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from skorch.history import History

    from ..calibration._calibration import BaseStatistics, CalibratedFewShotClassifier
    from ..embedding._embedder import Conv6Embedder
    from ..io import SubtomogramNormalizer

    if set(structure) != {"normalize", "embed", "clf"}:
        raise ValueError(f"unexpected model structure keys {sorted(structure)}.")
    steps = []
    norm_info = structure["normalize"]
    if norm_info is not None:
        lowpass = norm_info["lowpass"]
        if lowpass is not None and not isinstance(lowpass, (int, float)):
            raise ValueError(f"normalizer lowpass {lowpass!r} is not a number.")
        norm = SubtomogramNormalizer(lowpass=lowpass).fit(
            np.zeros((1, 2, 2, 2), np.float32)
        )
        steps.append(
            (norm_info["name"], FrozenEstimator(norm) if norm_info["frozen"] else norm)
        )

    # --- embedder: parameters first, then weights checked against the network
    e = structure["embed"]
    params = e["params"]
    for key, value in params.items():
        if not _embedder_param_allowed(key):
            raise ValueError(f"unexpected embedder parameter '{key}'.")
        if not (value is None or isinstance(value, (bool, int, float, str))):
            raise ValueError(f"embedder parameter '{key}' is not a scalar.")
    input_shape = tuple(e["input_shape"])
    if len(input_shape) != 4 or not all(
        isinstance(s, int) and s > 0 for s in input_shape
    ):
        raise ValueError(f"input shape {input_shape} is not (1, D, H, W).")
    emb = Conv6Embedder(**{**params, "device": device})
    emb.classes_ = _labels_from_json(e["classes"], "embedder classes")
    emb.input_shape_ = input_shape
    try:
        emb.initialize()
    except TypeError as exc:  # e.g. an unknown module__ parameter
        raise ValueError(f"cannot rebuild the network: {exc}") from None
    expected = emb.module_.state_dict()
    prefix = "embed.module."
    got = {k[len(prefix) :] for k in tensors if k.startswith(prefix)}
    missing, extra = sorted(set(expected) - got), sorted(got - set(expected))
    if missing or extra:
        raise ValueError(
            f"network tensors do not match Conv6({params}): missing {missing[:5]}, "
            f"unexpected {extra[:5]}."
        )
    state = {}
    for key, ref in expected.items():
        arr = _check_tensor(
            tensors, prefix + key, ref.shape, str(ref.dtype).replace("torch.", "")
        )
        state[key] = torch.from_numpy(np.array(arr))
    emb.module_.load_state_dict(state, strict=True)
    emb.module_.eval()
    emb.history = History(e["history"])
    steps.append((e["name"], FrozenEstimator(emb) if e["frozen"] else emb))

    # --- classifier
    c = structure["clf"]
    base_classes = _labels_from_json(c["base_classes"], "base classes")
    classes = _labels_from_json(c["classes"], "classes")
    m = int(c["n_features_in"])
    if m != emb.module_.num_features:
        raise ValueError(
            f"classifier expects {m} features; the network gives "
            f"{emb.module_.num_features}."
        )
    n_base = len(base_classes)
    allowed = set(CalibratedFewShotClassifier._get_param_names()) - {"base"}
    for key, value in c["params"].items():
        if key not in allowed:
            raise ValueError(f"unexpected classifier parameter '{key}'.")
        if not (value is None or isinstance(value, (bool, int, float, str))):
            raise ValueError(f"classifier parameter '{key}' is not a scalar.")
    stat_fields = {f.name for f in dataclasses.fields(BaseStatistics)}
    scalars = c["base_scalars"]
    if not set(scalars) <= stat_fields - set(_STATS_ARRAYS) - {
        "classes",
        "proba_temperatures",
    }:
        raise ValueError(f"unexpected base statistics fields {sorted(scalars)}.")
    arrays = c["arrays"]
    if not set(arrays) <= set(_CLASSIFIER_ARRAYS):
        raise ValueError(f"unexpected classifier arrays {arrays}.")
    lr_info = c["logreg"]
    n_rows = 1 if len(classes) == 2 else len(classes)
    shapes = {
        "clf.base.means": ((n_base, m), "float64"),
        "clf.base.covariances": ((n_base, m, m), "float64"),
        "clf.base.counts": ((n_base,), "int64"),
    }
    for a in arrays:
        shapes[f"clf.{a.rstrip('_')}"] = None  # shape checked against classes below
    if lr_info is not None:
        shapes["clf.logreg.coef"] = ((n_rows, m), "float64")
        shapes["clf.logreg.intercept"] = ((n_rows,), "float64")
        shapes["clf.logreg.n_iter"] = ((1,), "int64")
    network = {prefix + k for k in expected}
    others = sorted(set(tensors) - set(shapes) - network)
    missing_clf = sorted(set(shapes) - set(tensors))
    if others or missing_clf:
        raise ValueError(
            f"unexpected tensors {others[:5]} or missing tensors {missing_clf}."
        )
    stats = BaseStatistics(
        classes=base_classes,
        **{
            name: _check_tensor(
                tensors, f"clf.base.{name}", *shapes[f"clf.base.{name}"]
            )
            for name in _STATS_ARRAYS
        },
        **scalars,
        proba_temperatures=_temperatures_from_json(c.get("proba_temperatures")),
    )
    clf = CalibratedFewShotClassifier(
        base=stats if c["has_base"] else None, **c["params"]
    )
    clf.base_statistics_ = stats
    clf.classes_ = classes
    clf.n_features_in_ = m
    for a in arrays:
        arr = tensors[f"clf.{a.rstrip('_')}"]
        if (
            arr.dtype.kind not in "fi"
            or arr.ndim > 2
            or (
                arr.ndim >= 1
                and a != "n_iter_"
                and arr.shape[0] not in (1, len(classes))
            )
            or (arr.ndim == 2 and arr.shape[1] != m)
        ):
            raise ValueError(
                f"tensor 'clf.{a.rstrip('_')}' has an unexpected dtype {arr.dtype} or "
                f"shape {arr.shape}."
            )
        setattr(clf, a, float(arr) if arr.ndim == 0 else np.array(arr))
    if lr_info is not None:
        for key in lr_info["params"]:
            if key not in _LOGREG_SCALARS:
                raise ValueError(f"unexpected logistic-regression parameter '{key}'.")
        lr = LogisticRegression(**lr_info["params"])
        lr.coef_ = _check_tensor(tensors, "clf.logreg.coef", *shapes["clf.logreg.coef"])
        lr.intercept_ = _check_tensor(
            tensors, "clf.logreg.intercept", *shapes["clf.logreg.intercept"]
        )
        lr.n_iter_ = _check_tensor(
            tensors, "clf.logreg.n_iter", *shapes["clf.logreg.n_iter"]
        )
        lr.classes_ = _labels_from_json(
            lr_info["classes"], "logistic-regression classes"
        )
        lr.n_features_in_ = m
        if list(lr.classes_) != list(classes):
            raise ValueError(
                "logistic-regression classes differ from the classifier's."
            )
        clf.logreg_ = lr
    steps.append((c["name"], clf))
    return Pipeline(steps)


# ----------------------------------------------------------------------------
# checking inputs against a model


def check_model_input(
    metadata: dict,
    box: int,
    voxel_size: float | None,
    *,
    source: str = "input",
    rtol: float = 1e-3,
) -> None:
    """Refuse subtomograms whose box or voxel size differ from the model's.

    Parameters
    ----------
    metadata : dict
        From ``load_model(..., return_metadata=True)``.
    box : int
        Box edge of the subtomograms in voxels.
    voxel_size : float or None
        Their voxel size in Angstrom (None when unknown).
    source : str
        Names the input in the message.
    rtol : float
        Relative tolerance on the voxel size.

    Raises
    ------
    ValueError
        On a box or voxel size mismatch (a voxel size unknown on one side is
        accepted).
    """
    want_box = metadata.get("box_size")
    if want_box is not None and int(box) != int(want_box):
        raise ValueError(
            f"{source}: box {box}^3 voxels, but the model was trained on "
            f"{want_box}^3 (pass --resample to resample)."
        )
    want_vs: Any = metadata.get("voxel_size")
    if want_vs is not None and voxel_size is not None:
        if not np.isclose(float(voxel_size), float(want_vs), rtol=rtol, atol=0):
            raise ValueError(
                f"{source}: voxel size {voxel_size:g} A, but the model was trained on "
                f"{float(want_vs):g} A (pass --resample to resample)."
            )
