"""The default calibration: a Bayesian Gaussian rule in closed form, no sampling."""

import inspect
import warnings
from numbers import Integral, Real

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from sklearn.base import clone
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..persistence._state import register_saveable
from ._base import CalibratedClassifierBase
from ._base_episodes import paired_gain
from ._grouping import class_means
from ._paper import DistributionCalibrationClassifier
from ._scatter import choose_strength, scatter_gaussian
from ._statistics import _cholesky_psd, _nearest_base

# Floor of the class-mean spread in empirical_kappa, in units of the support
# mean's variance s2 / K (chosen on the paper split, see docs/calibration.md)
_MIN_SPREAD = 0.2
# pool_radius_shots="auto": the shots pooled, unless one-shot episodes of half
# the base classes (6 splits x POOLING_EPISODES) lose more than AUTO_MARGIN points
# to pooling; those episodes overstated the loss on novel classes by 1-2
# points (docs/calibration.md)
AUTO_POOLED_SHOTS = 2
AUTO_MARGIN = 2.0
POOLING_EPISODES = 25


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


# Parameters of the paper's recipe that CalibratedFewShotClassifier took before
# DistributionCalibrationClassifier existed, and those only the rule here uses.
_PAPER_ONLY = ("alpha", "n_samples", "C", "solver", "max_iter")
_BAYES_ONLY = ("kappa", "shrinkage", "support_scatter", "pool_radius_shots")


class _AcceptsMethod(type(CalibratedClassifierBase)):
    """Lets ``CalibratedFewShotClassifier(method=...)`` of earlier releases run.

    ``method="paper"`` builds the :class:`DistributionCalibrationClassifier`
    that now holds that recipe (the same predictions), ``method="bayes"`` the
    class itself, ignoring the recipe's parameters (as it always did); all with
    a FutureWarning. Without them the class is built as any other (``clone``
    never passes them).
    """

    def __call__(cls, *args, **kwargs):
        ignored = sorted(name for name in _PAPER_ONLY if name in kwargs)
        if "method" not in kwargs and not ignored:
            return super().__call__(*args, **kwargs)
        passed = ["method", *ignored] if "method" in kwargs else ignored
        method = kwargs.pop("method", "bayes")
        if method == "paper":
            warnings.warn(
                "CalibratedFewShotClassifier(method='paper') is deprecated and will "
                "be removed in the next release; use "
                "DistributionCalibrationClassifier (same parameters but kappa, "
                "shrinkage, support_scatter and pool_radius_shots; the same "
                "predictions).",
                FutureWarning,
                stacklevel=2,
            )
            for name in _BAYES_ONLY:
                kwargs.pop(name, None)
            return DistributionCalibrationClassifier(*args, **kwargs)
        if method == "bayes":
            warnings.warn(
                "CalibratedFewShotClassifier is the Bayesian rule (method='bayes'): "
                f"the parameters {passed} are deprecated and ignored, and will be "
                "removed in the next release; drop them (the paper's recipe, "
                "which used alpha, n_samples, C, solver and max_iter, is "
                "DistributionCalibrationClassifier).",
                FutureWarning,
                stacklevel=2,
            )
            for name in _PAPER_ONLY:
                kwargs.pop(name, None)
            return super().__call__(*args, **kwargs)
        raise ValueError(
            f"method={method!r} is not a calibration method: use "
            "CalibratedFewShotClassifier() for the Bayesian rule ('bayes') or "
            "DistributionCalibrationClassifier() for the paper's recipe ('paper')."
        )


@register_saveable
class CalibratedFewShotClassifier(CalibratedClassifierBase, metaclass=_AcceptsMethod):
    """Few-shot classifier with Bayesian distribution calibration, on features >= 0.

    With ``base=None``, ``fit(X, y)`` treats the data as base classes: it stores
    their per-class means and covariances in ``base_statistics_`` and fits a
    classifier of those classes (each base class its own prior: the plain
    shrunk Gaussian rule).

    With ``base`` given, ``fit(X, y)`` is the few-shot fit on a support set of N
    novel classes with K examples each (K may be 1). Features are first
    Tukey-transformed (``tukey_lambda``); calibration is read as a Bayesian
    prior and needs no sampling. Base statistics live in the same Tukey space
    as the support and query features. Each novel class takes the ``k`` base
    classes nearest to its support mean as a prior; its mean is ``(kappa *
    prior mean + K * support mean) / (kappa + K)``, so the transfer fades as
    shots grow, and with ``kappa="auto"`` also as the class lies farther from
    the base classes (an empirical-Bayes strength, see
    :func:`empirical_kappa`). The classes share a covariance: the neighbours'
    OAS-shrunk covariance, shrunk further towards the identity by
    ``shrinkage`` (default 1: identity only, which measured best on simulated
    subtomograms). Queries go to the class of highest Gaussian likelihood, a
    linear classifier in closed form (what a logistic regression on many
    samples from those Gaussians approximates). With three or more shots, the
    support's own within-class scatter may update that covariance
    (``support_scatter``, chosen by leave-one-out). The mean of a class with
    one or two examples keeps its direction from the base classes' centre but
    takes the episode's mean distance from it (``pool_radius_shots``).
    ``kappa=0, shrinkage=1, support_scatter="off", pool_radius_shots=0`` is the
    nearest-prototype rule.

    FSCC's own recipe (sampling and a logistic regression) is
    :class:`DistributionCalibrationClassifier`; ``method="paper"`` here is its
    deprecated spelling (a FutureWarning; it returns that class).

    Parameters
    ----------
    base : None, BaseStatistics or fitted CalibratedFewShotClassifier, default=None
        Where base statistics come from; ``None`` means fit them from the data.
        They must be in Tukey space with this ``tukey_lambda``: fit the base
        classifier with this class.
    k : int, default=2
        Number of nearest base classes whose statistics are transferred.
    kappa : float or "auto", default="auto"
        Prior strength of the base mean, in pseudo-samples (0: support mean
        only; ``np.inf``: base mean only; "auto": estimated per class from its
        distance to the base means).
    shrinkage : float in [0, 1], default=1.0
        Weight of the identity in the shared covariance (1: isotropic,
        nearest-mean metric; 0: the neighbours' shrunk base covariance).
    support_scatter : "auto", "off" or float > 0, default="auto"
        Whether the shared covariance also learns from the support's own
        within-class scatter (needs a class with 2 or more shots that keeps its
        own radius, see ``pool_radius_shots``). The covariance becomes ``(nu *
        prior + scatter) / (nu + n - N)`` with ``nu = support_scatter *
        n_features`` pseudo-samples of the prior: "off" (or ``np.inf``) keeps
        the prior alone; "auto" chooses ``nu`` per support set by leave-one-out
        (``_scatter.choose_strength``), keeping the prior unless the support
        clearly disagrees with it. That recovers the cases where the
        pre-trained features vary most along directions that do not separate
        the new classes (docs/calibration.md). Only classes that keep their own
        radius (``pool_radius_shots``) contribute their scatter.
    pool_radius_shots : int >= 0 or "auto", default="auto"
        The mean of a class with at most this many support examples keeps its
        direction from the base classes' centre but takes the mean distance of
        the episode's class means (:func:`pool_radii`; a noisy example gives
        the direction of its class better than its distance). 0 keeps every
        class's own distance. "auto": the base-mode fit measures pooling on
        one-shot pseudo-novel episodes of the base classes
        (``BaseStatistics.pooling_gain``), and few-shot fits pool one- and
        two-shot classes (as 2 does) unless pooling lost more than 2 points
        there (then as 0); base statistics without the measurement (fitted
        with an integer here, by an earlier version, or built directly) pool.
        Pooling helps weaker features and can hurt strong ones
        (docs/calibration.md).
    tukey_lambda : float, default=0.5
        Power of the Tukey transform (0 means log).
    calibrate_proba : "base_episodes" or None, default="base_episodes"
        How ``predict_proba`` of few-shot fits is calibrated. "base_episodes":
        the base-mode fit also fits softmax temperatures on pseudo-novel
        episodes of the base classes (some held out as novel, the others as
        their base classes; 1 and 5 shots) and stores them with the base
        statistics; a few-shot fit divides its scores by the temperature of
        its number of shots (interpolated, :func:`temperature_for_shots`).
        ``None``: the scores' own softmax, far too confident on real features
        (docs/calibration.md). Predictions never change.
    reject : None, "auto" or float >= 0, default=None
        Open-set prediction: ``predict`` answers ``unknown_label`` for
        features whose :meth:`novelty_score` exceeds a threshold. ``None``:
        never (every feature gets a class). A number: that threshold.
        "auto": the threshold fit sets (``novelty_threshold_``) so that each
        class keeps ``1 - false_rejection`` of the features of its
        calibrated distribution (a Gaussian with its neighbours' shrunk
        covariance times ``1 + 1 / K``; the quantile of a moment-matched
        chi-square), and never below the novelty of the training examples
        themselves (no support example is rejected).
        ``decision_function`` and ``predict_proba`` do not change. ``np.inf``
        rejects nothing, as ``None`` (model files store finite numbers only).
    false_rejection : float in (0, 1), default=0.05
        Target share of a class's own features that ``reject="auto"``
        rejects, on its calibrated distribution; measured on novel classes
        of simulated subtomograms in docs/calibration.md ("Unknown particles").
    unknown_label : str, int or None, default=None
        Label of rejected features: ``None`` gives "unknown" for string
        classes and -1 for integer classes; it must have the classes' type
        and not be one of them (checked in fit when ``reject`` is set).
    random_state : int, RandomState or None, default=None
        Seeds the pseudo-novel episodes of ``calibrate_proba`` (seed 0 when
        None, so the rule stays deterministic).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Classes this classifier predicts (base classes in base mode).
    base_statistics_ : BaseStatistics
        Base-class statistics (fitted, or taken from ``base``).
    coef_ : ndarray of shape (n_classes, n_features)
        Linear scores on Tukey-transformed features (``decision_function``
        gives their difference with 2 classes).
    intercept_ : ndarray of shape (n_classes,)
        Intercepts matching ``coef_``.
    temperature_ : float
        Divisor of the scores in ``predict_proba``: from the base statistics
        for a few-shot fit with ``calibrate_proba``, else 1.
    pool_radius_shots_ : int
        The ``pool_radius_shots`` a few-shot fit used, "auto" resolved (for
        a base-mode fit: what few-shot fits from it with "auto" use).
    support_scatter_ : float
        Few-shot fit only: prior strength ``nu / n_features`` used
        (``np.inf``: the support's scatter was not used).
    n_iter_ : ndarray of shape (1,)
        1: the fit is in closed form.
    novelty_means_ : ndarray of shape (n_classes, n_features)
        Class means of the novelty score (Tukey-transformed features).
    novelty_covariance_ : ndarray of shape (n_features,) or (n_features, n_features)
        Shared covariance of the novelty score (a vector when diagonal).
    novelty_threshold_ : float
        With ``reject="auto"`` only: the rejection threshold set by fit.
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
    """

    _parameter_constraints: dict = {
        **CalibratedClassifierBase._parameter_constraints,
        "kappa": [Interval(Real, 0, None, closed="both"), StrOptions({"auto"})],
        "shrinkage": [Interval(Real, 0, 1, closed="both")],
        "support_scatter": [
            StrOptions({"auto", "off"}),
            Interval(Real, 0, None, closed="neither"),
        ],
        "pool_radius_shots": [
            Interval(Integral, 0, None, closed="left"),
            StrOptions({"auto"}),
        ],
    }

    def __init__(
        self,
        base=None,
        *,
        k=2,
        kappa="auto",
        shrinkage=1.0,
        support_scatter="auto",
        pool_radius_shots="auto",
        tukey_lambda=0.5,
        calibrate_proba="base_episodes",
        reject=None,
        false_rejection=0.05,
        unknown_label=None,
        random_state=None,
    ):
        self.base = base
        self.k = k
        self.kappa = kappa
        self.shrinkage = shrinkage
        self.support_scatter = support_scatter
        self.pool_radius_shots = pool_radius_shots
        self.tukey_lambda = tukey_lambda
        self.calibrate_proba = calibrate_proba
        self.reject = reject
        self.false_rejection = false_rejection
        self.unknown_label = unknown_label
        self.random_state = random_state

    @property
    def _stats_space(self):
        return float(self.tukey_lambda)

    def _fit_base(self, Z, y, stats, rng):
        # every base class is its own prior: the plain shrunk Gaussian rule
        cov = np.tensordot(
            stats.counts / stats.counts.sum(), stats.shrunk_covariances(), 1
        )
        cov = shrink_to_identity(cov, self.shrinkage)
        self._set_linear(*_linear_gaussian(stats.means, cov))
        self._set_novelty(stats.means, cov)
        if self.reject == "auto":
            self._class_spread = (stats.shrunk_covariances(), 1 + 1 / stats.counts)

    def _measure_on_base_episodes(self, X, y, seed):
        """With ``pool_radius_shots="auto"``, also the ``pooling_gain`` of the
        base classes; the temperatures are then fitted with the pooling it
        chooses."""
        if self.pool_radius_shots != "auto":
            return super()._measure_on_base_episodes(X, y, seed)
        # half the classes held out, as where this was compared with the
        # novel classes (benchmarks/bench_radius_heldout.py)
        splits, y_idx, episode_rng = self._pseudo_novel_splits(X, y, seed, half=True)
        gains = paired_gain(
            splits, X, y_idx, episode_rng,
            {"pool_radius_shots": AUTO_POOLED_SHOTS}, {"pool_radius_shots": 0},
            n_shot=1, n_episodes=POOLING_EPISODES,
        )  # fmt: skip
        gain = None if gains is None else float(gains.mean())
        chosen = clone(self).set_params(pool_radius_shots=_pooled_shots(gain))
        return {**chosen._measure_on_base_episodes(X, y, seed), "pooling_gain": gain}

    @property
    def pool_radius_shots_(self):
        check_is_fitted(self)
        return _pooled_shots(self.base_statistics_.pooling_gain, self.pool_radius_shots)

    def _fit_few_shot(self, Z, y, y_idx, stats, rng):
        n_classes = len(self.classes_)
        means, cov = bayes_gaussian_parameters(
            Z, y_idx, n_classes, stats, k=self.k,
            kappa=self.kappa, shrinkage=self.shrinkage,
        )  # fmt: skip
        counts = np.bincount(y_idx, minlength=n_classes)
        pooled = counts <= _pooled_shots(stats.pooling_gain, self.pool_radius_shots)
        means = pool_radii(means, pooled, stats.centre)
        # the scatter is learnt from the classes that keep their own radius
        own = ~pooled[y_idx]
        own_classes, own_idx = np.unique(y_idx[own], return_inverse=True)
        strength = np.inf if self.support_scatter == "off" else self.support_scatter
        coef, intercept, self.support_scatter_ = support_scatter_linear(
            Z[own], own_idx, len(own_classes), means, cov, strength
        )
        self._set_linear(coef, intercept)
        self._set_novelty(means, cov)
        if self.reject == "auto":
            # each class spreads as its neighbours' shrunk covariance, plus the
            # error of the mean of its K_c support examples
            neighbours = _nearest_base(class_means(Z, y_idx, n_classes), stats, self.k)
            spreads = stats.shrunk_covariances()[neighbours].mean(1)
            self._class_spread = (spreads, 1 + 1 / counts)


def _pooled_shots(gain, setting="auto"):
    """``pool_radius_shots`` to apply: ``setting``, or for "auto" the choice
    from the measured pooling ``gain`` (points; None: not measured)."""
    if setting != "auto":
        return setting
    return 0 if gain is not None and gain < -AUTO_MARGIN else AUTO_POOLED_SHOTS


# inspect.signature (and scikit-learn's checks) would read the metaclass's
# (*args, **kwargs) instead of the constructor's parameters
CalibratedFewShotClassifier.__signature__ = inspect.signature(
    CalibratedFewShotClassifier.__init__
).replace(
    parameters=list(
        inspect.signature(CalibratedFewShotClassifier.__init__).parameters.values()
    )[1:]
)
