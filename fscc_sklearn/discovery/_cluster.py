"""Find the species in unlabelled picks: embed, reduce, cluster (HDBSCAN).

The clusters are numbered by size (0 the largest); ``-1`` is noise. Each
cluster comes with its most central members (candidate support examples) and,
when the volumes are known, its plain average (no alignment: particles keep
their random orientations, so the average shows size and overall shape).
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
from sklearn.cluster import HDBSCAN
from sklearn.decomposition import PCA
from sklearn.utils import Bunch

from ..calibration import tukey_transform
from ..io import write_subtomograms
from ..io._atomic import atomic_output
from ..report.plotting import _figure, _save

__all__ = ["cluster_embeddings", "write_clusters"]

_REDUCERS = ("pca", "umap", None)


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}.")


def embed_picks(X, embedder):
    """Features of ``X``: ``embedder.transform(X)``, or ``X`` itself (features)."""
    if embedder is None:
        F = np.asarray(X, dtype=np.float64)
        if F.ndim != 2:
            raise ValueError(
                f"without an embedder the picks must be features of shape (n, m); "
                f"got shape {F.shape} (subtomograms need an embedder such as "
                "pretrained_embedder(), or a Pipeline model)."
            )
    else:
        if not hasattr(embedder, "transform"):
            raise ValueError(
                f"embedder must have a transform method (a fitted embedder such as "
                f"pretrained_embedder()); got {type(embedder).__name__}."
            )
        F = np.asarray(embedder.transform(X), dtype=np.float64)
    if not np.isfinite(F).all():
        raise ValueError("the features contain NaN or infinite values.")
    return F


def _reducer(reduce, n_components, n, m, random_state):
    """The reducer asked for, with its size fitted to the data; None: no reduction."""
    if reduce not in _REDUCERS:
        raise ValueError(f"reduce must be 'pca', 'umap' or None; got {reduce!r}.")
    if reduce is None:
        return None
    _check_int(n_components, "n_components", 1)
    if reduce == "pca":
        return PCA(n_components=min(n_components, n, m), random_state=random_state)
    try:
        import umap
    except ImportError:
        raise ImportError(
            "reduce='umap' needs umap-learn (pip install umap-learn, or "
            "'fscc-sklearn[umap]'); "
            "reduce='pca' needs nothing more."
        ) from None
    return umap.UMAP(
        n_components=max(1, min(n_components, n - 2)),
        n_neighbors=min(15, n - 1),
        random_state=random_state,
        # a seed makes UMAP single-threaded anyway; saying so avoids its warning
        n_jobs=1 if random_state is not None else -1,
    )


def _by_size(labels):
    """Labels renumbered by cluster size (0 the largest; ties: first member)."""
    ids = [c for c in np.unique(labels) if c >= 0]
    order = sorted(ids, key=lambda c: (-np.sum(labels == c), np.argmax(labels == c)))
    new = np.full_like(labels, -1)
    for rank, c in enumerate(order):
        new[labels == c] = rank
    return new


def cluster_embeddings(
    X,
    embedder=None,
    *,
    reduce="pca",
    n_components=10,
    power=0.5,
    min_cluster_size=10,
    hdbscan_params=None,
    n_examples=5,
    volumes=None,
    random_state=None,
):
    """Cluster unlabelled picks in feature space to find the species they hold.

    Features (``embedder.transform(X)``, or ``X`` itself) go through Tukey's
    power transform, a reduction (PCA, or UMAP when umap-learn is installed)
    and scikit-learn's :class:`~sklearn.cluster.HDBSCAN`, which also marks
    picks that belong to no cluster (noise, label ``-1``).

    Parameters
    ----------
    X : array-like of shape (n, D, H, W) or (n, m)
        Subtomograms (with ``embedder``) or their features (without).
    embedder : transformer, optional
        Fitted, e.g. :func:`~fscc_sklearn.pretrained_embedder`.
    reduce : {"pca", "umap"} or None, default="pca"
        Reduction before clustering; None clusters the transformed features.
    n_components : int, default=10
        Dimensions kept by the reduction (at most the number of picks).
    power : float, default=0.5
        Tukey exponent applied to the (non-negative) features; 1 keeps them.
    min_cluster_size : int, default=10
        Smallest group of picks called a cluster (HDBSCAN's parameter).
    hdbscan_params : dict, optional
        Further parameters of :class:`~sklearn.cluster.HDBSCAN`, e.g.
        ``{"min_samples": 5}``; ``cluster_selection_method`` is ``"leaf"``
        unless given (many small clusters rather than a few merged ones).
    n_examples : int, default=5
        Most central members returned per cluster.
    volumes : array-like of shape (n, D, H, W), optional
        Subtomograms whose cluster averages to compute when ``X`` holds
        features (with an embedder, ``X`` itself is averaged).
    random_state : int, RandomState or None, default=None
        Seed of the reduction (PCA's randomized solver, UMAP).

    Returns
    -------
    result : Bunch
        ``labels`` (n,) cluster of each pick, -1 for noise, clusters numbered
        by size; ``probabilities`` (n,) HDBSCAN's membership strength;
        ``sizes`` (k,); ``examples`` list of k index arrays, most central
        first (nearest to the cluster mean in the reduced space);
        ``embedding`` (n, c) the reduced features; ``averages`` (k, D, H, W)
        or None; ``reducer`` and ``clusterer``, the fitted estimators.

    Examples
    --------
    >>> from fscc_sklearn import cluster_embeddings, pretrained_embedder
    >>> result = cluster_embeddings(X, pretrained_embedder())  # doctest: +SKIP
    >>> result.labels[:5], result.sizes  # doctest: +SKIP
    """
    _check_int(min_cluster_size, "min_cluster_size", 2)
    _check_int(n_examples, "n_examples", 1)
    if isinstance(power, bool) or not isinstance(power, numbers.Real):
        raise ValueError(f"power must be a number; got {power!r}.")
    # "leaf": the default "eom" merged the 8 species of bench_discovery.py into
    # 2-3 clusters (docs/discovery.md); copy: HDBSCAN must not change the data
    params = {"cluster_selection_method": "leaf", "copy": True}
    params.update(hdbscan_params or {})
    if "min_cluster_size" in params:
        raise ValueError(
            "give min_cluster_size as its own argument, not in hdbscan_params."
        )
    F = embed_picks(X, embedder)
    n = len(F)
    if n < min_cluster_size:
        raise ValueError(
            f"{n} picks cannot form a cluster of min_cluster_size={min_cluster_size}."
        )
    if volumes is None and embedder is not None:
        volumes = X
    if volumes is not None:
        volumes = np.asarray(volumes)
        if volumes.ndim != 4 or len(volumes) != n:
            raise ValueError(
                f"volumes must be (n, D, H, W) with one volume per pick ({n}); got "
                f"shape {volumes.shape}."
            )
    if power != 1:
        F = tukey_transform(F, power)
    reducer = _reducer(reduce, n_components, n, F.shape[1], random_state)
    Z = F if reducer is None else np.asarray(reducer.fit_transform(F), np.float64)
    try:
        clusterer = HDBSCAN(min_cluster_size=min_cluster_size, **params)
    except TypeError as exc:
        raise ValueError(f"hdbscan_params: {exc}") from None
    labels = _by_size(clusterer.fit_predict(Z))
    k = int(labels.max()) + 1
    sizes = np.array([np.sum(labels == c) for c in range(k)], dtype=int)
    examples = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        dist = np.linalg.norm(Z[members] - Z[members].mean(0), axis=1)
        examples.append(members[np.argsort(dist, kind="stable")[:n_examples]])
    averages = None
    if volumes is not None:
        averages = (
            np.stack(
                [volumes[labels == c].mean(0, dtype=np.float64) for c in range(k)]
            ).astype(np.float32)
            if k
            else np.empty((0, *volumes.shape[1:]), np.float32)
        )
    return Bunch(
        labels=labels,
        probabilities=np.asarray(clusterer.probabilities_, dtype=np.float64),
        sizes=sizes,
        examples=examples,
        embedding=Z,
        averages=averages,
        reducer=reducer,
        clusterer=clusterer,
    )


def plot_cluster(average, examples, path, *, title="", overwrite=False):
    """Projections of a cluster average along z, y, x and central z slices of
    example members, as one PNG (needs matplotlib)."""
    average = np.asarray(average)
    examples = list(examples)
    cols = 3 + len(examples)
    fig = _figure(1.4 * cols + 0.3, 1.9)
    axes = np.atleast_1d(fig.subplots(1, cols, squeeze=False)[0])
    images = [average.sum(axis=a) for a in range(3)]
    images += [v[v.shape[0] // 2] for v in examples]
    names = ["average, sum over z", "over y", "over x"]
    names += [f"member {i + 1}" for i in range(len(examples))]
    for ax, img, name in zip(axes, images, names, strict=True):
        lo, hi = np.percentile(img, [1, 99])
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
        ax.set_title(name, fontsize="x-small")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize="small")
    return _save(fig, path, overwrite)


def write_clusters(
    result,
    folder,
    *,
    names=None,
    coords=None,
    volumes=None,
    voxel_size=None,
    plots=True,
    overwrite=False,
):
    """Write a clustering: ``clusters.csv``, cluster averages and one PNG each.

    Parameters
    ----------
    result : Bunch
        From :func:`cluster_embeddings`.
    folder : str or path-like
        Existing output folder.
    names : sequence of str, optional
        Name of each pick (default ``pick_000000``...).
    coords : array-like of shape (n, 3), optional
        x, y, z of each pick (voxels), written into the table.
    volumes : array-like of shape (n, D, H, W), optional
        The picks, for the example slices of the PNGs.
    voxel_size : float, optional
        Written into the header of ``averages.mrcs``.
    plots : bool, default=True
        Write ``cluster_<k>.png`` (needs matplotlib).
    overwrite : bool, default=False
        Whether files of an earlier run may be replaced.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"output folder '{folder}' does not exist")
    labels = np.asarray(result.labels)
    n = len(labels)
    names = [f"pick_{i:06d}" for i in range(n)] if names is None else list(names)
    if len(names) != n:
        raise ValueError(f"names has {len(names)} entries for {n} picks.")
    if coords is not None:
        coords = np.asarray(coords, dtype=np.float64)
        if coords.shape != (n, 3):
            raise ValueError(f"coords must have shape ({n}, 3); got {coords.shape}.")
    central = np.zeros(n, dtype=int)
    for examples in result.examples:
        central[examples] = np.arange(1, len(examples) + 1)
    header = ["name", *(["x", "y", "z"] if coords is not None else [])]
    header += ["cluster", "probability", "example_rank"]
    lines = [",".join(header)]
    for i in range(n):
        row = [names[i]]
        if coords is not None:
            row += [f"{v:g}" for v in coords[i]]
        row += [str(labels[i]), f"{result.probabilities[i]:.4f}", str(central[i])]
        lines.append(",".join(row))
    written = [folder / "clusters.csv"]
    with atomic_output(written[0], overwrite=overwrite) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    if result.averages is not None and len(result.averages):
        written += write_subtomograms(
            folder / "averages.mrcs",
            result.averages,
            voxel_size,
            layout="stack",
            overwrite=overwrite,
        )
        if plots:
            for c, average in enumerate(result.averages):
                shown = (
                    [] if volumes is None else np.asarray(volumes)[result.examples[c]]
                )
                written.append(
                    plot_cluster(
                        average,
                        shown,
                        folder / f"cluster_{c}.png",
                        title=f"cluster {c}: {result.sizes[c]} picks",
                        overwrite=overwrite,
                    )
                )
    return written
