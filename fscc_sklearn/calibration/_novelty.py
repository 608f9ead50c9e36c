"""Open-set prediction: novelty scores, rejection thresholds and the unknown label.

A few-shot classifier must put every query into one of its classes; real
particle picks also hold species nobody labelled, fragments and noise. A
novelty score (higher: more novel) lets ``predict`` answer an unknown label
instead. For the Gaussian rules the score is the Mahalanobis distance to the
nearest class mean, under the shared covariance of the rule; the threshold of
``reject="auto"`` is the ``1 - false_rejection`` quantile of that distance for
features drawn from each class's calibrated distribution (docs/calibration.md,
"Unknown particles"). Max-softmax and energy scores (:func:`max_softmax_score`,
:func:`energy_score`) are the usual alternatives for any classifier with
scores; benchmarks/bench_open_set.py compares them.
"""

from numbers import Integral, Real

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp
from scipy.stats import chi2
from sklearn.utils._param_validation import Interval, StrOptions

from ._statistics import _cholesky_psd

OPEN_SET_CONSTRAINTS = {
    "reject": [None, StrOptions({"auto"}), Interval(Real, 0, None, closed="both")],
    "false_rejection": [Interval(Real, 0, 1, closed="neither")],
    "unknown_label": "no_validation",  # checked against classes_ in fit
}


def nearest_mahalanobis(Z, means, covariance):
    """Mahalanobis distance of every row of ``Z`` to the nearest of ``means``.

    ``covariance`` is a vector (a diagonal covariance) or a full matrix shared
    by the classes.

    Examples
    --------
    >>> means = np.array([[0.0, 0.0], [10.0, 0.0]])
    >>> nearest_mahalanobis(np.array([[3.0, 4.0], [10.0, 2.0]]), means, np.ones(2) * 4)
    array([2.5, 1. ])
    """
    Zw, Mw = _whiten(Z, covariance), _whiten(means, covariance)
    d2 = (Zw**2).sum(1)[:, None] - 2 * Zw @ Mw.T + (Mw**2).sum(1)[None]
    return np.sqrt(np.maximum(d2.min(1), 0.0))


def _whiten(A, covariance):
    covariance = np.asarray(covariance, dtype=np.float64)
    if covariance.ndim == 1:
        return A / np.sqrt(covariance)
    return solve_triangular(_cholesky_psd(covariance), A.T, lower=True).T


def energy_score(scores, temperature=1.0):
    """Energy ``-T logsumexp(scores / T)`` of class scores (higher: more novel;
    Liu et al. 2020)."""
    return -temperature * logsumexp(np.asarray(scores) / temperature, axis=1)


def max_softmax_score(proba):
    """``1 - max probability`` (higher: more novel; Hendrycks & Gimpel 2017)."""
    return 1.0 - np.asarray(proba).max(1)


def gaussian_rejection_threshold(class_covariances, inflation, metric, level):
    """Threshold of the Mahalanobis distance that keeps ``level`` of each class.

    A feature of class ``c`` is modelled as its (calibrated) mean plus a
    Gaussian deviation of covariance ``inflation[c] * class_covariances[c]``
    (a vector when diagonal), its distance taken under ``metric`` (the rule's
    shared covariance, a vector when diagonal); see :func:`chi_square_threshold`.
    """
    traces, traces2 = class_moments(class_covariances, metric)
    return chi_square_threshold(traces, traces2, inflation, level)


def chi_square_threshold(traces, traces2, inflation, level):
    """The largest of the classes' ``level`` quantiles of the distance.

    A squared distance with whitened covariance ``A`` is a weighted sum of
    chi-squares; it is approximated by a scaled chi-square of the same mean
    ``tr A`` and variance ``2 tr A^2`` (Welch-Satterthwaite). ``traces`` and
    ``traces2`` hold ``tr A`` and ``tr A^2`` of each class, ``inflation``
    multiplies its ``A``. Each class keeps at least ``level`` of its features
    (to that approximation).
    """
    worst = 0.0
    for tr, tr2, infl in zip(traces, traces2, inflation, strict=True):
        tr, tr2 = infl * tr, infl**2 * tr2
        if not (tr > 0 and tr2 > 0):
            continue
        g, nu = tr2 / tr, tr**2 / tr2
        worst = max(worst, float(g * chi2.ppf(level, nu)))
    return float(np.sqrt(worst))


def class_moments(class_covariances, metric):
    """``tr A`` and ``tr A^2`` of each class's covariance whitened by ``metric``."""
    whitened = [whitened_covariance(c, metric) for c in class_covariances]
    return (
        np.array([_trace(A) for A in whitened]),
        np.array([float((A * A).sum()) for A in whitened]),
    )


def whitened_covariance(cov, metric):
    """``L^-1 cov L^-T`` for the metric's factor ``L`` (vectors: diagonals)."""
    cov, metric = np.asarray(cov, np.float64), np.asarray(metric, np.float64)
    if metric.ndim == 1:
        if cov.ndim == 1:
            return cov / metric
        scale = 1.0 / np.sqrt(metric)
        return cov * scale[:, None] * scale[None]
    lower = _cholesky_psd(metric)
    cov = np.diag(cov) if cov.ndim == 1 else cov
    half = solve_triangular(lower, cov, lower=True)
    return solve_triangular(lower, half.T, lower=True)


def _trace(A):
    return float(A.sum() if A.ndim == 1 else np.trace(A))


def support_moments(Z, y_idx, n_classes, metric):
    """``tr A`` and ``tr A^2`` of the support's within-class covariance ``A``
    (whitened by ``metric``), estimated without bias from the deviations of
    classes with 2 or more examples; None with fewer than 2 degrees of
    freedom (1-shot: the support cannot tell its own spread).

    With ``m`` degrees of freedom and ``S`` the pooled scatter, ``tr S`` is
    unbiased for ``tr A`` and ``(m^2 tr S^2 - m (tr S)^2) / ((m - 1)(m + 2))``
    for ``tr A^2`` (Wishart moments); the latter is kept between its
    isotropic and rank-one bounds.
    """
    counts = np.bincount(y_idx, minlength=n_classes)
    m = int((counts - 1)[counts > 0].sum())
    if m < 2:
        return None
    means = (np.eye(n_classes)[y_idx].T @ Z) / np.maximum(counts, 1)[:, None]
    R = _whiten(Z - means[y_idx], metric)
    tr = float((R * R).sum()) / m
    gram = R @ R.T
    tr_s2 = float((gram * gram).sum()) / m**2
    tr2 = (m**2 * tr_s2 - m * tr**2) / ((m - 1) * (m + 2))
    return tr, float(np.clip(tr2, tr**2 / Z.shape[1], tr**2))


def within_class_variances(Z, y_idx, n_classes):
    """Class means and the pooled within-class variance of every feature."""
    onehot = np.zeros((len(Z), n_classes))
    onehot[np.arange(len(Z)), y_idx] = 1
    means = (onehot.T @ Z) / onehot.sum(0)[:, None]
    residuals = Z - means[y_idx]
    dof = max(len(Z) - n_classes, 1)
    return means, np.einsum("ij,ij->j", residuals, residuals) / dof


def unknown_label_for(unknown_label, classes, who):
    """The label ``predict`` answers for rejected queries, checked against
    ``classes``: ``"unknown"`` for string classes and ``-1`` for integer
    classes by default; it must have their type and not be one of them."""
    classes = np.asarray(classes)
    strings = classes.dtype.kind in "US" or (
        classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes)
    )
    integers = classes.dtype.kind in "iu" or (
        classes.dtype.kind == "O"
        and all(isinstance(c, Integral) and not isinstance(c, bool) for c in classes)
    )
    if unknown_label is None:
        if strings:
            unknown_label = "unknown"
        elif integers:
            unknown_label = -1
        else:
            raise ValueError(
                f"{who} cannot choose an unknown label for classes of dtype "
                f"{classes.dtype}; pass unknown_label."
            )
    elif strings and not isinstance(unknown_label, str):
        raise ValueError(
            f"unknown_label={unknown_label!r} must be a string like the classes "
            f"{classes.tolist()[:5]}."
        )
    elif integers and not (
        isinstance(unknown_label, Integral) and not isinstance(unknown_label, bool)
    ):
        raise ValueError(
            f"unknown_label={unknown_label!r} must be an integer like the classes "
            f"{classes.tolist()[:5]}."
        )
    if unknown_label in classes.tolist():
        raise ValueError(
            f"unknown_label={unknown_label!r} is one of the classes; choose a label "
            "that is not."
        )
    return unknown_label


def with_unknown(predicted, novelty, threshold, unknown_label):
    """``predicted`` with ``unknown_label`` where ``novelty > threshold``."""
    rejected = novelty > threshold
    if not rejected.any():
        return predicted
    if predicted.dtype.kind in "US":
        out = predicted.astype(np.result_type(predicted, np.asarray(unknown_label)))
    elif predicted.dtype.kind == "O":
        out = predicted.copy()
    else:
        out = predicted.astype(np.result_type(predicted, type(unknown_label)))
    out[rejected] = unknown_label
    return out
