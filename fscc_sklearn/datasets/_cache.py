"""On-disk cache of simulated datasets: location, keys, atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..io._atomic import atomic_output

__all__ = ["get_data_home"]


def get_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """Folder where simulated datasets are cached, created if missing.

    Resolution order: the ``data_home`` argument, the ``FSCC_SKLEARN_DATA``
    environment variable, ``$XDG_CACHE_HOME/fscc_sklearn``, and finally
    ``~/.cache/fscc_sklearn``.

    Parameters
    ----------
    data_home : str or path-like, optional
        Explicit folder.

    Returns
    -------
    path : pathlib.Path
        The existing cache folder.

    Examples
    --------
    >>> import tempfile
    >>> from fscc_sklearn.datasets import get_data_home
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     get_data_home(tmp).is_dir()
    True
    """
    if data_home is None:
        data_home = os.environ.get("FSCC_SKLEARN_DATA") or None
    if data_home is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        data_home = os.path.join(base, "fscc_sklearn")
    path = Path(data_home).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_key(params: dict) -> str:
    """Stable hash of JSON-serialisable parameters."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an .npz so that readers never see a partial file."""
    with atomic_output(path, overwrite=True) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """Read a cached .npz, or ``None`` when it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, KeyError):
        return None
