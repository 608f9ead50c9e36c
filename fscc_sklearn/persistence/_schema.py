"""What a safe model file may hold: its limits and the checks run before any build.

A model file is untrusted input: its content hash has no key, so whoever edits
the file can recompute it. Everything in the metadata is therefore checked here
before an estimator or a network is built from it: the size and nesting depth
of the JSON, NaN anywhere, the type and range of every header field, the
number and length of class names, and upper bounds on the parameters that size
memory (network width, projection size, box, batch size). The estimators'
``_from_model_state`` then check their own values and tensors (their
``_parameter_constraints``, shapes, finiteness). Errors are ValueErrors naming
the field, e.g. ``embed.params.module__width = 100000 exceeds the maximum
4096``. docs/reliability.md lists the limits.
"""

from __future__ import annotations

import json
import math
import re
from numbers import Integral, Real

import numpy as np

from ._state import saveable_classes

# ----------------------------------------------------------------------------
# limits

MAX_METADATA_CHARS = 16 * 2**20
MAX_JSON_DEPTH = 32
MAX_STRING_CHARS = 2**16
MAX_ITEMS = 2**20  # entries of one JSON list or object
MAX_CLASSES = 100_000
MAX_LABEL_CHARS = 1024
MAX_STEPS = 32
MAX_TENSORS = 10_000
MAX_TENSOR_NAME_CHARS = 512
MAX_BOX = 1024
MAX_WIDTH = 4096
MAX_PROJ_DIM = 65536
MAX_FEATURES = 2**24
MAX_HISTORY_ROWS = 100_000
# safetensors dtypes a model file may hold (the estimators ask for exact ones)
TENSOR_DTYPES = (
    *("F32", "F64", "I8", "I16", "I32", "I64"),
    *("U8", "U16", "U32", "U64", "BOOL"),
)

# integer parameters, whichever class has them: (low, high, None allowed);
# those of _AUTO_INT may also be "auto"
_INT_PARAMS = {
    "batch_size": (1, 2**20, False),
    "max_epochs": (0, 10**6, False),
    "max_iter": (1, 10**7, False),
    "k": (1, MAX_CLASSES, False),
    "n_samples": (0, 10**6, False),
    "pool_radius_shots": (0, 10**6, False),
    "random_state": (0, 2**32 - 1, True),
    "module__width": (1, MAX_WIDTH, False),
    "module__proj_dim": (1, MAX_PROJ_DIM, True),
    "module__n_pool": (0, 16, False),
    "module__in_chans": (1, 64, False),
    "module__volume_size": (1, MAX_BOX, False),
    "module__n_classes": (1, MAX_CLASSES, False),
}
_AUTO_INT = ("pool_radius_shots",)
# real parameters whose extremes give inf or NaN (negative Tukey powers of the
# zeros of ReLU features, powers above 10 of features ~1e3): (low, high)
_REAL_PARAMS = {"tukey_lambda": (0.0, 10.0)}
# parameters with a few allowed values
_CHOICES = {
    "augment": (None, "flip_shift"),
    "lr_schedule": (None, "cosine"),
    "channels_last": (True, False, "inference"),
    "amp": (True, False),
    "progress": (True, False),
    "compile": (True, False),
    "warm_start": (True, False),
}
_KINDS = ("pretrained", "adapted", "fitted")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_REQUIRED = ("format", "format_version", "content_sha256")
_OPTIONAL = (
    "created",
    "versions",
    "voxel_size",
    "seed",
    "user",
    "kind",
    "box_size",
    "base_classes",
    "classes",
    "novel_classes",
    "normalization",
    "training",
    "hmac_sha256",
)
_LABEL_FIELDS = ("base_classes", "classes", "novel_classes")


class ModelFileError(ValueError):
    """A model file whose metadata or tensors break the format's rules.

    Attributes
    ----------
    field : str
        The offending field, as a dotted path (``"embed.params.batch_size"``).
    source : str or None
        The model file.
    """

    def __init__(self, field: str, problem: str, source=None):
        where = "" if source is None else f"model file '{source}': "
        super().__init__(f"{where}{field} {problem}")
        self.field, self.problem, self.source = field, problem, source

    def at(self, source) -> ModelFileError:
        """The same error, naming the file it was found in."""
        return ModelFileError(self.field, self.problem, source)


def _show(value) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ----------------------------------------------------------------------------
# the JSON text


def parse_metadata(text) -> dict:
    """The JSON metadata of a model file, bounded in size and depth, NaN-free."""
    if not isinstance(text, str):
        raise ModelFileError("metadata", "is not a JSON string.")
    if len(text) > MAX_METADATA_CHARS:
        raise ModelFileError(
            "metadata",
            f"holds {len(text)} characters; the maximum is {MAX_METADATA_CHARS}.",
        )
    try:
        info = json.loads(text)
    except RecursionError:
        # the decoder stops at Python's recursion limit, far above ours
        raise ModelFileError(
            "metadata", f"nests too deep; the maximum depth is {MAX_JSON_DEPTH}."
        ) from None
    except json.JSONDecodeError as exc:
        raise ModelFileError("metadata", f"is not valid JSON ({exc}).") from None
    if not isinstance(info, dict):
        raise ModelFileError("metadata", "must be a JSON object.")
    _walk(info, "", 1)
    return info


def _walk(value, path: str, depth: int) -> None:
    """NaN, over-long strings, over-large containers and deep nesting anywhere."""
    where = path or "metadata"
    if depth > MAX_JSON_DEPTH and isinstance(value, (list, dict)):
        raise ModelFileError(
            where, f"nests deeper than the maximum depth {MAX_JSON_DEPTH}."
        )
    if isinstance(value, float) and math.isnan(value):
        raise ModelFileError(where, "is NaN.")
    if isinstance(value, str) and len(value) > MAX_STRING_CHARS:
        raise ModelFileError(
            where, f"is a string of {len(value)} characters (max {MAX_STRING_CHARS})."
        )
    if isinstance(value, (list, dict)) and len(value) > MAX_ITEMS:
        raise ModelFileError(where, f"holds {len(value)} entries (max {MAX_ITEMS}).")
    if isinstance(value, dict):
        for key, sub in value.items():
            _walk(key, where, depth + 1)
            _walk(sub, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        if all(type(v) in _PLAIN for v in value):
            # a list of labels: only string lengths to check, at C speed
            longest = max(map(len, (v for v in value if type(v) is str)), default=0)
            if longest <= MAX_STRING_CHARS:
                return
        for i, sub in enumerate(value):
            _walk(sub, f"{where}[{i}]", depth + 1)


_PLAIN = (str, int, bool, type(None))  # JSON scalars that cannot be NaN


# ----------------------------------------------------------------------------
# single values


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check_int(value, field: str, low: int, high: int, *, none: bool = False):
    """``value``: an int in ``[low, high]`` (or None if ``none``)."""
    if value is None and none:
        return None
    if not _is_int(value):
        raise ModelFileError(
            field,
            f"= {_show(value)} must be an int in [{low}, {high}]"
            f"{' or null' if none else ''}.",
        )
    if value > high:
        raise ModelFileError(field, f"= {value} exceeds the maximum {high}.")
    if value < low:
        raise ModelFileError(field, f"= {value} is below the minimum {low}.")
    return value


def check_labels(values, field: str) -> None:
    """A list of at most MAX_CLASSES class labels (short strings or ints)."""
    if not isinstance(values, list):
        raise ModelFileError(field, f"must be a list of labels; got {_show(values)}.")
    if len(values) > MAX_CLASSES:
        raise ModelFileError(
            field, f"holds {len(values)} labels; the maximum is {MAX_CLASSES}."
        )
    for i, label in enumerate(values):
        if isinstance(label, str):
            if len(label) > MAX_LABEL_CHARS:
                raise ModelFileError(
                    f"{field}[{i}]",
                    f"is a label of {len(label)} characters (max {MAX_LABEL_CHARS}).",
                )
        elif not isinstance(label, (Integral, bool)) or not (-(2**63) <= label < 2**63):
            raise ModelFileError(
                f"{field}[{i}]", f"= {_show(label)} is not a string or 64-bit int."
            )


def _check_label_entry(entry: dict, field: str) -> None:
    """``{"dtype", "values"}`` of stored labels: a string dtype no wider than
    its labels need (a huge width would allocate memory for nothing)."""
    values = entry.get("values")
    check_labels(values, f"{field}.values")
    dtype = entry.get("dtype")
    if dtype == "object":
        return
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise ModelFileError(
            f"{field}.dtype", f"= {_show(dtype)} is not a numpy dtype."
        ) from None
    if dt.kind not in "Uiub":
        raise ModelFileError(
            f"{field}.dtype", f"= {_show(dtype)} is a forbidden dtype for labels."
        )
    longest = max((len(str(v)) for v in values), default=0)
    if dt.kind == "U" and dt.itemsize > 4 * max(longest, 256):
        raise ModelFileError(
            f"{field}.dtype",
            f"= {_show(dtype)} is wider than its labels (longest {longest} "
            "characters).",
        )


# ----------------------------------------------------------------------------
# the header


def check_header(info: dict) -> None:
    """The fields every model file shares (format, facts, description)."""
    model_key = "structure" if info.get("format_version") == 1 else "model"
    missing = [k for k in (*_REQUIRED, model_key) if k not in info]
    if missing:
        raise ModelFileError(missing[0], "is missing.")
    unknown = sorted(set(info) - {*_REQUIRED, *_OPTIONAL, model_key})
    if unknown:
        raise ModelFileError(unknown[0], "is not a field of a model file.")
    if not isinstance(info["content_sha256"], str) or not _HEX64.fullmatch(
        info["content_sha256"]
    ):
        raise ModelFileError("content_sha256", "is not a SHA-256 hex digest.")
    if "hmac_sha256" in info and not (
        isinstance(info["hmac_sha256"], str) and _HEX64.fullmatch(info["hmac_sha256"])
    ):
        raise ModelFileError("hmac_sha256", "is not an HMAC-SHA256 hex digest.")
    for key in ("created",):
        if key in info and not isinstance(info[key], (str, type(None))):
            raise ModelFileError(key, f"= {_show(info[key])} must be a string.")
    for key in ("versions", "user", "training"):
        if key in info and not isinstance(info[key], dict):
            raise ModelFileError(key, f"= {_show(info[key])} must be a JSON object.")
    digests = info.get("user", {}).get("support_sha256")
    if digests is not None and not (
        isinstance(digests, list) and all(isinstance(d, str) for d in digests)
    ):
        # written by `fscc adapt`, read by `fscc predict`
        raise ModelFileError(
            "user.support_sha256", f"= {_show(digests)} must be a list of digests."
        )
    for key, value in info.get("versions", {}).items():
        if not isinstance(value, str):
            raise ModelFileError(f"versions.{key}", "must be a version string.")
    if info.get("normalization") is not None and not isinstance(
        info["normalization"], dict
    ):
        raise ModelFileError("normalization", "must be a JSON object or null.")
    if "kind" in info and info["kind"] not in _KINDS:
        raise ModelFileError(
            "kind", f"= {_show(info['kind'])} is not one of {list(_KINDS)}."
        )
    if "box_size" in info:
        check_int(info["box_size"], "box_size", 1, MAX_BOX, none=True)
    voxel = info.get("voxel_size")
    if voxel is not None and not (
        _is_number(voxel) and math.isfinite(voxel) and 0 < voxel <= 1e4
    ):
        raise ModelFileError(
            "voxel_size",
            f"= {_show(voxel)} must be a number of Angstrom in (0, 10000] or null.",
        )
    seed = info.get("seed")
    if not isinstance(seed, (type(None), bool, Integral, str)):
        raise ModelFileError("seed", f"= {_show(seed)} must be an int, string or null.")
    for key in _LABEL_FIELDS:
        if key in info:
            check_labels(info[key], key)
    if not isinstance(info[model_key], dict):
        raise ModelFileError(model_key, "must be a JSON object.")


# ----------------------------------------------------------------------------
# the model description (format 2, or format 1 translated)


def check_description(description) -> None:
    """Bounds on every step of a model description, before anything is built."""
    if not isinstance(description, dict):
        raise ModelFileError("model", "must be a JSON object.")
    steps = description.get("steps")
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        raise ModelFileError(
            "model.steps", f"must be a list of 1 to {MAX_STEPS} steps."
        )
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            raise ModelFileError(f"model.steps[{i}]", "must be a JSON object.")
        name = step.get("name")
        _check_entry(step, name if isinstance(name, str) else f"model.steps[{i}]")


def _check_entry(entry: dict, where: str) -> None:
    params = entry.get("params")
    if not isinstance(params, dict):
        raise ModelFileError(
            f"{where}.params", f"= {_show(params)} must be a JSON object."
        )
    name = entry.get("class")
    cls = saveable_classes().get(name) if isinstance(name, str) else None
    # the class's own constraints judge type and range (sklearn's wording);
    # here only the upper bounds it leaves open
    constrained = set(getattr(cls, "_parameter_constraints", None) or ())
    for key, value in params.items():
        _check_param(key, value, f"{where}.params.{key}", key in constrained)
    meta = entry.get("meta")
    if not isinstance(meta, dict):
        raise ModelFileError(f"{where}.meta", "must be a JSON object.")
    if entry.get("class") == "Conv6Embedder":
        _check_embedder_meta(meta, params, f"{where}.meta")
    if "classes" in meta and isinstance(meta["classes"], dict):
        _check_label_entry(meta["classes"], f"{where}.meta.classes")
    if "n_features_in" in meta:
        check_int(meta["n_features_in"], f"{where}.meta.n_features_in", 1, MAX_FEATURES)
    objects = entry.get("objects")
    if not isinstance(objects, dict):
        raise ModelFileError(f"{where}.objects", "must be a JSON object.")
    nested = dict(objects)
    if isinstance(meta.get("base_statistics"), dict):
        nested["base_statistics"] = meta["base_statistics"]
    for key, sub in nested.items():
        if not isinstance(sub, dict):
            raise ModelFileError(f"{where}.{key}", "must be a JSON object.")
        _check_entry(sub, f"{where}.{key}")


def _check_param(key: str, value, field: str, constrained: bool) -> None:
    if _is_number(value) and not math.isfinite(value):
        raise ModelFileError(field, f"= {_show(value)} is not a finite number.")
    if key in _AUTO_INT and value == "auto":
        return
    if key in _INT_PARAMS:
        low, high, none = _INT_PARAMS[key]
        if not constrained:
            check_int(value, field, low, high, none=none)
        elif _is_int(value) and value > high:
            raise ModelFileError(field, f"= {value} exceeds the maximum {high}.")
    elif key in _REAL_PARAMS and _is_number(value):
        low, high = _REAL_PARAMS[key]
        if not low <= value <= high:
            raise ModelFileError(
                field, f"= {_show(value)} is outside [{low:g}, {high:g}]."
            )
    elif key in _CHOICES and not any(
        value is c or (isinstance(c, str) and value == c) for c in _CHOICES[key]
    ):
        raise ModelFileError(
            field, f"= {_show(value)} is not one of {list(_CHOICES[key])}."
        )


def _check_embedder_meta(meta: dict, params: dict, where: str) -> None:
    if "input_shape" not in meta:
        return  # the embedder names what is missing
    shape = meta["input_shape"]
    field = f"{where}.input_shape"
    if not isinstance(shape, list) or len(shape) != 4:
        raise ModelFileError(field, f"= {_show(shape)} is not [C, D, H, W].")
    chans = params.get("module__in_chans", 1)
    check_int(shape[0], f"{field}[0]", chans, chans)
    for i, side in enumerate(shape[1:], 1):
        check_int(side, f"{field}[{i}]", 1, MAX_BOX)
    if len(set(shape[1:])) != 1:
        raise ModelFileError(field, f"= {shape} is not a cubic box.")
    history = meta.get("history")
    if isinstance(history, list) and len(history) > MAX_HISTORY_ROWS:
        raise ModelFileError(
            f"{where}.history",
            f"holds {len(history)} epochs; the maximum is {MAX_HISTORY_ROWS}.",
        )


# ----------------------------------------------------------------------------
# tensors


def check_tensor_listing(listing: dict) -> None:
    """Names and dtypes of a file's tensors (``name -> safetensors dtype``),
    read from its header before any tensor is."""
    if len(listing) > MAX_TENSORS:
        raise ModelFileError(
            "tensors", f"number {len(listing)}; the maximum is {MAX_TENSORS}."
        )
    for name, dtype in listing.items():
        if len(name) > MAX_TENSOR_NAME_CHARS:
            raise ModelFileError(f"tensor '{name[:40]}...'", "has an over-long name.")
        if dtype not in TENSOR_DTYPES:
            raise ModelFileError(
                f"tensor '{name}'",
                f"has dtype {dtype}; a model file holds float32, float64 or "
                "integer tensors.",
            )
