"""Read subtomograms from MRC files (single volumes, folders or volume stacks)."""

from __future__ import annotations

import contextlib
import math
import os
import struct
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from .._resources import check_memory, nbytes_of

__all__ = ["Subtomograms", "read_subtomograms", "read_voxel_size"]

#: File name suffixes (lower case) recognised as MRC files inside a folder.
MRC_SUFFIXES = (".mrc", ".mrcs", ".map", ".rec")

_VOXEL_RTOL = 1e-3


@dataclass(frozen=True)
class Subtomograms:
    """Subtomograms read from disk.

    Attributes
    ----------
    X : ndarray of shape (n, D, H, W), float32
        The volumes, indexed ``[particle, z, y, x]``.
    voxel_size : float or None
        Isotropic voxel size in Angstrom, or None when the header leaves it unset.
    filenames : tuple of str
        For each particle, the path of the file it was read from.
    index_in_file : ndarray of shape (n,), int
        For each particle, its 0-based position inside its file (always 0 for
        single-volume files).
    """

    X: np.ndarray
    voxel_size: float | None
    filenames: tuple[str, ...]
    index_in_file: np.ndarray

    def __len__(self) -> int:
        return self.X.shape[0]


@contextlib.contextmanager
def open_mrc(path: str | os.PathLike, permissive: bool = False) -> Iterator:
    """Open an MRC file memory-mapped and read-only, with errors naming the file.

    Parameters
    ----------
    path : str or path-like
        The MRC file.
    permissive : bool, default=False
        Passed to :func:`mrcfile.mmap`. When False, a corrupt header or a data
        block of the wrong size raises.

    Yields
    ------
    mrc : mrcfile.mrcmemmap.MrcMemmap
        The open file; its ``data`` is a read-only ``numpy.memmap``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable MRC file (corrupt, truncated, garbage).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"MRC file not found: '{path}'")
    if not path.is_file():
        raise ValueError(f"Expected an MRC file but '{path}' is not a regular file")
    _check_declared_sizes(path, permissive)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            mrc = mrcfile.mmap(path, mode="r", permissive=permissive)
        except PermissionError:
            raise
        # ArithmeticError: damaged sizes reaching numpy's memmap (negative
        # lengths) or mrcfile's shape arithmetic; the header check catches
        # the known cases first with a better message
        except (ValueError, OSError, EOFError, ArithmeticError) as exc:
            raise ValueError(
                f"Cannot read '{path}' as an MRC file (corrupt or truncated?): {exc}"
            ) from exc
    for w in caught:
        warnings.warn(f"{path}: {w.message}", w.category, stacklevel=3)
    try:
        if mrc.data is None:
            raise ValueError(f"MRC file '{path}' has no readable data block")
        yield mrc
    finally:
        mrc.close()


#: Bytes per voxel of the MRC modes (101: 4-bit, two voxels per byte).
_MODE_BYTES = {0: 1, 1: 2, 2: 4, 3: 4, 4: 8, 6: 2, 12: 2, 101: 0.5}


def _byte_order(head: bytes, permissive: bool) -> str | None:
    """The byte order :mod:`mrcfile` reads this header in (None: it refuses)."""
    if head[212] in (0x44, 0x41):
        return "<"
    if head[212] == 0x11:
        return ">"
    if not permissive:
        return None  # an unknown machine stamp is an error
    # mrcfile's guess for an unknown stamp: little-endian, unless only the
    # other order gives a known mode
    little, big = (
        struct.unpack("<i", head[12:16])[0],
        struct.unpack(">i", head[12:16])[0],
    )
    return ">" if little not in _MODE_BYTES and big in _MODE_BYTES else "<"


def _check_declared_sizes(path: Path, permissive: bool) -> None:
    """Reject headers whose declared sizes the file cannot hold, before reading.

    :mod:`mrcfile` reads the extended header with one ``read(nsymbt)``, so a
    small file whose header claims a 2 GB extended header would first
    allocate 2 GB; a damaged ``nx``/``ny``/``nz`` is reported here with the
    numbers instead of as a memory-map failure.
    """
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if len(head) < 1024:
        return  # mrcfile reports the short header
    order = _byte_order(head, permissive)
    if order is None:
        return  # mrcfile rejects the file
    nx, ny, nz, mode = struct.unpack(order + "4i", head[:16])
    (nsymbt,) = struct.unpack(order + "i", head[92:96])
    size = path.stat().st_size
    if nsymbt < 0 or 1024 + nsymbt > size:
        raise ValueError(
            f"Cannot read '{path}' as an MRC file (corrupt or truncated?): the "
            f"header declares an extended header of {nsymbt} bytes, but the file "
            f"has {size} bytes in total"
        )
    (mz,) = struct.unpack(order + "i", head[36:40])
    (ispg,) = struct.unpack(order + "i", head[88:92])
    if 401 <= ispg <= 630 and mz <= 0:  # volume stack: nz // mz volumes
        raise ValueError(
            f"Cannot read '{path}' as an MRC file (corrupt?): the header marks a "
            f"volume stack (space group {ispg}) of volumes with mz={mz} sections"
        )
    if permissive or mode not in _MODE_BYTES:
        return  # mrcfile reports unknown modes and (permissively) short data
    if min(nx, ny, nz) < 0:
        raise ValueError(
            f"Cannot read '{path}' as an MRC file (corrupt?): the header declares "
            f"negative dimensions (nx, ny, nz)=({nx}, {ny}, {nz})"
        )
    data_bytes = math.ceil(nx * ny * nz * _MODE_BYTES[mode])
    if 1024 + nsymbt + data_bytes > size:
        raise ValueError(
            f"Cannot read '{path}' as an MRC file (corrupt or truncated?): the "
            f"header declares {nx} x {ny} x {nz} voxels of mode {mode} "
            f"({data_bytes} bytes), but the file holds only {size - 1024 - nsymbt} "
            "bytes of data"
        )


def _header_voxel_size(mrc, path: Path) -> float | None:
    """Return the isotropic voxel size in Angstrom of an open MRC file."""
    vs = mrc.voxel_size
    sizes = np.array([float(vs.x), float(vs.y), float(vs.z)])
    if np.all(sizes == 0):
        return None
    if not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise ValueError(
            f"MRC file '{path}' has an invalid voxel size {tuple(sizes)} Angstrom; "
            "expected three equal positive values or all zero (unset)"
        )
    if not np.allclose(sizes, sizes[0], rtol=_VOXEL_RTOL, atol=0):
        raise ValueError(
            f"MRC file '{path}' has an anisotropic voxel size {tuple(sizes)} "
            "Angstrom; expected an isotropic voxel size"
        )
    return float(sizes[0])


def read_voxel_size(path: str | os.PathLike, permissive: bool = False) -> float | None:
    """Read the isotropic voxel size of an MRC file from its header.

    Parameters
    ----------
    path : str or path-like
        The MRC file.
    permissive : bool, default=False
        Passed to :func:`mrcfile.mmap`.

    Returns
    -------
    voxel_size : float or None
        Voxel size in Angstrom, or None if the header leaves it unset (zero).

    Raises
    ------
    ValueError
        If the file is unreadable or its voxel size is anisotropic or negative.
    """
    with open_mrc(path, permissive=permissive) as mrc:
        return _header_voxel_size(mrc, Path(path))


def _list_input_files(path) -> tuple[list[Path], bool]:
    """Resolve ``path`` into a list of files and whether it named a folder/list."""
    if isinstance(path, (str, os.PathLike)):
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"Subtomogram path not found: '{p}'")
        if p.is_dir():
            files = sorted(
                f
                for f in p.iterdir()
                if f.is_file() and f.suffix.lower() in MRC_SUFFIXES
            )
            if not files:
                raise ValueError(
                    f"Folder '{p}' contains no MRC files (suffixes {MRC_SUFFIXES})"
                )
            return files, True
        return [p], False
    if isinstance(path, Sequence):
        files = [Path(f) for f in path]
        if not files:
            raise ValueError("Expected at least one MRC file, got an empty list")
        return files, True
    raise ValueError(
        f"Expected a file, a folder or a list of files, got {type(path).__name__}"
    )


def _as_volumes(mrc, path: Path, one_volume_per_file: bool) -> np.ndarray:
    """Return the memory-mapped data of an open file as (n, D, H, W)."""
    data = mrc.data
    if np.iscomplexobj(data):
        raise ValueError(f"MRC file '{path}' holds complex data; expected real voxels")
    if data.ndim == 3:
        return data[np.newaxis]
    if data.ndim == 4:
        if one_volume_per_file and data.shape[0] != 1:
            raise ValueError(
                f"MRC file '{path}' is a volume stack of {data.shape[0]} volumes; "
                "expected one volume per file when reading a folder or a file list"
            )
        return data
    raise ValueError(
        f"MRC file '{path}' holds {data.ndim}D data of shape {data.shape}; "
        "expected a 3D volume or a volume stack"
    )


def read_subtomograms(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    expected_voxel_size: float | None = None,
    permissive: bool = False,
) -> Subtomograms:
    """Read subtomograms from MRC files into a float32 array.

    Three layouts are accepted:

    * a single MRC file holding a 3D volume: one particle, ``X.shape[0] == 1``;
    * a single MRC file flagged as a volume stack (space group 401, which
      :mod:`mrcfile` returns as 4D data): ``n`` particles;
    * a folder (its files with suffix ``.mrc``, ``.mrcs``, ``.map`` or ``.rec``,
      in sorted file-name order) or a list of files, each holding exactly one
      volume (3D, or a volume stack of length 1).

    Files are opened memory-mapped with :func:`mrcfile.mmap` and copied into
    the result one at a time.

    Parameters
    ----------
    path : str, path-like or sequence of them
        An MRC file, a folder of MRC files, or a list of MRC files.
    expected_voxel_size : float, optional
        If given, the header voxel size (Angstrom) must match it within a
        relative tolerance of 1e-3; an unset voxel size also raises.
    permissive : bool, default=False
        Passed to :func:`mrcfile.mmap`; keep False to reject corrupt files.

    Returns
    -------
    result : Subtomograms
        ``X`` (n, D, H, W) float32, ``voxel_size`` (Angstrom or None),
        ``filenames`` and ``index_in_file``.

    Raises
    ------
    FileNotFoundError
        If the path (or a listed file) does not exist.
    ValueError
        If a file is corrupt, truncated or not a volume, if files disagree in
        box shape or voxel size, or if the voxel size differs from
        ``expected_voxel_size``. The message names the offending file.
    MemoryError
        If the volumes would not fit in the available memory.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from fscc_sklearn.io import write_subtomograms, read_subtomograms
    >>> X = np.zeros((3, 8, 8, 8), dtype=np.float32)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = write_subtomograms(tmp + "/stack.mrcs", X, voxel_size=10.0)
    ...     sub = read_subtomograms(tmp + "/stack.mrcs")
    >>> sub.X.shape, sub.voxel_size
    ((3, 8, 8, 8), 10.0)
    """
    if expected_voxel_size is not None:
        if not (
            isinstance(expected_voxel_size, (int, float, np.number))
            and np.isfinite(expected_voxel_size)
            and expected_voxel_size > 0
        ):
            raise ValueError(
                f"expected_voxel_size must be a positive number, "
                f"got {expected_voxel_size!r}"
            )
    files, one_per_file = _list_input_files(path)

    X: np.ndarray | None = None
    names: list[str] = []
    indices: list[np.ndarray] = []
    ref_shape = ref_voxel = None
    ref_file: Path | None = None
    for i, f in enumerate(files):
        with open_mrc(f, permissive=permissive) as mrc:
            vols = _as_volumes(mrc, f, one_per_file)
            voxel = _header_voxel_size(mrc, f)
            if ref_file is None:
                ref_shape, ref_voxel, ref_file = vols.shape[1:], voxel, f
            else:
                if vols.shape[1:] != ref_shape:
                    raise ValueError(
                        f"MRC file '{f}' has box shape {vols.shape[1:]}, but "
                        f"'{ref_file}' has {ref_shape}; all particles must share "
                        "one box shape"
                    )
                if not _same_voxel_size(voxel, ref_voxel):
                    raise ValueError(
                        f"MRC file '{f}' has voxel size {voxel} Angstrom, but "
                        f"'{ref_file}' has {ref_voxel}; all particles must share "
                        "one voxel size"
                    )
            if expected_voxel_size is not None and not _same_voxel_size(
                voxel, float(expected_voxel_size)
            ):
                raise ValueError(
                    f"MRC file '{f}' has voxel size {voxel} Angstrom; expected "
                    f"{expected_voxel_size} (relative tolerance {_VOXEL_RTOL})"
                )
            if one_per_file:
                # One volume per file: fill a preallocated array in place.
                if X is None:
                    shape = (len(files), *ref_shape)
                    check_memory(
                        nbytes_of(shape, np.float32),
                        f"{len(files)} subtomograms of shape {ref_shape}",
                    )
                    X = np.empty(shape, dtype=np.float32)
                X[i] = vols[0]
            else:
                check_memory(
                    nbytes_of(vols.shape, np.float32),
                    f"the {vols.shape[0]} subtomograms of '{f}' (shape {vols.shape})",
                )
                X = np.array(vols, dtype=np.float32, copy=True)
        names.extend([str(f)] * vols.shape[0])
        indices.append(np.arange(vols.shape[0]))

    return Subtomograms(
        X=X,
        voxel_size=ref_voxel,
        filenames=tuple(names),
        index_in_file=np.concatenate(indices),
    )


def _same_voxel_size(a: float | None, b: float | None) -> bool:
    """Whether two voxel sizes agree (both unset, or equal within rtol 1e-3)."""
    if a is None or b is None:
        return a is None and b is None
    return bool(np.isclose(a, b, rtol=_VOXEL_RTOL, atol=0))
