"""FSCC's recipe (Yang et al. 2021): calibrated Gaussian draws, logistic regression."""

from numbers import Integral, Real

import numpy as np
from scipy.linalg import solve
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import Interval, StrOptions
from threadpoolctl import threadpool_limits

from ..persistence._state import register_saveable
from ._base import CalibratedClassifierBase
from ._novelty import within_class_variances
from ._statistics import _nearest_base, tukey_transform

# Below this many support + synthetic features times dimensions, BLAS threads
# cost more in start-up and contention than they save (measured on 2 cores).
_SMALL_PROBLEM = 4_000_000


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


@register_saveable
class DistributionCalibrationClassifier(CalibratedClassifierBase):
    """FSCC's distribution calibration (Yang et al. 2021) on non-negative features.

    With ``base=None``, ``fit(X, y)`` treats the data as base classes: it stores
    their per-class means and covariances (of the raw features, as in the
    reference recipe) in ``base_statistics_`` and fits a logistic regression
    of those classes on Tukey-transformed features.

    With ``base`` given, ``fit(X, y)`` is the few-shot fit on a support set of N
    novel classes with K examples each (K may be 1). Support features are
    Tukey-transformed (``tukey_lambda``); per support feature, the ``k``
    nearest base classes give the mean ``(sum of k means + feature) / (k +
    1)`` and covariance ``mean of k covariances + alpha`` (``alpha`` added to
    every entry); ``n_samples // K`` features per support feature are drawn
    from it (:func:`calibrated_training_set`), and a logistic regression
    (``C``) is trained on support + drawn features: by default with one
    closed-form Newton step from zero (``solver="newton"``, see
    :func:`newton_step_logistic`; 53x faster than the reference recipe in
    benchmarks/results/calibration_speed.md, at equal accuracy), or to
    convergence as published (``solver="lbfgs"``, ``max_iter``). Only the
    regression's ``coef_`` and ``intercept_`` are kept.

    The library's default calibration is :class:`CalibratedFewShotClassifier`
    (a Bayesian rule, no sampling); ``CalibratedFewShotClassifier(method="paper")``
    is the deprecated spelling of this class.

    Parameters
    ----------
    base : None, BaseStatistics or fitted DistributionCalibrationClassifier, \
default=None
        Where base statistics come from; ``None`` means fit them from the data.
        They must be of raw features: fit the base classifier with this class.
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
    solver : {"newton", "lbfgs"}, default="newton"
        How the logistic regression is fitted: one closed-form Newton step, or
        scikit-learn's L-BFGS run to convergence (the published recipe).
    max_iter : int, default=1000
        Iterations of L-BFGS (``solver="lbfgs"``).
    calibrate_proba : "base_episodes" or None, default="base_episodes"
        How ``predict_proba`` of few-shot fits is calibrated, as for
        :class:`CalibratedFewShotClassifier`: "base_episodes" fits softmax
        temperatures on pseudo-novel episodes of the base classes in the
        base-mode fit and divides few-shot scores by the one of their number
        of shots; ``None``: the regression's own probabilities. Predictions
        never change.
    reject : None, "auto" or float >= 0, default=None
        Open-set prediction: ``predict`` answers ``unknown_label`` for
        features whose :meth:`novelty_score` exceeds a threshold. ``None``:
        never (every feature gets a class). A number: that threshold.
        "auto": the threshold fit sets (``novelty_threshold_``) so that each
        class keeps ``1 - false_rejection`` of the features of its
        calibrated distribution (the quantile of its ``n_samples`` draws),
        and never below the novelty of the training examples themselves (no
        support example is rejected).
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
        Seeds the sampling and the pseudo-novel episodes of
        ``calibrate_proba`` (seed 0 when None).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Classes this classifier predicts (base classes in base mode).
    base_statistics_ : BaseStatistics
        Base-class statistics (fitted, or taken from ``base``).
    coef_ : ndarray of shape (n_classes, n_features) or (1, n_features)
        Weights of the logistic regression on Tukey-transformed features; one
        row with 2 classes and ``solver="lbfgs"`` (scikit-learn's binary form).
    intercept_ : ndarray of shape (1,) or (n_classes,)
        Intercepts matching ``coef_``.
    temperature_ : float
        Divisor of the scores in ``predict_proba``: from the base statistics
        for a few-shot fit with ``calibrate_proba``, else 1.
    n_iter_ : ndarray of shape (1,)
        Iterations the L-BFGS solver ran; 1 for the Newton step.
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
    >>> base = DistributionCalibrationClassifier(random_state=0).fit(X_base, y_base)
    >>> X_new = np.array([[9.0, 0, 0, 9], [0, 9.0, 9, 0]])
    >>> few = DistributionCalibrationClassifier(base=base, k=1, n_samples=50,
    ...                                         random_state=0)
    >>> few.fit(X_new, ["x", "y"]).predict(X_new).tolist()
    ['x', 'y']
    """

    _parameter_constraints: dict = {
        **CalibratedClassifierBase._parameter_constraints,
        "alpha": [Interval(Real, 0, None, closed="left")],
        "n_samples": [Interval(Integral, 0, None, closed="left")],
        "C": [Interval(Real, 0, None, closed="neither")],
        "solver": [StrOptions({"newton", "lbfgs"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
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
        solver="newton",
        max_iter=1000,
        calibrate_proba="base_episodes",
        reject=None,
        false_rejection=0.05,
        unknown_label=None,
        random_state=None,
    ):
        self.base = base
        self.k = k
        self.tukey_lambda = tukey_lambda
        self.alpha = alpha
        self.n_samples = n_samples
        self.C = C
        self.solver = solver
        self.max_iter = max_iter
        self.calibrate_proba = calibrate_proba
        self.reject = reject
        self.false_rejection = false_rejection
        self.unknown_label = unknown_label
        self.random_state = random_state

    @property
    def _stats_space(self):
        return None  # the reference recipe's statistics are of raw features

    def _fit_base(self, Z, y, stats, rng):
        self._fit_logreg(Z, y, rng)
        self._fit_novelty(Z, np.unique(y, return_inverse=True)[1], len(Z))

    def _fit_few_shot(self, Z, y, y_idx, stats, rng):
        small = Z.shape[1] * self.n_samples * len(self.classes_) < _SMALL_PROBLEM
        with threadpool_limits(1 if small else None):
            X_train, y_train = calibrated_training_set(
                Z, y, stats, k=self.k, alpha=self.alpha,
                n_samples=self.n_samples, rng=rng, dtype=np.float32,
            )  # fmt: skip
            self._fit_logreg(X_train, y_train, rng)
            self._fit_novelty(X_train, np.searchsorted(self.classes_, y_train), len(Z))

    def _fit_novelty(self, X_train, y_idx, n_support):
        """Novelty: Euclidean distance to the nearest mean of the support's
        classes (Tukey space), in units of the training features' mean
        within-class deviation. Training features are the support and the
        draws from its calibrated distributions (in base mode: the base
        features); with ``reject="auto"`` each class's spread is modelled by
        :meth:`_tukey_spreads` (in base mode: its own features' spread), see
        ``_set_threshold``."""
        n_classes = len(self.classes_)
        X_train = np.asarray(X_train, dtype=np.float64)
        _, variances = within_class_variances(X_train, y_idx, n_classes)
        support = X_train[:n_support]
        means, _ = within_class_variances(support, y_idx[:n_support], n_classes)
        self._set_novelty(means, np.full(len(variances), variances.mean()))
        if self.reject != "auto":
            return
        if self.base is None:  # base mode: the base features' own spread
            spreads = [X_train[y_idx == c].var(0) for c in range(n_classes)]
        else:
            spreads = self._tukey_spreads(means)
        counts = np.bincount(y_idx[:n_support], minlength=n_classes)
        self._class_spread = (spreads, 1 + 1 / counts)

    def _tukey_spreads(self, support_means):
        """Per-feature variance of each class in Tukey space: the raw-feature
        variances of its ``k`` nearest base classes (the recipe's statistics),
        carried through the Tukey power by its derivative at their means."""
        stats = self.base_statistics_
        raw = np.maximum(stats.means, 1e-6 * max(float(stats.means.mean()), 1e-300))
        lam = self.tukey_lambda
        slope = 1 / raw if lam == 0 else lam * raw ** (lam - 1)
        variances = np.diagonal(stats.covariances, axis1=1, axis2=2) * slope**2
        d2 = ((support_means[:, None] - tukey_transform(raw, lam)[None]) ** 2).sum(-1)
        nearest = np.argsort(d2, axis=1, kind="stable")[:, : self.k]
        return list(variances[nearest].mean(1))

    def _fit_logreg(self, X_train, y_train, rng):
        if self.solver == "newton":
            _, y_idx = np.unique(y_train, return_inverse=True)
            self._set_linear(
                *newton_step_logistic(X_train, y_idx, len(self.classes_), self.C)
            )
            return
        logreg = LogisticRegression(
            C=self.C, max_iter=self.max_iter, random_state=rng.randint(2**31 - 1)
        ).fit(X_train, y_train)
        self._set_linear(logreg.coef_, logreg.intercept_, logreg.n_iter_)
