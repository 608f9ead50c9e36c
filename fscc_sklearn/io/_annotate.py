"""Write a particle list back with new per-particle columns, every input column kept.

``fscc predict`` uses it so that a RELION/Warp STAR file or a CSV table comes
back as it went in (same blocks, same columns, same text of every value) plus
the prediction columns, ready to import where it came from.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ._atomic import atomic_output
from ._relion import _CENTRED_XYZ, _STAR_XYZ
from ._star import pick_star_block, read_star_blocks
from ._table import ParticleTable, read_text
from ._write import _spreadsheet_safe, _star_value, _table_format

__all__ = ["write_particle_columns"]


def _cells(values, n: int, name: str) -> list[str]:
    values = np.asarray(values, dtype=object)
    if values.shape != (n,):
        raise ValueError(f"column {name!r} must have shape ({n},), got {values.shape}")
    out = []
    for v in values:
        if isinstance(v, float | np.floating):
            if not np.isfinite(v):
                raise ValueError(f"column {name!r} holds {v}; expected finite numbers")
            out.append(repr(float(v)))
        else:
            out.append(str(v))
    return out


def write_particle_columns(
    path: str | os.PathLike,
    table: ParticleTable,
    columns: Mapping[str, Sequence],
    *,
    rows: Sequence[int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the file ``table`` was read from, with ``columns`` appended.

    Every block, column and value of the input is written as it was read
    (STAR: all blocks, e.g. ``data_general`` and ``data_optics``; CSV: every
    column), keeping only the particles in ``rows``; the new columns follow
    the input's. Written atomically; an existing file is replaced only with
    ``overwrite``.

    Parameters
    ----------
    path : str or path-like
        Output file, of the input's format (``.star`` or ``.csv``).
    table : ParticleTable
        A table read from a STAR or CSV file (its ``source``).
    columns : mapping of str to array-like of shape (len(rows),)
        New columns by name (STAR names get a leading ``_`` if missing);
        floats are written in their shortest round-trip form.
    rows : sequence of int, optional
        Particles of ``table`` to write (default: all), in that order.
    overwrite : bool, default=False
        Whether an existing file may be replaced.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If the table was not read from a STAR/CSV file, the formats differ,
        a new column already exists in the input, or lengths disagree.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    if not isinstance(table, ParticleTable) or table.format not in ("star", "csv"):
        raise ValueError(
            "table must be a ParticleTable read from a STAR or CSV file, got "
            f"format {getattr(table, 'format', None)!r}"
        )
    path = Path(path)
    fmt = _table_format(path, "auto")
    if fmt != table.format:
        raise ValueError(
            f"'{path}' is a {fmt.upper()} file but the particles came from the "
            f"{table.format.upper()} file '{table.source}'; keep the input's format"
        )
    rows = np.arange(len(table)) if rows is None else np.asarray(rows, dtype=np.int64)
    file_rows = rows if table.rows is None else table.rows[rows]
    new = {
        (("_" + k if not k.startswith("_") else k) if fmt == "star" else k): _cells(
            v, len(rows), k
        )
        for k, v in columns.items()
    }
    source = Path(table.source)
    text = _star_text if fmt == "star" else _csv_text
    content = text(source, file_rows, new)
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(content, encoding="utf-8")
    return path


def _clash(source: Path, existing: list[str], new: dict, fold=str) -> None:
    have = {fold(c) for c in existing}
    clash = [c for c in new if fold(c) in have]
    if clash:
        raise ValueError(
            f"'{source}' already has column(s) {clash}; write the predictions of a "
            "list that does not hold them (e.g. the original particle list)"
        )


def _star_text(source: Path, file_rows, new: dict[str, list[str]]) -> str:
    blocks = read_star_blocks(source)
    target = pick_star_block(source, blocks, None, (_STAR_XYZ[0], _CENTRED_XYZ[0]))
    _clash(source, target.columns, new)
    out = io.StringIO()
    for b in blocks:
        out.write(f"\ndata_{b.name}\n\n")
        for k, v in b.values.items():
            out.write(f"{k} {_star_value(v, k)}\n")
        if not b.columns:
            continue
        names = b.columns + (list(new) if b is target else [])
        out.write("loop_\n")
        for k, n in enumerate(names, start=1):
            out.write(f"{n} #{k}\n")
        if b is target:
            body = [
                b.rows[i][1] + [new[c][j] for c in new] for j, i in enumerate(file_rows)
            ]
        else:
            body = [r for _, r in b.rows]
        for r in body:
            out.write(
                " ".join(_star_value(v, n) for v, n in zip(r, names, strict=True))
                + "\n"
            )
    out.write("\n")
    return out.getvalue()


def _csv_text(source: Path, file_rows, new: dict[str, list[str]]) -> str:
    with io.StringIO(read_text(source), newline="") as f:
        records = [r for r in csv.reader(f) if any(v.strip() for v in r)]
    header, body = records[0], records[1:]
    _clash(source, header, new, fold=lambda c: c.strip().lower())
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header + list(new))
    # the new cells (class names) are neutralised for spreadsheets like the
    # prediction table's; the input's own cells are copied as they are
    for j, i in enumerate(file_rows):
        writer.writerow(body[i] + [_spreadsheet_safe(new[c][j]) for c in new])
    return out.getvalue()
