"""Input checks shared by the estimators: clear errors, no silent coercion."""

import numpy as np


def check_volumes(X, *, name="X") -> np.ndarray:
    """Return subtomograms as a float32 array ``(n, 1, D, H, W)``.

    Accepts ``(n, D, H, W)`` or ``(n, 1, D, H, W)`` real arrays with finite values.
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
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers; got dtype {X.dtype}.")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        bad = np.unique(np.nonzero(~np.isfinite(X.reshape(len(X), -1)))[0])
        raise ValueError(
            f"{name} has NaN or infinite values in {len(bad)} subtomogram(s), "
            f"first at index {bad[0]}."
        )
    return X if X.ndim == 5 else X[:, None]


def check_class_counts(y, *, minimum, what) -> None:
    """Raise if any class has fewer than ``minimum`` samples."""
    classes, counts = np.unique(y, return_counts=True)
    small = classes[counts < minimum]
    if len(small):
        raise ValueError(
            f"{what} needs at least {minimum} samples per class; class "
            f"'{small[0]}' has only {counts[counts < minimum][0]} sample(s)."
        )
