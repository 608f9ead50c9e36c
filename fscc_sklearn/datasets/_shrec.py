"""Ready-made SHREC'19-like and SHREC'21-like few-shot datasets, cached on disk."""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping, Sequence

from sklearn.utils import Bunch

from .._version import __version__
from ._cache import cache_key, get_data_home, load_npz, save_npz_atomic
from ._maps import _packaged_maps_digest
from ._simulate import simulate_subtomograms

__all__ = [
    "SHREC19_CLASSES",
    "SHREC19_NOVEL",
    "SHREC21_CLASSES",
    "SHREC21_NOVEL",
    "load_shrec19_like",
    "load_shrec21_like",
]

# Bump when the simulation changes in a way that alters the output, so that
# stale caches are not reused.
_FORMAT = 1

SHREC21_CLASSES = (
    "1bxn", "1qvr", "1s3x", "1u6g", "2cg9", "3cf3", "3d2f",
    "3gl1", "3h84", "3qm1", "4cr2", "4v94", "5mrc",
)  # fmt: skip
# The FSCC paper writes "4v49"; SHREC'21 has 4V94.
SHREC21_NOVEL = ("1u6g", "3cf3", "3gl1", "3qm1", "4v94")

# 4v4r stands in for 4b4t and 3j9i for 4d8q: no openly licensed maps of the
# SHREC'19-only classes are packaged.
SHREC19_STAND_INS = {"4b4t": "4v4r", "4d8q": "3j9i"}
SHREC19_CLASSES = (
    "1bxn", "1qvr", "1s3x", "1u6g", "2cg9", "3cf3", "3d2f",
    "3gl1", "3h84", "3qm1", "4v4r", "3j9i",
)  # fmt: skip
SHREC19_NOVEL = ("1u6g", "3cf3", "3gl1", "3qm1", "3j9i")

_ARRAYS = ("X", "y", "rotations", "shifts", "defocus")


def _library_version() -> str:
    return __version__


def _novel_classes(
    split: str | Sequence[str], classes: Sequence[str], paper: Sequence[str]
) -> list[str]:
    if isinstance(split, str):
        if split != "paper":
            raise ValueError(
                f"split must be 'paper' or a list of novel class names, got {split!r}."
            )
        return list(paper)
    novel = [str(c).lower() for c in split]
    unknown = sorted(set(novel) - set(classes))
    if unknown:
        raise ValueError(
            f"Unknown novel classes {unknown}; choose from {list(classes)}."
        )
    if len(set(novel)) != len(novel):
        raise ValueError(f"split lists a class twice: {novel}.")
    if not 0 < len(novel) < len(classes):
        raise ValueError("split must leave at least one base and one novel class.")
    return novel


def _load_like(
    dataset: str,
    classes: Sequence[str],
    paper_novel: Sequence[str],
    *,
    n_per_class: int,
    snr: float,
    box: int,
    split: str | Sequence[str],
    cache: bool,
    data_home: str | os.PathLike | None,
    random_state: int | None,
    progress: bool,
    n_jobs: int | None,
    simulate_kwargs: Mapping | None,
    descr: str,
    stand_ins: Mapping[str, str] | None = None,
) -> Bunch:
    novel = _novel_classes(split, classes, paper_novel)
    base = [c for c in classes if c not in novel]
    sim_kwargs = dict(simulate_kwargs or {})
    clash = {"maps", "n_per_class", "box", "snr", "random_state", "n_jobs", "progress"}
    if clash & sim_kwargs.keys():
        raise ValueError(
            f"Pass {sorted(clash & sim_kwargs.keys())} as arguments, "
            "not in simulate_kwargs."
        )
    seed = random_state
    if seed is not None and not isinstance(seed, numbers.Integral):
        raise ValueError(
            "random_state must be an int (or None) so the dataset is reproducible "
            f"and cacheable, got {type(random_state).__name__}."
        )
    params = {
        "dataset": dataset,
        "base_classes": base,
        "novel_classes": novel,
        "n_per_class": int(n_per_class),
        "snr": float(snr),
        "box": int(box),
        "seed": None if seed is None else int(seed),
        "simulate_kwargs": {k: sim_kwargs[k] for k in sorted(sim_kwargs)},
        "library_version": _library_version(),
        "format": _FORMAT,
        "maps_sha256": _packaged_maps_digest(),
    }
    try:
        key = cache_key(params)
    except TypeError:
        key = None  # e.g. a callable noise spectrum: not hashable, not cached
    use_cache = cache and seed is not None and key is not None
    path = get_data_home(data_home) / f"{dataset}_{key}.npz" if use_cache else None

    arrays = load_npz(path) if use_cache and path.exists() else None
    if arrays is None or not set(_ARRAYS) <= arrays.keys():
        sim = simulate_subtomograms(
            base + novel,  # base first, so both splits are contiguous slices
            n_per_class,
            box=box,
            snr=snr,
            random_state=seed,
            n_jobs=n_jobs,
            progress=progress,
            **sim_kwargs,
        )
        arrays = {name: sim[name] for name in _ARRAYS}
        if use_cache:
            save_npz_atomic(path, arrays)
    n_base = len(base) * int(n_per_class)
    out = Bunch(base_classes=base, novel_classes=novel, params=params, DESCR=descr)
    for part, sl in (("base", slice(0, n_base)), ("novel", slice(n_base, None))):
        out[f"X_{part}"] = arrays["X"][sl]
        out[f"y_{part}"] = arrays["y"][sl]
        for extra in ("rotations", "shifts", "defocus"):
            out[f"{extra}_{part}"] = arrays[extra][sl]
    out["cache_path"] = None if path is None else str(path)
    out["stand_ins"] = dict(stand_ins or {})
    return out


_RETURNS = """
    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``X_base`` float32 (n_base, box, box, box) and ``y_base`` (str class
        names); ``X_novel`` and ``y_novel`` likewise; ``base_classes`` and
        ``novel_classes`` (lists of str); ``rotations_*`` (n, 3, 3),
        ``shifts_*`` (n, 3) and ``defocus_*`` (n,) as in
        :func:`simulate_subtomograms`; ``params`` (dict of every setting,
        including ``seed``, library version and map checksum); ``cache_path``
        (str or None), ``stand_ins`` (SHREC'19 class -> map used in its place;
        empty for SHREC'21) and ``DESCR``. Samples are ordered class by class.
"""

_COMMON_PARAMS = """
    box : int, default=32
        Edge of the subtomograms in voxels (1 nm voxels, as in the paper).
    split : "paper" or list of str, default="paper"
        Novel classes; ``"paper"`` uses the FSCC paper's split, a list names
        the novel classes and leaves the rest as base classes.
    cache : bool, default=True
        Reuse or write an ``.npz`` in the cache folder (see
        :func:`get_data_home`; ``FSCC_SKLEARN_DATA`` or ``XDG_CACHE_HOME``),
        keyed by a hash of every parameter and the library version, written
        atomically. Not used when ``random_state`` is None.
    data_home : str or path-like, optional
        Cache folder overriding the environment.
    random_state : int or None, default=0
        Seed; the same seed gives the same data on any machine and ``n_jobs``.
    progress : bool, default=True
        Progress bar while simulating (tqdm, only if installed and stderr is a
        terminal).
    n_jobs : int, optional
        Threads used while simulating (``None``: 1, ``-1``: all cores).
    simulate_kwargs : dict, optional
        Further arguments of :func:`simulate_subtomograms` (e.g.
        ``tilt_range``, ``defocus``, ``b_factor``); they enter the cache key.
"""


def load_shrec21_like(
    *,
    n_per_class: int = 200,
    snr: float = 0.05,
    box: int = 32,
    split: str | Sequence[str] = "paper",
    cache: bool = True,
    data_home: str | os.PathLike | None = None,
    random_state: int | None = 0,
    progress: bool = True,
    n_jobs: int | None = None,
    simulate_kwargs: Mapping | None = None,
) -> Bunch:
    return _load_like(
        "shrec21_like",
        SHREC21_CLASSES,
        SHREC21_NOVEL,
        n_per_class=n_per_class,
        snr=snr,
        box=box,
        split=split,
        cache=cache,
        data_home=data_home,
        random_state=random_state,
        progress=progress,
        n_jobs=n_jobs,
        simulate_kwargs=simulate_kwargs,
        descr=(
            "SHREC'21-like simulated subtomograms: the 13 SHREC'21 protein classes "
            "(polnet maps, Apache-2.0), simulated by fscc_sklearn.datasets."
            "simulate_subtomograms. Not the SHREC'21 data."
        ),
    )


load_shrec21_like.__doc__ = (
    """Simulated few-shot dataset with the 13 protein classes of SHREC'21.

    Classes: 1bxn 1qvr 1s3x 1u6g 2cg9 3cf3 3d2f 3gl1 3h84 3qm1 4cr2 4v94 5mrc,
    from the packaged polnet maps, simulated with
    :func:`simulate_subtomograms` (300 kV, defocus 2-5 µm, tilt +-60 degrees,
    SHREC-like coloured noise). Paper split: novel 1u6g, 3cf3, 3gl1, 3qm1 and
    4v94 (the paper writes "4v49"); the other 8 are base classes.
    All classes are simulated in one call, so base and novel samples share the
    same noise level.

    This is not the SHREC'21 data, only alike: the contest's SNR is not
    published, so the default ``snr=0.05`` is an assumption (SNR as defined in
    :func:`simulate_subtomograms`, over all 13 classes).

    Parameters
    ----------
    n_per_class : int, default=200
        Subtomograms per class. SHREC'21 and the paper have about 1300-1700
        per class; ``n_per_class=1500`` gives that (about 2.6 GB in memory);
        the smaller default keeps memory near 340 MB.
    snr : float, default=0.05
        Signal-to-noise ratio (assumed; see above).
"""
    + _COMMON_PARAMS
    + _RETURNS
    + """
    Examples
    --------
    >>> from fscc_sklearn.datasets import load_shrec21_like
    >>> data = load_shrec21_like(n_per_class=2, box=16, cache=False,
    ...                          progress=False)
    >>> data.X_base.shape, data.X_novel.shape, data.novel_classes
    ((16, 16, 16, 16), (10, 16, 16, 16), ['1u6g', '3cf3', '3gl1', '3qm1', '4v94'])
    """
)


def load_shrec19_like(
    *,
    n_per_class: int = 200,
    snr: float = 0.02,
    box: int = 32,
    split: str | Sequence[str] = "paper",
    cache: bool = True,
    data_home: str | os.PathLike | None = None,
    random_state: int | None = 0,
    progress: bool = True,
    n_jobs: int | None = None,
    simulate_kwargs: Mapping | None = None,
) -> Bunch:
    return _load_like(
        "shrec19_like",
        SHREC19_CLASSES,
        SHREC19_NOVEL,
        n_per_class=n_per_class,
        snr=snr,
        box=box,
        split=split,
        cache=cache,
        data_home=data_home,
        random_state=random_state,
        progress=progress,
        n_jobs=n_jobs,
        simulate_kwargs=simulate_kwargs,
        descr=(
            "SHREC'19-like simulated subtomograms: 10 SHREC'19 classes plus 4v4r "
            "and 3j9i standing in for 4b4t and 4d8q (polnet maps, Apache-2.0). "
            "Not the SHREC'19 data."
        ),
        stand_ins=SHREC19_STAND_INS,
    )


load_shrec19_like.__doc__ = (
    """Simulated few-shot dataset alike SHREC'19 (12 protein classes).

    Classes: the 10 classes SHREC'19 shares with SHREC'21 (1bxn 1qvr 1s3x 1u6g
    2cg9 3cf3 3d2f 3gl1 3h84 3qm1) plus two stand-ins: **4v4r** (70S ribosome)
    for 4b4t and **3j9i** (20S proteasome) for 4d8q. No openly licensed maps of
    4b4t and 4d8q are available to this package, so those two classes are not
    the real ones; their labels are the stand-ins' names. Paper split: novel
    1u6g, 3cf3, 3gl1, 3qm1 and 3j9i (for 4d8q); the other 7 are base classes.
    Default SNR 0.02, the SHREC'19 value quoted by the FSCC paper (as defined
    in :func:`simulate_subtomograms`, over all 12 classes).

    Parameters
    ----------
    n_per_class : int, default=200
        Subtomograms per class; the paper has about 1300-1700 per class
        (``n_per_class=1500`` needs about 2.4 GB in memory).
    snr : float, default=0.02
        Signal-to-noise ratio.
"""
    + _COMMON_PARAMS
    + _RETURNS
    + """
    Examples
    --------
    >>> from fscc_sklearn.datasets import load_shrec19_like
    >>> data = load_shrec19_like(n_per_class=2, box=16, cache=False,
    ...                          progress=False)
    >>> data.base_classes
    ['1bxn', '1qvr', '1s3x', '2cg9', '3d2f', '3h84', '4v4r']
    """
)
