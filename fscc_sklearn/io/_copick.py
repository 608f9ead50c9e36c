"""copick projects: picks (Angstrom) and tomograms in, predicted picks out.

copick (``pip install 'fscc-sklearn[copick]'``) is an optional dependency,
imported inside these functions. A pick's centre is its ``location`` plus the
translation of its ``transformation`` (copick's ``full_positions``), in
Angstrom; in voxels of a tomogram at voxel spacing ``s`` that is
``position / s`` (voxel ``i`` centred at ``i * s`` Angstrom, copick's and the
CryoET Data Portal's convention).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from ._table import ParticleTable

__all__ = ["read_copick_picks", "read_copick_tomogram", "write_copick_picks"]


def _copick():
    try:
        import copick
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "copick projects need copick: pip install 'fscc-sklearn[copick]'"
        ) from exc
    return copick


def _run(config, run: str):
    copick = _copick()
    if not os.path.isfile(config):
        raise FileNotFoundError(f"copick config not found: '{config}'")
    root = copick.from_file(str(config))
    found = root.get_run(run)
    if found is None:
        names = sorted(r.name for r in root.runs)
        raise ValueError(f"copick project '{config}' has no run {run!r}; runs: {names}")
    return root, found


def _spacing(voxel_spacing) -> float:
    s = float(voxel_spacing)
    if not (math.isfinite(s) and s > 0):
        raise ValueError(
            f"voxel_spacing must be a positive number, got {voxel_spacing!r}"
        )
    return s


def read_copick_picks(
    config: str | os.PathLike,
    run: str,
    voxel_spacing: float,
    *,
    objects: Sequence[str] | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
) -> ParticleTable:
    """Read the picks of one run of a copick project, in voxels.

    Parameters
    ----------
    config : str or path-like
        The project's configuration file (a local, filesystem project).
    run : str
        Run name.
    voxel_spacing : float
        Voxel size (Angstrom) of the tomogram the boxes are cut from: the
        picks' Angstrom positions are divided by it.
    objects : sequence of str, optional
        Pickable object names to read (default: every object with picks).
    user_id, session_id : str, optional
        Keep only picks of this user / session.

    Returns
    -------
    table : ParticleTable
        Coordinates in voxels, the object name as label, the run as
        tomogram, ``voxel_size=voxel_spacing``.

    Raises
    ------
    ValueError
        If the run, an object, or any pick is missing.
    """
    s = _spacing(voxel_spacing)
    root, r = _run(config, run)
    known = [o.name for o in root.config.pickable_objects]
    if objects is not None:
        unknown = [o for o in objects if o not in known]
        if unknown:
            raise ValueError(
                f"copick project '{config}' has no pickable object(s) {unknown}; "
                f"objects: {known}"
            )
    picks = r.get_picks(object_name=objects, user_id=user_id, session_id=session_id)
    picks = sorted(
        picks, key=lambda p: (p.pickable_object_name, p.user_id, p.session_id)
    )
    coords, labels = [], []
    for p in picks:
        positions = np.asarray(p.full_positions(), dtype=np.float64).reshape(-1, 3)
        coords.append(positions / s)
        labels += [p.pickable_object_name] * len(positions)
    if not labels:
        raise ValueError(
            f"copick run {run!r} of '{config}' has no picks"
            + (f" of {list(objects)}" if objects else "")
            + (f" by user {user_id!r}" if user_id else "")
            + (f" in session {session_id!r}" if session_id else "")
        )
    n = len(labels)
    return ParticleTable(
        coords=np.concatenate(coords),
        labels=np.array(labels, dtype=object),
        source=str(config),
        format="copick",
        tomograms=np.array([run] * n, dtype=object),
        voxel_size=s,
        rows=np.arange(n),
    )


def read_copick_tomogram(
    config: str | os.PathLike, run: str, voxel_spacing: float, tomogram_type: str
) -> np.ndarray:
    """The tomogram of a run at a voxel spacing, as a ``(Z, Y, X)`` float32 array.

    Parameters
    ----------
    config : str or path-like
        The project's configuration file.
    run : str
        Run name.
    voxel_spacing : float
        Voxel spacing in Angstrom.
    tomogram_type : str
        Reconstruction type (``"wbp"``, ``"denoised"``, ...).

    Returns
    -------
    tomogram : ndarray of shape (Z, Y, X), float32
    """
    s = _spacing(voxel_spacing)
    _, r = _run(config, run)
    vs = r.get_voxel_spacing(s)
    if vs is None:
        have = sorted(v.voxel_size for v in r.voxel_spacings)
        raise ValueError(
            f"copick run {run!r} has no voxel spacing {s:g} A; spacings: {have}"
        )
    tomos = vs.get_tomograms(tomogram_type)
    if not tomos:
        have = sorted(t.tomo_type for t in vs.tomograms)
        raise ValueError(
            f"copick run {run!r} at {s:g} A has no tomogram {tomogram_type!r}; "
            f"types: {have}"
        )
    return np.asarray(tomos[0].numpy(), dtype=np.float32)


def write_copick_picks(
    config: str | os.PathLike,
    run: str,
    coords: np.ndarray,
    labels: Sequence,
    voxel_spacing: float,
    *,
    scores: Sequence[float] | None = None,
    object_names: Mapping[str, str] | None = None,
    user_id: str = "fscc",
    session_id: str = "0",
    overwrite: bool = False,
) -> dict[str, int]:
    """Write predicted classes back as copick picks, one pick set per class.

    Parameters
    ----------
    config : str or path-like
        The project's configuration file.
    run : str
        Run name.
    coords : array-like of shape (n, 3)
        Particle centres ``(x, y, z)`` in voxels of the tomogram at
        ``voxel_spacing`` (written in Angstrom).
    labels : array-like of shape (n,)
        Predicted class of each particle.
    voxel_spacing : float
        Voxel spacing in Angstrom.
    scores : array-like of shape (n,), optional
        Score of each pick (e.g. the predicted class's probability).
    object_names : mapping of str to str, optional
        Pickable object name of each class (default: the class name).
    user_id, session_id : str
        Who wrote the picks (copick's user and session).
    overwrite : bool, default=False
        Whether existing picks of that object, user and session may be
        replaced.

    Returns
    -------
    counts : dict of str to int
        Picks written per object name.
    """
    s = _spacing(voxel_spacing)
    root, r = _run(config, run)
    coords = np.asarray(coords, dtype=np.float64)
    labels = np.asarray([str(v) for v in labels], dtype=object)
    n = len(labels)
    if coords.shape != (n, 3) or not np.all(np.isfinite(coords)):
        raise ValueError(
            f"coords must be finite with shape ({n}, 3), got {coords.shape}"
        )
    scores = np.ones(n) if scores is None else np.asarray(scores, dtype=np.float64)
    if scores.shape != (n,) or not np.all(np.isfinite(scores)):
        raise ValueError(f"scores must be {n} finite numbers")
    mapping = dict(object_names or {})
    targets = {c: mapping.get(c, c) for c in dict.fromkeys(labels.tolist())}
    known = [o.name for o in root.config.pickable_objects]
    missing = sorted({t for t in targets.values() if t not in known})
    if missing:
        raise ValueError(
            f"copick project '{config}' has no pickable object(s) {missing} for the "
            f"predicted classes; objects: {known} (map classes to objects with "
            "object_names=, --copick-object CLASS=OBJECT)"
        )
    existing = {
        t
        for t in targets.values()
        if r.get_picks(object_name=t, user_id=user_id, session_id=session_id)
    }
    if existing and not overwrite:
        raise FileExistsError(
            f"copick run {run!r} already has picks of {sorted(existing)} by user "
            f"{user_id!r}, session {session_id!r}; pass overwrite=True (--force)"
        )
    objects = np.array([targets[c] for c in labels.tolist()], dtype=object)
    counts: dict[str, int] = {}
    for obj in dict.fromkeys(objects.tolist()):
        rows = np.flatnonzero(objects == obj)
        picks = r.new_picks(obj, session_id=session_id, user_id=user_id, exist_ok=True)
        picks.from_numpy(coords[rows] * s, scores=scores[rows])
        counts[obj] = len(rows)
    return counts
