"""Which picks to label next: rank unlabelled picks for a few-shot classifier.

Strategies (all on the same features, Tukey-transformed as the classifiers do):

- ``"typical"``: cluster labelled + unlabelled picks into ``n_labelled +
  n_suggest`` groups (k-means) and take the most typical pick (densest among
  its group) of each group that holds no label yet, largest group first; the
  rest by margin. Labels where the classifier knows least, but not outliers
  (cold-start active learning; Hacohen et al. 2022, "TypiClust").
- ``"margin"`` / ``"entropy"``: the least certain predictions of the classifier
  adapted to the support set (top-2 probability margin, normalised entropy).
- ``"kcenter"``: greedy k-center: each next pick is the farthest from every
  labelled or already chosen pick (diversity).
- ``"unknown"``: farthest from the nearest class mean of the support (picks of
  species nobody labelled yet).
- ``"random"``: a uniform draw (the baseline).
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch, check_random_state

from ..calibration import tukey_transform
from ..io._atomic import atomic_output
from ..model_selection import adapt
from ..report.plotting import _figure, _save
from ._cluster import embed_picks

__all__ = ["STRATEGIES", "plot_picks", "suggest_labels", "write_suggestions"]

STRATEGIES = ("typical", "margin", "entropy", "kcenter", "unknown", "random")


def _margin(P):
    top = np.sort(P, axis=1)
    return 1.0 - (top[:, -1] - (top[:, -2] if P.shape[1] > 1 else 0.0))


def _entropy(P):
    if P.shape[1] < 2:
        return np.zeros(len(P))
    logp = np.log(np.clip(P, 1e-300, 1.0))
    return -(P * logp).sum(1) / np.log(P.shape[1])


def _top(score, n):
    """Indices of the ``n`` largest scores; ties go to the earlier pick."""
    return np.argsort(-score, kind="stable")[:n]


def _nearest(A, B):
    """Distance from each row of ``A`` to its nearest row of ``B``."""
    d2 = (A * A).sum(1)[:, None] - 2 * A @ B.T + (B * B).sum(1)[None, :]
    return np.sqrt(np.maximum(d2, 0).min(1))


def _kcenter(Zs, Zp, n):
    chosen = []
    dist = _nearest(Zp, Zs)
    for _ in range(n):
        i = int(np.argmax(dist))
        chosen.append(i)
        dist = np.minimum(dist, np.linalg.norm(Zp - Zp[i], axis=1))
        dist[chosen] = -1.0
    return np.array(chosen, dtype=int)


def _typicality(Z):
    """Inverse mean distance to the nearest neighbours (up to 20) in ``Z``."""
    if len(Z) == 1:
        return np.ones(1)
    d = pairwise_distances(Z)
    k = min(20, len(Z) - 1)
    near = np.sort(d, axis=1)[:, 1 : k + 1]
    return 1.0 / (near.mean(1) + 1e-12)


def _typical(Zs, Zp, n, margin, random_state):
    Z = np.vstack([Zs, Zp])
    k = min(len(Zs) + n, len(Z))
    groups = KMeans(n_clusters=k, n_init=3, random_state=random_state).fit_predict(Z)
    labelled, pool = groups[: len(Zs)], groups[len(Zs) :]
    open_groups = [g for g in range(k) if g not in set(labelled) and np.any(pool == g)]
    open_groups.sort(key=lambda g: (-np.sum(pool == g), g))
    chosen = []
    for g in open_groups[:n]:
        members = np.flatnonzero(pool == g)
        chosen.append(int(members[np.argmax(_typicality(Zp[members]))]))
    if len(chosen) < n:  # every group holds a label: the least certain picks
        rest = [i for i in _top(margin, len(Zp)) if i not in set(chosen)]
        chosen += rest[: n - len(chosen)]
    return np.array(chosen, dtype=int)


def suggest_labels(
    model,
    X_support,
    y_support,
    X_pool,
    *,
    n_suggest=10,
    strategy="typical",
    power=0.5,
    random_state=None,
):
    """Rank unlabelled picks by how much labelling them should help.

    Parameters
    ----------
    model : Pipeline or classifier
        A fitted model that :func:`~fscc_sklearn.adapt` adapts to the support
        set, e.g. :func:`~fscc_sklearn.pretrained_model` (subtomograms) or its
        classifier ``pretrained_model()[-1]`` (features).
    X_support : array-like
        The labelled picks, in ``model``'s input space.
    y_support : array-like of shape (n_support,)
        Their labels.
    X_pool : array-like
        The unlabelled picks to choose from.
    n_suggest : int, default=10
        Picks to suggest (at most the pool's size).
    strategy : {"typical", "margin", "entropy", "kcenter", "unknown", "random"}, \
default="typical"
        How to choose (see the module's description).
    power : float, default=0.5
        Tukey exponent of the features used for distances; 1 keeps them.
    random_state : int, RandomState or None, default=None
        Seed of k-means (``"typical"``) and of ``"random"``.

    Returns
    -------
    result : Bunch
        ``indices`` (n_suggest,) pool rows to label, best first; ``margin``,
        ``entropy`` and ``unknown`` (n_pool,) scores of every pool pick
        (higher: more uncertain / farther from the support's classes);
        ``predicted`` (n_pool,) and ``proba`` (n_pool, n_classes) of the
        adapted classifier; ``classes``; ``strategy``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {strategy!r}.")
    if isinstance(n_suggest, bool) or not isinstance(n_suggest, numbers.Integral):
        raise ValueError(f"n_suggest must be an integer; got {n_suggest!r}.")
    if n_suggest < 1:
        raise ValueError(f"n_suggest must be >= 1; got {n_suggest}.")
    if isinstance(power, bool) or not isinstance(power, numbers.Real):
        raise ValueError(f"power must be a number; got {power!r}.")
    y_support = np.asarray(y_support)
    if y_support.ndim != 1 or len(y_support) != len(X_support):
        raise ValueError(
            f"y_support must hold one label per support pick ({len(X_support)}); "
            f"got shape {y_support.shape}."
        )
    if isinstance(model, Pipeline):
        head, clf = model[:-1], model[-1]
    else:
        head, clf = None, model
    Fs = embed_picks(X_support, head)
    Fp = embed_picks(X_pool, head)
    if len(Fp) == 0:
        raise ValueError("X_pool is empty: there is nothing to suggest.")
    if Fs.shape[1] != Fp.shape[1]:
        raise ValueError(
            f"X_support has {Fs.shape[1]} features but X_pool has {Fp.shape[1]}."
        )
    n = min(n_suggest, len(Fp))
    fitted = adapt(clf, Fs, y_support)
    if not hasattr(fitted, "predict_proba"):
        raise ValueError(
            f"{type(fitted).__name__} has no predict_proba; suggest_labels needs "
            "probabilities (e.g. CalibratedFewShotClassifier, pretrained_model())."
        )
    P = fitted.predict_proba(Fp)
    classes = fitted.classes_
    Zs, Zp = (
        (Fs, Fp)
        if power == 1
        else (tukey_transform(Fs, power), tukey_transform(Fp, power))
    )
    means = np.stack([Zs[y_support == c].mean(0) for c in np.unique(y_support)])
    margin, entropy, unknown = _margin(P), _entropy(P), _nearest(Zp, means)
    if strategy == "typical":
        indices = _typical(Zs, Zp, n, margin, random_state)
    elif strategy == "kcenter":
        indices = _kcenter(Zs, Zp, n)
    elif strategy == "random":
        indices = check_random_state(random_state).permutation(len(Zp))[:n]
    else:
        indices = _top(
            {"margin": margin, "entropy": entropy, "unknown": unknown}[strategy], n
        )
    return Bunch(
        indices=np.asarray(indices, dtype=int),
        margin=margin,
        entropy=entropy,
        unknown=unknown,
        predicted=classes[np.argmax(P, axis=1)],
        proba=P,
        classes=classes,
        strategy=strategy,
    )


def write_suggestions(
    result, path, *, rows=None, names=None, coords=None, overwrite=False
):
    """Write the suggested picks as a CSV table, best first.

    Columns: ``rank``, ``name``, ``x, y, z`` (when ``coords`` are given), the
    classifier's ``predicted`` class, ``margin`` and ``unknown`` scores.

    Parameters
    ----------
    result : Bunch
        From :func:`suggest_labels`.
    path : str or path-like
        Output ``.csv``.
    rows : array-like of int, optional
        Row of each pool pick in ``names`` / ``coords`` (default: the pool's own
        order).
    names : sequence of str, optional
        Name of every pick (default ``pick_<row>``).
    coords : array-like of shape (n, 3), optional
        x, y, z of every pick.
    overwrite : bool, default=False

    Returns
    -------
    pathlib.Path
    """
    idx = np.asarray(result.indices)
    rows = np.arange(len(result.margin)) if rows is None else np.asarray(rows)
    if len(rows) != len(result.margin):
        raise ValueError(
            f"rows has {len(rows)} entries for a pool of {len(result.margin)} picks."
        )
    header = ["rank", "name", *(["x", "y", "z"] if coords is not None else [])]
    lines = [",".join([*header, "predicted", "margin", "unknown"])]
    for rank, i in enumerate(idx, start=1):
        r = int(rows[i])
        line = [str(rank), names[r] if names is not None else f"pick_{r:06d}"]
        if coords is not None:
            line += [f"{v:g}" for v in np.asarray(coords, dtype=float)[r]]
        line += [
            str(result.predicted[i]),
            f"{result.margin[i]:.4f}",
            f"{result.unknown[i]:.4f}",
        ]
        lines.append(",".join(line))
    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return path


def plot_picks(volumes, titles, path, *, columns=5, overwrite=False):
    """Central z slices of some picks in a grid, one title each (needs matplotlib)."""
    volumes = np.asarray(volumes)
    if volumes.ndim != 4 or len(volumes) != len(titles) or not len(volumes):
        raise ValueError(
            f"volumes must be (n, D, H, W) with n >= 1 and one title each; got "
            f"shape {volumes.shape} and {len(titles)} titles."
        )
    cols = min(columns, len(volumes))
    rows = -(-len(volumes) // cols)
    fig = _figure(1.6 * cols + 0.2, 1.7 * rows + 0.2)
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, vol, title in zip(axes, volumes, titles, strict=False):
        img = vol[vol.shape[0] // 2]
        lo, hi = np.percentile(img, [1, 99])
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
        ax.set_title(str(title), fontsize="x-small")
    return _save(fig, path, overwrite)
