"""Input checks shared by the estimators: clear errors, no silent coercion."""

import numbers

import numpy as np
from sklearn.utils.multiclass import check_classification_targets


def check_volumes(X, *, name="X") -> np.ndarray:
    """Return subtomograms as a float32 array ``(n, 1, D, H, W)``.

    Accepts ``(n, D, H, W)`` or ``(n, 1, D, H, W)`` real arrays with finite values.
    """
    X = check_volume_shape(X, name=name).astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        raise_non_finite(X, name=name)
    return X if X.ndim == 5 else X[:, None]


def check_volume_shape(X, *, name="X") -> np.ndarray:
    """Check shape and dtype of subtomograms without reading their values.

    Returns ``X`` as an array, unconverted: a memory map stays on disk, so large
    stacks can be checked up front and converted batch by batch.
    """
    X = np.asarray(X)
    if X.ndim == 5 and X.shape[1] != 1:
        raise ValueError(
            f"{name} with 5 dimensions must be (n_samples, 1, D, H, W); got {X.shape}."
        )
    if X.ndim not in (4, 5):
        raise ValueError(
            f"{name} must have shape (n_samples, D, H, W) or (n_samples, 1, D, H, W); "
            f"got {X.shape}."
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} holds no subtomograms (shape {X.shape}).")
    if min(X.shape[-3:]) < 1:
        raise ValueError(
            f"{name} has an empty box {X.shape[-3:]}: every subtomogram needs at "
            f"least 1 voxel along each axis; got shape {X.shape}."
        )
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers; got dtype {X.dtype}.")
    return X


def raise_non_finite(X, *, name="X", start=0, batch_size=1024) -> None:
    """Raise naming how many subtomograms of ``X[start:]`` hold NaN or inf, if any.

    Scans in batches of ``batch_size`` so a memory-mapped stack is never loaded
    whole; indices in the message count from the start of ``X``.
    """
    n_bad, first = 0, None
    for lo in range(start, len(X), batch_size):
        block = np.asarray(X[lo : lo + batch_size]).reshape(
            min(batch_size, len(X) - lo), -1
        )
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            n_bad += int(bad.sum())
            first = lo + int(np.argmax(bad)) if first is None else first
    if n_bad:
        raise ValueError(
            f"{name} has NaN or infinite values in {n_bad} subtomogram(s), "
            f"first at index {first}."
        )


def check_class_counts(y, *, minimum, what) -> None:
    """Raise if any class has fewer than ``minimum`` samples."""
    classes, counts = np.unique(y, return_counts=True)
    small = classes[counts < minimum]
    if len(small):
        raise ValueError(
            f"{what} needs at least {minimum} samples per class; class "
            f"'{small[0]}' has only {counts[counts < minimum][0]} sample(s)."
        )


def _label_kind(value) -> str:
    if isinstance(value, str | np.str_ | bytes):
        return "string"
    if isinstance(value, numbers.Number):
        return "number"
    return type(value).__name__


def check_labels(y, *, name="y") -> None:
    """scikit-learn's ``check_classification_targets``, with a clear error for
    labels mixing types (e.g. ``["a", 1]``: numpy cannot sort them)."""
    values = np.asarray(y, dtype=object).ravel() if _is_object(y) else ()
    kinds = {_label_kind(v) for v in values}
    if len(kinds) > 1:
        types = sorted({type(v).__name__ for v in values})
        raise ValueError(
            f"{name} mixes labels of types {types}; use labels of one type (e.g. "
            "all strings)."
        )
    check_classification_targets(y)


def _is_object(y) -> bool:
    dtype = getattr(y, "dtype", None)
    return dtype is None or getattr(dtype, "kind", None) == "O"
