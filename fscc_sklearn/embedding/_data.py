"""Training data of a Conv6Embedder, checked: labelled arrays or a stream."""

from __future__ import annotations

import numpy as np

from .._validation import check_class_counts, check_labels, check_volumes
from ..datasets import SubtomogramStream
from ..nn._augment import WedgeSafeAugment
from ._stream_loader import StreamDataset


def training_data(X, y):
    """``(X, y, classes, input_shape)`` for skorch from what ``fit`` was given.

    Arrays are checked (cubic volumes, finite, at least 2 classes of at least 2
    samples) and ``y`` becomes class indices (int64); a
    :class:`~fscc_sklearn.datasets.SubtomogramStream` (``y`` None) becomes a
    :class:`StreamDataset`.
    """
    if isinstance(X, SubtomogramStream):
        if y is not None:
            raise ValueError(
                "A SubtomogramStream carries its own labels; call fit(stream) "
                f"without y (got y of type {type(y).__name__})."
            )
        box = X.box
        return StreamDataset(X), None, np.asarray(X.class_names), (1, box, box, box)
    X = check_volumes(X)
    if not X.shape[2] == X.shape[3] == X.shape[4]:
        raise ValueError(f"Subtomograms must be cubic boxes; got {X.shape[2:]}.")
    y = np.asarray(y)
    if y.shape != (len(X),):
        raise ValueError(f"y must have shape ({len(X)},); got {y.shape}.")
    check_labels(y)
    classes, y_idx = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"Pre-training needs at least 2 base classes; got {len(classes)}."
        )
    check_class_counts(y, minimum=2, what="Supervised contrastive pre-training")
    return X, y_idx.astype(np.int64), classes, X.shape[1:]


def augmenter(augment):
    """The callable ``augment(X_batch, generator)`` of the ``augment`` param."""
    if augment is None:
        return None
    if augment == "flip_shift":
        return WedgeSafeAugment()
    if callable(augment):
        return augment
    raise ValueError(
        f'augment must be None, "flip_shift" or a callable; got {augment!r}.'
    )


def check_training_params(net) -> None:
    """Validate ``augment`` and ``lr_schedule`` before training."""
    augmenter(net.augment)
    if net.lr_schedule not in (None, "cosine"):
        raise ValueError(
            f'lr_schedule must be None or "cosine"; got {net.lr_schedule!r}.'
        )
