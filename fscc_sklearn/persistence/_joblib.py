"""The joblib (pickle) model file: any estimator, for trusted files only."""

from __future__ import annotations

import warnings
from pathlib import Path

import joblib

from ..io._write import atomic_output
from ._format import FORMAT_NAME, SAFE_SUFFIXES


class UnsafeModelFileWarning(UserWarning):
    """Loading a pickle-based (joblib) model file, which can execute code."""


def write_joblib(path: Path, model, info: dict, *, overwrite: bool) -> Path:
    """Pickle ``model`` with its metadata ``info`` (no content hash)."""
    info = {**info, "content_sha256": None}
    with atomic_output(path, overwrite=overwrite) as tmp:
        joblib.dump({"format": FORMAT_NAME, "metadata": info, "model": model}, tmp)
    return path


def read_joblib(path: Path, *, stacklevel: int = 3):
    """``(model, metadata)`` of a joblib file, after an UnsafeModelFileWarning."""
    warnings.warn(
        f"'{path}' is a joblib (pickle) file: loading it can execute arbitrary code. "
        f"Load only files you trust; the {SAFE_SUFFIXES[0]} format does not run "
        "code.",
        UnsafeModelFileWarning,
        stacklevel=stacklevel,
    )
    obj = joblib.load(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT_NAME:
        return obj["model"], obj["metadata"]
    return obj, {}
