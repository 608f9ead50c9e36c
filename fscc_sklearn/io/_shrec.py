"""SHREC'19 and SHREC'21 particle lists (whitespace-separated rows)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ._table import (
    ParticleListFormatError,
    ParticleTable,
    _check_file,
    _finite_coords,
    _number,
    _read_lines,
    _warn_skipped,
)

__all__ = ["SHREC_NON_PARTICLES", "read_shrec19", "read_shrec21"]

#: Non-protein classes of the SHREC datasets, skipped by the SHREC readers.
SHREC_NON_PARTICLES = frozenset({"vesicle", "fiducial"})

#: Axis order of the coordinate columns of each SHREC layout.
_SHREC_AXES = {"shrec19": "zyx", "shrec21": "xyz"}
_SHREC_LAYOUT = {
    "shrec19": "pdb_id Z Y X rot_X rot_Y rot_Z",
    "shrec21": "CLASS x y z phi theta psi",
}


def _data_lines(lines: list[str], skip: int | None = None):
    """Yield ``(lineno, tokens)`` for non-blank, non-comment lines but ``skip``."""
    for lineno, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and lineno != skip:
            yield lineno, stripped.split()


def _shrec_header(lines: list[str]) -> tuple[int | None, str | None]:
    """A column header before the first particle row, and the axis order it gives.

    The header is a comment (``# class x y z ...``) or a plain first row whose
    fields name the axes. Returns the header's line number when it is a plain
    row (to be skipped; None for a comment) and the order of its ``x``, ``y``
    and ``z`` columns (``"xyz"``, ``"zyx"``, ...; None without a header).
    """
    for lineno, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        comment = stripped.startswith("#")
        tokens = [t.strip(",;").lower() for t in stripped.lstrip("#").split()]
        axes = "".join(t for t in tokens if t in ("x", "y", "z"))
        if sorted(axes) == ["x", "y", "z"]:
            return (None if comment else lineno), axes
        if not comment:
            return None, None
    return None, None


def _read_shrec(path, fmt: str) -> ParticleTable:
    p = _check_file(path)
    zyx_order = fmt == "shrec19"
    layout = _SHREC_LAYOUT[fmt]
    lines = _read_lines(p)
    header_line, axes = _shrec_header(lines)
    if axes is not None and axes != _SHREC_AXES[fmt]:
        raise ValueError(
            f"'{p}': its header orders the coordinates {' '.join(axes)}, but "
            f"format {fmt!r} expects {' '.join(_SHREC_AXES[fmt])} ({layout})"
        )
    coords, labels, angles, skipped = [], [], [], []
    n_rows = 0
    for lineno, tokens in _data_lines(lines, skip=header_line):
        n_rows += 1
        label = tokens[0]
        if label.lower() in SHREC_NON_PARTICLES:
            # Skipped whatever their other fields hold (they are not used).
            skipped.append(lineno)
            continue
        if len(tokens) != 7:
            raise ValueError(
                f"{p}, line {lineno}: expected 7 whitespace-separated fields "
                f"({layout}), found {len(tokens)}: {' '.join(tokens)!r}"
            )
        xyz = [_number(t, "a coordinate", p, lineno) for t in tokens[1:4]]
        if zyx_order:
            xyz = xyz[::-1]
        ang = [_number(t, "an angle", p, lineno) for t in tokens[4:7]]
        if any(math.isnan(a) for a in ang):
            skipped.append(lineno)
            continue
        if not all(math.isfinite(a) for a in ang):
            raise ValueError(f"{p}, line {lineno}: infinite angle in {tokens[4:7]}")
        coords.append(_finite_coords(xyz, p, lineno))
        labels.append(label)
        angles.append(ang)
    if n_rows == 0:
        raise ValueError(f"Particle list '{p}' contains no data rows")
    _warn_skipped(p, skipped, "vesicle/fiducial or NaN angles")
    return ParticleTable(
        coords=np.array(coords, dtype=np.float64).reshape(-1, 3),
        labels=np.array(labels, dtype=object),
        angles=np.array(angles, dtype=np.float64).reshape(-1, 3),
        angle_convention="shrec19_xyz" if zyx_order else "shrec21_zxz",
        n_skipped=len(skipped),
        skipped_lines=tuple(skipped),
        source=str(p),
        format=fmt,
    )


def read_shrec19(path: str | os.PathLike) -> ParticleTable:
    """Read a SHREC'19 particle list.

    Each row is ``pdb_id Z Y X rot_X rot_Y rot_Z`` (whitespace separated; note
    the Z Y X order of the coordinates, which are reordered to x, y, z here).
    Blank lines and lines starting with ``#`` are ignored. Rows labelled
    ``vesicle`` or ``fiducial`` (whatever their other fields) or with a NaN
    angle are skipped, counted in ``n_skipped`` and reported with a warning.

    Parameters
    ----------
    path : str or path-like
        The particle list.

    Returns
    -------
    table : ParticleTable
        Coordinates ``(x, y, z)`` in voxels, PDB ids as labels, and angles with
        convention ``"shrec19_xyz"``.

    Raises
    ------
    ValueError
        If a row does not have 7 fields or holds a non-numeric value (the
        message names the line), or if the file has no data rows.
    """
    return _read_shrec(path, "shrec19")


def read_shrec21(path: str | os.PathLike) -> ParticleTable:
    """Read a SHREC'21 ``particle_locations.txt`` list.

    Each row is ``CLASS x y z phi theta psi`` (whitespace separated), angles
    being extrinsic ZXZ Euler angles in degrees. Rows labelled ``vesicle`` or
    ``fiducial`` (whatever their other fields), and rows whose angles are
    NaN, are skipped; their number is
    returned in ``n_skipped`` and reported with a :class:`UserWarning`.

    Parameters
    ----------
    path : str or path-like
        The particle list.

    Returns
    -------
    table : ParticleTable
        Coordinates ``(x, y, z)`` in voxels, class names as labels, and angles
        with convention ``"shrec21_zxz"``.

    Raises
    ------
    ValueError
        If a row does not have 7 fields or holds a non-numeric value (the
        message names the line), or if the file has no data rows.
    """
    return _read_shrec(path, "shrec21")


def _looks_like_shrec(p: Path, lines: list[str]) -> str | None:
    """``"shrec19"`` or ``"shrec21"`` when the file decides, None if not SHREC.

    SHREC'19 (``pdb_id Z Y X ...``) and SHREC'21 (``CLASS x y z ...``) rows
    look alike; the axis order is taken only from evidence that cannot be a
    coincidence: a header naming the columns, or the non-particle rows of
    SHREC'21 (``vesicle``/``fiducial`` classes, NaN angles). The case of the
    class names decides nothing: a wrong guess would swap x and z silently.
    """
    header_line, axes = _shrec_header(lines)
    rows = [t for _, t in _data_lines(lines, skip=header_line)]
    proteins = [t for t in rows if t[0].lower() not in SHREC_NON_PARTICLES]
    if not proteins or any(len(t) != 7 for t in proteins):
        return None
    try:
        values = [float(v) for t in proteins for v in t[1:]]
    except ValueError:
        return None
    if axes is not None:
        by_axes = {v: k for k, v in _SHREC_AXES.items()}
        if axes in by_axes:
            return by_axes[axes]
        raise ParticleListFormatError(
            p,
            ("shrec19", "shrec21"),
            f"its header orders the coordinates {' '.join(axes)}, neither SHREC'19 "
            "(z y x) nor SHREC'21 (x y z)",
        )
    if len(proteins) < len(rows) or any(math.isnan(v) for v in values):
        return "shrec21"
    raise ParticleListFormatError(
        p,
        ("shrec19", "shrec21"),
        "it could be a SHREC'19 (pdb_id Z Y X ...) or a SHREC'21 (CLASS x y z ...) "
        "list, and no header or vesicle/fiducial row decides the axis order",
    )
