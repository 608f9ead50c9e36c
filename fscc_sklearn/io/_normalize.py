"""Per-subtomogram standardisation with an optional Fourier low-pass filter."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.fft
from sklearn.base import BaseEstimator, TransformerMixin

from .._resources import check_memory, nbytes_of

__all__ = ["SubtomogramNormalizer", "lowpass_filter", "normalize_subtomograms"]

_CHUNK = 64  # volumes filtered per FFT call, to bound temporary memory
_CONSTANT_RTOL = 1e-5  # std <= this * max|x| counts as a constant volume


def _check_volumes(X, name: str = "X") -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 4:
        raise ValueError(f"{name} must have shape (n, D, H, W), got shape {X.shape}")
    if 0 in X.shape[1:]:
        raise ValueError(
            f"{name} has an empty box {X.shape[1:]}: every subtomogram needs at "
            f"least 1 voxel along each axis; got shape {X.shape}"
        )
    if np.iscomplexobj(X) or not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return X


def _check_cutoff(lowpass) -> float | None:
    if lowpass is None:
        return None
    if isinstance(lowpass, bool) or not isinstance(lowpass, (int, float, np.number)):
        raise ValueError(f"lowpass must be None or a number in (0, 1], got {lowpass!r}")
    if not (0 < lowpass <= 1):
        raise ValueError(
            f"lowpass is a fraction of the Nyquist frequency and must be in (0, 1], "
            f"got {lowpass!r}"
        )
    return float(lowpass)


def lowpass_filter(X: np.ndarray, cutoff: float) -> np.ndarray:
    """Low-pass filter volumes with a sharp spherical Fourier mask.

    Spatial frequencies (in cycles per voxel, per axis) with radius greater
    than ``cutoff * 0.5`` (``0.5`` being Nyquist) are set to zero. The mask is
    sharp, so some ringing is expected for strong cuts.

    Parameters
    ----------
    X : array-like of shape (n, D, H, W)
        Real-valued volumes.
    cutoff : float
        Cutoff as a fraction of Nyquist, in (0, 1].

    Returns
    -------
    X_filtered : ndarray of shape (n, D, H, W), float32
        The filtered volumes.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2, 8, 8, 8))
    >>> Y = lowpass_filter(X, 0.5)
    >>> Y.shape, Y.dtype, bool(Y.std() < X.std())
    ((2, 8, 8, 8), dtype('float32'), True)
    """
    X = _check_volumes(X)
    cutoff = _check_cutoff(cutoff)
    if cutoff is None:
        raise ValueError("cutoff must be a number in (0, 1], got None")
    shape = X.shape[1:]
    fz = np.fft.fftfreq(shape[0])[:, None, None]
    fy = np.fft.fftfreq(shape[1])[None, :, None]
    fx = np.fft.rfftfreq(shape[2])[None, None, :]
    mask = (fz**2 + fy**2 + fx**2) <= (0.5 * cutoff) ** 2
    check_memory(nbytes_of(X.shape, np.float32), f"{X.shape[0]} filtered subtomograms")
    out = np.empty(X.shape, dtype=np.float32)
    for s in range(0, X.shape[0], _CHUNK):
        chunk = np.asarray(X[s : s + _CHUNK], dtype=np.float32)
        F = scipy.fft.rfftn(chunk, axes=(1, 2, 3))
        F *= mask
        out[s : s + _CHUNK] = scipy.fft.irfftn(F, s=shape, axes=(1, 2, 3))
    return out


def normalize_subtomograms(X: np.ndarray, lowpass: float | None = None) -> np.ndarray:
    """Standardise each subtomogram to zero mean and unit variance.

    If ``lowpass`` is given the volumes are first low-pass filtered with
    :func:`lowpass_filter`. The mean and standard deviation are computed per
    volume (over all its voxels), so the result does not depend on the other
    volumes in ``X`` and training and test data are treated identically.

    A constant volume (standard deviation at most ``1e-5`` times its largest
    absolute value, which absorbs floating-point round-off) cannot be scaled:
    it is returned as zero-mean (essentially all zeros) without scaling, and a
    :class:`UserWarning` names its index.

    Parameters
    ----------
    X : array-like of shape (n, D, H, W)
        Real-valued, finite volumes.
    lowpass : float, optional
        Low-pass cutoff as a fraction of Nyquist, in (0, 1].

    Returns
    -------
    X_normalized : ndarray of shape (n, D, H, W), float32
        The standardised volumes (a new array).

    Raises
    ------
    ValueError
        If ``X`` is not a finite real 4D array or ``lowpass`` is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(2 * 4 * 4 * 4, dtype=float).reshape(2, 4, 4, 4)
    >>> Z = normalize_subtomograms(X)
    >>> np.allclose(Z.mean(axis=(1, 2, 3)), 0, atol=1e-6)
    True
    >>> np.allclose(Z.std(axis=(1, 2, 3)), 1, atol=1e-5)
    True
    """
    X = _check_volumes(X)
    cutoff = _check_cutoff(lowpass)
    if cutoff is None:  # (lowpass_filter checks its own output)
        check_memory(
            nbytes_of(X.shape, np.float32), f"{X.shape[0]} normalised subtomograms"
        )
    out = (
        lowpass_filter(X, cutoff)
        if cutoff is not None
        else np.array(X, dtype=np.float32)
    )
    flat = out.reshape(out.shape[0], -1)
    mean = flat.mean(axis=1, dtype=np.float64)
    std = flat.std(axis=1, dtype=np.float64)
    # Relative threshold: after filtering, a constant volume keeps a tiny
    # round-off spread that must not be blown up to unit variance.
    max_abs = np.maximum(np.abs(flat.max(axis=1)), np.abs(flat.min(axis=1)))
    constant = std <= _CONSTANT_RTOL * max_abs
    if np.any(constant):
        idx = np.flatnonzero(constant)
        warnings.warn(
            f"{idx.size} constant subtomogram(s) centred but not scaled (std ~ 0); "
            f"indices {idx[:10].tolist()}{' ...' if idx.size > 10 else ''}",
            UserWarning,
            stacklevel=2,
        )
    scale = np.where(constant, 1.0, std)
    flat -= mean[:, None].astype(np.float32)
    flat /= scale[:, None].astype(np.float32)
    return out


class SubtomogramNormalizer(TransformerMixin, BaseEstimator):
    """Scikit-learn transformer wrapping :func:`normalize_subtomograms`.

    Stateless: ``fit`` learns nothing (it only validates the parameters), so
    the same per-volume standardisation and low-pass filter are applied at fit
    and predict time. Accepts 4D input of shape (n, D, H, W), so it can be the
    first step of a :class:`~sklearn.pipeline.Pipeline` before an embedder.

    Parameters
    ----------
    lowpass : float, optional
        Low-pass cutoff as a fraction of Nyquist, in (0, 1]; None for none.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(3.0, 2.0, size=(4, 6, 6, 6))
    >>> Z = SubtomogramNormalizer(lowpass=0.8).fit_transform(X)
    >>> Z.shape, Z.dtype
    ((4, 6, 6, 6), dtype('float32'))
    """

    def __init__(self, lowpass: float | None = None):
        self.lowpass = lowpass

    def fit(self, X, y=None):
        """Validate the parameters and the input; nothing is learned.

        Parameters
        ----------
        X : array-like of shape (n, D, H, W)
            Volumes.
        y : None
            Ignored.

        Returns
        -------
        self : SubtomogramNormalizer
            The transformer.
        """
        _check_cutoff(self.lowpass)
        _check_volumes(X)
        return self

    def transform(self, X):
        """Standardise each volume (after the optional low-pass filter).

        Parameters
        ----------
        X : array-like of shape (n, D, H, W)
            Volumes.

        Returns
        -------
        X_normalized : ndarray of shape (n, D, H, W), float32
            The normalised volumes.
        """
        return normalize_subtomograms(X, lowpass=self.lowpass)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags
