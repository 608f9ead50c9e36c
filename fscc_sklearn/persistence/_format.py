"""The model file itself: format names, header, content hash, safetensors I/O.

A safe model file is a ``.safetensors`` file: named numeric tensors and one
JSON metadata entry (``"fscc_sklearn"``) with the format name and version,
versions of the libraries, user facts, the model description and a SHA-256
over both. Reading it runs no code from the file.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import platform
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from .._version import __version__
from ..io._write import atomic_output

FORMAT_NAME = "fscc-sklearn-model"
# 1: one pipeline shape with hand-kept structure (read by _v1.py);
# 2: any pipeline of the package's estimators, each saving its own state
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
SAFE_SUFFIXES = (".safetensors", ".fscc")
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
META_KEY = "fscc_sklearn"


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
    body = {k: v for k, v in info.items() if k != "content_sha256"}
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def write_safe(path: Path, tensors: dict, info: dict, *, overwrite: bool) -> Path:
    """Write ``tensors`` and ``info`` (hash added) atomically to ``path``."""
    # safetensors writes raw memory: Fortran-ordered arrays (LogisticRegression's
    # coef_) would come back transposed
    tensors = {k: np.array(v, order="C") for k, v in tensors.items()}
    info = {**info, "content_sha256": content_hash(tensors, info)}
    with atomic_output(path, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(info)})
    return path


def read_safe(path: Path) -> tuple[dict, dict]:
    """``(tensors, info)`` of a safe model file, its format and hash checked."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(
            f"'{path}' is not a readable safetensors model file ({exc}). A joblib "
            "model must end in .joblib."
        ) from None
    if META_KEY not in meta:
        raise ValueError(
            f"'{path}' is a safetensors file but not an fscc-sklearn model."
        )
    try:
        info = json.loads(meta[META_KEY])
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"'{path}': model metadata is not valid JSON ({exc})."
        ) from None
    if not isinstance(info, dict) or info.get("format") != FORMAT_NAME:
        raise ValueError(f"'{path}' is not an fscc-sklearn model file.")
    if info.get("format_version") not in READABLE_VERSIONS:
        raise ValueError(
            f"'{path}' has model format version {info.get('format_version')!r}; "
            f"this fscc-sklearn reads versions {list(READABLE_VERSIONS)}."
        )
    if info.get("content_sha256") != content_hash(tensors, info):
        raise ValueError(
            f"'{path}': content hash mismatch; the file is corrupt or was modified."
        )
    return tensors, info
