"""Base-class statistics: per-class means and covariances, and what derives from them.

Both calibration estimators borrow these statistics: the Bayesian rule
(:mod:`._bayes`) in Tukey space, the paper's recipe (:mod:`._paper`) on raw
features.
"""

from dataclasses import dataclass, field
from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._validation import check_class_counts
from ..persistence._state import (
    check_array,
    check_value,
    labels_from_json,
    labels_to_json,
    register_saveable,
    to_json_scalar,
)

# a negative power sends the ReLU's zeros to inf, so the ladder stops at log
TUKEY_LAMBDA = Interval(Real, 0, None, closed="left")


def tukey_transform(X: np.ndarray, lam: float = 0.5) -> np.ndarray:
    """Tukey's ladder of powers, ``X**lam`` (``log X`` at ``lam == 0``), element-wise.

    Examples
    --------
    >>> tukey_transform(np.array([[0.0, 4.0]]))
    array([[0., 2.]])
    """
    if X.size and X.min() < 0:
        raise ValueError(
            "Negative values in data passed to the Tukey transform: features must be "
            f">= 0 (e.g. after a ReLU); got min {X.min():.3g}."
        )
    if lam == 0:
        # log(0) = -inf would poison every statistic; the smallest float keeps order
        return np.log(np.maximum(X, np.finfo(X.dtype).tiny))
    return np.power(X, lam)


def _cholesky_psd(cov):
    """Cholesky factor of a PSD matrix, with the smallest diagonal jitter that works.

    The jitter starts at ``1e-6`` times the mean variance and grows tenfold
    until the factorisation succeeds, so singular (rank-deficient) matrices
    get a usable factor instead of an error or NaNs.
    """
    scale = max(float(np.trace(cov)) / len(cov), np.finfo(float).tiny)
    jitter = 1e-6 * scale
    eye = np.eye(len(cov))
    while True:
        try:
            return np.linalg.cholesky(cov + jitter * eye)
        except np.linalg.LinAlgError:
            jitter *= 10


def oas_shrinkage(cov: np.ndarray, n: int) -> float:
    """Oracle-approximating shrinkage coefficient (Chen et al. 2010) of a covariance.

    ``(1 - rho) * cov + rho * trace(cov) / d * I`` is the OAS estimate; this
    returns ``rho`` in ``[0, 1]`` from the sample covariance and its sample
    count alone.
    """
    d = len(cov)
    tr = float(np.trace(cov))
    tr2 = float(np.sum(cov * cov))
    num = (1 - 2 / d) * tr2 + tr**2
    den = (n + 1 - 2 / d) * (tr2 - tr**2 / d)
    return 1.0 if den <= 0 else float(min(1.0, num / den))


@register_saveable
@dataclass(frozen=True, eq=False)
class BaseStatistics:
    """Per-class feature statistics of the base classes.

    Immutable and shared, not copied, by ``clone``: many few-shot classifiers can
    point to the same (large) covariances. Derived quantities (shrunk
    covariances, Cholesky factors) are memoised on the object, so episodes
    reuse them.

    Parameters
    ----------
    classes : ndarray of shape (n_classes,)
    means : ndarray of shape (n_classes, n_features)
    covariances : ndarray of shape (n_classes, n_features, n_features)
        Unbiased (``n_i - 1``) covariances.
    counts : ndarray of shape (n_classes,)
    tukey_lambda : float or None, default=None
        Feature space of the statistics: ``None`` for raw features (the
        reference recipe), else the Tukey power applied before computing them.
    proba_temperatures : tuple of (int, float), default=()
        Softmax temperatures of few-shot scores at some numbers of shots, fitted
        on pseudo-novel episodes of these classes by a base-mode
        :class:`CalibratedFewShotClassifier` (see :func:`temperature_for_shots`);
        empty: not calibrated.
    pooling_gain : float or None, default=None
        Accuracy points that pooling the radius of one-shot class means gained
        on pseudo-novel one-shot episodes of these classes, measured by a
        base-mode :class:`CalibratedFewShotClassifier` with
        ``pool_radius_shots="auto"``; None: not measured.
    """

    classes: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    counts: np.ndarray
    tukey_lambda: float | None = None
    proba_temperatures: tuple = ()
    pooling_gain: float | None = None
    _factors: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_features(cls, X, y, *, tukey_lambda=None):
        """Statistics of features ``X`` grouped by label ``y`` (>= 2 per class).

        With ``tukey_lambda`` given, ``X`` is Tukey-transformed first.
        """
        check_class_counts(y, minimum=2, what="Base-class covariance")
        if tukey_lambda is not None:
            X = tukey_transform(X, tukey_lambda)
        classes, y_idx = np.unique(y, return_inverse=True)
        means = np.stack([X[y_idx == c].mean(0) for c in range(len(classes))])
        covs = np.stack(
            [np.cov(X[y_idx == c], rowvar=False, ddof=1) for c in range(len(classes))]
        ).reshape(len(classes), X.shape[1], X.shape[1])
        counts = np.bincount(y_idx, minlength=len(classes))
        return cls(classes, means, covs, counts, tukey_lambda)

    @property
    def n_features(self):
        return self.means.shape[1]

    @property
    def centre(self):
        """Mean of all base features (the class means weighted by their counts)."""
        return self.counts @ self.means / self.counts.sum()

    def __deepcopy__(self, memo):
        return self

    def sampling_factor(self, neighbours, alpha):
        """Cholesky factor of the paper's calibrated covariance of a neighbour set.

        The covariance is the mean of the neighbours' covariances plus ``alpha``
        added to every entry (the reference recipe). That sum can be singular
        (few samples, many features); see :func:`_cholesky_psd`. Memoised per
        (neighbour set, alpha).
        """
        key = ("paper", tuple(sorted(int(i) for i in neighbours)), float(alpha))
        if key not in self._factors:
            cov = self.covariances[list(key[1])].mean(0) + alpha
            self._factors[key] = _cholesky_psd(cov)
        return self._factors[key]

    def neighbour_spread(self, k):
        """Typical spread, per feature, of a base class mean around the mean of
        its ``k`` nearest other base classes (median over classes, net of the
        means' own noise; memoised). 0 with ``k`` or fewer base classes.
        """
        key = ("spread", int(k))
        if key not in self._factors:
            n, d = self.means.shape
            spread = 0.0
            if n > k:
                d2 = _squared_distances(self.means, self.means)
                np.fill_diagonal(d2, np.inf)
                nearest = np.argsort(d2, axis=1, kind="stable")[:, :k]
                s2 = np.trace(self.covariances, axis1=1, axis2=2) / d
                gap = ((self.means - self.means[nearest].mean(1)) ** 2).sum(1) / d
                spread = max(float(np.median(gap - s2 / self.counts)), 0.0)
            self._factors[key] = spread
        return self._factors[key]

    # --- safe model files (fscc_sklearn.persistence._state)

    def _get_model_state(self):
        """``(meta, arrays)``: classes, feature space, temperatures, pooling
        gain; the three arrays of statistics."""
        meta = {
            "classes": labels_to_json(self.classes),
            "tukey_lambda": to_json_scalar(self.tukey_lambda, "tukey_lambda"),
            "proba_temperatures": [
                [int(shots), float(t)] for shots, t in self.proba_temperatures
            ],
        }
        if self.pooling_gain is not None:
            meta["pooling_gain"] = float(self.pooling_gain)
        arrays = {
            "means": np.asarray(self.means, dtype=np.float64),
            "covariances": np.asarray(self.covariances, dtype=np.float64),
            "counts": np.asarray(self.counts, dtype=np.int64),
        }
        return meta, arrays

    @classmethod
    def _from_model_state(cls, params, meta, arrays, *, device="cpu"):
        """The statistics of :meth:`_get_model_state`, every value checked."""
        if params:
            raise ValueError(
                f"BaseStatistics takes no parameters; got {sorted(params)}."
            )
        classes = labels_from_json(meta["classes"])
        n = len(classes)
        means = check_array(arrays, "means", shape=(n, None), dtype="float64")
        d = means.shape[1]
        covariances = check_array(
            arrays, "covariances", shape=(n, d, d), dtype="float64"
        )
        variances = np.diagonal(covariances, axis1=1, axis2=2)
        if (variances < 0).any():
            raise ValueError(
                "tensor 'covariances' holds negative variances on its diagonal "
                f"(min {variances.min():.3g})."
            )
        counts = check_array(arrays, "counts", shape=(n,), dtype="int64")
        if (counts < 2).any():
            raise ValueError(f"counts must be >= 2 per class; got {counts.tolist()}.")
        return cls(
            classes=classes,
            means=means,
            covariances=covariances,
            counts=counts,
            tukey_lambda=check_value(meta, "tukey_lambda", "float", none=True),
            proba_temperatures=_temperatures(meta.get("proba_temperatures", [])),
            pooling_gain=check_value(
                meta, "pooling_gain", "float", low=-100, high=100, default=None
            ),
        )

    def shrunk_covariances(self):
        """OAS-shrunk covariances, positive definite even with fewer samples than
        dimensions (memoised)."""
        if "oas" not in self._factors:
            out = np.empty_like(self.covariances)
            for i, (cov, n) in enumerate(
                zip(self.covariances, self.counts, strict=True)
            ):
                rho = oas_shrinkage(cov, int(n))
                out[i] = (1 - rho) * cov
                out[i].flat[:: len(cov) + 1] += rho * np.trace(cov) / len(cov)
            self._factors["oas"] = out
        return self._factors["oas"]


def _temperatures(entry) -> tuple:
    """``proba_temperatures`` of a model file: [shots, temperature] pairs."""
    ok = isinstance(entry, list) and all(
        isinstance(pair, list)
        and len(pair) == 2
        and isinstance(pair[0], int)
        and not isinstance(pair[0], bool)
        and pair[0] >= 1
        and isinstance(pair[1], (int, float))
        and not isinstance(pair[1], bool)
        and np.isfinite(pair[1])
        and pair[1] > 0
        for pair in entry
    )
    if not ok:
        raise ValueError(
            f"probability temperatures {entry!r:.80} are not [shots, temperature] "
            "pairs of a positive integer and a positive number."
        )
    return tuple((shots, float(t)) for shots, t in entry)


def _squared_distances(A, B):
    return (A**2).sum(1)[:, None] - 2 * A @ B.T + (B**2).sum(1)[None]


def _nearest_base(points, stats, k):
    """Indices (sorted) of the ``k`` base classes with the nearest means."""
    d2 = _squared_distances(points, stats.means)
    return np.sort(np.argsort(d2, axis=1, kind="stable")[:, :k], axis=1)
