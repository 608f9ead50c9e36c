"""Distribution calibration (Yang et al. 2021) on frozen features, as FSCC uses it."""

from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.linear_model import LogisticRegression
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import check_class_counts


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


@dataclass(frozen=True, eq=False)
class BaseStatistics:
    """Per-class feature statistics of the base classes.

    Immutable and shared, not copied, by ``clone``: many few-shot classifiers can
    point to the same (large) covariances.

    Parameters
    ----------
    classes : ndarray of shape (n_classes,)
    means : ndarray of shape (n_classes, n_features)
    covariances : ndarray of shape (n_classes, n_features, n_features)
        Unbiased (``n_i - 1``) covariances.
    counts : ndarray of shape (n_classes,)
    """

    classes: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    counts: np.ndarray
    _factors: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_features(cls, X, y):
        """Statistics of features ``X`` grouped by label ``y`` (>= 2 per class)."""
        check_class_counts(y, minimum=2, what="Base-class covariance")
        classes, y_idx = np.unique(y, return_inverse=True)
        means = np.stack([X[y_idx == c].mean(0) for c in range(len(classes))])
        covs = np.stack(
            [np.cov(X[y_idx == c], rowvar=False, ddof=1) for c in range(len(classes))]
        ).reshape(len(classes), X.shape[1], X.shape[1])
        counts = np.bincount(y_idx, minlength=len(classes))
        return cls(classes, means, covs, counts)

    @property
    def n_features(self):
        return self.means.shape[1]

    def __deepcopy__(self, memo):
        return self

    def sampling_factor(self, neighbours, alpha):
        """Cholesky factor of the calibrated covariance of a neighbour set (memoised).

        The covariance is the mean of the neighbours' covariances plus ``alpha``
        added to every entry (the reference recipe). That sum can be singular
        (few samples, many features), so a diagonal jitter of ``1e-6`` times the
        mean variance, growing tenfold until Cholesky succeeds, keeps it positive
        definite.
        """
        key = (tuple(sorted(int(i) for i in neighbours)), float(alpha))
        if key not in self._factors:
            cov = self.covariances[list(key[0])].mean(0) + alpha
            scale = max(float(np.trace(cov)) / len(cov), np.finfo(float).tiny)
            jitter = 1e-6 * scale
            while True:
                try:
                    factor = np.linalg.cholesky(cov + jitter * np.eye(len(cov)))
                    break
                except np.linalg.LinAlgError:
                    jitter *= 10
            self._factors[key] = factor
        return self._factors[key]


def calibrated_training_set(support, y, stats, *, k, alpha, n_samples, rng):
    """Support features plus features drawn from their calibrated distributions.

    Parameters
    ----------
    support : ndarray of shape (n_support, n_features)
        Tukey-transformed support features.
    y : ndarray of shape (n_support,)
    stats : BaseStatistics
    k : int
        Nearest base classes (Euclidean distance to their means).
    alpha : float
        Constant added to every entry of the calibrated covariance.
    n_samples : int
        Draws per class, split evenly over its support features.
    rng : RandomState

    Returns
    -------
    X_train : ndarray of shape (n_support + n_drawn, n_features)
    y_train : ndarray of shape (n_support + n_drawn,)
    """
    d2 = ((support[:, None, :] - stats.means[None]) ** 2).sum(-1)
    neighbours = np.sort(np.argsort(d2, axis=1, kind="stable")[:, :k], axis=1)
    means = (stats.means[neighbours].sum(1) + support) / (k + 1)
    _, y_idx, n_shot = np.unique(y, return_inverse=True, return_counts=True)
    n_draw = n_samples // n_shot[y_idx]
    owner = np.repeat(np.arange(len(support)), n_draw)
    z = rng.standard_normal((len(owner), support.shape[1]))
    samples = np.empty_like(z)
    # one matmul per distinct neighbour set; factors are memoised across fits
    sets, set_of_support = np.unique(neighbours, axis=0, return_inverse=True)
    for s, key in enumerate(sets):
        rows = set_of_support.ravel()[owner] == s
        factor = stats.sampling_factor(tuple(key), alpha)
        samples[rows] = means[owner[rows]] + z[rows] @ factor.T
    return np.concatenate([support, samples]), np.concatenate([y, y[owner]])


def _as_base_statistics(base):
    if isinstance(base, BaseStatistics):
        return base
    if isinstance(base, CalibratedFewShotClassifier):
        if not hasattr(base, "base_statistics_"):
            raise ValueError(
                "base is an unfitted CalibratedFewShotClassifier; fit it on the base "
                "classes first (or pass its base_statistics_)."
            )
        return base.base_statistics_
    raise TypeError(
        "base must be None, a BaseStatistics or a fitted CalibratedFewShotClassifier; "
        f"got {type(base).__name__}."
    )


class CalibratedFewShotClassifier(ClassifierMixin, BaseEstimator):
    """Few-shot classifier with distribution calibration on non-negative features.

    With ``base=None``, ``fit(X, y)`` treats the data as base classes: it stores
    their per-class means and covariances in ``base_statistics_`` and fits a
    logistic regression that predicts those classes.

    With ``base`` given, ``fit(X, y)`` is the few-shot fit on a support set of N
    novel classes with K examples each (K may be 1), as FSCC describes:

    1. Tukey transform of the support features (``tukey_lambda``);
    2. for each support feature, the ``k`` base classes with the nearest means;
    3. calibrated mean ``(sum of k means + feature) / (k + 1)``, covariance
       ``mean of k covariances + alpha`` (``alpha`` added to every entry, as in
       the reference implementation);
    4. ``n_samples // K`` synthetic features per support feature (so
       ``n_samples`` per class) drawn from that Gaussian;
    5. a logistic regression on support + synthetic features.

    Queries get the same Tukey transform. Base statistics are computed on the
    raw (untransformed) base features, as in the reference implementation.

    Parameters
    ----------
    base : None, BaseStatistics or fitted CalibratedFewShotClassifier, default=None
        Where base statistics come from; ``None`` means fit them from the data.
    k : int, default=2
        Number of nearest base classes whose statistics are transferred.
    tukey_lambda : float, default=0.5
        Power of the Tukey transform (0 means log).
    alpha : float, default=0.21
        Constant added to every entry of the calibrated covariance.
    n_samples : int, default=750
        Synthetic features drawn per novel class.
    C : float, default=1.0
        Inverse regularisation strength of the logistic regression.
    max_iter : int, default=1000
        Iterations of the logistic regression solver.
    random_state : int, RandomState or None, default=None
        Seeds the sampling.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Classes this classifier predicts (base classes in base mode).
    base_statistics_ : BaseStatistics
        Base-class statistics (fitted, or taken from ``base``).
    logreg_ : LogisticRegression
        The final classifier, on Tukey-transformed features.
    n_features_in_ : int
        Feature dimension.
    n_iter_ : ndarray of shape (1,)
        Iterations the logistic regression solver ran.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X_base = rng.gamma(2.0, size=(60, 4)) + np.repeat(np.eye(3, 4) * 5, 20, 0)
    >>> y_base = np.repeat(["a", "b", "c"], 20)
    >>> base = CalibratedFewShotClassifier(random_state=0).fit(X_base, y_base)
    >>> X_new = np.array([[9.0, 0, 0, 9], [0, 9.0, 9, 0]])
    >>> few = CalibratedFewShotClassifier(base=base, k=1, n_samples=50, random_state=0)
    >>> few.fit(X_new, ["x", "y"]).predict(X_new).tolist()
    ['x', 'y']
    """

    _parameter_constraints: dict = {
        "base": "no_validation",  # checked in fit, with a clearer message
        "k": [Interval(Integral, 1, None, closed="left")],
        "tukey_lambda": [Interval(Real, None, None, closed="neither")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "n_samples": [Interval(Integral, 0, None, closed="left")],
        "C": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        base=None,
        *,
        k=2,
        tukey_lambda=0.5,
        alpha=0.21,
        n_samples=750,
        C=1.0,
        max_iter=1000,
        random_state=None,
    ):
        self.base = base
        self.k = k
        self.tukey_lambda = tukey_lambda
        self.alpha = alpha
        self.n_samples = n_samples
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit base statistics (``base=None``) or the few-shot classifier."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        rng = check_random_state(self.random_state)
        if self.base is None:
            self.base_statistics_ = BaseStatistics.from_features(X, y)
            self.classes_ = self.base_statistics_.classes
            X_train, y_train = self._tukey(X), y
        else:
            stats = self.base_statistics_ = _as_base_statistics(self.base)
            if X.shape[1] != stats.n_features:
                raise ValueError(
                    f"Support features have {X.shape[1]} dimensions; the base "
                    f"statistics have {stats.n_features}."
                )
            if self.k > len(stats.classes):
                raise ValueError(
                    f"k={self.k} exceeds the number of base classes "
                    f"({len(stats.classes)})."
                )
            self.classes_ = np.unique(y)
            X_train, y_train = calibrated_training_set(
                self._tukey(X), y, stats, k=self.k, alpha=self.alpha,
                n_samples=self.n_samples, rng=rng,
            )
        self.logreg_ = LogisticRegression(
            C=self.C, max_iter=self.max_iter, random_state=rng.randint(2**31 - 1)
        ).fit(X_train, y_train)
        self.n_iter_ = self.logreg_.n_iter_
        return self

    def _tukey(self, X):
        return tukey_transform(X, self.tukey_lambda)

    def decision_function(self, X):
        """Logistic-regression scores of Tukey-transformed features."""
        X = self._validated(X)
        return self.logreg_.decision_function(X)

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_``."""
        X = self._validated(X)
        return self.logreg_.predict_proba(X)

    def predict(self, X):
        """Most probable class of every feature vector."""
        X = self._validated(X)
        return self.logreg_.predict(X)

    def _validated(self, X):
        check_is_fitted(self)
        return self._tukey(validate_data(self, X, dtype=np.float64, reset=False))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # Tukey power needs v >= 0
        return tags
