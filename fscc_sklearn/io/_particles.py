"""Read any particle list: tell its format from the file, then dispatch."""

from __future__ import annotations

import dataclasses
import os

from ._csv import read_csv_particles
from ._relion import (
    RelionTomogram,
    SeveralTomogramsError,
    read_relion_tomograms,
    read_star,
)
from ._shrec import (
    SHREC_NON_PARTICLES,
    _looks_like_shrec,
    _read_shrec,
    read_shrec19,
    read_shrec21,
)
from ._star import StarBlock, read_star_blocks
from ._table import (
    ANGLE_CONVENTIONS,
    PARTICLE_LIST_FORMATS,
    STAR_LABEL_COLUMNS,
    ParticleListFormatError,
    ParticleTable,
    _check_file,
    _read_lines,
)

__all__ = [
    "ANGLE_CONVENTIONS",
    "PARTICLE_LIST_FORMATS",
    "STAR_LABEL_COLUMNS",
    "SHREC_NON_PARTICLES",
    "ParticleListFormatError",
    "ParticleTable",
    "RelionTomogram",
    "SeveralTomogramsError",
    "StarBlock",
    "detect_particle_list_format",
    "read_csv_particles",
    "read_particle_list",
    "read_relion_tomograms",
    "read_shrec19",
    "read_shrec21",
    "read_star",
    "read_star_blocks",
]


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
    voxel_size: float | None = None,
    tomogram_shape: tuple[int, int, int] | None = None,
    tomo_name: str | None = None,
    tomograms_star: str | os.PathLike | None = None,
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
    voxel_size : float, optional
        Voxel size (Angstrom) of the tomogram being cut. STAR files in
        Angstrom (RELION 5) or with a stated pixel size are converted to its
        voxels (see :func:`read_star`); SHREC and CSV lists are voxels already
        and are only tagged with it.
    tomogram_shape : tuple of int, optional
        ``(Z, Y, X)`` shape of that tomogram (places RELION 5 coordinates).
    tomo_name : str, optional
        For STAR files spanning several tomograms: the one to keep.
    tomograms_star : str or path-like, optional
        RELION 5 ``tomograms.star`` for STAR files.

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
    star_only = {"tomo_name": tomo_name, "tomograms_star": tomograms_star}
    given = sorted(k for k, v in star_only.items() if v is not None)
    if format != "star" and given:
        raise ValueError(f"{given} apply to STAR files only, not format {format!r}")
    if format in ("shrec19", "shrec21"):
        if label_column is not None:
            raise ValueError(
                f"label_column is not used by format {format!r}; the label is "
                "always the first field"
            )
        table = _read_shrec(path, format)
    elif format == "star":
        return read_star(
            path,
            label_column=label_column,
            voxel_size=voxel_size,
            tomogram_shape=tomogram_shape,
            tomo_name=tomo_name,
            tomograms_star=tomograms_star,
        )
    else:
        table = read_csv_particles(path, label_column=label_column)
    if voxel_size is None:
        return table
    return dataclasses.replace(table, voxel_size=float(voxel_size))
