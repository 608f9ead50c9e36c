"""STAR files through ``starfile`` (teamtomo), with our checks on top.

Every file is read by ``starfile`` and by a scan of our own, and the two must
agree: the scan checks what ``starfile`` lets pass silently (a repeated
block or column, a short row, which pandas fills with NaN, text that is not
UTF-8) and records each row's line, so every error names the file, the line
and the column; where ``starfile`` could read a row differently (a quote, a
``#``, a ``nan`` word) its cells are compared with the file's text, and a
value it reads otherwise (an unquoted ``a#b`` cut at the ``#``) is refused
rather than kept half.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import starfile

from ._table import _check_file, _read_lines, parse_number

__all__ = ["StarBlock", "pick_star_block", "read_star_blocks"]

_STAR_TOKEN = re.compile(r"""'([^']*)'|"([^"]*)"|(\S+)""")

_NA_WORD = re.compile(r"(?:^|\s)(?:nan|NaN|<NA>)(?=\s|$)")

#: Values ``starfile`` (pandas) turns into NaN in a column read as text.
_STARFILE_NA = frozenset({"nan", "NaN", "<NA>"})


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
    line: int = 0
    column_lines: list[int] = field(default_factory=list)
    #: rows whose text starfile might read differently (quotes, '#', NaN words)
    suspect: list[int] = field(default_factory=list, repr=False)

    def column(self, name: str) -> list[str]:
        """The values of one loop column, as text."""
        k = self.columns.index(name)
        return [r[k] for _, r in self.rows]


def _star_tokens(line: str) -> list[str]:
    if '"' not in line and "'" not in line:
        return line.split()  # the same tokens as the regex, faster
    return [a or b or c for a, b, c in _STAR_TOKEN.findall(line)]


def _suspect(line: str) -> bool:
    """Whether starfile (pandas) might read the line's tokens otherwise: a
    quote, a '#', or a word it turns into NaN."""
    if "#" in line or '"' in line or "'" in line:
        return True
    if "na" in line or "Na" in line or "NA" in line:
        return _NA_WORD.search(line) is not None
    return False


def _scan(p: Path) -> list[StarBlock]:
    """Blocks, loop columns and rows with their line numbers; structure checks."""
    blocks: list[StarBlock] = []
    seen: dict[str, int] = {}
    in_loop = False  # reading loop column names or rows
    for lineno, line in enumerate(_read_lines(p), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] == "#":
            continue
        if in_loop and blocks[-1].columns and stripped[0] not in "_dl;":
            # a loop row (the common case, kept short: files hold 10^5 rows)
            block = blocks[-1]
            suspect = _suspect(stripped)
            tokens = _star_tokens(stripped) if suspect else stripped.split()
            if len(tokens) != len(block.columns):
                raise ValueError(
                    f"{p}, line {lineno}: expected {len(block.columns)} values (one "
                    f"per loop column of 'data_{block.name}'), found {len(tokens)}"
                )
            if suspect:
                block.suspect.append(len(block.rows))
            block.rows.append((lineno, tokens))
            continue
        if stripped.startswith("data_"):
            name = stripped.split()[0][len("data_") :]
            if name in seen:
                raise ValueError(
                    f"STAR file '{p}', line {lineno}: block 'data_{name}' appears "
                    f"twice (lines {seen[name]} and {lineno}); expected each block "
                    "once"
                )
            seen[name] = lineno
            blocks.append(StarBlock(name=name, line=lineno))
            in_loop = False
            continue
        if not blocks:
            raise ValueError(
                f"{p}, line {lineno}: expected a 'data_' block before {stripped!r}; "
                "not a STAR file?"
            )
        block = blocks[-1]
        where = f"STAR file '{p}', line {lineno}, block 'data_{block.name}'"  # rare
        if stripped.startswith(";"):
            raise ValueError(
                f"{p}, line {lineno}: multi-line ';' values are not supported"
            )
        if stripped == "loop_" or stripped.startswith("loop_ "):
            if block.columns or block.values:
                raise ValueError(
                    f"{where}: a second loop_ or a loop_ after '_key value' items; "
                    "expected one loop or only items per block (as RELION writes)"
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
                if tokens[0] in block.columns:
                    first = block.column_lines[block.columns.index(tokens[0])]
                    raise ValueError(
                        f"{where}: column {tokens[0]} appears twice (lines {first} "
                        f"and {lineno}); expected each column once"
                    )
                block.columns.append(tokens[0])
                block.column_lines.append(lineno)
                continue
            if block.columns:
                raise ValueError(
                    f"{where}: '_key value' item {tokens[0]} after the loop; "
                    "expected one loop or only items per block"
                )
            in_loop = False
            if len(tokens) != 2:
                raise ValueError(
                    f"{p}, line {lineno}: expected '_key value', got {stripped!r}"
                )
            if tokens[0] in block.values:
                raise ValueError(f"{where}: item {tokens[0]} appears twice")
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
        if _suspect(stripped):
            block.suspect.append(len(block.rows))
        block.rows.append((lineno, tokens))
    if not blocks:
        raise ValueError(f"'{p}' contains no 'data_' block; not a STAR file?")
    return blocks


def _starfile_values(p: Path, blocks: list[StarBlock]) -> None:
    """Read the file with ``starfile`` and check that it agrees with the scan.

    Both must find the same blocks, columns and rows. Rows without a quote,
    a ``#`` or a word pandas turns into NaN are split at whitespace by both
    alike; in the others every cell is compared, and a cell ``starfile``
    reads differently from the file (an unquoted ``a#b`` cut at the ``#``)
    is an error naming its line and column.
    """
    loops = [b for b in blocks if b.columns]
    if not any(b.rows for b in loops):
        return
    try:
        parsed = starfile.read(p, always_dict=True)
    except Exception as exc:  # pandas' parser errors have many types
        raise ValueError(f"STAR file '{p}': starfile cannot read it: {exc}") from exc
    for b in loops:
        df = parsed.get(b.name)
        if df is None or not hasattr(df, "columns"):
            raise ValueError(
                f"STAR file '{p}': starfile finds no loop in block 'data_{b.name}' "
                f"(line {b.line})"
            )
        if list(df.columns) != [c[1:] for c in b.columns] or len(df) != len(b.rows):
            raise ValueError(
                f"STAR file '{p}', block 'data_{b.name}': starfile reads "
                f"{len(df)} rows of {list(df.columns)}, the file has {len(b.rows)} "
                f"rows of {[c[1:] for c in b.columns]}"
            )
        cells = df.iloc[b.suspect].to_numpy(dtype=object)
        for k, i in enumerate(b.suspect):
            lineno, tokens = b.rows[i]
            for j, (token, value) in enumerate(zip(tokens, cells[k], strict=True)):
                if not _agree(token, value):
                    raise ValueError(
                        f"{p}, line {lineno}: column {b.columns[j]} holds {token!r} "
                        f'but starfile reads {value!r}; quote the value ("...") '
                        "if it contains '#'"
                    )


def _agree(token: str, value) -> bool:
    """Whether ``starfile``'s cell is the file's token (as text or as a number)."""
    if isinstance(value, str):
        return value == token
    if token in _STARFILE_NA:  # pandas' NA for 'nan' / '<NA>'
        return _is_na(value)
    number = parse_number(token)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return False
    return number is not None and (
        number == value or (number != number and value != value)
    )


def _is_na(value) -> bool:
    try:
        return bool(value is None or np.isnan(value))
    except TypeError:
        return str(value) == "<NA>"


def read_star_blocks(path: str | os.PathLike) -> list[StarBlock]:
    """Parse a STAR file into its data blocks (read by ``starfile`` and checked).

    Supports ``data_`` blocks holding either ``_key value`` items or one
    ``loop_``, ``#`` comment lines, and single- or double-quoted values.
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
        If the file is not UTF-8, has no ``data_`` block, repeats a block, a
        column or an item, a loop row has the wrong number of values, or the
        syntax is not understood (the message names the file and the line).
    """
    p = _check_file(path)
    blocks = _scan(p)
    _starfile_values(p, blocks)
    return blocks


def pick_star_block(
    p: Path, blocks: list[StarBlock], block: str | None, wanted: tuple[str, ...]
) -> StarBlock:
    """The particle block: ``block``, else ``data_particles``, else the only
    block with one of the ``wanted`` columns."""
    if block is not None:
        name = block[len("data_") :] if block.startswith("data_") else block
        for b in blocks:
            if b.name == name:
                return b
        raise ValueError(
            f"STAR file '{p}' has no block 'data_{name}'; blocks are "
            f"{['data_' + b.name for b in blocks]}"
        )
    with_coords = [b for b in blocks if any(c in b.columns for c in wanted)]
    if not with_coords:
        raise ValueError(
            f"STAR file '{p}' has no loop with column {' or '.join(wanted)}; "
            f"blocks are {['data_' + b.name for b in blocks]}"
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
