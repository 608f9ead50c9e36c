"""What an estimator saves, and the one loop that saves and rebuilds pipelines.

The protocol
------------
Every estimator of the package that a safe model file can hold defines::

    def _get_model_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        # (meta, arrays) of the fitted estimator: meta JSON-able (fitted
        # scalars, labels via labels_to_json), arrays numeric numpy arrays

    @classmethod
    def _from_model_state(cls, params, meta, arrays, *, device="cpu"):
        # the fitted estimator, rebuilt from its constructor params and its
        # state; every value checked (check_array, check_value, labels_from_json)

and is registered by name with :func:`register_saveable` (as a class
decorator). Only registered classes are ever built from a file: a model file
names a class, it never says where to import it from.

The loop (:func:`model_state` / :func:`model_from_state`) walks the steps of a
``Pipeline`` (or takes a bare estimator), unwraps ``FrozenEstimator`` and saves
each step as ``{name, frozen, class, params, objects, meta}``; its arrays are
stored under ``"<step>/"``. ``params`` are ``get_params(deep=False)``:

- JSON scalars (None, bool, int, float, str) are stored as they are;
- a param whose value is itself registered (``base=BaseStatistics(...)``) is
  saved through the same protocol into ``objects``, its arrays under
  ``"<step>/<param>/"``;
- a param left at its constructor default object (a class such as the default
  ``module``) is not stored, nor a function (a progress callback), nor one
  the class lists in
  ``_model_state_skip_params`` (the torch device, callbacks: how to run, not
  what was learnt); any other value cannot be stored safely (ValueError:
  use joblib).

When loading, the loop checks the param names against the class's constructor,
their types (JSON scalars), runs the class's own parameter validation and
refuses every tensor that no estimator read. A new constructor parameter thus
needs no edit here.

This module imports neither torch nor the estimators (they import it); the
package's saveable classes register when their modules are imported, which
:func:`saveable_classes` makes sure of.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Mapping

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from ..model_selection import unfreeze
from ._values import (
    check_array,
    check_array_names,
    check_value,
    labels_from_json,
    labels_to_json,
    logistic_regression_from_state,
    logistic_regression_state,
    to_json_scalar,
)

__all__ = [
    "check_array",
    "check_array_names",
    "check_value",
    "labels_from_json",
    "labels_to_json",
    "logistic_regression_from_state",
    "logistic_regression_state",
    "model_from_state",
    "model_state",
    "object_from_state",
    "object_state",
    "register_saveable",
    "saveable_classes",
    "to_json_scalar",
]

_REGISTRY: dict[str, type] = {}
# (get_state, from_state) for package classes that do not define the two
# methods themselves yet; a class's own methods always win
_BRIDGES: dict[type, tuple] = {}
# modules whose import registers the package's saveable classes
_SAVEABLE_MODULES = (
    "fscc_sklearn.baselines",
    "fscc_sklearn.calibration",
    "fscc_sklearn.embedding",
    "fscc_sklearn.persistence._bridges",
)
_SEP = "/"  # between a step (or param object) and its arrays' names
_JSON_SCALARS = (type(None), bool, int, float, str)


# ----------------------------------------------------------------------------
# the registry


def register_saveable(cls=None, *, get_state=None, from_state=None):
    """Register ``cls`` (by its name) as buildable from a safe model file.

    Use as a class decorator. ``get_state``/``from_state`` stand in for the
    class's ``_get_model_state``/``_from_model_state`` where it has none
    (``from_state`` is called as ``from_state(cls, params, meta, arrays,
    device=...)``).
    """

    def add(cls):
        known = _REGISTRY.get(cls.__name__)
        if known is not None and known is not cls:
            raise ValueError(
                f"Two saveable classes are named {cls.__name__!r} "
                f"({known.__module__} and {cls.__module__})."
            )
        _REGISTRY[cls.__name__] = cls
        if get_state is not None or from_state is not None:
            if get_state is None or from_state is None:
                raise ValueError("register_saveable needs get_state and from_state.")
            _BRIDGES[cls] = (get_state, from_state)
        return cls

    return add if cls is None else add(cls)


def saveable_classes() -> dict[str, type]:
    """Name -> class of every estimator a safe model file may hold."""
    for module in _SAVEABLE_MODULES:
        # imported here, not at the top: those modules import this one
        importlib.import_module(module)
    return dict(_REGISTRY)


def _methods(cls):
    own = ("_get_model_state", "_from_model_state")
    if all(callable(getattr(cls, m, None)) for m in own):
        return (
            lambda obj: obj._get_model_state(),
            lambda cls, params, meta, arrays, device: cls._from_model_state(
                params, meta, arrays, device=device
            ),
        )
    get, load = _BRIDGES[cls]
    return get, lambda cls, params, meta, arrays, device: load(
        cls, params, meta, arrays, device=device
    )


def _saveable(obj) -> bool:
    cls = type(obj)
    return saveable_classes().get(cls.__name__) is cls


# ----------------------------------------------------------------------------
# one object: params + state


def _skipped(cls) -> frozenset:
    return frozenset(getattr(cls, "_model_state_skip_params", ()))


def _param_names(cls):
    """Constructor parameter names, and whether routed ``a__b`` kwargs are
    accepted (skorch's ``module__width``). A constructor taking ``**kwargs``
    passes them on: its parents' parameters count too."""
    names, routed = set(), False
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        params = list(inspect.signature(klass.__init__).parameters.values())[1:]
        names |= {
            p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
        routed = True
    return names, routed


def _default_of(cls, name):
    param = inspect.signature(cls.__init__).parameters.get(name)
    return inspect.Parameter.empty if param is None else param.default


def object_state(obj, prefix: str = "") -> tuple[dict, dict[str, np.ndarray]]:
    """``(entry, arrays)`` of one registered object, arrays under ``prefix``.

    ``entry`` is ``{"class", "params", "objects", "meta"}``; estimators may use
    this for a fitted sub-object of theirs (e.g. statistics held in a fitted
    attribute), with a prefix ending in ``"/"``.
    """
    cls = type(obj)
    if not _saveable(obj):
        raise ValueError(
            f"The safe model format stores the package's estimators "
            f"({', '.join(sorted(saveable_classes()))}); got {cls.__name__}. "
            "Save other models to a .joblib file."
        )
    params, objects, arrays = {}, {}, {}
    raw = obj.get_params(deep=False) if hasattr(obj, "get_params") else {}
    skip = _skipped(cls)
    for name, value in raw.items():
        if name in skip or name.startswith("_"):
            continue
        if isinstance(value, (*_JSON_SCALARS, np.generic)) and not isinstance(
            value, np.ndarray
        ):
            params[name] = to_json_scalar(value, f"{cls.__name__} {name}")
        elif _saveable(value):
            entry, sub = object_state(value, f"{prefix}{name}{_SEP}")
            objects[name] = entry
            arrays.update(sub)
        elif value is _default_of(cls, name):
            continue  # e.g. the default module class: rebuilt as the default
        elif callable(value) and not isinstance(value, type):
            continue  # a hook such as a progress callback: how to run, not state
        else:
            raise ValueError(
                f"{cls.__name__} {name}={value!r:.80} cannot be stored in the safe "
                "model format (only numbers, strings, booleans, None and the "
                "package's estimators); save to a .joblib file instead."
            )
    get, _ = _methods(cls)
    meta, own = get(obj)
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{cls.__name__}: model state meta is not JSON-serialisable ({exc})."
        ) from None
    for key, arr in own.items():
        arr = np.asarray(arr)
        if arr.dtype.kind not in "biuf":
            raise ValueError(
                f"{cls.__name__}: array '{key}' has dtype {arr.dtype}; only numbers "
                "can be stored."
            )
        if prefix + key in arrays:
            raise ValueError(f"{cls.__name__}: two arrays are named '{prefix}{key}'.")
        arrays[prefix + key] = arr
    entry = {"class": cls.__name__, "params": params, "objects": objects, "meta": meta}
    return entry, arrays


class _Read(Mapping):
    """The tensors under one prefix (prefix removed); records what was read."""

    def __init__(self, tensors: Mapping, prefix: str, read: set):
        self.tensors, self.prefix, self.read = tensors, prefix, read
        self._names = [
            k[len(prefix) :]
            for k in tensors
            if k.startswith(prefix) and _SEP not in k[len(prefix) :]
        ]

    def __getitem__(self, key):
        if key not in self._names:
            raise KeyError(key)
        self.read.add(self.prefix + key)
        return self.tensors[self.prefix + key]

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)


def _checked_params(cls, params, objects, where: str) -> dict:
    names, routed = _param_names(cls)
    skip = _skipped(cls)
    if not isinstance(params, dict) or not isinstance(objects, dict):
        raise ValueError(f"{where}: params and objects must be JSON objects.")
    for key in [*params, *objects]:
        allowed = key in names or (routed and "__" in key.strip("_"))
        if not isinstance(key, str) or not allowed or key in skip:
            raise ValueError(f"{where}: unexpected {cls.__name__} parameter '{key}'.")
    for key, value in params.items():
        if not isinstance(value, _JSON_SCALARS):
            raise ValueError(
                f"{where}: {cls.__name__} parameter '{key}' must be a number, "
                f"string, boolean or null; got {type(value).__name__} {value!r:.80}."
            )
    overlap = sorted(set(params) & set(objects))
    if overlap:
        raise ValueError(f"{where}: parameters {overlap} are given twice.")
    if not hasattr(cls, "get_params"):
        return dict(params)  # not an estimator: its from_state checks all
    try:
        probe = cls(**params)
    except TypeError as exc:
        raise ValueError(f"{where}: cannot build {cls.__name__}: {exc}") from None
    if hasattr(cls, "_parameter_constraints") and hasattr(probe, "_validate_params"):
        try:
            probe._validate_params()
        except (TypeError, ValueError) as exc:  # InvalidParameterError is both
            raise ValueError(f"{where}: {exc}") from None
    return dict(params)


def object_from_state(
    entry, tensors: Mapping, prefix: str = "", *, device="cpu", _read=None
):
    """Rebuild what :func:`object_state` saved.

    ``tensors`` are all tensors as saved (names with the prefix), or, from an
    estimator's ``_from_model_state``, its own ``arrays`` (then ``prefix`` is
    the one it gave :func:`object_state`, such as ``"base_statistics_/"``).
    """
    if isinstance(tensors, _Read):
        prefix, _read = tensors.prefix + prefix, tensors.read
        tensors = tensors.tensors
    where = prefix.rstrip(_SEP) or "model"
    if not isinstance(entry, dict) or set(entry) != {
        "class",
        "params",
        "objects",
        "meta",
    }:
        keys = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise ValueError(
            f"{where}: an estimator entry needs class, params, objects and meta; "
            f"got {keys}."
        )
    known = saveable_classes()
    name = entry["class"]
    if not isinstance(name, str) or name not in known:
        raise ValueError(
            f"{where}: unknown estimator class {name!r:.80}; a safe model file may "
            f"only hold {', '.join(sorted(known))}."
        )
    cls = known[name]
    read = set() if _read is None else _read
    params = _checked_params(cls, entry["params"], entry["objects"], where)
    for key, sub in entry["objects"].items():
        params[key] = object_from_state(
            sub, tensors, f"{prefix}{key}{_SEP}", device=device, _read=read
        )
    if not isinstance(entry["meta"], dict):
        raise ValueError(f"{where}: meta must be a JSON object.")
    _, load = _methods(cls)
    try:
        obj = load(cls, params, entry["meta"], _Read(tensors, prefix, read), device)
    except ValueError as exc:
        raise ValueError(f"{where} ({name}): {exc}") from None
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(
            f"{where} ({name}): malformed model state ({exc!r})."
        ) from None
    if _read is None:
        _refuse_unread(tensors, read, prefix)
    return obj


def _refuse_unread(tensors, read, prefix=""):
    unread = sorted(k for k in tensors if k.startswith(prefix) and k not in read)
    if unread:
        raise ValueError(f"unexpected tensors {unread[:5]} (read by no estimator).")


# ----------------------------------------------------------------------------
# the loop over pipeline steps


def model_state(model) -> tuple[dict, dict[str, np.ndarray]]:
    """``(description, tensors)`` of a fitted Pipeline or bare estimator.

    The description is ``{"pipeline": bool, "steps": [{"name", "frozen",
    "class", "params", "objects", "meta"}, ...]}``; step ``name``'s tensors
    are named ``"name/<array>"``.
    """
    is_pipe = isinstance(model, Pipeline)
    steps = list(model.steps) if is_pipe else [("model", model)]
    out, tensors = [], {}
    for name, step in steps:
        if not isinstance(name, str) or _SEP in name or not name:
            raise ValueError(
                f"Pipeline step name {name!r} cannot be stored (it must be a "
                f"non-empty string without {_SEP!r})."
            )
        if step is None or step == "passthrough":
            raise ValueError(
                f"Pipeline step {name!r} is {step!r}; the safe model format stores "
                "fitted estimators only."
            )
        entry, arrays = object_state(unfreeze(step), f"{name}{_SEP}")
        out.append({"name": name, "frozen": isinstance(step, FrozenEstimator), **entry})
        tensors.update(arrays)
    return {"pipeline": is_pipe, "steps": out}, tensors


def model_from_state(description, tensors: Mapping, *, device="cpu"):
    """The Pipeline (or bare estimator) that :func:`model_state` described."""
    if not isinstance(description, dict) or set(description) != {"pipeline", "steps"}:
        raise ValueError("model description needs exactly 'pipeline' and 'steps'.")
    steps, is_pipe = description["steps"], description["pipeline"]
    if not isinstance(is_pipe, bool) or not isinstance(steps, list) or not steps:
        raise ValueError("model description: 'steps' must be a non-empty list.")
    if not is_pipe and len(steps) != 1:
        raise ValueError("model description: a bare estimator has one step.")
    read: set = set()
    built, names = [], set()
    for step in steps:
        if not isinstance(step, dict):
            raise ValueError("model description: a step must be a JSON object.")
        step = dict(step)
        name, frozen = step.pop("name", None), step.pop("frozen", None)
        if not isinstance(name, str) or not name or _SEP in name or name in names:
            raise ValueError(f"model description: bad or repeated step name {name!r}.")
        if not isinstance(frozen, bool):
            raise ValueError(f"step '{name}': 'frozen' must be true or false.")
        names.add(name)
        est = object_from_state(
            step, tensors, f"{name}{_SEP}", device=device, _read=read
        )
        built.append((name, FrozenEstimator(est) if frozen else est))
    _refuse_unread(tensors, read)
    return Pipeline(built) if is_pipe else built[0][1]
