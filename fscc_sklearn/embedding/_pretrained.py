"""Models that ship inside the package: no pre-training needed to start."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from ..model_selection import freeze, unfreeze
from ..persistence._model_file import load_model
from ._embedder import Conv6Embedder

__all__ = ["embedder_from", "pretrained_embedder", "pretrained_model"]

PRETRAINED = {"general": "general.safetensors"}


def pretrained_path(name: str = "general") -> Path:
    """Path of a shipped model file (see ``fscc_sklearn/pretrained/MODEL_CARD.md``)."""
    if name not in PRETRAINED:
        raise ValueError(
            f"Unknown pretrained model {name!r}; available: {sorted(PRETRAINED)}."
        )
    path = Path(str(resources.files("fscc_sklearn.pretrained") / PRETRAINED[name]))
    if not path.is_file():
        raise FileNotFoundError(
            f"The shipped model file {path} is missing from this installation; "
            "reinstall fscc-sklearn or train it with benchmarks/train_general.py."
        )
    return path


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


def embedder_from(source, *, device: str = "cpu") -> Conv6Embedder:
    """The fitted :class:`Conv6Embedder` of a shipped model name or model file."""
    if isinstance(source, str) and source in PRETRAINED:
        source = pretrained_path(source)
    if not isinstance(source, str | os.PathLike):
        raise ValueError(
            f"Expected a shipped model name ({sorted(PRETRAINED)}) or the path of "
            f"a model file; got {type(source).__name__}."
        )
    for _, step in load_model(source, device=device).steps:
        est = unfreeze(step)
        if isinstance(est, Conv6Embedder):
            return est
    raise ValueError(f"{source} holds no Conv6Embedder.")  # pragma: no cover
