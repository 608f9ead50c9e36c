"""Cut cubic subtomograms out of a (memory-mapped) tomogram at particle centres."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._resources import check_memory, nbytes_of
from ._mrc import _header_voxel_size, open_mrc
from ._particles import ParticleTable

__all__ = ["ExtractedSubtomograms", "box_bounds", "extract_subtomograms"]

_BORDER_MODES = ("skip", "pad")


@dataclass(frozen=True)
class ExtractedSubtomograms:
    """Result of :func:`extract_subtomograms`.

    Attributes
    ----------
    X : ndarray of shape (n_kept, box, box, box), float32
        The subtomograms, indexed ``[particle, z, y, x]``.
    kept : ndarray of shape (n_kept,), int
        Index, in the input coordinates, of each row of ``X``.
    skipped : ndarray of int
        Indices of input particles dropped because their box crossed the
        tomogram border (``border="skip"`` only).
    padded : ndarray of int
        Indices of input particles whose box crossed the border and was padded
        (``border="pad"`` only); a subset of ``kept``.
    voxel_size : float or None
        Voxel size of the tomogram in Angstrom when read from an MRC header,
        else None.
    """

    X: np.ndarray
    kept: np.ndarray
    skipped: np.ndarray
    padded: np.ndarray
    voxel_size: float | None = None

    @property
    def n_skipped(self) -> int:
        """Number of particles dropped at the border."""
        return int(self.skipped.size)

    @property
    def n_padded(self) -> int:
        """Number of particles padded at the border."""
        return int(self.padded.size)

    def __len__(self) -> int:
        return self.X.shape[0]


def box_bounds(center: np.ndarray, box: int) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and stop (exclusive) voxel indices of boxes.

    A box of size ``box`` centred on integer voxel ``c`` spans
    ``[c - box // 2, c - box // 2 + box)`` along each axis, so for odd boxes
    ``c`` is the middle voxel and for even boxes ``c`` is voxel ``box // 2``
    of the box (the same place :func:`numpy.fft.fftshift` puts the origin).

    Parameters
    ----------
    center : ndarray of int, shape (..., 3)
        Integer centre voxels.
    box : int
        Box edge length in voxels.

    Returns
    -------
    start, stop : ndarray of int, shape (..., 3)
        Half-open index ranges.

    Examples
    --------
    >>> import numpy as np
    >>> box_bounds(np.array([10, 10, 10]), 4)
    (array([8, 8, 8]), array([12, 12, 12]))
    >>> box_bounds(np.array([10, 10, 10]), 5)
    (array([8, 8, 8]), array([13, 13, 13]))
    """
    start = np.asarray(center) - box // 2
    return start, start + box


def _as_coords(coords_xyz) -> np.ndarray:
    if isinstance(coords_xyz, ParticleTable):
        coords = coords_xyz.coords
    else:
        coords = np.asarray(coords_xyz)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(
            f"coords_xyz must have shape (n, 3) with columns x, y, z; got shape "
            f"{coords.shape}"
        )
    if not np.issubdtype(coords.dtype, np.number) or np.iscomplexobj(coords):
        raise ValueError(f"coords_xyz must be real numbers, got dtype {coords.dtype}")
    coords = coords.astype(np.float64)
    if not np.all(np.isfinite(coords)):
        bad = np.flatnonzero(~np.all(np.isfinite(coords), axis=1))
        raise ValueError(
            f"coords_xyz has non-finite values at rows {bad[:10].tolist()}"
        )
    return coords


def extract_subtomograms(
    tomogram: str | os.PathLike | np.ndarray,
    coords_xyz: np.ndarray | ParticleTable,
    box: int,
    border: str = "skip",
    *,
    pad_value: float | str = "mean",
    permissive: bool = False,
) -> ExtractedSubtomograms:
    """Cut cubic boxes centred at particle coordinates out of a tomogram.

    The tomogram is indexed ``data[z, y, x]`` (the :mod:`mrcfile` order), and a
    coordinate ``(x, y, z)`` refers to voxel ``data[z, y, x]``. Coordinates are
    rounded to the nearest voxel (halves round up); no interpolation is done.
    A box of size ``box`` centred on voxel ``c`` spans
    ``[c - box // 2, c - box // 2 + box)`` on each axis (see
    :func:`box_bounds`), for odd and even ``box`` alike.

    A tomogram given as a path is opened with :func:`mrcfile.mmap` and only
    the boxes are read, so the tomogram is never loaded whole.

    Parameters
    ----------
    tomogram : str, path-like or ndarray of shape (Z, Y, X)
        MRC file of the tomogram, or the tomogram as an array (a
        ``numpy.memmap`` works too).
    coords_xyz : array-like of shape (n, 3) or ParticleTable
        Particle centres ``(x, y, z)`` in voxels.
    box : int
        Box edge length in voxels (>= 1).
    border : {"skip", "pad"}, default="skip"
        What to do with particles whose box crosses the tomogram border:
        ``"skip"`` drops them (listed in ``skipped``); ``"pad"`` keeps them and
        fills the missing voxels with ``pad_value`` (listed in ``padded``).
    pad_value : float or "mean", default="mean"
        Fill value for ``border="pad"``. ``"mean"`` uses the mean of the part
        of that particle's box that lies inside the tomogram, which avoids
        reading the whole tomogram to get its global mean.
    permissive : bool, default=False
        Passed to :func:`mrcfile.mmap` when ``tomogram`` is a path.

    Returns
    -------
    result : ExtractedSubtomograms
        ``X`` of shape (n_kept, box, box, box) float32, ``kept``, ``skipped``
        and ``padded`` index arrays, ``n_skipped``, ``n_padded`` and the
        tomogram ``voxel_size``.

    Raises
    ------
    ValueError
        If a particle centre lies outside the tomogram altogether (that usually
        means a wrong axis order or binning, so it is never skipped quietly);
        the message lists the offending particles. Also for a bad ``box``,
        ``border``, ``pad_value``, coordinates or tomogram.
    MemoryError
        If the extracted boxes would not fit in the available memory.

    Examples
    --------
    >>> import numpy as np
    >>> z, y, x = np.mgrid[0:20, 0:20, 0:20]
    >>> tomo = (10000 * z + 100 * y + x).astype(np.float32)
    >>> res = extract_subtomograms(tomo, [[5, 6, 7], [0, 0, 0]], box=3)
    >>> res.kept.tolist(), res.n_skipped
    ([0], 1)
    >>> float(res.X[0, 1, 1, 1])  # centre voxel: z=7, y=6, x=5
    70605.0
    """
    if isinstance(box, bool) or not isinstance(box, (int, np.integer)) or box < 1:
        raise ValueError(f"box must be a positive integer, got {box!r}")
    box = int(box)
    if border not in _BORDER_MODES:
        raise ValueError(f"border must be one of {_BORDER_MODES}, got {border!r}")
    pad_with_mean = isinstance(pad_value, str)
    if pad_with_mean:
        if pad_value != "mean":
            raise ValueError(f"pad_value must be a number or 'mean', got {pad_value!r}")
    elif (
        isinstance(pad_value, bool)
        or not isinstance(pad_value, (int, float, np.number))
        or not np.isfinite(pad_value)
    ):
        raise ValueError(
            f"pad_value must be a finite number or 'mean', got {pad_value!r}"
        )
    coords = _as_coords(coords_xyz)
    centers = np.floor(coords + 0.5).astype(np.int64)  # (x, y, z), halves round up

    with contextlib.ExitStack() as stack:
        if isinstance(tomogram, (str, os.PathLike)):
            mrc = stack.enter_context(open_mrc(tomogram, permissive=permissive))
            data = mrc.data
            voxel_size = _header_voxel_size(mrc, Path(tomogram))
            name = f"tomogram '{tomogram}'"
        else:
            data = tomogram
            voxel_size = None
            name = "tomogram array"
        if not isinstance(data, np.ndarray) or data.ndim != 3:
            raise ValueError(
                f"{name} must be a 3D volume (Z, Y, X); got "
                f"{getattr(data, 'shape', type(data).__name__)}"
            )
        if np.iscomplexobj(data) or not np.issubdtype(data.dtype, np.number):
            raise ValueError(f"{name} must hold real numbers, got dtype {data.dtype}")
        shape_zyx = np.array(data.shape)
        centers_zyx = centers[:, ::-1]

        outside = np.flatnonzero(
            np.any((centers_zyx < 0) | (centers_zyx >= shape_zyx), axis=1)
        )
        if outside.size:
            shown = ", ".join(
                f"#{i} (x, y, z)={tuple(coords[i].tolist())}" for i in outside[:5]
            )
            raise ValueError(
                f"{outside.size} particle centre(s) lie outside the {name} of shape "
                f"(Z, Y, X)={tuple(data.shape)}: {shown}"
                f"{' ...' if outside.size > 5 else ''}; check the coordinate "
                "axis order and binning"
            )

        start, stop = box_bounds(centers_zyx, box)
        crosses = np.any((start < 0) | (stop > shape_zyx), axis=1)
        if border == "skip":
            kept = np.flatnonzero(~crosses)
            skipped = np.flatnonzero(crosses)
            padded = np.empty(0, dtype=np.intp)
        else:
            kept = np.arange(len(coords))
            skipped = np.empty(0, dtype=np.intp)
            padded = np.flatnonzero(crosses)

        shape = (kept.size, box, box, box)
        check_memory(
            nbytes_of(shape, np.float32), f"{kept.size} subtomograms of {box}^3 voxels"
        )
        X = np.empty(shape, dtype=np.float32)
        for row, i in enumerate(kept):
            lo = np.maximum(start[i], 0)
            hi = np.minimum(stop[i], shape_zyx)
            inner = data[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
            if not crosses[i]:
                X[row] = inner
                continue
            fill = (
                float(np.mean(inner, dtype=np.float64))
                if pad_with_mean
                else float(pad_value)
            )
            X[row] = fill
            off = lo - start[i]
            X[
                row,
                off[0] : off[0] + inner.shape[0],
                off[1] : off[1] + inner.shape[1],
                off[2] : off[2] + inner.shape[2],
            ] = inner

    return ExtractedSubtomograms(
        X=X, kept=kept, skipped=skipped, padded=padded, voxel_size=voxel_size
    )
