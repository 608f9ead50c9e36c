"""Models that ship inside the package: no pre-training needed to start."""

from __future__ import annotations

from ..model_selection import freeze, unfreeze
from ..persistence._model_file import load_model
from ._embedder import Conv6Embedder, embedder_from
from ._weights import PRETRAINED, pretrained_path

__all__ = [
    "PRETRAINED",
    "embedder_from",
    "pretrained_embedder",
    "pretrained_model",
    "pretrained_path",
]


def pretrained_model(name: str = "general", *, device: str = "cpu"):
    """The shipped model: frozen general embedder + base-class statistics.

    Ready for few-shot use without pre-training:
    ``adapt(pretrained_model(), X_support, y_support)`` gives a classifier of
    the support's classes (see :func:`~fscc_sklearn.adapt`).

    Parameters
    ----------
    name : {"general"}, default="general"
    device : str, default="cpu"
        Torch device of the embedder (``"auto"``: CUDA when available).

    Returns
    -------
    model : Pipeline
        ``[("embed", FrozenEstimator(Conv6Embedder)), ("clf",
        CalibratedFewShotClassifier)]``, the classifier in base mode (it holds
        the statistics of the model's training classes).
    """
    model = load_model(pretrained_path(name), device=device)
    model.steps = [
        (step, freeze(est) if isinstance(unfreeze(est), Conv6Embedder) else est)
        for step, est in model.steps
    ]
    return model


def pretrained_embedder(name: str = "general", *, device: str = "cpu"):
    """The shipped embedder, fitted and frozen (a ``FrozenEstimator``).

    Use it as the first step of a pipeline whose classifier is fitted on its
    features; ``fit`` on the frozen step does nothing. To fine-tune it on a
    base set of your own, train a new embedder from its weights:
    ``Conv6Embedder(initial_weights="general", module__width=32).fit(X, y)``.

    Examples
    --------
    >>> from fscc_sklearn import pretrained_embedder
    >>> emb = pretrained_embedder()  # doctest: +SKIP
    >>> emb.transform(X).shape  # doctest: +SKIP
    (n, 256)
    """
    return freeze(embedder_from(name, device=device))
