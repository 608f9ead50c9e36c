"""Helpers for fast, lean embedding: malloc tuning, memory-map paging, progress."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import sys

import numpy as np
import torch

# glibc mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def tune_malloc(*, trim_threshold: int | None = None) -> bool:
    """Keep freed memory in glibc's heap instead of returning it to the kernel.

    PyTorch on the CPU allocates and frees large activation buffers for every
    batch. With glibc's defaults each of them is a fresh ``mmap``, and with a
    finite trim threshold the heap shrinks after every step that frees more
    than it, so every batch pays for page faults and zeroing in the kernel.
    This sets ``mallopt(M_MMAP_MAX, 0)`` and the trim threshold from inside a
    running process. Measured on 2 cores: embedding 110/s -> 165/s; pre-training
    at width 64 and batch 128 (several GB of activations, more than any finite
    threshold ``mallopt`` accepts) 13.5/s with a 1 GiB threshold -> 34.0/s with
    trimming off, the default (benchmarks/results/pretraining_malloc.md).

    The setting is process-wide; calling again with another threshold changes
    it. The price: freed memory stays with the process, so its resident size
    stays near its peak. The library never calls this by itself; the ``fscc``
    command line and the benchmarks do.

    Parameters
    ----------
    trim_threshold : int or None, default=None
        Free memory at the top of the heap beyond which glibc gives it back;
        None never gives it back. At most ``2**31 - 1`` bytes.

    Returns
    -------
    applied : bool
        False where there is no glibc (macOS, Windows, musl).
    """
    if trim_threshold is None:
        trim = -1  # glibc reads -1 as "never trim"
    elif 0 <= trim_threshold < 2**31:
        trim = int(trim_threshold)
    else:
        raise ValueError(
            f"trim_threshold must be None or 0 <= value < 2**31 (what mallopt "
            f"accepts), got {trim_threshold!r}"
        )
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, trim))


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX).

    Without it PyTorch emulates bfloat16 convolutions: measured 0.30 against
    92 subtomograms/s in float32 on a 2-core AVX2 machine.
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    # private torch helpers; a torch without them is treated as lacking support
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


class PageReleaser:
    """Drop already-read pages of a memory-mapped array from the process.

    Reading a ``np.memmap`` maps its file pages into the process, and they count
    towards its resident memory until the kernel needs them back: embedding a
    13 GB stack would show 13 GB RSS. ``release(stop)`` tells the kernel that
    rows ``[0, stop)`` are no longer needed by this process (``MADV_DONTNEED``).
    The file and the page cache are untouched; reading the rows again simply
    maps them again.

    Only read-only and shared (``mode="r"`` / ``"r+"``) maps of C-contiguous
    arrays qualify; for anything else ``release`` does nothing. Copy-on-write
    maps (``mode="c"``) are skipped because the advice would discard changes.
    """

    def __init__(self, X: np.ndarray):
        self._mm, self._start, self._row_bytes = None, 0, 0
        self._done = 0
        mm, mode = _find_mmap(X)
        if mm is None or mode not in ("r", "r+", "w+"):
            return
        if not X.flags.c_contiguous or not hasattr(mm, "madvise"):
            return
        base = np.frombuffer(mm, dtype=np.uint8).ctypes.data if len(mm) else 0
        self._start = X.ctypes.data - base
        if not 0 <= self._start < len(mm):
            return
        self._mm = mm
        self._row_bytes = X[0].nbytes if len(X) else 0

    @property
    def active(self) -> bool:
        """Whether this array is a memory map whose pages can be released."""
        return self._mm is not None

    def release(self, stop: int) -> None:
        """Release the pages holding rows ``[0, stop)`` (whole pages only)."""
        if self._mm is None:
            return
        page = mmap.PAGESIZE
        lo = (self._start + self._done) // page * page
        hi = (self._start + stop * self._row_bytes) // page * page
        if hi > lo:
            self._mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
            self._done = hi - self._start


def _find_mmap(X) -> tuple[mmap.mmap | None, str | None]:
    """The ``mmap`` behind an array (or a view of one), and the map's mode."""
    mode, obj = None, X
    while obj is not None:
        mode = getattr(obj, "mode", mode) if isinstance(obj, np.memmap) else mode
        candidate = getattr(obj, "_mmap", None)
        if isinstance(candidate, mmap.mmap):
            return candidate, mode
        if isinstance(obj, mmap.mmap):
            return obj, mode
        obj = getattr(obj, "base", None)
    return None, None
