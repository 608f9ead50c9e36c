"""Inputs of ``fscc``: labelled subtomograms, particles of tomograms, resampling."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ..datasets._maps import crop_or_pad
from ..io import (
    LabelsTable,
    ParticleTable,
    extract_subtomograms,
    read_labels_table,
    read_particle_list,
    read_subtomograms,
)
from ..io._mrc import _header_voxel_size, open_mrc

__all__ = [
    "EdgeReport",
    "LabelledData",
    "tomogram_info",
    "volume_digests",
    "load_subtomogram_data",
    "load_tomogram_data",
    "particle_names",
    "resample_volumes",
]


@dataclass
class LabelledData:
    """Subtomograms with what the command knows about them.

    Attributes
    ----------
    X : ndarray of shape (n, D, H, W), float32
    y : ndarray of shape (n,) of str, or None
    voxel_size : float or None
        Angstrom.
    names : list of str
        One identifier per subtomogram (``N@file`` for stacks, 1-based as RELION).
    coords : ndarray of shape (n, 3) or None
        ``(x, y, z)`` in tomogram voxels when known.
    source : str
        What was read (for messages).
    labelled : ndarray of shape (n,) of bool
        Which subtomograms have a label (a labels table may label a subset;
        the others hold ``""`` in ``y``). All False when ``y`` is None.
    labels_source : str or None
        The labels table or particle list the labels came from.
    particles : ParticleTable or None
        The particle list the subtomograms were cut at.
    particle_rows : ndarray of int or None
        Row of ``particles`` of each subtomogram.
    """

    X: np.ndarray
    y: np.ndarray | None
    voxel_size: float | None
    names: list[str]
    coords: np.ndarray | None
    source: str
    labelled: np.ndarray = field(default=None)
    labels_source: str | None = None
    particles: ParticleTable | None = None
    particle_rows: np.ndarray | None = None

    def __post_init__(self):
        if self.labelled is None:
            self.labelled = np.full(len(self.names), self.y is not None)

    def subset(self, rows: np.ndarray) -> LabelledData:
        return LabelledData(
            self.X[rows],
            None if self.y is None else self.y[rows],
            self.voxel_size,
            [self.names[i] for i in rows],
            None if self.coords is None else self.coords[rows],
            self.source,
            self.labelled[rows],
            self.labels_source,
            self.particles,
            None if self.particle_rows is None else self.particle_rows[rows],
        )

    def without_labels(self) -> LabelledData:
        """The same subtomograms with their labels dropped."""
        return LabelledData(
            self.X, None, self.voxel_size, self.names, self.coords, self.source
        )


def particle_names(rows) -> list[str]:
    """``particle_<n>`` for rows of a particle list (1-based, as in messages)."""
    return [f"particle_{int(i) + 1}" for i in rows]


def volume_digests(X: np.ndarray) -> list[str]:
    """SHA-256 of every volume's float32 bytes: identifies a subtomogram by content.

    An adapted model stores the digests of its support examples, so a later
    prediction can recognise them whatever file or tomogram they come from.
    """
    return [
        hashlib.sha256(np.ascontiguousarray(v, dtype=np.float32).tobytes()).hexdigest()
        for v in X
    ]


# ----------------------------------------------------------------------------
# subtomograms and their labels


def _split_name(name: str) -> tuple[str, int]:
    """``'3@stack.mrcs'`` -> ``('stack.mrcs', 2)``; ``'./a.mrc'`` -> ``('a.mrc', 0)``.

    The whole relative path is kept (only ``./`` and ``\\`` are normalised):
    ``../elsewhere/s0.mrc`` names another file than ``s0.mrc``.
    """
    head, sep, tail = name.partition("@")
    if sep and head.isdigit() and int(head) >= 1:
        return _relative(tail), int(head) - 1
    return _relative(name), 0


def _relative(name: str) -> str:
    return PurePosixPath(name.strip().replace("\\", "/")).as_posix().removeprefix("./")


def _key_of_file(filename: str, path: Path) -> str:
    """A subtomogram file's name as a labels table gives it: relative to DATA."""
    folder = path if path.is_dir() else path.parent
    try:
        return Path(filename).relative_to(folder).as_posix()
    except ValueError:
        return Path(filename).name


def _default_labels_file(data: Path) -> Path | None:
    folder = data if data.is_dir() else data.parent
    stems = ["labels"] if data.is_dir() else [f"{data.stem}_labels", "labels"]
    for stem in stems:
        for suffix in (".csv", ".star"):
            if (folder / (stem + suffix)).exists():
                return folder / (stem + suffix)
    return None


def load_subtomogram_data(
    path: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    *,
    need_labels: bool,
    voxel_size: float | None = None,
    use_labels: bool = True,
) -> LabelledData:
    """Read subtomograms (folder or stack) and match their labels.

    ``labels`` defaults to ``labels.csv``/``labels.star`` in the folder (or
    ``<stack>_labels.csv`` next to a stack). Without ``need_labels`` a missing
    labels file is fine (``y`` is None); with ``use_labels=False`` no labels
    are looked for. A table with a subtomogram column may label a subset of
    the files (see ``LabelledData.labelled``).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Subtomograms not found: '{path}'")
    sub = read_subtomograms(path)
    vs = _voxel_size(sub.voxel_size, voxel_size, str(path))
    names = [
        f"{i + 1}@{Path(f).name}" if _is_stack(f, path) else Path(f).name
        for f, i in zip(sub.filenames, sub.index_in_file, strict=True)
    ]
    labels_path = None
    if use_labels:
        labels_path = Path(labels) if labels is not None else _default_labels_file(path)
    if labels_path is None:
        if need_labels:
            raise ValueError(
                f"No labels for '{path}': pass --labels FILE (CSV with columns "
                "subtomogram,label or a STAR file), or put labels.csv in the folder."
            )
        return LabelledData(sub.X, None, vs, names, None, str(path))
    table = read_labels_table(labels_path)
    order = _match(table, sub, names, path)
    labelled = order >= 0
    y = np.where(labelled, table.labels[order], "")
    coords = None
    if table.coords is not None:
        coords = np.where(labelled[:, None], table.coords[order], np.nan)
    return LabelledData(
        sub.X, y, vs, names, coords, str(path), labelled, str(labels_path)
    )


def _is_stack(filename: str, path: Path) -> bool:
    return not path.is_dir() and Path(filename) == path


def _match(table: LabelsTable, sub, names: list[str], path: Path) -> np.ndarray:
    """Row of ``table`` for every subtomogram (-1: the table does not list it)."""
    n = len(names)
    if table.names is None:
        if len(table.labels) != n:
            raise ValueError(
                f"{table.path}: {len(table.labels)} labels for {n} subtomograms in "
                f"'{path}' (without a subtomogram column rows must follow the files)."
            )
        return np.arange(n)
    keys = {}
    for row, name in enumerate(table.names):
        key = _split_name(name)
        if key in keys:
            raise ValueError(
                f"{table.path}, line {table.lines[row]}: subtomogram '{name}' is "
                "listed twice."
            )
        keys[key] = row
    order = np.empty(n, dtype=np.int64)
    for i, (f, idx) in enumerate(zip(sub.filenames, sub.index_in_file, strict=True)):
        order[i] = keys.pop((_key_of_file(f, path), int(idx)), -1)
    if keys:
        row = min(keys.values())
        raise ValueError(
            f"{table.path}, line {table.lines[row]}: subtomogram "
            f"'{table.names[row]}' is not in '{path}'."
        )
    return order


def _voxel_size(header: float | None, given: float | None, source: str) -> float | None:
    if given is None:
        return header
    if header is not None and not np.isclose(header, given, rtol=1e-3):
        raise ValueError(
            f"{source}: the header says voxel size {header:g} A but --voxel-size is "
            f"{given:g} A."
        )
    return float(given)


@dataclass
class EdgeReport:
    """Particles of a list that did not fit the tomogram as they are.

    Attributes
    ----------
    outside : ndarray of int
        Rows of the list whose centre lies outside the tomogram (skipped).
    crossing : ndarray of int
        Rows whose box crosses the tomogram edge (skipped or padded).
    padded : bool
        Whether ``crossing`` rows were padded (else skipped).
    shape : tuple of int
        The tomogram's ``(Z, Y, X)`` shape.
    """

    outside: np.ndarray
    crossing: np.ndarray
    padded: bool
    shape: tuple[int, int, int]


def tomogram_info(tomogram: str | os.PathLike) -> tuple[tuple[int, ...], float | None]:
    """Shape ``(Z, Y, X)`` and header voxel size (None when unset) of an MRC file
    (of an array: its shape, voxel size None)."""
    if isinstance(tomogram, np.ndarray):
        return tuple(tomogram.shape), None
    with open_mrc(tomogram) as mrc:
        return tuple(mrc.data.shape), _header_voxel_size(mrc, Path(tomogram))


def load_tomogram_data(
    tomogram: str | os.PathLike,
    particles: str | os.PathLike | ParticleTable,
    box: int,
    *,
    need_labels: bool,
    voxel_size: float | None = None,
    use_labels: bool = True,
    edge: str = "skip",
    chunk: int = 256,
    progress=None,
    name: str | None = None,
) -> tuple[LabelledData, EdgeReport]:
    """Extract boxes at the particles of a list.

    Particles whose centre lies outside the tomogram are skipped; those whose
    box crosses its edge are skipped (``edge="skip"``) or padded with the mean
    of the part of their box inside the tomogram (``edge="pad"``). Both are
    listed in the returned :class:`EdgeReport`. ``tomogram`` may be an array
    (``name`` then names it in messages).
    """
    tomogram_name = name or str(tomogram)
    table = (
        particles
        if isinstance(particles, ParticleTable)
        else read_particle_list(particles)
    )
    source = table.source or str(particles)
    labels = table.labels if use_labels else None
    if need_labels and labels is None:
        raise ValueError(f"Particle list '{source}' has no label column.")
    if len(table) == 0:
        raise ValueError(f"Particle list '{source}' lists no particles.")
    shape, _ = tomogram_info(tomogram)
    centres = np.floor(table.coords[:, ::-1] + 0.5)  # (z, y, x), as extraction does
    inside = np.all((centres >= 0) & (centres < np.array(shape)), axis=1)
    rows = np.flatnonzero(inside)
    if not len(rows):
        raise ValueError(
            f"All {len(table)} particle centres of '{source}' lie outside "
            f"'{tomogram_name}' of shape (Z, Y, X)={shape}; check the axis order "
            "(the list's format) and the binning."
        )
    border = "pad" if edge == "pad" else "skip"
    parts, kept, crossing, vs = [], [], [], None
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        res = extract_subtomograms(tomogram, table.coords[part], box, border=border)
        parts.append(res.X)
        kept.append(part[res.kept])
        crossing.append(part[res.skipped if border == "skip" else res.padded])
        vs = res.voxel_size
        if progress is not None:
            progress.update(len(part))
    kept = np.concatenate(kept)
    report = EdgeReport(
        np.flatnonzero(~inside), np.concatenate(crossing), border == "pad", shape
    )
    if not len(kept):
        raise ValueError(
            f"All {len(table)} particles of '{source}' lie too close to the edge "
            f"of '{tomogram_name}' for a {box}^3 box (pass --edge pad to keep them)."
        )
    vs = _voxel_size(vs, voxel_size, tomogram_name)
    y = None if labels is None else np.asarray(labels, dtype=str)[kept]
    names = particle_names(kept)
    data = LabelledData(
        np.concatenate(parts),
        y,
        vs,
        names,
        table.coords[kept],
        tomogram_name,
        labels_source=None if y is None else source,
        particles=table,
        particle_rows=kept,
    )
    return data, report


# ----------------------------------------------------------------------------
# resampling


def resample_volumes(
    X: np.ndarray, voxel_from: float | None, voxel_to: float | None, box: int
) -> np.ndarray:
    """Resample volumes to ``voxel_to`` (Angstrom) and centre-crop/pad to ``box``.

    Cubic-spline zoom by ``voxel_from / voxel_to``, voxels taken as cells (the
    box's outer faces stay in place, so the physical scale is exact: 32 voxels
    of 5 A become 16 of 10 A, each the average place of two); padding uses each
    volume's mean.
    """
    from scipy.ndimage import zoom

    X = np.asarray(X, dtype=np.float32)
    if (
        voxel_from is not None
        and voxel_to is not None
        and not np.isclose(voxel_from, voxel_to, rtol=1e-3)
    ):
        factor = voxel_from / voxel_to
        X = np.stack(
            [zoom(v, factor, order=3, mode="nearest", grid_mode=True) for v in X]
        ).astype(np.float32)
    elif (voxel_from is None) != (voxel_to is None) and X.shape[-1] != box:
        raise ValueError(
            "Cannot resample: the voxel size is unknown on one side (pass "
            "--voxel-size)."
        )
    out = np.empty((len(X), box, box, box), dtype=np.float32)
    for i, v in enumerate(X):
        out[i] = crop_or_pad(v.astype(np.float32), box, fill=float(v.mean()))
    return out
