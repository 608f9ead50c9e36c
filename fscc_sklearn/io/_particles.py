"""Parse particle lists (SHREC'19, SHREC'21, RELION STAR, CSV) into one table type."""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "ANGLE_CONVENTIONS",
    "PARTICLE_LIST_FORMATS",
    "ParticleListFormatError",
    "ParticleTable",
    "detect_particle_list_format",
    "read_csv_particles",
    "read_particle_list",
    "read_shrec19",
    "read_shrec21",
    "read_star",
]

#: Angle conventions and the three column names used for them in CSV files
#: (STAR files use the same names with a leading underscore).
ANGLE_CONVENTIONS: dict[str, tuple[str, str, str]] = {
    # SHREC'21: extrinsic ZXZ Euler angles in degrees.
    "shrec21_zxz": ("phi", "theta", "psi"),
    # SHREC'19: rotations about X, Y and Z in degrees, as listed in the file.
    "shrec19_xyz": ("rot_x", "rot_y", "rot_z"),
    # RELION: ZYZ Euler angles (rot, tilt, psi) in degrees.
    "relion_zyz": ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"),
}

PARTICLE_LIST_FORMATS = ("shrec19", "shrec21", "star", "csv")

#: Non-protein classes of the SHREC datasets, skipped by the SHREC readers.
SHREC_NON_PARTICLES = frozenset({"vesicle", "fiducial"})

#: Axis order of the coordinate columns of each SHREC layout.
_SHREC_AXES = {"shrec19": "zyx", "shrec21": "xyz"}
_SHREC_LAYOUT = {
    "shrec19": "pdb_id Z Y X rot_X rot_Y rot_Z",
    "shrec21": "CLASS x y z phi theta psi",
}

_STAR_XYZ = ("_rlnCoordinateX", "_rlnCoordinateY", "_rlnCoordinateZ")
_STAR_LABEL_CANDIDATES = ("_rlnClassNumber", "_fsccLabel")
_CSV_LABEL_CANDIDATES = ("label", "class")


class ParticleListFormatError(ValueError):
    """The format of a particle list cannot be told from the file.

    Raised by :func:`detect_particle_list_format` (and so by
    :func:`read_particle_list` with ``format="auto"``) instead of guessing.

    Attributes
    ----------
    path : str
        The particle list.
    candidates : tuple of str
        The formats the file could be (two for a SHREC list whose axis order
        nothing in the file decides).
    reason : str
        Why the format is undecided.
    """

    def __init__(self, path, candidates, reason):
        self.path = str(path)
        self.candidates = tuple(candidates)
        self.reason = reason
        choices = " or ".join(f"format={c!r}" for c in self.candidates)
        super().__init__(
            f"Cannot tell the format of '{path}': {reason}; pass {choices}"
        )


@dataclass(frozen=True)
class ParticleTable:
    """Particle positions with optional labels and orientations.

    Attributes
    ----------
    coords : ndarray of shape (n, 3), float64
        Particle centres as ``(x, y, z)`` in voxels of the tomogram (0-based
        voxel indices; voxel ``i`` is centred at coordinate ``i``).
    labels : ndarray of shape (n,), dtype object, or None
        Class label of each particle as the string found in the file, or None
        if the list carries no labels.
    angles : ndarray of shape (n, 3), float64, or None
        Orientation of each particle in degrees, in ``angle_convention``.
    angle_convention : str or None
        Key of :data:`ANGLE_CONVENTIONS` describing ``angles``.
    n_skipped : int
        Number of data rows of the file that were skipped on purpose (for
        SHREC'21 lists: ``vesicle``/``fiducial`` rows and rows with NaN angles).
    skipped_lines : tuple of int
        1-based line numbers of the skipped rows.
    source : str or None
        Path of the file the table was read from.
    format : str or None
        Format the file was parsed as (one of :data:`PARTICLE_LIST_FORMATS`).
    """

    coords: np.ndarray
    labels: np.ndarray | None = None
    angles: np.ndarray | None = None
    angle_convention: str | None = None
    n_skipped: int = 0
    skipped_lines: tuple[int, ...] = field(default=())
    source: str | None = None
    format: str | None = None

    def __post_init__(self) -> None:
        coords = np.asarray(self.coords, dtype=np.float64)
        if coords.ndim != 2 or coords.shape[1] != 3:
            raise ValueError(
                f"ParticleTable coords must have shape (n, 3), got {coords.shape}"
            )
        if not np.all(np.isfinite(coords)):
            raise ValueError("ParticleTable coords must be finite")
        n = coords.shape[0]
        object.__setattr__(self, "coords", coords)
        if self.labels is not None:
            labels = np.asarray(self.labels, dtype=object)
            if labels.shape != (n,):
                raise ValueError(
                    f"ParticleTable labels must have shape ({n},), got {labels.shape}"
                )
            object.__setattr__(self, "labels", labels)
        if self.angles is not None:
            angles = np.asarray(self.angles, dtype=np.float64)
            if angles.shape != (n, 3):
                raise ValueError(
                    f"ParticleTable angles must have shape ({n}, 3), got {angles.shape}"
                )
            if self.angle_convention not in ANGLE_CONVENTIONS:
                raise ValueError(
                    f"angle_convention must be one of {sorted(ANGLE_CONVENTIONS)} "
                    f"when angles are given, got {self.angle_convention!r}"
                )
            object.__setattr__(self, "angles", angles)

    def __len__(self) -> int:
        return self.coords.shape[0]


# --------------------------------------------------------------------------
# shared helpers


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"Particle list not found: '{p}'")
    if not p.is_file():
        raise ValueError(f"Expected a particle list file, but '{p}' is not a file")
    return p


def _read_lines(p: Path) -> list[str]:
    """Lines of a text file, split only at ``\\n``, ``\\r\\n`` or ``\\r``."""
    try:
        # Not str.splitlines(), which also splits at form feeds and other
        # control characters that may legitimately sit inside a quoted value.
        with open(p, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"Particle list '{p}' is not a UTF-8 text file: {exc}"
        ) from exc


def _number(token: str, what: str, p: Path, lineno: int) -> float:
    try:
        return float(token)
    except ValueError:
        raise ValueError(
            f"{p}, line {lineno}: expected a number for {what}, got {token!r}"
        ) from None


def _finite_coords(values, p: Path, lineno: int) -> list[float]:
    for v, axis in zip(values, "xyz", strict=True):
        if not math.isfinite(v):
            raise ValueError(
                f"{p}, line {lineno}: coordinate {axis} is {v}; expected a "
                "finite number"
            )
    return list(values)


def _warn_skipped(p: Path, skipped: list[int], reason: str) -> None:
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (
            " ..." if len(skipped) > 10 else ""
        )
        warnings.warn(
            f"Skipped {len(skipped)} row(s) of '{p}' ({reason}); lines {shown}",
            UserWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------
# SHREC'19 / SHREC'21 whitespace lists


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


# --------------------------------------------------------------------------
# STAR


_STAR_TOKEN = re.compile(r"""'([^']*)'|"([^"]*)"|(\S+)""")


@dataclass
class StarBlock:
    """One ``data_`` block of a STAR file.

    Attributes
    ----------
    name : str
        Block name without the ``data_`` prefix (``""`` for a bare ``data_``).
    values : dict of str to str
        Single ``_key value`` items of the block.
    columns : list of str
        Column names of the block's loop, in order (empty without a loop).
    rows : list of (int, list of str)
        Loop rows as ``(line number, values)``.
    """

    name: str
    values: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[int, list[str]]] = field(default_factory=list)


def _star_tokens(line: str) -> list[str]:
    return [a or b or c for a, b, c in _STAR_TOKEN.findall(line)]


def read_star_blocks(path: str | os.PathLike) -> list[StarBlock]:
    """Parse a STAR file into its data blocks.

    Supports ``data_`` blocks holding ``_key value`` items and at most one
    ``loop_`` each, ``#`` comment lines, and single- or double-quoted values.
    Multi-line (semicolon-delimited) values are not supported.

    Parameters
    ----------
    path : str or path-like
        The STAR file.

    Returns
    -------
    blocks : list of StarBlock
        The blocks in file order.

    Raises
    ------
    ValueError
        If the file has no ``data_`` block, a loop row has the wrong number of
        values, or the syntax is not understood (the message names the line).
    """
    p = _check_file(path)
    blocks: list[StarBlock] = []
    in_loop = False  # reading loop column names or rows
    for lineno, line in enumerate(_read_lines(p), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("data_"):
            blocks.append(StarBlock(name=stripped.split()[0][len("data_") :]))
            in_loop = False
            continue
        if not blocks:
            raise ValueError(
                f"{p}, line {lineno}: expected a 'data_' block before {stripped!r}; "
                "not a STAR file?"
            )
        block = blocks[-1]
        if stripped.startswith(";"):
            raise ValueError(
                f"{p}, line {lineno}: multi-line ';' values are not supported"
            )
        if stripped == "loop_" or stripped.startswith("loop_ "):
            if block.columns:
                raise ValueError(
                    f"{p}, line {lineno}: block 'data_{block.name}' has a second "
                    "loop_; expected at most one per block"
                )
            in_loop = True
            continue
        tokens = _star_tokens(stripped)
        if stripped.startswith("_"):
            if in_loop and not block.rows:
                # A column name, possibly followed by a RELION '#n' index.
                if len(tokens) > 2 or (
                    len(tokens) == 2 and not tokens[1].startswith("#")
                ):
                    raise ValueError(
                        f"{p}, line {lineno}: malformed loop column {stripped!r}"
                    )
                block.columns.append(tokens[0])
                continue
            in_loop = False
            if len(tokens) != 2:
                raise ValueError(
                    f"{p}, line {lineno}: expected '_key value', got {stripped!r}"
                )
            block.values[tokens[0]] = tokens[1]
            continue
        if not in_loop or not block.columns:
            raise ValueError(
                f"{p}, line {lineno}: unexpected data {stripped!r} outside a loop_"
            )
        if len(tokens) != len(block.columns):
            raise ValueError(
                f"{p}, line {lineno}: expected {len(block.columns)} values (one per "
                f"loop column of 'data_{block.name}'), found {len(tokens)}"
            )
        block.rows.append((lineno, tokens))
    if not blocks:
        raise ValueError(f"'{p}' contains no 'data_' block; not a STAR file?")
    return blocks


def _pick_star_block(p: Path, blocks: list[StarBlock], block: str | None) -> StarBlock:
    if block is not None:
        name = block[len("data_") :] if block.startswith("data_") else block
        for b in blocks:
            if b.name == name:
                return b
        raise ValueError(
            f"STAR file '{p}' has no block 'data_{name}'; blocks are "
            f"{['data_' + b.name for b in blocks]}"
        )
    with_coords = [b for b in blocks if _STAR_XYZ[0] in b.columns]
    if not with_coords:
        raise ValueError(
            f"STAR file '{p}' has no loop with column {_STAR_XYZ[0]}; blocks are "
            f"{['data_' + b.name for b in blocks]}"
        )
    named = [b for b in with_coords if b.name == "particles"]
    if named:
        return named[0]
    if len(with_coords) > 1:
        raise ValueError(
            f"STAR file '{p}' has several blocks with coordinates "
            f"{['data_' + b.name for b in with_coords]}; pass block= to choose"
        )
    return with_coords[0]


def _find_angle_columns(
    columns: list[str], prefix: str, case_insensitive: bool
) -> tuple[str | None, list[int] | None]:
    """Find one known angle-column triplet; return (convention, indices)."""
    norm = [c.lower() for c in columns] if case_insensitive else list(columns)
    for convention, names in ANGLE_CONVENTIONS.items():
        wanted = [prefix + (n.lower() if case_insensitive else n) for n in names]
        if all(w in norm for w in wanted):
            return convention, [norm.index(w) for w in wanted]
    return None, None


def read_star(
    path: str | os.PathLike,
    *,
    label_column: str | None = None,
    block: str | None = None,
) -> ParticleTable:
    """Read particle coordinates from a RELION-style STAR file.

    The particle block is ``block`` if given, else ``data_particles`` if present
    (RELION 3.1+ files, whose ``data_optics`` block is ignored), else the only
    block whose loop has a ``_rlnCoordinateX`` column (e.g. a bare ``data_``
    block of RELION 3.0 and earlier). Coordinates are taken from
    ``_rlnCoordinateX/Y/Z`` as-is (voxels). Angles are read when one of the
    column triplets of :data:`ANGLE_CONVENTIONS` is present (``_rlnAngleRot``,
    ``_rlnAngleTilt``, ``_rlnAnglePsi`` for RELION).

    Parameters
    ----------
    path : str or path-like
        The STAR file.
    label_column : str, optional
        Loop column holding the labels, with or without the leading
        underscore. By default ``_rlnClassNumber`` or ``_fsccLabel``, whichever
        is present (an error if both are); no labels if neither is.
    block : str, optional
        Name of the data block to read (``"particles"`` or
        ``"data_particles"``).

    Returns
    -------
    table : ParticleTable
        Coordinates ``(x, y, z)``, labels as strings (or None) and angles (or
        None).

    Raises
    ------
    ValueError
        If no suitable block exists, coordinate or label columns are missing,
        or a row is malformed (the message names the line).

    Examples
    --------
    >>> import tempfile, os
    >>> text = '''data_optics
    ... loop_
    ... _rlnOpticsGroup
    ... 1
    ...
    ... data_particles
    ... loop_
    ... _rlnCoordinateX #1
    ... _rlnCoordinateY #2
    ... _rlnCoordinateZ #3
    ... _rlnClassNumber #4
    ... 10 20 30 2
    ... '''
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "particles.star")
    ...     with open(path, "w") as f:
    ...         _ = f.write(text)
    ...     table = read_star(path)
    >>> table.coords.tolist(), table.labels.tolist()
    ([[10.0, 20.0, 30.0]], ['2'])
    """
    p = _check_file(path)
    b = _pick_star_block(p, read_star_blocks(p), block)
    missing = [c for c in _STAR_XYZ if c not in b.columns]
    if missing:
        raise ValueError(
            f"STAR file '{p}', block 'data_{b.name}': missing column(s) {missing}; "
            f"columns are {b.columns}"
        )
    xyz_idx = [b.columns.index(c) for c in _STAR_XYZ]

    if label_column is not None:
        name = label_column if label_column.startswith("_") else "_" + label_column
        if name not in b.columns:
            raise ValueError(
                f"STAR file '{p}', block 'data_{b.name}': label column {name!r} "
                f"not found; columns are {b.columns}"
            )
        label_idx: int | None = b.columns.index(name)
    else:
        present = [c for c in _STAR_LABEL_CANDIDATES if c in b.columns]
        if len(present) > 1:
            raise ValueError(
                f"STAR file '{p}' has both {present}; pass label_column= to choose"
            )
        label_idx = b.columns.index(present[0]) if present else None

    convention, angle_idx = _find_angle_columns(b.columns, "_", False)

    coords, labels, angles = [], [], []
    for lineno, tokens in b.rows:
        xyz = [
            _number(tokens[i], _STAR_XYZ[k], p, lineno) for k, i in enumerate(xyz_idx)
        ]
        coords.append(_finite_coords(xyz, p, lineno))
        if label_idx is not None:
            labels.append(tokens[label_idx])
        if angle_idx is not None:
            angles.append(
                [_number(tokens[i], "an angle", p, lineno) for i in angle_idx]
            )
    return ParticleTable(
        coords=np.array(coords, dtype=np.float64).reshape(-1, 3),
        labels=None if label_idx is None else np.array(labels, dtype=object),
        angles=None if angle_idx is None else np.array(angles).reshape(-1, 3),
        angle_convention=convention,
        source=str(p),
        format="star",
    )


# --------------------------------------------------------------------------
# CSV


def read_csv_particles(
    path: str | os.PathLike, *, label_column: str | None = None
) -> ParticleTable:
    """Read particle coordinates from a CSV file with a header row.

    The header must contain columns ``x``, ``y`` and ``z`` (case-insensitive,
    voxels). Labels come from ``label_column`` or, by default, from a column
    named ``label`` or ``class``. Angles are read when one of the column
    triplets of :data:`ANGLE_CONVENTIONS` is present (e.g. ``phi, theta, psi``).
    Other columns are ignored; blank lines are skipped.

    Parameters
    ----------
    path : str or path-like
        The CSV file.
    label_column : str, optional
        Name of the label column (case-insensitive).

    Returns
    -------
    table : ParticleTable
        Coordinates ``(x, y, z)``, labels (or None) and angles (or None).

    Raises
    ------
    ValueError
        If a required column is missing, a row has the wrong number of fields
        or a non-numeric coordinate (the message names the line).
    """
    p = _check_file(path)
    try:
        with open(p, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            while header is not None and not any(h.strip() for h in header):
                header = next(reader, None)
            if header is None:
                raise ValueError(f"CSV file '{p}' is empty; expected a header row")
            cols = [h.strip().lower() for h in header]
            missing = [c for c in "xyz" if c not in cols]
            if missing:
                raise ValueError(
                    f"CSV file '{p}': missing column(s) {missing} in header {header}"
                )
            xyz_idx = [cols.index(c) for c in "xyz"]
            if label_column is not None:
                if label_column.lower() not in cols:
                    raise ValueError(
                        f"CSV file '{p}': label column {label_column!r} not found in "
                        f"header {header}"
                    )
                label_idx: int | None = cols.index(label_column.lower())
            else:
                present = [c for c in _CSV_LABEL_CANDIDATES if c in cols]
                if len(present) > 1:
                    raise ValueError(
                        f"CSV file '{p}' has both {present} columns; pass "
                        "label_column= to choose"
                    )
                label_idx = cols.index(present[0]) if present else None
            convention, angle_idx = _find_angle_columns(cols, "", True)

            coords, labels, angles = [], [], []
            for row in reader:
                lineno = reader.line_num
                if not any(v.strip() for v in row):
                    continue
                if len(row) != len(cols):
                    raise ValueError(
                        f"{p}, line {lineno}: expected {len(cols)} fields, "
                        f"found {len(row)}"
                    )
                xyz = [
                    _number(row[i].strip(), c, p, lineno)
                    for c, i in zip("xyz", xyz_idx, strict=True)
                ]
                coords.append(_finite_coords(xyz, p, lineno))
                if label_idx is not None:
                    labels.append(row[label_idx].strip())
                if angle_idx is not None:
                    angles.append(
                        [
                            _number(row[i].strip(), "an angle", p, lineno)
                            for i in angle_idx
                        ]
                    )
    except UnicodeDecodeError as exc:
        raise ValueError(f"CSV file '{p}' is not UTF-8 text: {exc}") from exc
    except csv.Error as exc:
        raise ValueError(f"CSV file '{p}' is malformed: {exc}") from exc
    return ParticleTable(
        coords=np.array(coords, dtype=np.float64).reshape(-1, 3),
        labels=None if label_idx is None else np.array(labels, dtype=object),
        angles=None if angle_idx is None else np.array(angles).reshape(-1, 3),
        angle_convention=convention,
        source=str(p),
        format="csv",
    )


# --------------------------------------------------------------------------
# detection and dispatch


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


def detect_particle_list_format(path: str | os.PathLike) -> str:
    """Guess the format of a particle list from its extension and content.

    ``.star`` files are STAR and ``.csv`` files are CSV. Other files are
    inspected: a ``data_`` line means STAR, a comma-separated header with
    ``x``, ``y``, ``z`` means CSV, and rows of 7 whitespace-separated fields
    (a name then six numbers) mean a SHREC list. SHREC'19 (``Z Y X``) and
    SHREC'21 (``x y z``) are told apart only by a header naming the columns
    (``# class x y z phi theta psi``) or by SHREC'21's non-particle rows
    (``vesicle``, ``fiducial``, NaN angles); otherwise the file is refused
    rather than guessed, since a wrong guess swaps x and z without any error.

    Parameters
    ----------
    path : str or path-like
        The particle list.

    Returns
    -------
    format : str
        One of :data:`PARTICLE_LIST_FORMATS`.

    Raises
    ------
    ParticleListFormatError
        If the format cannot be determined; its ``candidates`` name the
        formats the file could be.
    ValueError
        If the file is empty.
    """
    p = _check_file(path)
    suffix = p.suffix.lower()
    if suffix == ".star":
        return "star"
    if suffix == ".csv":
        return "csv"
    lines = _read_lines(p)
    if not any(ln.strip() and not ln.strip().startswith("#") for ln in lines):
        raise ValueError(f"Particle list '{p}' is empty: it has no particle rows")
    first = next((ln.strip() for ln in lines if ln.strip()), "")
    if first.startswith("data_") or any(ln.strip().startswith("data_") for ln in lines):
        return "star"
    if "," in first and {"x", "y", "z"} <= {
        h.strip().lower() for h in first.split(",")
    }:
        return "csv"
    shrec = _looks_like_shrec(p, lines)
    if shrec is not None:
        return shrec
    raise ParticleListFormatError(
        p,
        PARTICLE_LIST_FORMATS,
        "it is neither a STAR file, a CSV with x, y, z columns nor a SHREC list",
    )


def read_particle_list(
    path: str | os.PathLike,
    format: str = "auto",
    *,
    label_column: str | None = None,
) -> ParticleTable:
    """Read a particle list in any supported format.

    Parameters
    ----------
    path : str or path-like
        The particle list.
    format : {"auto", "shrec19", "shrec21", "star", "csv"}, default="auto"
        File format; ``"auto"`` uses :func:`detect_particle_list_format`,
        which refuses a SHREC list whose axis order (SHREC'19 ``Z Y X`` or
        SHREC'21 ``x y z``) the file does not decide.
    label_column : str, optional
        Label column for STAR and CSV files (see :func:`read_star` and
        :func:`read_csv_particles`); not allowed for SHREC lists.

    Returns
    -------
    table : ParticleTable
        Coordinates ``(x, y, z)`` in voxels with labels and angles where
        available.

    Raises
    ------
    ParticleListFormatError
        With ``format="auto"``, if the file does not decide its format.
    ValueError
        If the format is unknown, the file is malformed, or a SHREC header
        contradicts ``format``.

    Examples
    --------
    >>> import tempfile, os, warnings
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "particle_locations.txt")
    ...     with open(path, "w") as f:
    ...         _ = f.write("1BXN 10 20 30 0 90 0\\nvesicle 5 5 5 nan nan nan\\n")
    ...     with warnings.catch_warnings():
    ...         warnings.simplefilter("ignore")  # one skipped row is reported
    ...         table = read_particle_list(path)
    >>> table.format, table.coords.tolist(), table.labels.tolist(), table.n_skipped
    ('shrec21', [[10.0, 20.0, 30.0]], ['1BXN'], 1)
    """
    if format not in ("auto", *PARTICLE_LIST_FORMATS):
        raise ValueError(
            f"Unknown particle list format {format!r}; expected 'auto' or one of "
            f"{PARTICLE_LIST_FORMATS}"
        )
    if format == "auto":
        format = detect_particle_list_format(path)
    if format in ("shrec19", "shrec21"):
        if label_column is not None:
            raise ValueError(
                f"label_column is not used by format {format!r}; the label is "
                "always the first field"
            )
        return _read_shrec(path, format)
    if format == "star":
        return read_star(path, label_column=label_column)
    return read_csv_particles(path, label_column=label_column)
