"""RELION-style STAR files: data blocks, loops, particle coordinates."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._table import (
    ParticleTable,
    _check_file,
    _find_angle_columns,
    _finite_coords,
    _number,
    _read_lines,
    label_column_index,
)

__all__ = ["StarBlock", "read_star", "read_star_blocks"]

_STAR_XYZ = ("_rlnCoordinateX", "_rlnCoordinateY", "_rlnCoordinateZ")

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
        underscore. By default ``_fsccLabel`` or ``_rlnClassNumber``, whichever
        is present (an error if both are); no labels if neither is. The same
        rule as :func:`~fscc_sklearn.io.read_labels_table`.
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

    label_idx = label_column_index(
        b.columns,
        label_column,
        star=True,
        where=f"STAR file '{p}', block 'data_{b.name}'",
    )

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
