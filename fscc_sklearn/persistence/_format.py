"""The model file itself: format names, header, content hash, safetensors I/O.

A safe model file is a ``.safetensors`` file: named numeric tensors and one
JSON metadata entry (``"fscc_sklearn"``) with the format name and version,
versions of the libraries, user facts, the model description and a SHA-256
over both, optionally an HMAC-SHA256 with a key the user holds. Reading it runs
no code from the file; its metadata is checked by :mod:`._schema` before it is
trusted.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import platform
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from .._version import __version__
from ..io._write import atomic_output
from ._schema import ModelFileError, check_header, check_tensor_listing, parse_metadata

FORMAT_NAME = "fscc-sklearn-model"
# 1: one pipeline shape with hand-kept structure (read by _v1.py);
# 2: any pipeline of the package's estimators, each saving its own state
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
SAFE_SUFFIXES = (".safetensors", ".fscc")
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
META_KEY = "fscc_sklearn"
KEY_ENV = "FSCC_MODEL_KEY"
_SIGNATURE = "hmac_sha256"
_UNHASHED = ("content_sha256", _SIGNATURE)


def format_of(path: Path, format: str) -> str:
    """``"safetensors"`` or ``"joblib"``: ``format`` or, for ``"auto"``, the suffix."""
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


def versions() -> dict:
    """Versions of the libraries a model file was written with."""
    import sklearn
    import skorch
    import torch

    return {
        "fscc_sklearn": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "skorch": skorch.__version__,
        "python": platform.python_version(),
    }


def header(metadata: dict | None) -> dict:
    """The common part of a model file's metadata, with the user's facts."""
    user = dict(metadata or {})
    try:
        json.dumps(user)
    except TypeError as exc:
        raise ValueError(f"metadata must be JSON-serialisable: {exc}") from None
    voxel_size = user.get("voxel_size")
    if voxel_size is not None and not (
        isinstance(voxel_size, (int, float))
        and not isinstance(voxel_size, bool)
        and 0 < voxel_size <= 1e4
    ):
        raise ValueError(
            f"metadata voxel_size must be a number of Angstrom in (0, 10000] or "
            f"None; got {voxel_size!r:.80}."
        )
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "versions": versions(),
        "voxel_size": user.pop("voxel_size", None),
        "seed": user.pop("seed", None),
        "user": user,
    }


def content_hash(tensors: dict[str, np.ndarray], info: dict) -> str:
    """SHA-256 over the tensors (name, dtype, shape, bytes) and the JSON."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.array(tensors[name], order="C")
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    body = {k: v for k, v in info.items() if k not in _UNHASHED}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def model_key(key):
    """The signing key: ``key`` (str or bytes), else ``$FSCC_MODEL_KEY``, else None."""
    if key is None:
        key = os.environ.get(KEY_ENV) or None
        if key is None:
            return None
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes) or not key:
        raise ValueError(
            f"key must be a non-empty string or bytes; got {type(key).__name__}."
        )
    return key


def signature(key: bytes, digest: str) -> str:
    """HMAC-SHA256 of a file's content hash: only a holder of ``key`` makes it."""
    return hmac.new(key, f"{FORMAT_NAME}:{digest}".encode(), hashlib.sha256).hexdigest()


def write_safe(
    path: Path, tensors: dict, info: dict, *, overwrite: bool, key=None
) -> Path:
    """Write ``tensors`` and ``info`` (hash, and signature with a key, added)
    atomically to ``path``."""
    # safetensors writes raw memory: Fortran-ordered arrays (LogisticRegression's
    # coef_) would come back transposed
    tensors = {k: np.array(v, order="C") for k, v in tensors.items()}
    info = {k: v for k, v in info.items() if k not in _UNHASHED}
    info["content_sha256"] = content_hash(tensors, info)
    if key is not None:
        info[_SIGNATURE] = signature(key, info["content_sha256"])
    text = json.dumps(info)
    try:
        check_header(parse_metadata(text))
        check_tensor_listing(
            {k: _SAFE_DTYPES.get(v.dtype.str[1:], "?") for k, v in tensors.items()}
        )
    except ModelFileError as exc:
        raise ValueError(f"cannot save this model: {exc}") from None
    with atomic_output(path, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: text})
    return path


_SAFE_DTYPES = {
    "f4": "F32",
    "f8": "F64",
    "i1": "I8",
    "i2": "I16",
    "i4": "I32",
    "i8": "I64",
    "u1": "U8",
    "u2": "U16",
    "u4": "U32",
    "u8": "U64",
    "b1": "BOOL",
}


def read_safe(path: Path, key=None, *, shipped: bool = False) -> tuple[dict, dict]:
    """``(tensors, info)`` of a safe model file: format, hash, signature (with a
    key) and header checked; a file shipped in the package needs no signature."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            if META_KEY not in meta:
                raise ValueError(
                    f"'{path}' is a safetensors file but not an fscc-sklearn model."
                )
            try:
                info = parse_metadata(meta[META_KEY])
                listing = {k: f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118
                check_tensor_listing(listing)
            except ModelFileError as exc:
                raise exc.at(path) from None
            tensors = {k: f.get_tensor(k) for k in listing}
    except (SafetensorError, OSError) as exc:
        raise ValueError(
            f"'{path}' is not a readable safetensors model file ({exc}). A joblib "
            "model must end in .joblib."
        ) from None
    if info.get("format") != FORMAT_NAME:
        raise ValueError(f"'{path}' is not an fscc-sklearn model file.")
    if info.get("format_version") not in READABLE_VERSIONS:
        raise ValueError(
            f"'{path}' has model format version {info.get('format_version')!r:.40}; "
            f"this fscc-sklearn reads versions {list(READABLE_VERSIONS)}."
        )
    if info.get("content_sha256") != content_hash(tensors, info):
        raise ValueError(
            f"'{path}': content hash mismatch; the file is corrupt or was modified."
        )
    if key is not None and not shipped:
        _check_signature(path, info, key)
    try:
        check_header(info)
    except ModelFileError as exc:
        raise exc.at(path) from None
    return tensors, info


def _check_signature(path, info, key: bytes) -> None:
    got = info.get(_SIGNATURE)
    if not isinstance(got, str):
        raise ValueError(
            f"model file '{path}' is not signed, and a key is set ({KEY_ENV} or "
            "key=): only files signed with the key are loaded. Sign it with "
            "save_model(..., key=...) after checking where it came from."
        )
    if not hmac.compare_digest(got, signature(key, info["content_sha256"])):
        raise ValueError(
            f"model file '{path}': signature does not match the key; the file was "
            "modified or signed with another key."
        )
