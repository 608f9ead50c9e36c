"""Particle lists as CSV files with a header row."""

from __future__ import annotations

import csv
import io
import os

import numpy as np

from ._table import (
    ParticleTable,
    _check_file,
    _find_angle_columns,
    _finite_coords,
    _number,
    check_unique_columns,
    label_column_index,
    read_text,
)

__all__ = ["read_csv_particles"]


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
        with io.StringIO(read_text(p), newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            while header is not None and not any(h.strip() for h in header):
                header = next(reader, None)
            if header is None:
                raise ValueError(f"CSV file '{p}' is empty; expected a header row")
            check_unique_columns(header, f"CSV file '{p}'")
            cols = [h.strip().lower() for h in header]
            missing = [c for c in "xyz" if c not in cols]
            if missing:
                raise ValueError(
                    f"CSV file '{p}': missing column(s) {missing} in header {header}"
                )
            xyz_idx = [cols.index(c) for c in "xyz"]
            label_idx = label_column_index(
                header, label_column, star=False, where=f"CSV file '{p}'"
            )
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
