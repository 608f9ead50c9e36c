"""Memory guard: refuse to allocate arrays larger than the memory that is free."""

from __future__ import annotations

import numpy as np
import psutil

__all__ = ["available_memory", "check_memory", "nbytes_of"]

#: Fraction of the available memory one array may take; the rest is left to
#: the copies numpy and torch make on the way (float64 statistics, batches).
_DEFAULT_FRACTION = 0.9


def available_memory() -> int | None:
    """Bytes of memory the process can still allocate, or None if unknown.

    Asks :func:`psutil.virtual_memory` (``available``: free memory plus
    reclaimable page cache, on every platform psutil supports). A cgroup v2
    limit (containers), which psutil does not see, is honoured when lower.

    Returns
    -------
    n_bytes : int or None
        Available memory in bytes, None when the platform does not tell.
    """
    try:
        avail = int(psutil.virtual_memory().available)
    except (OSError, RuntimeError, AttributeError):
        avail = None
    cgroup = _cgroup_free()
    if cgroup is not None:
        avail = cgroup if avail is None else min(avail, cgroup)
    return avail


def _cgroup_free() -> int | None:
    """Free bytes under a cgroup v2 memory limit, if there is one."""
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as fh:
            limit = fh.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as fh:
            used = int(fh.read().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def nbytes_of(shape, dtype) -> int:
    """Bytes an array of ``shape`` and ``dtype`` would take, as a Python int.

    Computed with Python integers so huge declared sizes (e.g. a corrupt header
    claiming ``100000**3`` voxels) cannot overflow.

    Examples
    --------
    >>> nbytes_of((100000, 100000, 100000), "float32")
    4000000000000000
    """
    n = 1
    for s in shape:
        s = int(s)
        if s < 0:
            raise ValueError(f"Array shape {tuple(shape)} has a negative size.")
        n *= s
    return n * np.dtype(dtype).itemsize


def check_memory(n_bytes: int, what: str, *, fraction: float = _DEFAULT_FRACTION):
    """Raise ``MemoryError`` if ``n_bytes`` would not fit in available memory.

    Call this before materialising a large array, so the user gets a message
    naming the array and its size instead of an out-of-memory kill.

    Parameters
    ----------
    n_bytes : int
        Size of the planned allocation.
    what : str
        What is being allocated, for the message (e.g. ``"1000 subtomograms of
        64^3 voxels"``).
    fraction : float, default=0.9
        Share of the available memory the allocation may use.

    Raises
    ------
    MemoryError
        If ``n_bytes`` exceeds ``fraction`` times the available memory. Nothing
        is raised when the available memory is unknown.

    Examples
    --------
    >>> check_memory(1024, "a small array")
    >>> check_memory(10**18, "a huge array")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    MemoryError: Not enough memory for a huge array: needs 1e+06 TB, ...
    """
    n_bytes = int(n_bytes)
    avail = available_memory()
    if avail is None or n_bytes <= fraction * avail:
        return
    raise MemoryError(
        f"Not enough memory for {what}: needs {_human(n_bytes)}, but only "
        f"{_human(avail)} is available. Process the data in smaller chunks "
        "(fewer particles per call) or free memory."
    )


def _human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"
