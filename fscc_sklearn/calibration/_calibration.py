"""Distribution calibration on frozen features: Bayesian Gaussian rule, FSCC recipe."""

import warnings
from dataclasses import dataclass, field, replace
from numbers import Integral, Real

import numpy as np
from scipy.linalg import cho_solve, solve, solve_triangular
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.extmath import softmax
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from .._validation import check_class_counts
from ._grouping import class_means
from ._scatter import choose_strength, scatter_gaussian
from ._temperature import base_episode_temperatures, temperature_for_shots

# Below this many support + synthetic features times dimensions, BLAS threads
# cost more in start-up and contention than they save (measured on 2 cores).
_SMALL_PROBLEM = 4_000_000
# Floor of the class-mean spread in empirical_kappa, in units of the support
# mean's variance s2 / K (chosen on the paper split, see docs/calibration.md)
_MIN_SPREAD = 0.2


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
    """

    classes: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    counts: np.ndarray
    tukey_lambda: float | None = None
    proba_temperatures: tuple = ()
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


def _squared_distances(A, B):
    return (A**2).sum(1)[:, None] - 2 * A @ B.T + (B**2).sum(1)[None]


def _nearest_base(points, stats, k):
    """Indices (sorted) of the ``k`` base classes with the nearest means."""
    d2 = _squared_distances(points, stats.means)
    return np.sort(np.argsort(d2, axis=1, kind="stable")[:, :k], axis=1)


def calibrated_training_set(support, y, stats, *, k, alpha, n_samples, rng, dtype=None):
    """Support features plus features drawn from their calibrated distributions.

    The paper's recipe: for each support feature, the ``k`` nearest base
    classes give the calibrated mean ``(sum of k means + feature) / (k + 1)``
    and covariance ``mean of k covariances + alpha``; ``n_samples // K``
    features are drawn from that Gaussian (one matmul per distinct neighbour
    set, with memoised Cholesky factors).

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
    dtype : numpy dtype, optional
        Dtype of the drawn features (default: that of ``support``); float32
        halves the cost of the draws.

    Returns
    -------
    X_train : ndarray of shape (n_support + n_drawn, n_features)
    y_train : ndarray of shape (n_support + n_drawn,)
    """
    dtype = support.dtype if dtype is None else np.dtype(dtype)
    neighbours = _nearest_base(support, stats, k)
    means = (stats.means[neighbours].sum(1) + support) / (k + 1)
    _, y_idx, n_shot = np.unique(y, return_inverse=True, return_counts=True)
    n_draw = n_samples // n_shot[y_idx]
    owner = np.repeat(np.arange(len(support)), n_draw)
    z = rng.standard_normal((len(owner), support.shape[1])).astype(dtype, copy=False)
    samples = np.empty_like(z)
    sets, set_of_support = np.unique(neighbours, axis=0, return_inverse=True)
    set_of_owner = set_of_support.ravel()[owner]
    for s, key in enumerate(sets):
        rows = set_of_owner == s
        factor = stats.sampling_factor(tuple(key), alpha).astype(dtype, copy=False)
        samples[rows] = means[owner[rows]] + z[rows] @ factor.T
    X_train = np.concatenate([support.astype(dtype, copy=False), samples])
    return X_train, np.concatenate([y, y[owner]])


def bayes_gaussian_parameters(support, y_idx, n_classes, stats, *, k, kappa, shrinkage):
    """Posterior class means and shared covariance of the Bayesian calibration.

    Each novel class ``c`` with ``K_c`` support features (mean ``m_c``) takes as
    prior the mean ``mu0_c`` and the OAS-shrunk covariance ``S0_c`` of the
    ``k`` base classes nearest to ``m_c``; its mean is the normal-prior
    posterior mean ``(kappa * mu0_c + K_c * m_c) / (kappa + K_c)``, with
    ``kappa="auto"`` estimated per class by :func:`empirical_kappa`. The shared
    covariance is the average of the ``S0_c``, shrunk towards a multiple of the
    identity: ``(1 - shrinkage) * S + shrinkage * trace(S) / d * I``.

    Returns
    -------
    means : ndarray of shape (n_classes, n_features)
    covariance : ndarray of shape (n_features, n_features)
    """
    counts = np.bincount(y_idx, minlength=n_classes).astype(float)
    m = class_means(support, y_idx, n_classes)
    neighbours = _nearest_base(m, stats, k)
    mu0 = stats.means[neighbours].mean(1)
    if isinstance(kappa, str):
        kappa = empirical_kappa(m, mu0, counts, stats, neighbours)[:, None]
    with np.errstate(invalid="ignore"):
        # weight of the prior, written to stay finite for huge or infinite kappa
        prior = np.where(np.isinf(kappa), 1.0, kappa / (kappa + counts[:, None]))
    means = prior * mu0 + (1 - prior) * m
    weights = np.bincount(neighbours.ravel(), minlength=len(stats.classes))
    weights = weights / weights.sum()
    if shrinkage == 1:
        # only the trace matters, and shrinkage keeps the trace
        scale = np.trace(stats.covariances, axis1=1, axis2=2) @ weights / len(m.T)
        return means, np.diag(np.full(m.shape[1], max(scale, np.finfo(float).tiny)))
    cov = np.tensordot(weights, stats.shrunk_covariances(), axes=1)
    return means, shrink_to_identity(cov, shrinkage)


def pool_radii(means, pooled, centre):
    """Move the ``pooled`` class means to the episode's mean distance from
    ``centre``, each keeping its direction.

    One or two noisy examples say more about the direction of their class from
    the base classes' centre than about its distance: a far-out example would
    make its class claim few queries, a central one too many.
    """
    offsets = means - centre
    radii = np.linalg.norm(offsets, axis=1)
    moved = pooled & (radii > 0)
    out = means.copy()
    out[moved] = centre + offsets[moved] * (radii.mean() / radii[moved])[:, None]
    return out


def empirical_kappa(support_means, prior_means, counts, stats, neighbours):
    """Prior strength of each class mean, estimated from the data (empirical Bayes).

    With within-class variance ``s2`` per feature (from the neighbours'
    covariances) and a class mean spread ``t2`` around its prior mean, the
    posterior weighs the prior by ``kappa = s2 / t2``. ``t2`` is estimated from
    the support mean's distance to the prior mean, ``|m - mu0|^2 / d - s2 / K``
    (floored), so the prior fades for classes far from every base class.
    The distance is taken to the *nearest* base means, which understates
    ``t2``, so the estimate is guarded three ways (measured on simulated
    subtomograms, docs/calibration.md):

    - ``t2`` is at least the base classes' own spread around their ``k``
      nearest other base classes (:meth:`BaseStatistics.neighbour_spread`):
      neighbours are trusted no more than they predict each other;
    - ``t2`` is at least ``0.2 * s2 / K``, so a support mean that happens to
      sit on its prior keeps at least ``K / (K + 1.25)`` of the weight (44 %
      at 1 shot, 80 % at 5) instead of being replaced by a base mean;
    - the returned ``kappa = s2 / (4 K t2)`` damps the plain ``s2 / t2``, and
      the prior weight ``kappa / (kappa + K)`` fades as ``1 / K^2`` with shots.
    """
    d = support_means.shape[1]
    s2 = np.trace(stats.covariances, axis1=1, axis2=2)[neighbours].mean(1) / d
    s2 = np.maximum(s2, np.finfo(float).tiny)
    spread = ((support_means - prior_means) ** 2).sum(1) / d - s2 / counts
    floor = np.maximum(
        _MIN_SPREAD * s2 / counts, stats.neighbour_spread(neighbours.shape[1])
    )
    t2 = np.maximum(spread, floor)
    return s2 / (4 * counts * t2)


def shrink_to_identity(cov: np.ndarray, shrinkage: float) -> np.ndarray:
    """``(1 - shrinkage) * cov + shrinkage * trace(cov) / d * I`` (a new array)."""
    d = len(cov)
    out = (1 - shrinkage) * cov
    out.flat[:: d + 1] += shrinkage * np.trace(cov) / d
    return out


def newton_step_logistic(X, y_idx, n_classes, C):
    """Multinomial logistic regression after one Newton step from zero, in closed form.

    The objective is scikit-learn's (``C * sum of log-losses + ||W||^2 / 2``,
    intercept unpenalised). At zero every probability is ``1 / n_classes``, so
    the Hessian factorises and, with centred features, the step is the ridge
    regression ``W = (C / n_classes * Xc'Xc + I)^-1 C Xc'Y`` of the one-hot
    targets: one ``d x d`` solve instead of hundreds of L-BFGS iterations.

    Returns
    -------
    coef : ndarray of shape (n_classes, n_features)
    intercept : ndarray of shape (n_classes,)
    """
    mean = X.mean(0, dtype=np.float64)
    Xc = X - mean.astype(X.dtype)
    gram = (Xc.T @ Xc).astype(np.float64)
    gram *= C / n_classes
    gram.flat[:: len(gram) + 1] += 1
    onehot = np.zeros((len(X), n_classes), dtype=X.dtype)
    onehot[np.arange(len(X)), y_idx] = 1
    W = solve(gram, C * (Xc.T @ onehot).astype(np.float64), assume_a="pos")
    counts = np.bincount(y_idx, minlength=n_classes)
    centred_intercept = n_classes * counts / len(X) - 1
    return W.T, centred_intercept - mean @ W


def _linear_gaussian(means, cov):
    """Weights and intercepts of the equal-prior Gaussian classifier with shared
    covariance: ``score_c(x) = x S^-1 mu_c - mu_c S^-1 mu_c / 2``."""
    if _is_diagonal(cov):
        # no factorisation needed; constant features have zero variance, and a
        # floor tied to the feature scale keeps scores finite
        coef = means / _floored_variances(cov, means)
    else:
        coef = cho_solve((_cholesky_psd(cov), True), means.T).T
    intercept = -0.5 * np.einsum("ij,ij->i", coef, means)
    return coef, intercept


def _is_diagonal(cov):
    return np.count_nonzero(cov - np.diag(cov.diagonal())) == 0


def _floored_variances(cov, means):
    floor = 1e-10 * max(float(np.mean(means**2)), np.finfo(float).tiny)
    return np.maximum(cov.diagonal(), floor)


def support_scatter_linear(Z, y_idx, n_classes, means, cov, strength):
    """Gaussian classifier whose shared covariance also learns from the support.

    The prior covariance ``cov`` is updated with the support's within-class
    scatter (see :mod:`fscc_sklearn.calibration._scatter`), with prior strength
    ``nu = strength * n_features`` pseudo-samples; ``strength="auto"`` chooses
    it by leave-one-out on the support, ``np.inf`` keeps ``cov``. ``Z``,
    ``y_idx`` and ``n_classes`` are the support features the scatter is learnt
    from (possibly of some classes only); ``means`` are those of every class.

    Returns
    -------
    coef : ndarray of shape (len(means), n_features)
    intercept : ndarray of shape (len(means),)
    strength : float
        The prior strength used (``np.inf``: support scatter not used).
    """
    if len(Z) == 0:  # no support features to learn a scatter from
        return *_linear_gaussian(means, cov), np.inf
    if _is_diagonal(cov):
        scale = np.sqrt(_floored_variances(cov, means))

        def whiten(A):
            return A / scale

        unwhiten = whiten  # x/s . c = x . (c/s)
    else:
        lower = _cholesky_psd(cov)

        def whiten(A):
            return solve_triangular(lower, A.T, lower=True).T

        def unwhiten(A):
            return solve_triangular(lower.T, A.T, lower=False).T

    Zw = whiten(Z)
    if strength == "auto":
        strength = choose_strength(Zw, y_idx, n_classes)
    if np.isinf(strength):
        return *_linear_gaussian(means, cov), strength
    centres = class_means(Zw, y_idx, n_classes)
    coef, intercept = scatter_gaussian(
        whiten(means), Zw - centres[y_idx], len(Z) - n_classes, strength * Z.shape[1]
    )
    return unwhiten(coef), intercept, float(strength)


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
    classifier of those classes.

    With ``base`` given, ``fit(X, y)`` is the few-shot fit on a support set of N
    novel classes with K examples each (K may be 1). Features are first
    Tukey-transformed (``tukey_lambda``). Two methods:

    ``method="bayes"`` (default) reads calibration as a Bayesian prior and
    needs no sampling. Base statistics live in the same Tukey space as the
    support and query features. Each novel class takes the ``k`` base classes
    nearest to its support mean as a prior; its mean is ``(kappa * prior mean
    + K * support mean) / (kappa + K)``, so the transfer fades as shots grow,
    and with ``kappa="auto"`` also as the class lies farther from the base
    classes (an empirical-Bayes strength, see :func:`empirical_kappa`). The
    classes share a covariance: the neighbours' OAS-shrunk covariance, shrunk
    further towards the identity by ``shrinkage`` (default 1: identity only,
    which measured best on simulated subtomograms). Queries go to the class of
    highest Gaussian likelihood, a linear classifier in closed form (what a
    logistic regression on many samples from those Gaussians approximates).
    With three or more shots, the support's own within-class scatter may
    update that covariance (``support_scatter``, chosen by leave-one-out). The mean
    of a class with one or two examples keeps its direction from the base
    classes' centre but takes the episode's mean distance from it
    (``pool_radius_shots``). ``kappa=0, shrinkage=1, support_scatter="off",
    pool_radius_shots=0`` is the nearest-prototype rule.

    ``method="paper"`` is FSCC's recipe (Yang et al. 2021): base statistics on
    the raw features; per support feature, the ``k`` nearest base classes give
    the mean ``(sum of k means + feature) / (k + 1)`` and covariance ``mean of
    k covariances + alpha`` (``alpha`` added to every entry); ``n_samples // K``
    features per support feature are drawn from it, and a logistic regression
    (``C``) is trained on support + drawn features: by default with one
    closed-form Newton step from zero (``solver="newton"``, see
    :func:`newton_step_logistic`; 53x faster than the reference recipe in
    benchmarks/results/calibration_speed.md, at equal accuracy), or to convergence as
    published (``solver="lbfgs"``, ``max_iter``).

    Parameters
    ----------
    base : None, BaseStatistics or fitted CalibratedFewShotClassifier, default=None
        Where base statistics come from; ``None`` means fit them from the data.
        Their feature space must match ``method`` (Tukey space for "bayes", raw
        for "paper"): fit the base classifier with the same ``method``.
    method : {"bayes", "paper"}, default="bayes"
        Calibration method, see above.
    k : int, default=2
        Number of nearest base classes whose statistics are transferred.
    kappa : float or "auto", default="auto"
        "bayes": prior strength of the base mean, in pseudo-samples (0: support
        mean only; ``np.inf``: base mean only; "auto": estimated per class
        from its distance to the base means).
    shrinkage : float in [0, 1], default=1.0
        "bayes": weight of the identity in the shared covariance (1: isotropic,
        nearest-mean metric; 0: the neighbours' shrunk base covariance).
    support_scatter : "auto", "off" or float > 0, default="auto"
        "bayes": whether the shared covariance also learns from the support's
        own within-class scatter (needs a class with 2 or more shots that
        keeps its own radius, see ``pool_radius_shots``). The
        covariance becomes ``(nu * prior + scatter) / (nu + n - N)`` with
        ``nu = support_scatter * n_features`` pseudo-samples of the prior:
        "off" (or ``np.inf``) keeps the prior alone; "auto" chooses ``nu``
        per support set by leave-one-out (``_scatter.choose_strength``),
        keeping the prior unless the support clearly disagrees with it. That
        recovers the cases where the pre-trained features vary most along
        directions that do not separate the new classes (docs/calibration.md).
        Only classes that keep their own radius (``pool_radius_shots``)
        contribute their scatter.
    pool_radius_shots : int >= 0, default=2
        "bayes": the mean of a class with at most this many support examples
        keeps its direction from the base classes' centre but takes the mean
        distance of the episode's class means (:func:`pool_radii`; a noisy
        example gives the direction of its class better than its distance).
        0 keeps every class's own distance.
    tukey_lambda : float, default=0.5
        Power of the Tukey transform (0 means log).
    alpha : float, default=0.21
        "paper": constant added to every entry of the calibrated covariance.
    n_samples : int, default=750
        "paper": synthetic features drawn per novel class.
    C : float, default=1.0
        "paper": inverse regularisation strength of the logistic regression.
    solver : {"newton", "lbfgs"}, default="newton"
        "paper": how the logistic regression is fitted: one closed-form Newton
        step, or scikit-learn's L-BFGS run to convergence (the published recipe).
    max_iter : int, default=1000
        "paper" with ``solver="lbfgs"``: iterations of L-BFGS.
    calibrate_proba : "base_episodes" or None, default="base_episodes"
        How ``predict_proba`` of few-shot fits is calibrated. "base_episodes":
        the base-mode fit also fits softmax temperatures on pseudo-novel
        episodes of the base classes (some held out as novel, the others as
        their base classes; 1 and 5 shots) and stores them with the base
        statistics; a few-shot fit divides its scores by the temperature of
        its number of shots (interpolated, :func:`temperature_for_shots`).
        ``None``: the scores' own softmax, far too confident on real features
        (docs/calibration.md). Predictions never change.
    random_state : int, RandomState or None, default=None
        "paper": seeds the sampling; both methods: the pseudo-novel episodes
        of ``calibrate_proba`` (seed 0 when None, so "bayes" stays
        deterministic).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Classes this classifier predicts (base classes in base mode).
    base_statistics_ : BaseStatistics
        Base-class statistics (fitted, or taken from ``base``).
    coef_ : ndarray of shape (n_classes, n_features)
        Linear scores on Tukey-transformed features ("bayes"; for "paper" those
        of the logistic regression, with one row when there are 2 classes).
    intercept_ : ndarray of shape (n_classes,)
        Intercepts matching ``coef_``.
    temperature_ : float
        Divisor of the scores in ``predict_proba``: from the base statistics
        for a few-shot fit with ``calibrate_proba``, else 1.
    support_scatter_ : float
        "bayes" few-shot fit only: prior strength ``nu / n_features`` used
        (``np.inf``: the support's scatter was not used).
    logreg_ : LogisticRegression
        "paper" with ``solver="lbfgs"`` only: the final classifier, on
        Tukey-transformed features.
    n_iter_ : ndarray of shape (1,)
        Iterations the L-BFGS solver ran; 1 for the closed forms.
    n_features_in_ : int
        Feature dimension.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X_base = rng.gamma(2.0, size=(60, 4)) + np.repeat(np.eye(3, 4) * 5, 20, 0)
    >>> y_base = np.repeat(["a", "b", "c"], 20)
    >>> base = CalibratedFewShotClassifier().fit(X_base, y_base)
    >>> X_new = np.array([[9.0, 0, 0, 9], [0, 9.0, 9, 0]])
    >>> few = CalibratedFewShotClassifier(base=base, k=1)
    >>> few.fit(X_new, ["x", "y"]).predict(X_new).tolist()
    ['x', 'y']
    >>> paper = CalibratedFewShotClassifier(method="paper", random_state=0)
    >>> paper = paper.fit(X_base, y_base)
    >>> few = CalibratedFewShotClassifier(base=paper, method="paper", k=1,
    ...                                   n_samples=50, random_state=0)
    >>> few.fit(X_new, ["x", "y"]).predict(X_new).tolist()
    ['x', 'y']
    """

    _parameter_constraints: dict = {
        "base": "no_validation",  # checked in fit, with a clearer message
        "method": [StrOptions({"bayes", "paper"})],
        "k": [Interval(Integral, 1, None, closed="left")],
        "kappa": [Interval(Real, 0, None, closed="both"), StrOptions({"auto"})],
        "shrinkage": [Interval(Real, 0, 1, closed="both")],
        "support_scatter": [
            StrOptions({"auto", "off"}),
            Interval(Real, 0, None, closed="neither"),
        ],
        "pool_radius_shots": [Interval(Integral, 0, None, closed="left")],
        "tukey_lambda": [Interval(Real, None, None, closed="neither")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "n_samples": [Interval(Integral, 0, None, closed="left")],
        "C": [Interval(Real, 0, None, closed="neither")],
        "solver": [StrOptions({"newton", "lbfgs"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "calibrate_proba": [StrOptions({"base_episodes"}), None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        base=None,
        *,
        method="bayes",
        k=2,
        kappa="auto",
        shrinkage=1.0,
        support_scatter="auto",
        pool_radius_shots=2,
        tukey_lambda=0.5,
        alpha=0.21,
        n_samples=750,
        C=1.0,
        solver="newton",
        max_iter=1000,
        calibrate_proba="base_episodes",
        random_state=None,
    ):
        self.base = base
        self.method = method
        self.k = k
        self.kappa = kappa
        self.shrinkage = shrinkage
        self.support_scatter = support_scatter
        self.pool_radius_shots = pool_radius_shots
        self.tukey_lambda = tukey_lambda
        self.alpha = alpha
        self.n_samples = n_samples
        self.C = C
        self.solver = solver
        self.max_iter = max_iter
        self.calibrate_proba = calibrate_proba
        self.random_state = random_state

    @property
    def _stats_space(self):
        return None if self.method == "paper" else float(self.tukey_lambda)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit base statistics (``base=None``) or the few-shot classifier."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes; got 1 class "
                f"('{classes[0]}')."
            )
        rng = check_random_state(self.random_state)
        self.__dict__.pop("logreg_", None)  # left by an earlier fit with "lbfgs"
        Z = self._tukey(X)
        if self.base is None:
            self._fit_base(X, Z, y, rng)
            self.temperature_ = 1.0
            if self.calibrate_proba is not None:
                self.base_statistics_ = replace(
                    self.base_statistics_,
                    proba_temperatures=self._base_temperatures(X, y, rng),
                )
            return self
        stats = self.base_statistics_ = self._checked_base(X)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        self.temperature_ = self._few_shot_temperature(stats, y_idx)
        if self.method == "bayes":
            means, cov = bayes_gaussian_parameters(
                Z, y_idx, len(self.classes_), stats, k=self.k,
                kappa=self.kappa, shrinkage=self.shrinkage,
            )  # fmt: skip
            counts = np.bincount(y_idx, minlength=len(self.classes_))
            pooled = counts <= self.pool_radius_shots
            means = pool_radii(means, pooled, stats.centre)
            # the scatter is learnt from the classes that keep their own radius
            own = ~pooled[y_idx]
            own_classes, own_idx = np.unique(y_idx[own], return_inverse=True)
            strength = np.inf if self.support_scatter == "off" else self.support_scatter
            self.coef_, self.intercept_, self.support_scatter_ = support_scatter_linear(
                Z[own], own_idx, len(own_classes), means, cov, strength
            )
            self.n_iter_ = np.ones(1, dtype=int)
            return self
        small = Z.shape[1] * self.n_samples * len(self.classes_) < _SMALL_PROBLEM
        with threadpool_limits(1 if small else None):
            X_train, y_train = calibrated_training_set(
                Z, y, stats, k=self.k, alpha=self.alpha,
                n_samples=self.n_samples, rng=rng, dtype=np.float32,
            )  # fmt: skip
            return self._fit_logreg(X_train, y_train, rng)

    def _fit_base(self, X, Z, y, rng):
        stats = self.base_statistics_ = BaseStatistics.from_features(
            X, y, tukey_lambda=self._stats_space
        )
        self.classes_ = stats.classes
        if self.method == "bayes":
            # every base class is its own prior: the plain shrunk Gaussian rule
            cov = np.tensordot(
                stats.counts / stats.counts.sum(), stats.shrunk_covariances(), 1
            )
            self._set_linear(stats.means, shrink_to_identity(cov, self.shrinkage))
        else:
            self._fit_logreg(Z, y, rng)

    def _base_temperatures(self, X, y, rng):
        """``(n_shot, temperature)`` pairs from pseudo-novel episodes of the
        base classes (see :func:`base_episode_temperatures`)."""
        seed = 0 if self.random_state is None else rng.randint(np.iinfo(np.int32).max)
        _, y_idx = np.unique(y, return_inverse=True)

        def make_classifier(X_rest, y_rest):
            stats = BaseStatistics.from_features(
                X_rest, y_rest, tukey_lambda=self._stats_space
            )
            k = min(self.k, len(stats.classes))
            return clone(self).set_params(base=stats, k=k, calibrate_proba=None)

        return base_episode_temperatures(
            make_classifier, X, y_idx, self.k, np.random.RandomState(seed)
        )

    def _few_shot_temperature(self, stats, y_idx):
        if self.calibrate_proba is None:
            return 1.0
        if not stats.proba_temperatures:
            warnings.warn(
                "The base statistics carry no probability temperatures (fitted "
                "with calibrate_proba=None, on fewer than 3 base classes, or built "
                "directly), so predict_proba gives the scores' uncalibrated, "
                "over-confident softmax; pass calibrate_proba=None to say that "
                "is intended.",
                UserWarning,
                stacklevel=3,
            )
            return 1.0
        n_shot = float(np.bincount(y_idx).mean())
        return temperature_for_shots(stats.proba_temperatures, n_shot)

    def _checked_base(self, X):
        stats = _as_base_statistics(self.base)
        if X.shape[1] != stats.n_features:
            raise ValueError(
                f"Support features have {X.shape[1]} dimensions; the base "
                f"statistics have {stats.n_features}."
            )
        if self.k > len(stats.classes):
            raise ValueError(
                f"k={self.k} exceeds the number of base classes ({len(stats.classes)})."
            )
        space = stats.tukey_lambda
        if space != self._stats_space:
            have = "raw features" if space is None else f"Tukey space (lambda={space})"
            want = (
                "raw features"
                if self._stats_space is None
                else f"Tukey space (lambda={self._stats_space})"
            )
            raise ValueError(
                f"method={self.method!r} needs base statistics of {want}; these are "
                f"of {have}. Fit the base classifier with the same method and "
                "tukey_lambda."
            )
        return stats

    def _set_linear(self, means, cov):
        self.coef_, self.intercept_ = _linear_gaussian(means, cov)
        self.n_iter_ = np.ones(1, dtype=int)  # closed form: one step

    def _fit_logreg(self, X_train, y_train, rng):
        if self.solver == "newton":
            classes, y_idx = np.unique(y_train, return_inverse=True)
            coef, intercept = newton_step_logistic(X_train, y_idx, len(classes), self.C)
            self.coef_, self.intercept_ = coef, intercept
            self.n_iter_ = np.ones(1, dtype=int)
            return self
        self.logreg_ = LogisticRegression(
            C=self.C, max_iter=self.max_iter, random_state=rng.randint(2**31 - 1)
        ).fit(X_train, y_train)
        self.n_iter_ = self.logreg_.n_iter_
        self.coef_ = self.logreg_.coef_
        self.intercept_ = self.logreg_.intercept_
        return self

    def _tukey(self, X):
        return tukey_transform(X, self.tukey_lambda)

    def decision_function(self, X):
        """Class scores of Tukey-transformed features (higher is more likely)."""
        X = self._validated(X)
        if hasattr(self, "logreg_"):
            return self.logreg_.decision_function(X)
        scores = X @ self.coef_.T + self.intercept_
        return scores[:, 1] - scores[:, 0] if len(self.classes_) == 2 else scores

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_``: the softmax of
        the scores divided by ``temperature_`` (see ``calibrate_proba``)."""
        X = self._validated(X)
        temperature = getattr(self, "temperature_", 1.0)  # older model files
        if temperature == 1.0 and hasattr(self, "logreg_"):
            return self.logreg_.predict_proba(X)
        return softmax(self._scores(X) / temperature)

    def _logits(self, X):
        """Scores of every class, ``(n_samples, n_classes)``, before the
        temperature: ``predict_proba`` is their softmax divided by it."""
        return self._scores(self._validated(X))

    def _scores(self, Z):
        if not hasattr(self, "logreg_"):
            return Z @ self.coef_.T + self.intercept_
        scores = self.logreg_.decision_function(Z)
        if scores.ndim == 1:  # binary: sigmoid(s) is the softmax of (0, s)
            return np.column_stack([np.zeros_like(scores), scores])
        return scores

    def predict(self, X):
        """Most probable class of every feature vector."""
        X = self._validated(X)
        if hasattr(self, "logreg_"):
            return self.logreg_.predict(X)
        return self.classes_[np.argmax(X @ self.coef_.T + self.intercept_, axis=1)]

    def _validated(self, X):
        check_is_fitted(self)
        return self._tukey(validate_data(self, X, dtype=np.float64, reset=False))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # Tukey power needs v >= 0
        return tags
