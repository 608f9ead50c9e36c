"""Density maps: the packaged templates, resampling to a voxel size, normalisation."""

from __future__ import annotations

import functools
import hashlib
import os
from importlib import resources
from pathlib import Path

import mrcfile
import numpy as np
from scipy import ndimage

__all__ = ["available_maps", "load_map", "prepare_map"]

_MAP_PACKAGE = "fscc_sklearn.datasets"
_MAP_FOLDER = "maps"


def _map_dir() -> Path:
    return Path(str(resources.files(_MAP_PACKAGE).joinpath(_MAP_FOLDER)))


def available_maps() -> list[str]:
    """Names of the density maps shipped with the package.

    The maps come from polnet (Apache-2.0); see ``maps/SOURCE.md`` and
    ``maps/LICENSE-polnet.txt`` next to this module.

    Returns
    -------
    names : list of str
        Sorted lower-case PDB identifiers, e.g. ``"1bxn"``.

    Examples
    --------
    >>> from fscc_sklearn.datasets import available_maps
    >>> len(available_maps())
    15
    >>> available_maps()[:3]
    ['1bxn', '1qvr', '1s3x']
    """
    return sorted(p.stem for p in _map_dir().glob("*.mrc"))


def _read_mrc(path: str | os.PathLike) -> tuple[np.ndarray, float | None]:
    with mrcfile.open(path, mode="r", permissive=True) as mrc:
        if mrc.data is None or mrc.data.ndim != 3:
            raise ValueError(f"{path!s} does not hold a 3D volume.")
        data = np.asarray(mrc.data, dtype=np.float32).copy()
        vs = mrc.voxel_size
        sizes = (float(vs.x), float(vs.y), float(vs.z))
    if all(s <= 0 for s in sizes):
        return data, None
    if not np.allclose(sizes, sizes[0], rtol=1e-4):
        raise ValueError(
            f"{path!s} has anisotropic voxels {sizes} (Å); only cubic voxels "
            "are supported."
        )
    return data, sizes[0]


def load_map(name: str) -> tuple[np.ndarray, float]:
    """Read one packaged density map as it is stored.

    Parameters
    ----------
    name : str
        Lower-case PDB identifier of a packaged map (see :func:`available_maps`).

    Returns
    -------
    volume : ndarray of shape (nz, ny, nx), float32
        The raw map, numpy axis order (z, y, x), not normalised.
    voxel_size : float
        Voxel size in Å read from the MRC header (10.0 for all packaged maps).

    Raises
    ------
    ValueError
        If no packaged map has this name.

    Examples
    --------
    >>> from fscc_sklearn.datasets import load_map
    >>> vol, voxel_size = load_map("3qm1")
    >>> vol.shape, voxel_size
    ((46, 46, 46), 10.0)
    """
    key = str(name).lower()
    path = _map_dir() / f"{key}.mrc"
    if not path.is_file():
        raise ValueError(
            f"Unknown map name {name!r}. Packaged maps: {', '.join(available_maps())}."
        )
    volume, voxel_size = _read_mrc(path)
    if voxel_size is None:  # pragma: no cover - all packaged headers are set
        raise ValueError(f"Packaged map {key!r} has no voxel size in its header.")
    return volume, voxel_size


@functools.lru_cache(maxsize=1)
def _packaged_maps_digest() -> str:
    """SHA-256 over the packaged map files, so caches notice changed maps."""
    h = hashlib.sha256()
    for name in available_maps():
        h.update(name.encode())
        h.update((_map_dir() / f"{name}.mrc").read_bytes())
    return h.hexdigest()


def _background(volume: np.ndarray) -> float:
    # The outermost voxel layer is solvent for a centred particle.
    shell = np.concatenate(
        [
            volume[[0, -1]].ravel(),
            volume[:, [0, -1]].ravel(),
            volume[:, :, [0, -1]].ravel(),
        ]
    )
    return float(np.median(shell))


def _resample(volume: np.ndarray, factor: float) -> np.ndarray:
    """Resample by ``factor`` (new voxels per old voxel) about the box centre."""
    if factor < 1.0:
        # Anti-alias before shrinking; ndimage interpolation does not low-pass.
        volume = ndimage.gaussian_filter(volume, sigma=(1.0 / factor - 1.0) / 2.0)
    n_in = np.array(volume.shape, dtype=float)
    n_out = np.maximum(np.round(n_in * factor).astype(int), 1)
    # affine_transform rather than zoom: zoom rescales corner-to-corner, which
    # changes the voxel size slightly; here the scale is exact and the centres
    # of input and output boxes coincide.
    c_in = (n_in - 1.0) / 2.0
    c_out = (n_out - 1.0) / 2.0
    scale = 1.0 / factor
    return ndimage.affine_transform(
        volume,
        np.full(3, scale),
        offset=c_in - scale * c_out,
        output_shape=tuple(n_out),
        order=1,
        mode="constant",
        cval=0.0,
    ).astype(np.float32)


def crop_or_pad(volume: np.ndarray, box: int, fill: float = 0.0) -> np.ndarray:
    """Centre ``volume`` in a ``box``^3 cube, cropping or padding with ``fill``."""
    out = np.full((box, box, box), fill, dtype=volume.dtype)
    src, dst = [], []
    for n in volume.shape:
        if n >= box:
            start = (n - box) // 2
            src.append(slice(start, start + box))
            dst.append(slice(0, box))
        else:
            start = (box - n) // 2
            src.append(slice(0, n))
            dst.append(slice(start, start + n))
    out[tuple(dst)] = volume[tuple(src)]
    return out


def prepare_map(
    volume: np.ndarray,
    voxel_size: float | None,
    target_voxel_size: float = 10.0,
    box: int | None = None,
) -> np.ndarray:
    """Resample a density map to a voxel size and normalise it to unit maximum.

    Steps: resample (linear interpolation about the box centre, with a Gaussian
    anti-alias filter when shrinking), subtract the background (median of the
    outermost voxel layer), divide by the maximum, and optionally crop or
    zero-pad symmetrically to ``box``. Unit-maximum scaling keeps the relative
    mass of particles (a large complex has more signal than a small one), as
    protein density is roughly the same in all of them.

    Parameters
    ----------
    volume : array-like of shape (nz, ny, nx)
        Density, numpy axis order (z, y, x), particle at the box centre, higher
        values for more protein.
    voxel_size : float or None
        Voxel size of ``volume`` in Å. ``None`` or ``<= 0`` (unknown, as in
        MRC headers left at 0) raises a ``ValueError``.
    target_voxel_size : float, default=10.0
        Voxel size of the result in Å.
    box : int, optional
        If given, crop or zero-pad the result to ``box**3`` about its centre.

    Returns
    -------
    prepared : ndarray, float32
        Map at ``target_voxel_size`` with background 0 and maximum 1.

    Raises
    ------
    ValueError
        If the voxel size is unknown, the volume is not 3D, or it has no
        positive density above the background.

    Examples
    --------
    >>> import numpy as np
    >>> from fscc_sklearn.datasets import prepare_map
    >>> vol = np.zeros((20, 20, 20)); vol[8:12, 8:12, 8:12] = 5.0
    >>> out = prepare_map(vol, voxel_size=5.0, target_voxel_size=10.0)
    >>> out.shape, float(out.max())
    ((10, 10, 10), 1.0)
    """
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"A density map must be 3D, got shape {volume.shape}.")
    if voxel_size is None or not np.isfinite(voxel_size) or voxel_size <= 0:
        raise ValueError(
            f"The map's voxel size is unknown ({voxel_size!r}); pass it explicitly "
            "(e.g. maps={'name': (volume, voxel_size_in_angstrom)} or "
            "map_voxel_size=...)."
        )
    if target_voxel_size <= 0:
        raise ValueError(f"target_voxel_size must be > 0, got {target_voxel_size}.")
    factor = float(voxel_size) / float(target_voxel_size)
    if not np.isclose(factor, 1.0, rtol=1e-6):
        volume = _resample(volume, factor)
    volume = volume - _background(volume)
    peak = float(volume.max())
    if not peak > 0:
        raise ValueError("The map has no density above its background.")
    volume = volume / peak
    if box is not None:
        volume = crop_or_pad(volume, int(box))
    return np.ascontiguousarray(volume, dtype=np.float32)
