"""Write subtomograms (MRC), particle tables and predictions (STAR/CSV) atomically
(through :func:`~fscc_sklearn.io._atomic.atomic_output`)."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

import mrcfile
import numpy as np

from ._atomic import atomic_output
from ._mrc import MRC_SUFFIXES
from ._particles import ANGLE_CONVENTIONS, ParticleTable

__all__ = [
    "atomic_output",
    "write_particle_table",
    "write_predictions",
    "write_subtomograms",
]

_TABLE_FORMATS = ("csv", "star")
_STAR_XYZ = ("_rlnCoordinateX", "_rlnCoordinateY", "_rlnCoordinateZ")
_STAR_RESERVED = re.compile(r"^(data_|loop_|save_|global_|stop_|[_#$;'\"])", re.I)


def _write_mrc(path: Path, data: np.ndarray, voxel_size: float | None, overwrite: bool):
    with atomic_output(path, overwrite=overwrite) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(data)
            if voxel_size is not None:
                mrc.voxel_size = voxel_size


def write_subtomograms(
    path: str | os.PathLike,
    X: np.ndarray,
    voxel_size: float | None,
    *,
    layout: str = "auto",
    overwrite: bool = False,
    prefix: str = "subtomo_",
) -> list[Path]:
    """Write subtomograms as one MRC volume stack or as a folder of MRC files.

    Data are written as float32 (MRC mode 2). Each file is written to a
    temporary file in the target directory and moved into place atomically.

    Parameters
    ----------
    path : str or path-like
        Output ``.mrc``/``.mrcs`` file (stack layout) or folder (folder layout).
    X : array-like of shape (n, D, H, W)
        Real-valued volumes indexed ``[particle, z, y, x]``.
    voxel_size : float or None
        Voxel size in Angstrom written to the header; None leaves it unset (0).
    layout : {"auto", "stack", "folder"}, default="auto"
        ``"stack"`` writes one file flagged as a volume stack (space group
        401); ``"folder"`` writes ``{prefix}{i:06d}.mrc`` files into ``path``
        (created if missing). ``"auto"`` picks ``"stack"`` for MRC suffixes
        and ``"folder"`` for paths without a suffix or existing folders.
    overwrite : bool, default=False
        Whether existing output files may be replaced.
    prefix : str, default="subtomo_"
        File name prefix for the folder layout.

    Returns
    -------
    paths : list of pathlib.Path
        The files written.

    Raises
    ------
    FileExistsError
        If an output file exists and ``overwrite`` is False.
    ValueError
        If ``X`` is not a real 4D array, ``voxel_size`` is not positive, the
        layout cannot be chosen, or the output folder holds other MRC files
        (which :func:`read_subtomograms` would pick up).
    """
    X = np.asarray(X)
    if X.ndim != 4 or X.shape[0] == 0:
        raise ValueError(
            f"X must have shape (n, D, H, W) with n >= 1, got shape {X.shape}"
        )
    if np.iscomplexobj(X) or not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
    if voxel_size is not None and not (np.isfinite(voxel_size) and voxel_size > 0):
        raise ValueError(
            f"voxel_size must be a positive number or None, got {voxel_size!r}"
        )
    path = Path(path)
    if layout == "auto":
        if path.suffix.lower() in MRC_SUFFIXES:
            layout = "stack"
        elif path.is_dir() or path.suffix == "":
            layout = "folder"
        else:
            raise ValueError(
                f"Cannot choose a layout for '{path}': expected an MRC suffix "
                f"{MRC_SUFFIXES} (stack) or a folder; pass layout="
            )
    if layout not in ("stack", "folder"):
        raise ValueError(f"layout must be 'auto', 'stack' or 'folder', got {layout!r}")
    X32 = np.ascontiguousarray(X, dtype=np.float32)

    if layout == "stack":
        _write_mrc(path, X32, voxel_size, overwrite)
        return [path]

    if path.exists() and not path.is_dir():
        raise ValueError(f"Output folder '{path}' exists and is not a folder")
    width = max(6, len(str(X.shape[0] - 1)))
    targets = [path / f"{prefix}{i:0{width}d}.mrc" for i in range(X.shape[0])]
    if path.is_dir():
        target_set = set(targets)
        others = sorted(
            f
            for f in path.iterdir()
            if f.suffix.lower() in MRC_SUFFIXES and f not in target_set
        )
        if others:
            raise ValueError(
                f"Output folder '{path}' already holds other MRC files (e.g. "
                f"'{others[0]}'); they would be read back with the new particles"
            )
        if not overwrite:
            existing = [t for t in targets if t.exists()]
            if existing:
                raise FileExistsError(
                    f"Output file '{existing[0]}' already exists; pass "
                    "overwrite=True to replace it"
                )
    else:
        path.mkdir(parents=False)
    for t, vol in zip(targets, X32, strict=True):
        _write_mrc(t, vol, voxel_size, overwrite)
    return targets


def _table_format(path: Path, format: str) -> str:
    if format == "auto":
        suffix = path.suffix.lower().lstrip(".")
        if suffix not in _TABLE_FORMATS:
            raise ValueError(
                f"Cannot infer the table format of '{path}' from its extension; "
                f"expected .csv or .star, or pass format= one of {_TABLE_FORMATS}"
            )
        return suffix
    if format not in _TABLE_FORMATS:
        raise ValueError(
            f"Unknown table format {format!r}; expected 'auto' or one of "
            f"{_TABLE_FORMATS}"
        )
    return format


def _star_value(value: str, column: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"STAR value {value!r} of column {column} contains a newline")
    # '#' is quoted anywhere: starfile (pandas) cuts an unquoted a#b at the '#'
    if value and not re.search(r"[\s#]", value) and not _STAR_RESERVED.match(value):
        return value
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise ValueError(
        f"STAR value {value!r} of column {column} contains both quote characters"
    )


def _write_columns(
    path: Path,
    names: list[str],
    columns: list[list[str]],
    fmt: str,
    overwrite: bool,
    block: str = "particles",
) -> None:
    """Write string columns as CSV (header row) or as one STAR loop block."""
    buf = io.StringIO()
    rows = list(zip(*columns, strict=True)) if columns else []
    if fmt == "csv":
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(rows)
    else:
        for n in names:
            if not re.fullmatch(r"_\S+", n):
                raise ValueError(f"Invalid STAR column name {n!r}")
        buf.write(f"\ndata_{block}\n\nloop_\n")
        for k, n in enumerate(names, start=1):
            buf.write(f"{n} #{k}\n")
        for row in rows:
            cells = (_star_value(v, n) for v, n in zip(row, names, strict=True))
            buf.write(" ".join(cells) + "\n")
        buf.write("\n")
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


# how a spreadsheet recognises a formula (OWASP "CSV injection")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _spreadsheet_safe(cell: str) -> str:
    """A text cell that a spreadsheet shows as text, never runs as a formula:
    a leading ``'`` before ``= + - @``, tab or CR (numbers stay as they are)."""
    if not cell.startswith(_FORMULA_START):
        return cell
    try:
        float(cell)
    except ValueError:
        return "'" + cell
    return cell


def _float_strings(values: np.ndarray) -> list[str]:
    return [repr(float(v)) for v in values]


def _coord_columns(coords, fmt: str) -> tuple[list[str], list[list[str]]]:
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"coords must have shape (n, 3) (x, y, z), got {coords.shape}")
    if np.iscomplexobj(coords) or not np.issubdtype(coords.dtype, np.number):
        raise ValueError(f"coords must be real numbers, got dtype {coords.dtype}")
    if not np.all(np.isfinite(coords)):
        raise ValueError("coords must be finite")
    names = list(_STAR_XYZ) if fmt == "star" else ["x", "y", "z"]
    return names, [_float_strings(coords[:, k]) for k in range(3)]


def write_particle_table(
    path: str | os.PathLike,
    table: ParticleTable,
    *,
    format: str = "auto",
    label_column: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a particle table as CSV or as a RELION-style STAR file.

    CSV files get columns ``x, y, z``, then the label column (``label`` by
    default) and the angle columns of the table's convention (see
    :data:`ANGLE_CONVENTIONS`). STAR files get one ``data_particles`` block
    with ``_rlnCoordinateX/Y/Z``, the label column (``_fsccLabel`` by default;
    pass ``label_column="_rlnClassNumber"`` for integer class numbers) and the
    angle columns with a leading underscore. Floats are written in their
    shortest round-trip form, so reading the file back gives identical values.

    Parameters
    ----------
    path : str or path-like
        Output file (``.csv`` or ``.star`` unless ``format`` is given).
    table : ParticleTable
        The particles.
    format : {"auto", "csv", "star"}, default="auto"
        Output format; ``"auto"`` uses the extension.
    label_column : str, optional
        Name of the label column.
    overwrite : bool, default=False
        Whether an existing file may be replaced.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If the format is unknown or a value cannot be written.

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> from fscc_sklearn.io import ParticleTable, read_particle_list
    >>> table = ParticleTable(coords=np.array([[1.5, 2.0, 3.0]]), labels=["1BXN"])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = write_particle_table(os.path.join(tmp, "p.star"), table)
    ...     back = read_particle_list(out)
    >>> back.coords.tolist(), back.labels.tolist()
    ([[1.5, 2.0, 3.0]], ['1BXN'])
    """
    if not isinstance(table, ParticleTable):
        raise ValueError(f"table must be a ParticleTable, got {type(table).__name__}")
    path = Path(path)
    fmt = _table_format(path, format)
    names, columns = _coord_columns(table.coords, fmt)
    if table.labels is not None:
        default = "_fsccLabel" if fmt == "star" else "label"
        names.append(_column_name(label_column or default, fmt))
        columns.append([str(v) for v in table.labels])
    if table.angles is not None:
        for k, n in enumerate(ANGLE_CONVENTIONS[table.angle_convention]):
            names.append(_column_name(n, fmt))
            columns.append(_float_strings(table.angles[:, k]))
    _check_unique(names)
    _write_columns(path, names, columns, fmt, overwrite)
    return path


def _column_name(name: str, fmt: str) -> str:
    if fmt == "star":
        return name if name.startswith("_") else "_" + name
    return name


def _check_unique(names: list[str]) -> None:
    lowered = [n.lower() for n in names]
    dup = sorted({n for n in lowered if lowered.count(n) > 1})
    if dup:
        raise ValueError(f"Duplicate output column names {dup}")


def write_predictions(
    path: str | os.PathLike,
    coords: np.ndarray | None,
    labels: Sequence,
    probabilities: np.ndarray | None = None,
    *,
    classes: Sequence | None = None,
    tomograms: Sequence | None = None,
    names: Sequence | None = None,
    novelty: Sequence | None = None,
    overwrite: bool = False,
) -> Path:
    """Write predicted labels (and class probabilities) per particle.

    The one prediction table of the package (``fscc predict`` and
    :func:`~fscc_sklearn.distributed.predict_particles_distributed` write it).
    Columns, those not given left out: ``tomogram``, ``subtomogram``, ``x, y,
    z``, ``label``, ``probability`` (of the row's label) and
    ``proba_<class>`` for every class. STAR files get one ``data_particles``
    block with ``_rlnTomoName``, ``_rlnImageName``, ``_rlnCoordinateX/Y/Z``,
    ``_fsccLabel``, ``_fsccProbability`` and ``_fsccProba_<class>``. Numbers
    are written in their shortest round-trip form. A table with coordinates
    can be read back with :func:`read_particle_list`, one with names with
    :func:`read_labels_table`. In CSV, a text cell (name, label) starting with
    ``= + - @``, a tab or CR gets a leading ``'`` so that spreadsheets show it
    as text instead of running it as a formula.

    Parameters
    ----------
    path : str or path-like
        Output ``.csv`` or ``.star`` file.
    coords : array-like of shape (n, 3) or None
        Particle centres ``(x, y, z)`` in voxels, or None when not known.
    labels : array-like of shape (n,)
        Predicted label of each particle (written with ``str``).
    probabilities : array-like of shape (n, n_classes), optional
        Class probabilities, e.g. from ``predict_proba``.
    classes : array-like of shape (n_classes,), optional
        Class names for the probability columns (e.g. ``estimator.classes_``);
        by default ``0 .. n_classes - 1``. Every label must be one of them.
    tomograms : array-like of shape (n,), optional
        Tomogram of each particle, for tables that span several tomograms.
    names : array-like of shape (n,), optional
        Identifier of each particle (a subtomogram file, ``N@stack.mrcs`` or
        ``particle_<row>`` of a particle list).
    novelty : array-like of shape (n,), optional
        Novelty score of each particle (``novelty_score`` of an open-set
        classifier). Adds ``novelty`` and ``unknown`` columns (STAR:
        ``_fsccNovelty``, ``_fsccUnknown``); ``unknown`` is 1 where the label
        is not a class (a rejected particle), whose ``probability`` is then
        that of its likeliest class.
    overwrite : bool, default=False
        Whether an existing file may be replaced.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If the extension is not ``.csv``/``.star``, the inputs disagree in
        length, probabilities are not finite or (without ``novelty``) a label
        is not a class.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_predictions(
    ...         os.path.join(tmp, "p.csv"), [[1, 2, 3]], ["b"], [[0.25, 0.75]],
    ...         classes=["a", "b"], names=["particle_1"],
    ...     )
    ...     print(path.read_text(), end="")
    subtomogram,x,y,z,label,probability,proba_a,proba_b
    particle_1,1.0,2.0,3.0,b,0.75,0.25,0.75
    """
    path = Path(path)
    fmt = _table_format(path, "auto")
    star = fmt == "star"
    labels = np.asarray(labels, dtype=object)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    n = len(labels)
    names_out, columns = [], []
    for values, csv_name, star_name in (
        (tomograms, "tomogram", "_rlnTomoName"),
        (names, "subtomogram", "_rlnImageName"),
    ):
        if values is None:
            continue
        values = np.asarray(values, dtype=object)
        if values.shape != (n,):
            raise ValueError(
                f"{csv_name}s must have shape ({n},) like labels, got {values.shape}"
            )
        names_out.append(star_name if star else csv_name)
        columns.append([str(v) for v in values])
    if coords is not None:
        coord_names, coord_columns = _coord_columns(coords, fmt)
        if len(coord_columns[0]) != n:
            raise ValueError(
                f"labels must have shape ({len(coord_columns[0])},) like coords, "
                f"got {labels.shape}"
            )
        names_out += coord_names
        columns += coord_columns
    names_out.append("_fsccLabel" if star else "label")
    columns.append([str(v) for v in labels])
    if probabilities is not None:
        proba = np.asarray(probabilities)
        if proba.ndim != 2 or proba.shape[0] != n:
            raise ValueError(
                f"probabilities must have shape ({n}, n_classes), got {proba.shape}"
            )
        if (
            np.iscomplexobj(proba)
            or not np.issubdtype(proba.dtype, np.number)
            or not np.all(np.isfinite(proba))
        ):
            raise ValueError("probabilities must be finite real numbers")
        if classes is None:
            classes = list(range(proba.shape[1]))
        classes = [str(c) for c in classes]
        if len(classes) != proba.shape[1]:
            raise ValueError(
                f"classes has {len(classes)} entries but probabilities has "
                f"{proba.shape[1]} columns"
            )
        for c in classes:
            if not c or re.search(r"[\s,]", c):
                raise ValueError(
                    f"Class name {c!r} cannot be used in a column name (empty or "
                    "contains whitespace or a comma)"
                )
        column_of = {c: k for k, c in enumerate(classes)}
        unknown = sorted({str(v) for v in labels} - set(column_of))
        if unknown and novelty is None:
            raise ValueError(
                f"labels {unknown[:5]} are not among the classes {classes}"
            )
        likeliest = proba.argmax(axis=1)  # the row's label unless rejected
        cols = [
            column_of.get(str(v), k) for v, k in zip(labels, likeliest, strict=True)
        ]
        own = proba[np.arange(n), np.asarray(cols, dtype=int)]
        names_out.append("_fsccProbability" if star else "probability")
        columns.append(_float_strings(own))
        prefix = "_fsccProba_" if star else "proba_"
        for k, c in enumerate(classes):
            names_out.append(prefix + c)
            columns.append(_float_strings(proba[:, k]))
    elif classes is not None:
        raise ValueError("classes given without probabilities")
    if novelty is not None:
        novelty = np.asarray(novelty, dtype=float)
        if novelty.shape != (n,) or probabilities is None:
            raise ValueError(
                f"novelty must have shape ({n},) like labels and come with "
                f"probabilities, got shape {novelty.shape}"
            )
        names_out += (
            ["_fsccNovelty", "_fsccUnknown"] if star else ["novelty", "unknown"]
        )
        columns += [
            _float_strings(novelty),
            [str(int(str(v) not in column_of)) for v in labels],
        ]
    _check_unique(names_out)
    if not star:  # a prediction table is opened in spreadsheets
        columns = [[_spreadsheet_safe(v) for v in column] for column in columns]
    _write_columns(path, names_out, columns, fmt, overwrite)
    return path
