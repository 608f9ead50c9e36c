"""Labels tables: which subtomogram has which label (CSV or STAR)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._relion import _STAR_XYZ
from ._star import read_star_blocks
from ._table import (
    STAR_LABEL_COLUMNS,
    _number,
    check_unique_columns,
    label_column_index,
    read_text,
)
from ._write import _table_format, _write_columns

__all__ = ["LabelsTable", "read_labels_table", "write_labels_table"]

_CSV_NAME = ("subtomogram", "file", "filename", "image", "rlnimagename")
_STAR_NAME = ("_rlnImageName", "_rlnSubtomogramName", "_rlnTomoParticleName")


@dataclass
class LabelsTable:
    """The rows of a labels table.

    Attributes
    ----------
    labels : ndarray of shape (n,) of str
    names : list of str or None
        Subtomogram of each row (``N@stack.mrcs`` for the N-th volume of a
        stack, 1-based); None when the table has no name column and its rows
        follow the sorted subtomogram files.
    coords : ndarray of shape (n, 3) or None
        ``(x, y, z)`` when the table has them.
    path : pathlib.Path
    lines : list of int
        1-based line number of each row in the file (for messages).
    """

    labels: np.ndarray
    names: list[str] | None
    coords: np.ndarray | None
    path: Path
    lines: list[int]


def read_labels_table(
    path: str | os.PathLike, *, label_column: str | None = None
) -> LabelsTable:
    """Read a CSV (``subtomogram,label[,x,y,z]``) or STAR labels table.

    CSV: a header row; the label column is ``label`` or ``class``; an optional
    ``subtomogram`` column names each file (``N@stack.mrcs`` for the N-th
    volume of a stack, 1-based); optional ``x, y, z``. STAR: the first loop
    with ``_fsccLabel`` or ``_rlnClassNumber``, optionally ``_rlnImageName``
    and ``_rlnCoordinateX/Y/Z``. The label column follows the rule of
    :func:`read_particle_list`: ``label_column`` if given, else the one
    candidate present (two are an error). Without a name column, rows follow
    the sorted subtomogram files.

    Parameters
    ----------
    path : str or path-like
        A ``.csv`` or ``.star`` file.
    label_column : str, optional
        Name of the label column.

    Returns
    -------
    LabelsTable

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file has another extension, no label column, no rows, or a
        malformed row (the message names the line).

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_labels_table(
    ...         os.path.join(tmp, "labels.csv"), ["a.mrc", "b.mrc"], ["1BXN", "3GL1"]
    ...     )
    ...     table = read_labels_table(path)
    >>> table.names, table.labels.tolist()
    (['a.mrc', 'b.mrc'], ['1BXN', '3GL1'])
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"Labels file not found: '{p}'")
    if p.suffix.lower() == ".star":
        return _read_star_labels(p, label_column)
    if p.suffix.lower() != ".csv":
        raise ValueError(f"Labels file '{p}': expected a .csv or .star file.")
    with io.StringIO(read_text(p), newline="") as f:
        try:
            rows = list(csv.reader(f))
        except csv.Error as exc:
            raise ValueError(f"Labels file '{p}' is malformed: {exc}") from exc
    rows = [
        (i, r) for i, r in enumerate(rows, start=1) if r and any(c.strip() for c in r)
    ]
    if not rows:
        raise ValueError(f"Labels file '{p}' is empty.")
    check_unique_columns(rows[0][1], f"Labels file '{p}'")
    header = [c.strip().lower() for c in rows[0][1]]
    label_col = label_column_index(
        header, label_column, star=False, where=f"Labels file '{p}'"
    )
    if label_col is None:
        raise ValueError(
            f"Labels file '{p}': no 'label' or 'class' column in header {header}."
        )
    name_col = next((header.index(c) for c in _CSV_NAME if c in header), None)
    xyz = [header.index(c) if c in header else None for c in "xyz"]
    body = rows[1:]
    if not body:
        raise ValueError(f"Labels file '{p}' has a header but no rows.")
    for lineno, r in body:
        if len(r) != len(header):
            raise ValueError(
                f"{p}, line {lineno}: {len(r)} values for {len(header)} columns."
            )
    labels = np.array([r[label_col].strip() for _, r in body], dtype=str)
    names = None if name_col is None else [r[name_col].strip() for _, r in body]
    coords = None
    if all(c is not None for c in xyz):
        coords = np.array(
            [[_float(r[c], p, n) for c in xyz] for n, r in body], dtype=np.float64
        )
    return LabelsTable(labels, names, coords, p, [n for n, _ in body])


def _float(text: str, p: Path, lineno: int) -> float:
    return _number(text.strip(), "a coordinate", p, lineno)


def _read_star_labels(p: Path, label_column: str | None) -> LabelsTable:
    wanted = label_column
    if wanted is not None and not wanted.startswith("_"):
        wanted = "_" + wanted
    for block in read_star_blocks(p):
        if not block.columns or (wanted is not None and wanted not in block.columns):
            continue
        where = f"STAR file '{p}', block 'data_{block.name}'"
        label_col = label_column_index(
            block.columns, label_column, star=True, where=where
        )
        if label_col is not None:
            break
    else:
        raise ValueError(
            f"STAR file '{p}' has no loop with a label column "
            f"{wanted or ' or '.join(STAR_LABEL_COLUMNS)}."
        )
    name_col = next(
        (block.columns.index(c) for c in _STAR_NAME if c in block.columns), None
    )
    rows = block.rows
    if not rows:
        raise ValueError(f"STAR file '{p}' has no rows in 'data_{block.name}'.")
    labels = np.array([r[label_col] for _, r in rows], dtype=str)
    names = None if name_col is None else [r[name_col] for _, r in rows]
    coords = None
    if all(c in block.columns for c in _STAR_XYZ):
        idx = [block.columns.index(c) for c in _STAR_XYZ]
        coords = np.array(
            [[_float(r[i], p, n) for i in idx] for n, r in rows], dtype=np.float64
        )
    return LabelsTable(labels, names, coords, p, [n for n, _ in rows])


def write_labels_table(
    path: str | os.PathLike,
    names: Sequence[str],
    labels: Sequence,
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``subtomogram,label`` (CSV) or ``_rlnImageName _fsccLabel`` (STAR).

    :func:`read_labels_table` reads it back.

    Parameters
    ----------
    path : str or path-like
        Output ``.csv`` or ``.star`` file.
    names : sequence of str
        Subtomogram of each row (a file name, or ``N@stack.mrcs``).
    labels : sequence
        Label of each row (written with ``str``).
    overwrite : bool, default=False
        Whether an existing file may be replaced.

    Returns
    -------
    path : pathlib.Path
        The file written.
    """
    path = Path(path)
    fmt = _table_format(path, "auto")
    if len(names) != len(labels):
        raise ValueError(
            f"names and labels must have the same length, got {len(names)} and "
            f"{len(labels)}"
        )
    cols = ["subtomogram", "label"] if fmt == "csv" else ["_rlnImageName", "_fsccLabel"]
    _write_columns(path, cols, [list(names), [str(v) for v in labels]], fmt, overwrite)
    return path
