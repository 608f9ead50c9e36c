"""Checked JSON values, labels and arrays: what estimators use in their state methods.

Re-exported by :mod:`._state` (import them from there). Every check raises a
ValueError naming the key and what was expected.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
from sklearn.linear_model import LogisticRegression

__all__ = [
    "check_array",
    "check_array_names",
    "check_value",
    "labels_from_json",
    "labels_to_json",
    "logistic_regression_from_state",
    "logistic_regression_state",
    "to_json_scalar",
]


# ----------------------------------------------------------------------------
# JSON values and array checks


def to_json_scalar(value, key: str):
    """``value`` as a JSON scalar (numpy numbers become Python ones).

    Raises
    ------
    ValueError
        Naming ``key``, if ``value`` is not None, a bool, number or string.
    """
    if value is None or isinstance(value, (bool, np.bool_, str)):
        return bool(value) if isinstance(value, np.bool_) else value
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        return float(value)
    raise ValueError(
        f"{key}={value!r} cannot be stored in the safe model format (only "
        "numbers, strings, booleans and None); save to a .joblib file instead."
    )


def labels_to_json(labels, key: str = "classes") -> dict:
    """Class labels (strings, integers or booleans) as ``{"dtype", "values"}``."""
    labels = np.asarray(labels)
    if labels.dtype.kind == "O":
        values = labels.tolist()
        if not all(isinstance(v, (str, Integral)) for v in values):
            raise ValueError(
                f"{key}: class labels must be strings or integers to be stored in "
                f"the safe model format; got {values[:5]}."
            )
        values = [v if isinstance(v, str) else int(v) for v in values]
        return {"dtype": "object", "values": values}
    if labels.dtype.kind not in "Uiub" or labels.ndim != 1:
        raise ValueError(
            f"{key}: class labels must be a 1-d array of strings, integers or "
            f"booleans to be stored in the safe model format; got dtype "
            f"{labels.dtype}, shape {labels.shape}."
        )
    return {"dtype": labels.dtype.str, "values": labels.tolist()}


def labels_from_json(entry, key: str = "classes") -> np.ndarray:
    """The labels :func:`labels_to_json` stored; ValueError naming ``key``."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "values"}:
        raise ValueError(
            f"{key} must be {{'dtype': ..., 'values': [...]}}; got {entry!r:.80}."
        )
    dtype, values = entry["dtype"], entry["values"]
    if not isinstance(values, list) or not all(
        isinstance(v, (str, int, bool)) for v in values
    ):
        raise ValueError(f"{key} must list strings or integers; got {values!r:.80}.")
    if dtype == "object":
        return np.array(values, dtype=object)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"{key} has an unknown dtype {dtype!r}.") from None
    if dt.kind not in "Uiub":
        raise ValueError(f"{key} has a forbidden dtype {dtype!r}.")
    longest = max((len(str(v)) for v in values), default=0)
    if dt.kind == "U" and dt.itemsize > 4 * max(longest, 256):
        # a width far beyond the labels would allocate memory for nothing
        raise ValueError(f"{key}: dtype {dtype!r} is wider than its labels.")
    try:
        return np.array(values, dtype=dt)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{key}: values do not fit dtype {dtype!r}.") from None


_KINDS = {
    "int": (Integral,),
    "float": (Real,),
    "bool": (bool,),
    "str": (str,),
    "list": (list,),
    "dict": (dict,),
}


def check_value(
    meta: Mapping,
    key: str,
    kind: str,
    *,
    low=None,
    high=None,
    none: bool = False,
    default=inspect.Parameter.empty,
):
    """``meta[key]`` checked to be of ``kind`` (and within ``[low, high]``).

    Parameters
    ----------
    kind : {"int", "float", "bool", "str", "list", "dict"}
        ``"float"`` accepts integers (and gives a float), numbers must be
        finite; booleans are not numbers.
    none : bool
        Whether None is accepted.
    default
        Returned when ``key`` is absent (else absence is an error).
    """
    if key not in meta:
        if default is inspect.Parameter.empty:
            raise ValueError(f"model state: '{key}' is missing.")
        return default
    value = meta[key]
    if value is None and none:
        return None
    ok = isinstance(value, _KINDS[kind]) and not (
        kind in ("int", "float") and isinstance(value, bool)
    )
    if ok and kind in ("int", "float"):
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value >= low
        if ok and high is not None:
            ok = value <= high
    if not ok:
        bounds = "" if low is None and high is None else f" in [{low}, {high}]"
        raise ValueError(
            f"model state: '{key}' must be a{'n' if kind == 'int' else ''} {kind}"
            f"{bounds}{' or None' if none else ''}; got {value!r:.80}."
        )
    return float(value) if kind == "float" else value


def check_array_names(arrays: Mapping, expected, *, optional=(), owner: str) -> None:
    """Refuse ``arrays`` unless they hold every ``expected`` name and no name
    beyond ``expected`` and ``optional``."""
    names = set(arrays)
    missing = sorted(set(expected) - names)
    extra = sorted(names - set(expected) - set(optional))
    if missing or extra:
        raise ValueError(
            f"{owner}: missing tensors {missing[:5]}, unexpected tensors {extra[:5]}."
        )


def check_array(
    arrays: Mapping,
    key: str,
    *,
    shape: tuple | None = None,
    dtype: str | None = None,
    kinds: str = "f",
    finite: bool = True,
) -> np.ndarray:
    """A writable copy of ``arrays[key]`` after checking what it must be.

    Parameters
    ----------
    shape : tuple, optional
        Expected shape; ``None`` entries match any length.
    dtype : str, optional
        Exact dtype (e.g. ``"float64"``); else any of ``kinds``.
    kinds : str, default="f"
        Allowed numpy dtype kinds ("f" float, "i" signed, "u" unsigned, "b" bool).
    finite : bool, default=True
        Whether every value must be finite.
    """
    if key not in arrays:
        raise ValueError(f"model state: tensor '{key}' is missing.")
    arr = np.asarray(arrays[key])
    if dtype is not None:
        ok_dtype = arr.dtype == np.dtype(dtype)
        wanted = str(np.dtype(dtype))
    else:
        ok_dtype = arr.dtype.kind in kinds
        wanted = f"dtype kind in {kinds!r}"
    ok_shape = shape is None or (
        arr.ndim == len(shape)
        and all(w is None or w == s for w, s in zip(shape, arr.shape, strict=True))
    )
    if not (ok_dtype and ok_shape):
        want_shape = "" if shape is None else f" {tuple(shape)}"
        raise ValueError(
            f"tensor '{key}' has dtype {arr.dtype} and shape {tuple(arr.shape)}; "
            f"expected {wanted}{want_shape}."
        )
    if finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"tensor '{key}' holds non-finite values.")
    return np.array(arr)


# ----------------------------------------------------------------------------
# a fitted LogisticRegression inside an estimator (paper recipe, baselines)

_LOGREG_PARAMS = (
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


def logistic_regression_state(lr, key: str = "logreg") -> tuple[dict, dict]:
    """``(meta, arrays)`` of a fitted ``LogisticRegression`` held by an
    estimator; arrays named ``key.coef``, ``key.intercept``, ``key.n_iter``."""
    params = lr.get_params()
    meta = {
        "params": {
            k: to_json_scalar(params[k], f"LogisticRegression {k}")
            for k in _LOGREG_PARAMS
            if k in params
        },
        "classes": labels_to_json(lr.classes_, f"{key} classes"),
    }
    arrays = {
        f"{key}.coef": np.asarray(lr.coef_, dtype=np.float64),
        f"{key}.intercept": np.asarray(lr.intercept_, dtype=np.float64),
        f"{key}.n_iter": np.asarray(lr.n_iter_, dtype=np.int64),
    }
    return meta, arrays


def logistic_regression_from_state(meta, arrays, key: str = "logreg", *, n_features):
    """The ``LogisticRegression`` that :func:`logistic_regression_state` saved."""
    if not isinstance(meta, dict) or set(meta) != {"params", "classes"}:
        raise ValueError(f"'{key}' must hold params and classes; got {meta!r:.80}.")
    params = meta["params"]
    bad = (
        [k for k in params if k not in _LOGREG_PARAMS]
        if isinstance(params, dict)
        else []
    )
    if not isinstance(params, dict) or bad:
        raise ValueError(f"unexpected logistic-regression parameters {bad}.")
    classes = labels_from_json(meta["classes"], f"{key} classes")
    rows = 1 if len(classes) == 2 else len(classes)
    lr = LogisticRegression(**params)
    try:
        lr._validate_params()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"'{key}': {exc}") from None
    lr.coef_ = check_array(
        arrays, f"{key}.coef", shape=(rows, n_features), dtype="float64"
    )
    lr.intercept_ = check_array(
        arrays, f"{key}.intercept", shape=(rows,), dtype="float64"
    )
    lr.n_iter_ = check_array(arrays, f"{key}.n_iter", shape=(1,), dtype="int64")
    lr.classes_ = classes
    lr.n_features_in_ = int(n_features)
    return lr
