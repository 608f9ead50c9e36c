"""PNG figures of training, embeddings, evaluations and subtomograms (matplotlib).

Every function takes results that were already computed and a path, draws one
figure and saves it as PNG. matplotlib is an optional dependency
(``pip install "fscc-sklearn[plot]"``), imported only when a function runs;
figures are drawn without ``pyplot``, so no display or global state is used.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..io._atomic import atomic_output

__all__ = [
    "matplotlib_available",
    "plot_accuracy_vs_shots",
    "plot_class_examples",
    "plot_confusion_matrix",
    "plot_embedding",
    "plot_training_curves",
]


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (plots need it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _plain_text(draw):
    """Draw every text as given: a class name such as ``$\\foo$`` is not parsed
    as mathtext nor passed to LaTeX (either could fail on it)."""

    @functools.wraps(draw)
    def plain(*args, **kwargs):
        try:
            import matplotlib
        except ImportError:
            return draw(*args, **kwargs)  # _figure names the missing extra
        # tick labels are made while saving, so the whole drawing is covered
        with matplotlib.rc_context({"text.usetex": False, "text.parse_math": False}):
            return draw(*args, **kwargs)

    return plain


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "Plots need matplotlib: pip install 'fscc-sklearn[plot]'"
        ) from None
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path: str | os.PathLike, overwrite: bool) -> Path:

    path = Path(path)
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


@_plain_text
def plot_training_curves(
    history: Sequence[Mapping], path: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Loss terms and training accuracy per epoch.

    Parameters
    ----------
    history : sequence of dict
        One dict per epoch (a skorch ``History`` works) with ``train_loss`` and
        optionally ``train_ce``, ``train_supcon`` and ``train_acc``.
    path : str or path-like
        Output PNG.
    overwrite : bool, default=False
        Whether an existing file may be replaced.

    Returns
    -------
    pathlib.Path
    """
    rows = list(history)
    if not rows:
        raise ValueError("history is empty: nothing to plot.")
    epochs = np.arange(1, len(rows) + 1)
    fig = _figure(8, 3.2)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key, label in (
        ("train_loss", "total loss"),
        ("train_ce", "cross-entropy"),
        ("train_supcon", "SupCon"),
    ):
        values = [r.get(key) for r in rows]
        if all(v is not None for v in values):
            ax_loss.plot(epochs, values, marker="o", label=label)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_loss.set_title("pre-training loss")
    acc = [r.get("train_acc") for r in rows]
    if all(v is not None for v in acc):
        ax_acc.plot(epochs, acc, marker="o", color="C3")
    ax_acc.set_ylim(0, 1)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("training accuracy (base classes)")
    ax_acc.set_title("training accuracy")
    return _save(fig, path, overwrite)


@_plain_text
def plot_embedding(
    features: np.ndarray,
    labels: Sequence,
    path: str | os.PathLike,
    *,
    novel: Sequence | None = None,
    method: str = "pca",
    random_state: int | None = 0,
    overwrite: bool = False,
) -> Path:
    """2D map of feature vectors coloured by class; novel classes marked.

    Parameters
    ----------
    features : ndarray of shape (n, m)
        Embeddings (e.g. ``pipeline[:-1].transform(X)``).
    labels : array-like of shape (n,)
        Class of every row.
    path : str or path-like
        Output PNG.
    novel : sequence, optional
        Classes drawn as triangles (novel); the others are dots (base).
    method : {"pca", "tsne", "umap"}, default="pca"
        2D projection; ``"umap"`` needs the ``umap-learn`` package.
    random_state : int or None, default=0
        Seed of t-SNE/UMAP.
    overwrite : bool, default=False
        Whether an existing file may be replaced.

    Returns
    -------
    pathlib.Path
    """
    F = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if F.ndim != 2 or len(F) != len(labels):
        raise ValueError(
            f"features must be (n, m) with one label per row; got {F.shape} and "
            f"{labels.shape}."
        )
    if len(F) < 3:
        raise ValueError(f"An embedding map needs at least 3 points; got {len(F)}.")
    if F.shape[1] < 2:
        raise ValueError(
            f"An embedding map needs at least 2 features per point; got {F.shape[1]}."
        )
    xy = _project(F, method, random_state)
    novel_set = {str(c) for c in (() if novel is None else novel)}
    fig = _figure(7, 5.5)
    ax = fig.subplots()
    classes = np.unique(labels)
    colour = _class_colours(classes, novel_set)
    for c in classes:
        rows = labels == c
        is_novel = str(c) in novel_set
        ax.scatter(
            xy[rows, 0],
            xy[rows, 1],
            s=22 if is_novel else 10,
            marker="^" if is_novel else "o",
            color=colour[c],
            alpha=0.8,
            edgecolors="black" if is_novel else "none",
            linewidths=0.4,
            label=f"{c} (novel)" if is_novel else str(c),
        )
    ax.set_xlabel(f"{method.upper()} 1")
    ax.set_ylabel(f"{method.upper()} 2")
    ax.set_title("embeddings (dots: base classes, triangles: novel classes)")
    ax.legend(
        fontsize="small", markerscale=1.2, loc="center left", bbox_to_anchor=(1.0, 0.5)
    )
    return _save(fig, path, overwrite)


def _project(F: np.ndarray, method: str, random_state) -> np.ndarray:
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=random_state).fit_transform(F)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, (len(F) - 1) / 3)
        return TSNE(
            n_components=2, perplexity=perplexity, random_state=random_state
        ).fit_transform(F)
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise ImportError(
                "method='umap' needs the umap-learn package; use 'pca' or 'tsne'."
            ) from None
        return umap.UMAP(random_state=random_state).fit_transform(F)
    raise ValueError(f"method must be 'pca', 'tsne' or 'umap'; got {method!r}.")


def _class_colours(classes, novel: set) -> dict:
    """Base classes from one qualitative palette, novel ones from another."""
    from matplotlib import colormaps

    base = [c for c in classes if str(c) not in novel]
    new = [c for c in classes if str(c) in novel]
    out = {}
    for group, names in ((base, ("tab10", "tab20")), (new, ("Dark2", "tab20b"))):
        cmap = colormaps[names[0] if len(group) <= colormaps[names[0]].N else names[1]]
        out.update({c: cmap(i % cmap.N) for i, c in enumerate(group)})
    return out


@_plain_text
def plot_confusion_matrix(
    matrix: np.ndarray,
    classes: Sequence,
    path: str | os.PathLike,
    *,
    title: str = "confusion matrix",
    overwrite: bool = False,
) -> Path:
    """Row-normalised confusion matrix (true class per row) with counts.

    Parameters
    ----------
    matrix : ndarray of shape (n_classes, n_classes)
        Counts, ``matrix[i, j]`` = samples of class ``i`` predicted as ``j``.
    classes : sequence of length n_classes
        Class names.
    path : str or path-like
        Output PNG.
    title : str
    overwrite : bool, default=False

    Returns
    -------
    pathlib.Path
    """
    M = np.asarray(matrix, dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] != len(classes):
        raise ValueError(
            f"matrix must be square with one row per class; got {M.shape} for "
            f"{len(classes)} classes."
        )
    rows = M.sum(1, keepdims=True)
    frac = np.divide(M, rows, out=np.zeros_like(M), where=rows > 0)
    n = len(classes)
    fig = _figure(1.0 + 0.7 * n, 0.8 + 0.6 * n)
    ax = fig.subplots()
    im = ax.imshow(frac, vmin=0, vmax=1, cmap="Blues")
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    ax.set_xticks(range(n), [str(c) for c in classes], rotation=45, ha="right")
    ax.set_yticks(range(n), [str(c) for c in classes])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for i in range(n):
        for j in range(n):
            if M[i, j]:
                ax.text(
                    j,
                    i,
                    f"{frac[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="white" if frac[i, j] > 0.6 else "black",
                )
    ax.set_title(title)
    return _save(fig, path, overwrite)


@_plain_text
def plot_class_examples(
    X: np.ndarray,
    y: Sequence,
    path: str | os.PathLike,
    *,
    n_examples: int = 4,
    axis: int = 0,
    random_state: int | None = 0,
    overwrite: bool = False,
) -> Path:
    """Central slices of a few subtomograms per class next to the class average.

    Parameters
    ----------
    X : ndarray of shape (n, D, H, W)
        Subtomograms.
    y : array-like of shape (n,)
        Their classes.
    path : str or path-like
        Output PNG.
    n_examples : int, default=4
        Examples per class (fewer if a class has fewer).
    axis : {0, 1, 2}, default=0
        Slicing axis of the volume (0: z, the beam direction, an x-y slice).
    random_state : int or None, default=0
        Which examples are shown.
    overwrite : bool, default=False

    Returns
    -------
    pathlib.Path
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim == 5 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim != 4 or len(X) != len(y):
        raise ValueError(
            f"X must be (n, D, H, W) with one label each; got {X.shape} and {y.shape}."
        )
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2; got {axis!r}.")
    rng = np.random.default_rng(random_state)
    classes = np.unique(y)
    cols = n_examples + 1
    fig = _figure(1.3 * cols + 0.8, 1.3 * len(classes) + 0.4)
    axes = np.atleast_2d(fig.subplots(len(classes), cols, squeeze=False))

    def central(vol):
        return np.take(vol, vol.shape[axis] // 2, axis=axis)

    for r, c in enumerate(classes):
        idx = np.flatnonzero(y == c)
        shown = rng.choice(idx, size=min(n_examples, len(idx)), replace=False)
        for j in range(cols):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if j < len(shown):
                img = central(X[shown[j]])
            elif j == cols - 1:
                img = central(X[idx].mean(0))
            else:
                continue
            lo, hi = np.percentile(img, [1, 99])
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
            if r == 0:
                ax.set_title(
                    f"average (n={len(idx)})" if j == cols - 1 else f"example {j + 1}",
                    fontsize="small",
                )
        axes[r, 0].set_ylabel(str(c), rotation=0, ha="right", va="center")
    fig.suptitle(f"central slices (axis {'zyx'[axis]}) and class averages")
    return _save(fig, path, overwrite)


@_plain_text
def plot_accuracy_vs_shots(
    results: Mapping[str, Mapping[int, tuple[float, float]]],
    path: str | os.PathLike,
    *,
    chance: float | None = None,
    title: str = "few-shot accuracy",
    overwrite: bool = False,
) -> Path:
    """Mean accuracy with its 95% confidence interval against the shots K.

    Parameters
    ----------
    results : dict
        ``{series name: {k_shot: (mean, ci95)}}``, e.g. ``{"FSCC 5-way":
        {1: (0.52, 0.03), 5: (0.71, 0.02)}}``.
    path : str or path-like
        Output PNG.
    chance : float, optional
        Draws a dashed line at chance level (``1 / n_way``).
    title : str
    overwrite : bool, default=False

    Returns
    -------
    pathlib.Path
    """
    if not results:
        raise ValueError("results is empty: nothing to plot.")
    fig = _figure(5, 3.6)
    ax = fig.subplots()
    all_shots = set()
    for name, by_shot in results.items():
        shots = sorted(by_shot)
        all_shots.update(shots)
        means = np.array([by_shot[k][0] for k in shots], dtype=float)
        cis = np.array([by_shot[k][1] for k in shots], dtype=float)
        ax.errorbar(
            shots, means, yerr=np.nan_to_num(cis), marker="o", capsize=4, label=name
        )
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", label="chance")
    ax.set_xticks(sorted(all_shots))
    ax.set_xlabel("shots per class (K)")
    ax.set_ylabel("accuracy (mean, 95% CI)")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    return _save(fig, path, overwrite)
