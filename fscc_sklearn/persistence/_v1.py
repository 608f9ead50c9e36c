"""Reader of model files of format version 1 (fscc-sklearn up to issue 19).

Version 1 stored one pipeline shape, ``[normalizer,] Conv6Embedder,
CalibratedFewShotClassifier``, with a hand-kept ``structure``. It is translated
here into the version-2 description (class, params, meta and arrays per step,
the state layout of each class's ``_get_model_state``) and rebuilt by the same
loop as new files, so the checks of every class apply to old files too. The
shipped ``pretrained/general.safetensors`` is such a file. A class that changes
its state layout updates the translation here (tests/data/model_v1 checks it).
"""

from __future__ import annotations

from ._state import _SEP

_NORMALIZER = {"name", "frozen", "lowpass"}
_EMBEDDER = {"name", "frozen", "params", "classes", "input_shape", "history"}
_CLASSIFIER = {
    "name",
    "params",
    "has_base",
    "classes",
    "base_classes",
    "base_scalars",
    "proba_temperatures",
    "n_features_in",
    "arrays",
    "logreg",
}
_CLASSIFIER_ARRAYS = (
    "coef_",
    "intercept_",
    "n_iter_",
    "support_scatter_",
    "temperature_",
)
_META_SCALARS = ("temperature_",)  # a 0-d tensor in v1, meta now


def _keys(entry, allowed, required, what):
    if not isinstance(entry, dict):
        raise ValueError(f"{what} must be a JSON object.")
    unknown, missing = set(entry) - allowed, required - set(entry)
    if unknown or missing:
        raise ValueError(
            f"unexpected {what} keys {sorted(unknown)} or missing {sorted(missing)}."
        )


def _step_name(value, what):
    if not isinstance(value, str) or not value or _SEP in value:
        raise ValueError(f"{what} step name {value!r} is not a plain string.")
    return value


def translate(structure, tensors) -> tuple[dict, dict]:
    """The version-2 ``(description, tensors)`` of a version-1 file."""
    if not isinstance(structure, dict) or set(structure) != {
        "normalize",
        "embed",
        "clf",
    }:
        keys = sorted(structure) if isinstance(structure, dict) else structure
        raise ValueError(f"unexpected model structure keys {keys}.")
    tensors = dict(tensors)
    steps = []
    norm = structure["normalize"]
    if norm is not None:
        _keys(norm, _NORMALIZER, _NORMALIZER, "normalizer")
        steps.append(
            {
                "name": _step_name(norm["name"], "normalizer"),
                "frozen": norm["frozen"],
                "class": "SubtomogramNormalizer",
                "params": {"lowpass": norm["lowpass"]},
                "objects": {},
                "meta": {},
            }
        )
    steps.append(_embedder(structure["embed"], tensors))
    steps.append(_classifier(structure["clf"], tensors))
    return {"pipeline": True, "steps": steps}, tensors


def _move(tensors, old_prefix, new_prefix):
    for key in [k for k in tensors if k.startswith(old_prefix)]:
        tensors[new_prefix + key[len(old_prefix) :]] = tensors.pop(key)


def _embedder(e, tensors):
    _keys(e, _EMBEDDER, _EMBEDDER, "embedder")
    name = _step_name(e["name"], "embedder")
    if not isinstance(e["params"], dict):
        raise ValueError("embedder params must be a JSON object.")
    for key in e["params"]:
        if key.startswith("_"):
            raise ValueError(f"unexpected embedder parameter '{key}'.")
    _move(tensors, "embed.module.", f"{name}{_SEP}module.")
    return {
        "name": name,
        "frozen": e["frozen"],
        "class": "Conv6Embedder",
        "params": e["params"],
        "objects": {},
        "meta": {
            "classes": e["classes"],
            "input_shape": e["input_shape"],
            "history": e["history"],
        },
    }


# parameters of version 1's classifier that only one recipe used
_PAPER_ONLY = ("alpha", "n_samples", "C", "solver", "max_iter")
_BAYES_ONLY = ("kappa", "shrinkage", "support_scatter", "pool_radius_shots")
_METHODS = ("bayes", "paper")


def _classifier(c, tensors):
    _keys(c, _CLASSIFIER, _CLASSIFIER - {"proba_temperatures"}, "classifier")
    name = _step_name(c["name"], "classifier")
    scalars = c["base_scalars"]
    if not isinstance(scalars, dict) or not set(scalars) <= {"tukey_lambda"}:
        raise ValueError(f"unexpected base statistics fields {scalars!r:.80}.")
    stats = {
        "class": "BaseStatistics",
        "params": {},
        "objects": {},
        "meta": {
            "classes": c["base_classes"],
            "tukey_lambda": scalars.get("tukey_lambda"),
            # files written before the temperatures existed have none
            "proba_temperatures": c.get("proba_temperatures") or [],
        },
    }
    has_base = c["has_base"]
    if not isinstance(has_base, bool):
        raise ValueError("has_base must be true or false.")
    where = "base" if has_base else "base_statistics_"
    _move(tensors, "clf.base.", f"{name}{_SEP}{where}{_SEP}")
    meta = {
        "classes": c["classes"],
        "n_features_in": c["n_features_in"],
        "base_statistics": "base" if has_base else stats,
    }
    arrays = c["arrays"]
    if not isinstance(arrays, list) or not all(a in _CLASSIFIER_ARRAYS for a in arrays):
        raise ValueError(f"unexpected classifier arrays {arrays!r:.80}.")
    for attr in arrays:
        old = f"clf.{attr.rstrip('_')}"
        if old not in tensors:
            raise ValueError(f"missing tensor '{old}'.")
        if attr in _META_SCALARS:
            value = tensors.pop(old)
            if value.shape != () or value.dtype.kind != "f":
                raise ValueError(
                    f"tensor '{old}' must be a float scalar; got dtype "
                    f"{value.dtype}, shape {value.shape}."
                )
            meta[attr.rstrip("_")] = float(value)
        else:
            tensors[f"{name}{_SEP}{attr.rstrip('_')}"] = tensors.pop(old)
    if c["logreg"] is not None:
        meta["logreg"] = c["logreg"]
        _move(tensors, "clf.logreg.", f"{name}{_SEP}logreg.")
        # v1 also stored the regression's coef_/intercept_/n_iter_ as the
        # classifier's own: copies of the same arrays, read from the regression
        for key in ("coef", "intercept", "n_iter"):
            tensors.pop(f"{name}{_SEP}{key}", None)
    params = dict(c["params"]) if isinstance(c["params"], dict) else c["params"]
    # version 1 had one class whose ``method`` chose the recipe; each recipe is
    # now its own class with only its own parameters
    method = params.pop("method", "bayes") if isinstance(params, dict) else "bayes"
    if method not in _METHODS:
        raise ValueError(
            f"{name}.params.method = {method!r:.40} is not one of {list(_METHODS)}."
        )
    paper = method == "paper"
    if isinstance(params, dict):
        drop = _BAYES_ONLY if paper else _PAPER_ONLY
        params = {k: v for k, v in params.items() if k not in drop}
    return {
        "name": name,
        "frozen": False,
        "class": (
            "DistributionCalibrationClassifier"
            if paper
            else "CalibratedFewShotClassifier"
        ),
        "params": params,
        "objects": {"base": stats} if has_base else {},
        "meta": meta,
    }
