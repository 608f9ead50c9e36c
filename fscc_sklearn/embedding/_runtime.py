"""Where and how fast the embedder runs: device, speed settings, malloc tuning,
memory-map paging."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import mmap
import os
import sys
import threading
import warnings

import numpy as np
import torch

from .._progress import progress_bar
from .._validation import raise_non_finite
from ..nn import Conv6, fuse_for_inference, prepack_for_onednn

# glibc mallopt() parameters and their defaults (malloc.h, malloc.c)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_GLIBC_DEFAULTS = {_M_MMAP_MAX: 65536, _M_TRIM_THRESHOLD: 128 * 1024}
# start-up overrides glibc reads (tunables win over the older variables)
_ENV_NAMES = {
    _M_MMAP_MAX: ("MALLOC_MMAP_MAX_", "glibc.malloc.mmap_max"),
    _M_TRIM_THRESHOLD: ("MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold"),
}

# glibc has no mallopt getter: what this module last set, process-wide
# (tune_malloc) and for the scopes of fit/transform (malloc_scope)
_malloc_lock = threading.RLock()
_malloc_tuned: dict[int, int] | None = None
_malloc_depth = 0


@functools.cache
def _libc():
    """glibc through ctypes, or None (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):
        return None
    return libc


def _mallopt(param: int, value: int) -> bool:
    """``mallopt(param, value)``; False without glibc or where it refuses."""
    libc = _libc()
    return libc is not None and bool(libc.mallopt(param, value))


def _startup_malloc_settings() -> dict[int, int]:
    """The values a process started with: glibc's defaults unless the
    environment overrode them (``MALLOC_*_`` variables, ``GLIBC_TUNABLES``)."""
    values = dict(_GLIBC_DEFAULTS)
    tunables = dict(
        item.split("=", 1)
        for item in os.environ.get("GLIBC_TUNABLES", "").split(":")
        if "=" in item
    )
    for param, (variable, tunable) in _ENV_NAMES.items():
        for text in (os.environ.get(variable), tunables.get(tunable)):
            with contextlib.suppress(TypeError, ValueError):
                values[param] = int(text, 0)
    return values


def _malloc_settings(trim_threshold: int | None) -> dict[int, int]:
    if trim_threshold is None:
        return {_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: -1}  # -1: "never trim"
    if 0 <= trim_threshold < 2**31:
        return {_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: int(trim_threshold)}
    raise ValueError(
        f"trim_threshold must be None or 0 <= value < 2**31 (what mallopt "
        f"accepts), got {trim_threshold!r}"
    )


def _apply(settings: dict[int, int]) -> bool:
    return all([_mallopt(param, value) for param, value in settings.items()])


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

    The setting is process-wide and stays; calling again with another
    threshold changes it. The price: freed memory stays with the process, so
    its resident size stays near its peak. ``Conv6Embedder.fit`` and
    ``transform`` need no call: they apply the never-trim setting for their own
    duration (:func:`malloc_scope`) and leave a setting made here as it is.

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
    global _malloc_tuned
    settings = _malloc_settings(trim_threshold)
    with _malloc_lock:
        if not _apply(settings):
            return False
        _malloc_tuned = settings
    return True


@contextlib.contextmanager
def malloc_scope():
    """Run a block with glibc's heap kept (never trimmed, no ``mmap``), then
    put the settings back and hand the freed memory to the kernel.

    The library's fit and transform run in it, so they get the speed of
    :func:`tune_malloc` without a process-wide change. glibc has no getter for
    these settings, so "back" means what this module knows: the values of the
    last :func:`tune_malloc` call (then the block changes nothing and trims
    nothing), else the process's start-up values (glibc's defaults,
    ``M_MMAP_MAX`` 65536 and ``M_TRIM_THRESHOLD`` 128 KiB, or those of the
    ``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_`` and ``GLIBC_TUNABLES``
    variables), followed by ``malloc_trim(0)``. Settings made with ``mallopt``
    outside this module are not seen. glibc stops raising its mmap threshold
    by itself once ``mallopt`` has set either value; the threshold it reached
    so far stays. Nested and concurrent blocks share one outer scope; without
    glibc this does nothing.
    """
    global _malloc_depth
    with _malloc_lock:
        own = _malloc_tuned is None and _malloc_depth == 0
        _malloc_depth += 1
        if own:
            _apply(_malloc_settings(None))
    try:
        yield
    finally:
        with _malloc_lock:
            _malloc_depth -= 1
            if _malloc_depth == 0 and _malloc_tuned is None:
                _apply(_startup_malloc_settings())
                libc = _libc()
                if libc is not None:
                    libc.malloc_trim(0)


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


def resolve_device(device):
    """Map ``"auto"`` to ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@contextlib.contextmanager
def skorch_device(net):
    """Let skorch see the resolved ``net.device_`` as ``net.device``, then
    give the parameter back as it was.

    skorch moves the module and criterion it builds to ``net.device``, and
    ``"auto"`` is no torch device.
    """
    given = net.device
    net.device = net.device_
    try:
        yield
    finally:
        net.device = given


def check_speed_params(net) -> None:
    """Validate ``channels_last``, ``amp`` and ``progress`` of an embedder
    whose ``device_`` is resolved; warn where ``amp`` would be slow."""
    if not (
        isinstance(net.channels_last, bool | np.bool_)
        or net.channels_last == "inference"
    ):
        raise ValueError(
            'channels_last must be True, False or "inference"; got '
            f"{net.channels_last!r}."
        )
    if not isinstance(net.amp, bool | np.bool_):
        raise ValueError(f"amp must be True or False; got {net.amp!r}.")
    if not (isinstance(net.progress, bool | np.bool_) or callable(net.progress)):
        raise ValueError(
            f"progress must be True, False or a callable; got {net.progress!r}."
        )
    if net.amp:
        device = torch.device(net.device_)
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(
                f"amp=True needs bfloat16 support; device {net.device_} has none."
            )
        if device.type == "cpu" and not cpu_has_native_bfloat16():
            warnings.warn(
                "amp=True on a CPU without native bfloat16 (AVX-512 BF16 or "
                "AMX): PyTorch emulates it, about 300x slower than float32 "
                "on an AVX2 machine. Use amp=False here.",
                RuntimeWarning,
                stacklevel=4,
            )


def embed_batches(
    module, X, *, batch_size, device, channels_last, progress, cpu_micro_batch
):
    """Features ``(n, module.num_features)`` float32 of the volumes ``X``.

    Streams ``X`` (checked for shape before): each batch of ``batch_size`` is
    read, converted to float32 and checked for NaN/inf, run through
    ``module.forward_features`` and ``forward_head(..., pre_logits=True)`` on
    ``device`` (on the CPU in slices of ``cpu_micro_batch``), and the pages
    already read of a memory map are handed back to the kernel. ``progress``
    is what :func:`~fscc_sklearn._progress.progress_bar` takes.
    """
    shape = (1, *X.shape[-3:])
    step = batch_size
    micro = min(step, cpu_micro_batch) if device.type == "cpu" else step
    pin = device.type == "cuda"
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    out = np.empty((len(X), module.num_features), dtype=np.float32)
    pages = PageReleaser(X)
    with progress_bar(len(X), "embedding", progress) as bar, torch.inference_mode():
        for lo in range(0, len(X), step):
            xb = np.array(X[lo : lo + step], dtype=np.float32).reshape(-1, *shape)
            if not np.isfinite(xb).all():
                raise_non_finite(X, start=lo, batch_size=step)
            xt = torch.from_numpy(xb)
            xt = xt.pin_memory().to(device, non_blocking=True) if pin else xt
            for j in range(0, len(xt), micro):
                chunk = xt[j : j + micro].contiguous(memory_format=fmt)
                maps = module.forward_features(chunk)
                feats = module.forward_head(maps, pre_logits=True)
                out[lo + j : lo + j + len(chunk)] = feats.float().cpu().numpy()
            pages.release(lo + len(xb))
            bar.update(len(xb))
    return out


def inference_module(net):
    """Eval-mode copy of ``net.module_`` for ``transform``, cached per weights.

    For :class:`~fscc_sklearn.nn.Conv6` BatchNorm is folded into the
    convolutions (:func:`~fscc_sklearn.nn.fuse_for_inference`), and on the CPU
    in float32 with ``channels_last`` the blocks run in oneDNN's layout with
    weights reordered once (:func:`~fscc_sklearn.nn.prepack_for_onednn`);
    other modules run as they are. The cache key holds every tensor's storage
    and version counter, so training steps, ``load_params`` or edits of the
    weights rebuild the copy.
    """
    module = getattr(net.module_, "_orig_mod", net.module_)  # torch.compile
    channels_last = net._inference_channels_last
    key = (
        id(module),
        str(net.device_),
        channels_last,
        net.amp,
        tuple((t.data_ptr(), t._version) for t in module.state_dict().values()),
    )
    cached = net.__dict__.get("_inference_cache_")
    if cached is not None and cached[0] == key:
        return cached[1]
    if isinstance(module, Conv6):
        fmt = torch.channels_last_3d if channels_last else None
        inference = fuse_for_inference(module, memory_format=fmt)
        packed = None
        if channels_last and not net.amp and torch.device(net.device_).type == "cpu":
            packed = prepack_for_onednn(inference.blocks)
        if packed is not None:
            inference.blocks = packed
    else:
        inference = module.eval()
    # a tuple, so skorch does not register the copy as a net component
    net._inference_cache_ = (key, inference)
    return inference
