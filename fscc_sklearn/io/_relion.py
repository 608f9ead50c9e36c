"""Particle coordinates of RELION 3/4/5 and Warp/M STAR files, in tomogram voxels.

Conventions (docs/formats.md states them with formulas):

- ``_rlnCoordinate{X,Y,Z}`` (RELION 3/4, Warp/M): pixels. Their pixel size is
  the optics block's ``_rlnTomoTiltSeriesPixelSize`` (RELION 4: unbinned
  tilt-series pixels) or ``_rlnMicrographPixelSize``; without either they are
  voxels of the tomogram as they stand (RELION 3.0, Warp/M).
- ``_rlnCenteredCoordinate{X,Y,Z}Angst`` (RELION 5): Angstrom from the
  tomogram centre. RELION adds the centre ``size / 2`` (floating-point
  division of ``_rlnTomoSize{X,Y,Z}``, unbinned pixels; ``TomogramSet::
  loadTomogram`` and ``ParticleSet::getPosition``), so in voxels of a
  tomogram binned by ``b``: ``x = X_A / (p * b) + size_X / (2 * b)``.
- ``_rlnOrigin{X,Y,Z}Angst`` (and RELION 3.0's ``_rlnOrigin{X,Y,Z}`` in
  pixels) are subtracted: RELION's particle centre is ``coordinate - origin``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._star import pick_star_block, read_star_blocks
from ._table import (
    ParticleTable,
    _check_file,
    _find_angle_columns,
    _finite_coords,
    _number,
    label_column_index,
    parse_numbers,
)

__all__ = [
    "RelionTomogram",
    "SeveralTomogramsError",
    "read_relion_tomograms",
    "read_star",
]

_STAR_XYZ = ("_rlnCoordinateX", "_rlnCoordinateY", "_rlnCoordinateZ")
_CENTRED_XYZ = tuple(f"_rlnCenteredCoordinate{a}Angst" for a in "XYZ")
_ORIGIN_ANGST = tuple(f"_rlnOrigin{a}Angst" for a in "XYZ")
_ORIGIN_PIXELS = tuple(f"_rlnOrigin{a}" for a in "XYZ")
_TOMO_NAME = ("_rlnTomoName", "_rlnMicrographName")
#: Optics columns giving the pixel size of ``_rlnCoordinate*``, first found wins.
_COORD_PIXEL_SIZE = ("_rlnTomoTiltSeriesPixelSize", "_rlnMicrographPixelSize")


class SeveralTomogramsError(ValueError):
    """A particle list spans several tomograms and none was chosen.

    Attributes
    ----------
    names : list of str
        The tomograms the list names.
    """

    def __init__(self, message, names):
        super().__init__(message)
        self.names = list(names)


@dataclass(frozen=True)
class RelionTomogram:
    """One row of a RELION 5 ``tomograms.star``.

    Attributes
    ----------
    name : str
        ``_rlnTomoName``.
    pixel_size : float
        ``_rlnTomoTiltSeriesPixelSize``: Angstrom per unbinned pixel.
    binning : float
        ``_rlnTomoTomogramBinning`` (1 when absent).
    size : tuple of float or None
        ``_rlnTomoSize{X,Y,Z}`` in unbinned pixels (None when absent).
    """

    name: str
    pixel_size: float
    binning: float = 1.0
    size: tuple[float, float, float] | None = None

    @property
    def voxel_size(self) -> float:
        """Angstrom per voxel of the reconstructed (binned) tomogram."""
        return self.pixel_size * self.binning


def _positive(token, what, p, lineno) -> float:
    v = _number(token, what, p, lineno)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{p}, line {lineno}: {what} is {token!r}; expected > 0")
    return v


def read_relion_tomograms(path: str | os.PathLike) -> dict[str, RelionTomogram]:
    """Read a RELION 5 ``tomograms.star``: pixel size, binning and size per tomogram.

    Parameters
    ----------
    path : str or path-like
        The file; its block with ``_rlnTomoName`` and ``_rlnTomoTiltSeriesPixelSize``.

    Returns
    -------
    tomograms : dict of str to RelionTomogram
        By ``_rlnTomoName``.
    """
    p = _check_file(path)
    need = ("_rlnTomoName", "_rlnTomoTiltSeriesPixelSize")
    blocks = [b for b in read_star_blocks(p) if all(c in b.columns for c in need)]
    if not blocks:
        raise ValueError(
            f"'{p}' has no loop with columns {list(need)}; not a RELION 5 "
            "tomograms.star?"
        )
    b = blocks[0]
    col = {c: k for k, c in enumerate(b.columns)}
    sizes = [f"_rlnTomoSize{a}" for a in "XYZ"]
    out: dict[str, RelionTomogram] = {}
    for lineno, r in b.rows:
        name = r[col["_rlnTomoName"]]
        if name in out:
            raise ValueError(f"{p}, line {lineno}: tomogram {name!r} is listed twice")
        ps = _positive(r[col[need[1]]], need[1], p, lineno)
        binning = 1.0
        if "_rlnTomoTomogramBinning" in col:
            binning = _positive(
                r[col["_rlnTomoTomogramBinning"]], "_rlnTomoTomogramBinning", p, lineno
            )
        size = None
        if all(s in col for s in sizes):
            size = tuple(_positive(r[col[s]], s, p, lineno) for s in sizes)
        out[name] = RelionTomogram(name, ps, binning, size)
    return out


def _optics_pixel_size(p, blocks, b) -> list[float | None]:
    """Pixel size (Angstrom) of ``_rlnCoordinate*`` per row, from the optics block."""
    optics = next((o for o in blocks if o.name == "optics" and o.rows), None)
    if optics is None:
        return [None] * len(b.rows)
    column = next((c for c in _COORD_PIXEL_SIZE if c in optics.columns), None)
    if column is None:
        return [None] * len(b.rows)
    ps = optics.column(column)
    lines = [n for n, _ in optics.rows]
    if "_rlnOpticsGroup" not in optics.columns:
        if len(set(ps)) > 1:
            raise ValueError(f"STAR file '{p}': optics block without _rlnOpticsGroup")
        return [_positive(ps[0], column, p, lines[0])] * len(b.rows)
    by_group = {
        g: _positive(v, column, p, n)
        for g, v, n in zip(optics.column("_rlnOpticsGroup"), ps, lines, strict=True)
    }
    if "_rlnOpticsGroup" not in b.columns:
        if len(set(by_group.values())) > 1:
            raise ValueError(
                f"STAR file '{p}': several optics groups and no _rlnOpticsGroup column "
                f"in 'data_{b.name}'"
            )
        return [next(iter(by_group.values()))] * len(b.rows)
    out = []
    for lineno, g in zip(
        (n for n, _ in b.rows), b.column("_rlnOpticsGroup"), strict=True
    ):
        if g not in by_group:
            raise ValueError(
                f"{p}, line {lineno}: optics group {g!r} is not in 'data_optics' "
                f"(groups {sorted(by_group)})"
            )
        out.append(by_group[g])
    return out


def _numbers(p, b, names) -> np.ndarray:
    lines = [n for n, _ in b.rows]
    columns = []
    for c in names:
        k = b.columns.index(c)
        columns.append(parse_numbers([r[k] for _, r in b.rows], c, p, lines))
    return np.stack(columns, axis=1).reshape(-1, len(names))


def _same_size(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-3)


def read_star(
    path: str | os.PathLike,
    *,
    label_column: str | None = None,
    block: str | None = None,
    tomo_name: str | None = None,
    voxel_size: float | None = None,
    tomogram_shape: tuple[int, int, int] | None = None,
    tomograms_star: str | os.PathLike | None = None,
) -> ParticleTable:
    """Read particle coordinates from a RELION 3/4/5 or Warp/M STAR file.

    The particle block is ``block`` if given, else ``data_particles`` if present
    (RELION 3.1+), else the only block whose loop has coordinates (a bare
    ``data_`` block of RELION 3.0 and Warp). Coordinates come back in voxels
    of the tomogram being cut (see the module docstring and docs/formats.md):
    RELION 5 ``_rlnCenteredCoordinate*Angst`` are converted with the
    tomogram's voxel size and centre; ``_rlnCoordinate*`` are converted only
    when the optics block states their pixel size and ``voxel_size`` is given;
    ``_rlnOrigin*`` shifts are subtracted. Angles are read when one of the
    column triplets of :data:`ANGLE_CONVENTIONS` is present (``_rlnAngleRot``,
    ``_rlnAngleTilt``, ``_rlnAnglePsi`` for RELION).

    Parameters
    ----------
    path : str or path-like
        The STAR file.
    label_column : str, optional
        Loop column holding the labels, with or without the leading
        underscore. By default ``_fsccLabel`` or ``_rlnClassNumber``, whichever
        is present (an error if both are); no labels if neither is.
    block : str, optional
        Name of the data block to read (``"particles"`` or
        ``"data_particles"``).
    tomo_name : str, optional
        Keep the particles of this tomogram (``_rlnTomoName``, or
        ``_rlnMicrographName`` whose file name or stem matches). Needed when
        the file spans several tomograms and their centres or voxel sizes
        are not all known from ``tomograms_star``.
    voxel_size : float, optional
        Voxel size (Angstrom) of the tomogram being cut (e.g. its MRC header).
        Needed for Angstrom coordinates unless ``tomograms_star`` gives it;
        a different size in ``tomograms_star`` is an error naming both.
    tomogram_shape : tuple of int, optional
        ``(Z, Y, X)`` shape of the tomogram being cut: its centre ``N / 2``
        places RELION 5 coordinates when ``tomograms_star`` has no sizes.
    tomograms_star : str or path-like, optional
        RELION 5 ``tomograms.star`` (pixel size, binning and size per
        tomogram).

    Returns
    -------
    table : ParticleTable
        Coordinates ``(x, y, z)`` in voxels, labels (or None), angles (or
        None), the tomogram of each particle and the voxel size when known.

    Raises
    ------
    SeveralTomogramsError
        If the file spans several tomograms that cannot be placed together.
    ValueError
        If no suitable block exists, a column is missing or repeated, a row
        is malformed (the message names the line), or the voxel sizes given
        and stated disagree (both are named).

    Examples
    --------
    >>> import tempfile, os
    >>> columns = ["_rlnCoordinateX", "_rlnCoordinateY", "_rlnCoordinateZ"]
    >>> text = "\\n".join(["data_", "loop_", *columns, "10 20 30", ""])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "particles.star")
    ...     with open(path, "w") as f:
    ...         _ = f.write(text)
    ...     table = read_star(path)
    >>> table.coords.tolist(), table.labels
    ([[10.0, 20.0, 30.0]], None)
    """
    p = _check_file(path)
    blocks = read_star_blocks(p)
    b = pick_star_block(p, blocks, block, (_STAR_XYZ[0], _CENTRED_XYZ[0]))
    centred = _CENTRED_XYZ[0] in b.columns
    wanted = _CENTRED_XYZ if centred else _STAR_XYZ
    missing = [c for c in wanted if c not in b.columns]
    if missing:
        raise ValueError(
            f"STAR file '{p}', block 'data_{b.name}': missing column(s) {missing}; "
            f"columns are {b.columns}"
        )
    name_col = next((c for c in _TOMO_NAME if c in b.columns), None)
    names = None if name_col is None else np.array(b.column(name_col), dtype=object)
    rows = np.arange(len(b.rows))
    if tomo_name is not None:
        if names is None:
            raise ValueError(
                f"STAR file '{p}': tomo_name={tomo_name!r} given but the file has no "
                f"{' or '.join(_TOMO_NAME)} column"
            )
        match = np.array([_names_match(n, tomo_name) for n in names], dtype=bool)
        if not match.any():
            raise ValueError(
                f"STAR file '{p}' has no particle of tomogram {tomo_name!r}; it "
                f"names {_few(sorted(set(names)))}"
            )
        rows = np.flatnonzero(match)
    vs_given = None if voxel_size is None else float(voxel_size)
    tomos = read_relion_tomograms(tomograms_star) if tomograms_star is not None else {}
    coords, vs_out = _coordinates(
        p,
        blocks,
        b,
        rows,
        names,
        centred,
        vs_given,
        tomogram_shape,
        tomos,
        tomograms_star,
    )
    bad = np.flatnonzero(~np.isfinite(coords).all(axis=1))
    if len(bad):
        _finite_coords(coords[bad[0]], p, b.rows[rows[bad[0]]][0])

    label_idx = label_column_index(
        b.columns,
        label_column,
        star=True,
        where=f"STAR file '{p}', block 'data_{b.name}'",
    )
    convention, angle_idx = _find_angle_columns(b.columns, "_", False)
    labels = angles = None
    if label_idx is not None:
        labels = np.array([b.rows[i][1][label_idx] for i in rows], dtype=object)
    if angle_idx is not None:
        angles = _numbers(p, b, [b.columns[k] for k in angle_idx])[rows]
    return ParticleTable(
        coords=coords.reshape(-1, 3),
        labels=labels,
        angles=angles,
        angle_convention=convention,
        source=str(p),
        format="star",
        tomograms=None if names is None else names[rows],
        voxel_size=vs_out,
        rows=rows,
    )


def _names_match(name: str, wanted: str) -> bool:
    return name == wanted or Path(name).name == wanted or Path(name).stem == wanted


def _few(values, k=5) -> str:
    shown = ", ".join(repr(v) for v in values[:k])
    return shown + (f" and {len(values) - k} more" if len(values) > k else "")


def _coordinates(p, blocks, b, rows, names, centred, vs_given, shape, tomos, tstar):
    """Coordinates of ``rows`` in tomogram voxels, and that voxel size."""
    origin_a = (
        _numbers(p, b, _ORIGIN_ANGST)[rows]
        if all(c in b.columns for c in _ORIGIN_ANGST)
        else None
    )
    if not centred:
        xyz = _numbers(p, b, _STAR_XYZ)[rows]
        if all(c in b.columns for c in _ORIGIN_PIXELS):
            xyz = xyz - _numbers(p, b, _ORIGIN_PIXELS)[rows]
        ps = np.array(_optics_pixel_size(p, blocks, b), dtype=object)[rows]
        known = [v for v in ps if v is not None]
        if tomos and names is not None:
            # RELION 4 with tomograms.star: rlnCoordinate in unbinned pixels
            ps_of = {n: _tomogram(p, tomos, n, tstar).pixel_size for n in set(names)}
            known = [ps_of[n] for n in names[rows]]
        if not known:
            if origin_a is not None and np.any(origin_a != 0):
                raise ValueError(
                    f"STAR file '{p}': _rlnOrigin*Angst shifts need the pixel size of "
                    "the coordinates (optics _rlnTomoTiltSeriesPixelSize)"
                )
            return xyz, vs_given
        cps = np.array(known, dtype=np.float64)[:, None]
        xyz_a = xyz * cps - (0 if origin_a is None else origin_a)
        target = _target_voxel_size(p, names, rows, vs_given, tomos, tstar)
        if target is None:
            if len(set(known)) > 1:
                raise ValueError(
                    f"STAR file '{p}': coordinates of several pixel sizes "
                    f"{sorted(set(known))}; pass voxel_size="
                )
            return xyz_a / cps, float(known[0])
        return xyz_a / target, target
    xyz_a = _numbers(p, b, _CENTRED_XYZ)[rows]
    if origin_a is not None:
        xyz_a = xyz_a - origin_a
    target = _target_voxel_size(p, names, rows, vs_given, tomos, tstar)
    if target is None:
        raise ValueError(
            f"STAR file '{p}' has RELION 5 coordinates in Angstrom "
            "(_rlnCenteredCoordinate*Angst): give the voxel size of the tomogram "
            "(voxel_size=, --voxel-size) or its tomograms.star (tomograms_star=)"
        )
    if not tomos and names is not None and len(set(names[rows])) > 1:
        raise SeveralTomogramsError(
            f"STAR file '{p}' spans several tomograms ({_few(sorted(set(names)))}) "
            "with coordinates from their centres: choose one (tomo_name=, "
            "--tomo-name) or give their tomograms.star",
            sorted(set(names)),
        )
    centre = np.empty((len(rows), 3))
    if names is None:
        centre[:] = _centre(p, None, shape, tomos, tstar)
    else:
        for name in dict.fromkeys(names[rows].tolist()):
            centre[names[rows] == name] = _centre(p, name, shape, tomos, tstar)
    return xyz_a / target + centre, target


def _tomogram(p, tomos, name, tstar) -> RelionTomogram:
    if name not in tomos:
        raise ValueError(
            f"STAR file '{p}': tomogram {name!r} is not in '{tstar}' (it lists "
            f"{_few(sorted(tomos))})"
        )
    return tomos[name]


def _target_voxel_size(p, names, rows, vs_given, tomos, tstar):
    if not tomos:
        return vs_given
    if names is None:
        raise ValueError(
            f"STAR file '{p}': no _rlnTomoName column to look up in '{tstar}'"
        )
    sizes = {_tomogram(p, tomos, n, tstar).voxel_size for n in set(names[rows])}
    if len(sizes) > 1:
        raise SeveralTomogramsError(
            f"STAR file '{p}': its tomograms have voxel sizes {sorted(sizes)} A in "
            f"'{tstar}'; choose one (tomo_name=, --tomo-name)",
            sorted(set(names[rows])),
        )
    stated = sizes.pop()
    if vs_given is not None and not _same_size(stated, vs_given):
        raise ValueError(
            f"voxel size mismatch: '{tstar}' gives {stated:g} A per tomogram voxel "
            f"(pixel size x binning) but the tomogram has {vs_given:g} A"
        )
    return stated if vs_given is None else vs_given


def _centre(p, name, shape, tomos, tstar) -> np.ndarray:
    if tomos:
        t = _tomogram(p, tomos, name, tstar)
        if t.size is not None:
            centre = np.array(t.size) / (2 * t.binning)
            if shape is not None:
                expected = np.array(t.size[::-1]) / t.binning
                if np.any(np.abs(np.array(shape) - expected) > 1):
                    raise ValueError(
                        f"tomogram size mismatch: '{tstar}' gives {t.name!r} "
                        f"{tuple(float(v) for v in t.size)} unbinned pixels / binning "
                        f"{t.binning:g} = (Z, Y, X) {tuple(expected.tolist())}, the "
                        f"tomogram has {tuple(shape)}"
                    )
            return centre
    if shape is None:
        raise ValueError(
            f"STAR file '{p}' has RELION 5 coordinates from the tomogram centre: "
            "give the tomogram's shape (tomogram_shape=) or a tomograms.star with "
            "_rlnTomoSizeX/Y/Z (tomograms_star=)"
        )
    z, y, x = shape
    return np.array([x, y, z], dtype=np.float64) / 2
