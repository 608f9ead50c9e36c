"""The particle table type, its angle conventions and what every reader shares."""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "ANGLE_CONVENTIONS",
    "CSV_LABEL_COLUMNS",
    "PARTICLE_LIST_FORMATS",
    "STAR_LABEL_COLUMNS",
    "ParticleListFormatError",
    "ParticleTable",
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

#: The columns a label is read from when none is named, in STAR and CSV files.
#: A file with more than one of them is refused rather than guessed (pass
#: ``label_column=``): ``_fsccLabel`` holds fscc's labels or predictions,
#: ``_rlnClassNumber`` RELION's class numbers.
STAR_LABEL_COLUMNS = ("_fsccLabel", "_rlnClassNumber")
CSV_LABEL_COLUMNS = ("label", "class")


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
    tomograms : ndarray of shape (n,), dtype object, or None
        Tomogram of each particle as named in the file (``rlnTomoName``,
        ``rlnMicrographName``, a copick run), or None when the file does not
        say.
    voxel_size : float or None
        Voxel size in Angstrom of the tomogram the coordinates are voxels of,
        when the file (or the caller) states it; None when unknown.
    rows : ndarray of shape (n,), int, or None
        0-based row of each particle among the data rows of its file (or
        block), so a writer can copy that row's other columns.
    """

    coords: np.ndarray
    labels: np.ndarray | None = None
    angles: np.ndarray | None = None
    angle_convention: str | None = None
    n_skipped: int = 0
    skipped_lines: tuple[int, ...] = field(default=())
    source: str | None = None
    format: str | None = None
    tomograms: np.ndarray | None = None
    voxel_size: float | None = None
    rows: np.ndarray | None = None

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
        for name, dtype in (("tomograms", object), ("rows", np.int64)):
            values = getattr(self, name)
            if values is not None:
                values = np.asarray(values, dtype=dtype)
                if values.shape != (n,):
                    raise ValueError(
                        f"ParticleTable {name} must have shape ({n},), got "
                        f"{values.shape}"
                    )
                object.__setattr__(self, name, values)
        if self.voxel_size is not None and not (
            math.isfinite(self.voxel_size) and self.voxel_size > 0
        ):
            raise ValueError(
                f"ParticleTable voxel_size must be a positive number (Angstrom) or "
                f"None, got {self.voxel_size!r}"
            )

    def __len__(self) -> int:
        return self.coords.shape[0]


def label_column_index(
    columns: list[str],
    label_column: str | None,
    *,
    star: bool,
    where: str,
) -> int | None:
    """Index of the label column of a table (None: it has none).

    The one rule of every reader: ``label_column`` if given (STAR: with or
    without the leading underscore; CSV: any case), else the one column of
    :data:`STAR_LABEL_COLUMNS` / :data:`CSV_LABEL_COLUMNS` present. Two of
    them present is an error, not a guess.
    """
    if star:
        names = list(columns)
        candidates = STAR_LABEL_COLUMNS
        if label_column is not None and not label_column.startswith("_"):
            label_column = "_" + label_column
    else:
        names = [c.strip().lower() for c in columns]
        candidates = CSV_LABEL_COLUMNS
        label_column = None if label_column is None else label_column.lower()
    if label_column is not None:
        if label_column not in names:
            raise ValueError(
                f"{where}: label column {label_column!r} not found; columns are "
                f"{list(columns)}"
            )
        return names.index(label_column)
    present = [c for c in candidates if c in names]
    if len(present) > 1:
        raise ValueError(
            f"{where} has both {present} label columns; pass label_column= to choose"
        )
    return names.index(present[0]) if present else None


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"Particle list not found: '{p}'")
    if not p.is_file():
        raise ValueError(f"Expected a particle list file, but '{p}' is not a file")
    return p


def _read_lines(p: Path) -> list[str]:
    """Lines of a UTF-8 text file, split only at ``\\n``, ``\\r\\n`` or ``\\r``."""
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(decode_error_message(p, data, exc)) from None
    # Not str.splitlines(), which also splits at form feeds and other
    # control characters that may legitimately sit inside a quoted value.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def decode_error_message(p: Path, data: bytes, exc: UnicodeDecodeError) -> str:
    """``'<file>', line <n>: not UTF-8 text (byte 0x.. ...)`` for a decoding error."""
    lineno = data.count(b"\n", 0, exc.start) + 1
    bad = data[exc.start : exc.end].hex(" ")
    return (
        f"'{p}', line {lineno}: not UTF-8 text (byte(s) 0x{bad}: {exc.reason}); "
        "save the file as UTF-8"
    )


def read_text(p: Path) -> str:
    """A UTF-8 text file's content; a decoding error names the file and line."""
    data = p.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(decode_error_message(p, data, exc)) from None


def check_unique_columns(header: list[str], where: str) -> None:
    """Refuse a header naming a column twice (case and spaces ignored)."""
    seen: dict[str, int] = {}
    for k, name in enumerate(header, start=1):
        key = name.strip().lower()
        if key in seen:
            raise ValueError(
                f"{where}: column {name.strip()!r} appears twice (columns "
                f"{seen[key]} and {k}); expected each column once"
            )
        seen[key] = k


# ASCII decimal numbers only: float() would also take '１２' (full-width
# digits), '1_000' (Python's digit grouping) and surrounding whitespace.
_ASCII_NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)",
    re.IGNORECASE | re.ASCII,
)


def parse_numbers(tokens: list[str], what: str, p: Path, lines) -> np.ndarray:
    """``_number`` of every token as a float64 array, checked in one pass.

    ASCII text without ``_`` or spaces that ``float`` takes is exactly what
    ``_number`` accepts; anything else goes token by token for the message.
    """
    joined = "\n".join(tokens)
    if joined.isascii() and "_" not in joined and len(joined.split()) == len(tokens):
        try:
            return np.array(tokens, dtype=np.float64)
        except ValueError:
            pass
    for token, lineno in zip(tokens, lines, strict=True):
        _number(token, what, p, lineno)  # raises at the first bad token
    return np.array(tokens, dtype=np.float64)


def parse_number(token: str) -> float | None:
    """``float(token)`` for an ASCII decimal number, None for anything else."""
    if not _ASCII_NUMBER.fullmatch(token):
        return None
    return float(token)


def _number(token: str, what: str, p: Path, lineno: int) -> float:
    value = parse_number(token)
    if value is None:
        raise ValueError(
            f"{p}, line {lineno}: expected a number for {what}, got {token!r} "
            "(ASCII decimal digits, e.g. 12.5 or 1e3)"
        )
    return value


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
