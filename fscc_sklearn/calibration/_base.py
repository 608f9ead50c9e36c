"""What the calibrated few-shot classifiers share: two modes, one linear predict path.

A calibrated classifier is fitted either on base classes (``base=None``: it
stores their statistics, fits softmax temperatures for later few-shot fits and
classifies the base classes) or few-shot on a support set (``base`` given:
it borrows those statistics). Either way it ends as a linear classifier on
Tukey-transformed features, so ``decision_function`` and ``predict`` come from
``coef_`` and ``intercept_`` (scikit-learn's ``LinearClassifierMixin``: one
row of scores per class, or one row for 2 classes);
subclasses only say how the base and few-shot fits find them.
"""

import warnings
from dataclasses import replace
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.extmath import softmax
from sklearn.utils.validation import check_is_fitted, validate_data

from .._validation import check_labels
from ..persistence._state import (
    check_array,
    check_value,
    labels_from_json,
    labels_to_json,
    logistic_regression_from_state,
    object_from_state,
    object_state,
)
from ._base_episodes import pseudo_novel_splits
from ._novelty import (
    OPEN_SET_CONSTRAINTS,
    chi_square_threshold,
    class_moments,
    nearest_mahalanobis,
    support_moments,
    unknown_label_for,
    with_unknown,
)
from ._statistics import TUKEY_LAMBDA, BaseStatistics, tukey_transform
from ._temperature import base_episode_temperatures, temperature_for_shots

_MAX_SEED = np.iinfo(np.int32).max


class CalibratedClassifierBase(LinearClassifierMixin, BaseEstimator):
    """Shared base of the calibrated few-shot classifiers (not for direct use).

    Subclasses define ``_stats_space`` (the feature space of their base
    statistics: ``None`` for raw features, else a Tukey power), ``_fit_base``
    and ``_fit_few_shot``; both fits end with :meth:`_set_linear`.
    """

    _parameter_constraints: dict = {
        "base": "no_validation",  # checked in fit, with a clearer message
        "k": [Interval(Integral, 1, None, closed="left")],
        "tukey_lambda": [TUKEY_LAMBDA],
        "calibrate_proba": [StrOptions({"base_episodes"}), None],
        "random_state": ["random_state"],
        **OPEN_SET_CONSTRAINTS,
    }

    @property
    def _stats_space(self):
        raise NotImplementedError

    def _fit_base(self, Z, y, stats, rng):
        """Fit the classifier of the base classes (``Z`` Tukey-transformed)."""
        raise NotImplementedError

    def _fit_few_shot(self, Z, y, y_idx, stats, rng):
        """Fit the classifier of the support's classes (``Z`` Tukey-transformed)."""
        raise NotImplementedError

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit base statistics (``base=None``) or the few-shot classifier."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_labels(y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes; got 1 class "
                f"('{classes[0]}')."
            )
        rng = check_random_state(self.random_state)
        Z = tukey_transform(X, self.tukey_lambda)
        if self.base is None:
            stats = self.base_statistics_ = BaseStatistics.from_features(
                X, y, tukey_lambda=self._stats_space
            )
            self.classes_ = stats.classes
            self._check_open_set()
            self._fit_base(Z, y, stats, rng)
            self.temperature_ = 1.0
            seed = 0 if self.random_state is None else rng.randint(_MAX_SEED)
            measured = self._measure_on_base_episodes(X, y, seed)
            if measured:
                self.base_statistics_ = replace(stats, **measured)
            self._set_threshold(Z, np.searchsorted(self.classes_, y))
            return self
        stats = self.base_statistics_ = self._checked_base(X)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        self._check_open_set()
        self.temperature_ = self._few_shot_temperature(stats, y_idx)
        self._fit_few_shot(Z, y, y_idx, stats, rng)
        self._set_threshold(Z, y_idx)
        return self

    # --- open-set prediction (see _novelty)

    def _check_open_set(self):
        if self.reject is not None:
            unknown_label_for(self.unknown_label, self.classes_, type(self).__name__)
        for name in ("novelty_threshold_", "_class_spread"):
            if hasattr(self, name):
                delattr(self, name)

    def _set_novelty(self, means, covariance):
        """Keep what :meth:`novelty_score` needs: class means and the shared
        covariance (a vector when diagonal) of Tukey-transformed features.
        With ``reject="auto"`` the subclass then sets ``_class_spread``: the
        modelled covariance of each class and its inflation (for the error of
        the class mean), see :meth:`_set_threshold`."""
        covariance = np.asarray(covariance, dtype=np.float64)
        if covariance.ndim == 2 and _is_diagonal(covariance):
            covariance = covariance.diagonal().copy()
        if covariance.ndim == 1:
            tiny = np.finfo(float).tiny
            covariance = np.maximum(covariance, 1e-12 * max(covariance.mean(), tiny))
        self.novelty_means_ = np.asarray(means, dtype=np.float64)
        self.novelty_covariance_ = covariance

    def _set_threshold(self, Z, y_idx):
        """``reject="auto"``: the ``1 - false_rejection`` quantile of the
        novelty of each class's modelled Gaussian, at least the largest
        novelty of the training examples. Where some class has 2 or more
        examples, the support's own within-class spread replaces the modelled
        one (its scale and shape, :func:`support_moments`)."""
        if self.reject != "auto":
            return
        spreads, inflation = self._class_spread
        del self._class_spread
        metric = self.novelty_covariance_
        traces, traces2 = class_moments(spreads, metric)
        own = support_moments(Z, y_idx, len(self.classes_), metric)
        if own is not None:
            traces, traces2 = np.full_like(traces, own[0]), np.full_like(traces, own[1])
        threshold = chi_square_threshold(
            traces, traces2, inflation, 1 - self.false_rejection
        )
        # no training example is rejected; the margin covers the rounding of
        # its novelty computed in another batch
        novelty = nearest_mahalanobis(Z, self.novelty_means_, metric)
        self.novelty_threshold_ = max(threshold, float(novelty.max()) * (1 + 1e-9))

    def novelty_score(self, X):
        """Novelty of every feature vector (higher: more novel): the Mahalanobis
        distance of its Tukey transform to the nearest class mean, under the
        classifier's shared covariance (docs/calibration.md, "Unknown
        particles")."""
        Z = self._validated(X)
        if not hasattr(self, "novelty_means_"):
            raise AttributeError(
                f"this {type(self).__name__} was fitted by an earlier version of "
                "fscc-sklearn and keeps no novelty statistics; fit it again."
            )
        return nearest_mahalanobis(Z, self.novelty_means_, self.novelty_covariance_)

    def predict(self, X):
        """Class of every feature vector; with ``reject``, ``unknown_label``
        where :meth:`novelty_score` exceeds the rejection threshold."""
        predicted = super().predict(X)
        if self.reject is None:
            return predicted
        if self.reject == "auto":
            if not hasattr(self, "novelty_threshold_"):
                raise ValueError(
                    f"reject='auto' needs the threshold set by fit; this "
                    f"{type(self).__name__} was fitted with reject={None!r}: fit "
                    "it again, or pass a number."
                )
            threshold = self.novelty_threshold_
        else:
            threshold = float(self.reject)
        unknown = unknown_label_for(
            self.unknown_label, self.classes_, type(self).__name__
        )
        return with_unknown(predicted, self.novelty_score(X), threshold, unknown)

    def _set_linear(self, coef, intercept, n_iter=None):
        """Store a linear classifier: one row of scores per class, or one row
        for 2 classes (the second class's score minus the first's)."""
        self.coef_, self.intercept_ = np.asarray(coef), np.asarray(intercept)
        self.n_iter_ = np.ones(1, dtype=int) if n_iter is None else n_iter

    def _measure_on_base_episodes(self, X, y, seed):
        """Fields of the base statistics that pseudo-novel episodes of the base
        classes (drawn from ``seed``) measure (:mod:`._base_episodes`): the
        softmax temperatures of ``calibrate_proba``."""
        if self.calibrate_proba is None:
            return {}
        splits, y_idx, episode_rng = self._pseudo_novel_splits(X, y, seed)
        return {
            "proba_temperatures": base_episode_temperatures(
                splits, X, y_idx, episode_rng
            )
        }

    def _pseudo_novel_splits(self, X, y, seed, *, half=False):
        """``(splits, y_idx, rng)``: :func:`pseudo_novel_splits` of the base
        classes with few-shot copies of this classifier, the class indices, and
        the RandomState (from ``seed``) their episodes go on drawing from."""
        episode_rng = np.random.RandomState(seed)
        _, y_idx = np.unique(y, return_inverse=True)

        def make_classifier(X_rest, y_rest):
            stats = BaseStatistics.from_features(
                X_rest, y_rest, tukey_lambda=self._stats_space
            )
            k = min(self.k, len(stats.classes))
            return clone(self).set_params(
                base=stats, k=k, calibrate_proba=None, reject=None
            )

        splits = pseudo_novel_splits(
            make_classifier, X, y_idx, self.k, episode_rng, half=half
        )
        return splits, y_idx, episode_rng

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
        stats = as_base_statistics(self.base)
        if X.shape[1] != stats.n_features:
            raise ValueError(
                f"Support features have {X.shape[1]} dimensions "
                f"(n_features={X.shape[1]}); the base statistics have "
                f"{stats.n_features}."
            )
        if self.k > len(stats.classes):
            raise ValueError(
                f"k={self.k} exceeds the number of base classes ({len(stats.classes)})."
            )
        if stats.tukey_lambda != self._stats_space:
            raise ValueError(
                f"{type(self).__name__} needs base statistics of "
                f"{_space_name(self._stats_space)}; these are of "
                f"{_space_name(stats.tukey_lambda)}. Fit the base classifier with "
                f"{type(self).__name__} and the same tukey_lambda."
            )
        return stats

    def decision_function(self, X):
        """Class scores of Tukey-transformed features (higher is more likely);
        with 2 classes, the second class's score minus the first's."""
        scores = self._logits(X)
        return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_``: the softmax of
        the scores divided by ``temperature_`` (see ``calibrate_proba``).

        They are probabilities *given* that the feature is of one of the
        classes, also with ``reject``: an unknown mass would need the share of
        unknown particles among the queries, which neither the support nor the
        base classes tell (it depends on the picker); :meth:`novelty_score` and
        ``predict`` carry the open-set decision instead.
        """
        logits = self._logits(X)
        with np.errstate(over="ignore"):
            scaled = logits / self.temperature_
            if not np.isfinite(scaled).all():
                # a tiny temperature overflowed (inf - inf is NaN): shifted
                # first, the losers go to -inf, probability 0
                scaled = (logits - logits.max(1, keepdims=True)) / self.temperature_
        return softmax(scaled)

    def _logits(self, X):
        """Scores of every class, ``(n_samples, n_classes)``, before the
        temperature: ``predict_proba`` is their softmax divided by it."""
        scores = self._validated(X) @ self.coef_.T + self.intercept_
        if scores.shape[1] == 1:  # binary: sigmoid(s) is the softmax of (0, s)
            return np.column_stack([np.zeros(len(scores)), scores[:, 0]])
        return scores

    def _validated(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return tukey_transform(X, self.tukey_lambda)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # Tukey power needs v >= 0
        return tags

    # --- safe model files (fscc_sklearn.persistence._state)

    def _get_model_state(self):
        """``(meta, arrays)``: classes, linear scores, temperature and the base
        statistics (only a reference when they come from the ``base`` param)."""
        check_is_fitted(self)
        stats = self.base_statistics_
        meta = {
            "classes": labels_to_json(self.classes_),
            "n_features_in": int(self.n_features_in_),
            "temperature": float(self.temperature_),
        }
        if self.base is not None and as_base_statistics(self.base) is stats:
            meta["base_statistics"] = "base"  # saved once, as the param
            arrays = {}
        else:
            meta["base_statistics"], arrays = object_state(stats, "base_statistics_/")
        if hasattr(self, "novelty_threshold_"):
            meta["novelty_threshold"] = float(self.novelty_threshold_)
        if hasattr(self, "novelty_means_"):
            arrays["novelty_means"] = self.novelty_means_
            arrays["novelty_covariance"] = self.novelty_covariance_
        if hasattr(self, "support_scatter_"):  # may be inf: an array, not JSON
            arrays["support_scatter"] = np.asarray(self.support_scatter_, np.float64)
        arrays.update(
            coef=np.asarray(self.coef_, dtype=np.float64),
            intercept=np.asarray(self.intercept_, dtype=np.float64),
            n_iter=np.asarray(self.n_iter_, dtype=np.int64),
        )
        return meta, arrays

    @classmethod
    def _from_model_state(cls, params, meta, arrays, *, device="cpu"):
        """The fitted classifier of :meth:`_get_model_state`, every value checked.

        Also reads what version-1 files hold: no temperature (1), two rows of
        scores for 2 classes, or the paper recipe's logistic regression
        (``meta["logreg"]``, whose coefficients are kept).
        """
        clf = cls(**params)
        clf.classes_ = labels_from_json(meta["classes"])
        m = clf.n_features_in_ = check_value(meta, "n_features_in", "int", low=1)
        entry = meta["base_statistics"]
        if entry == "base":
            if params.get("base") is None:
                raise ValueError("base_statistics refers to a missing base parameter.")
            stats = as_base_statistics(params["base"])
        else:
            stats = object_from_state(entry, arrays, "base_statistics_/")
        if not isinstance(stats, BaseStatistics) or stats.n_features != m:
            raise ValueError(f"the base statistics do not have {m} features.")
        clf.base_statistics_ = stats
        clf.temperature_ = check_value(meta, "temperature", "float", default=1.0)
        if not clf.temperature_ > 0:
            raise ValueError(f"temperature must be > 0; got {clf.temperature_}.")
        if "support_scatter" in arrays:
            scatter = check_array(arrays, "support_scatter", shape=(), finite=False)
            if not scatter >= 0:  # inf: the support's scatter was not used
                raise ValueError(f"support_scatter must be >= 0; got {scatter}.")
            clf.support_scatter_ = float(scatter)
        n_classes = len(clf.classes_)
        rows = 1 if n_classes == 2 else n_classes
        clf._novelty_from_state(meta, arrays, n_classes, m)
        if "logreg" in meta:
            # version 1 kept the L-BFGS regression itself, and its coef_ and
            # intercept_ as copies; the regression's own (float64) values win
            lr = logistic_regression_from_state(meta["logreg"], arrays, n_features=m)
            if list(lr.classes_) != list(clf.classes_):
                raise ValueError("logistic-regression classes differ from classes.")
            for key, shape in (("coef", (rows, m)), ("intercept", (rows,))):
                if key in arrays:
                    check_array(arrays, key, shape=shape)
            if "n_iter" in arrays:
                check_array(arrays, "n_iter", shape=(1,), kinds="iu")
            clf._set_linear(lr.coef_, lr.intercept_, lr.n_iter_)
            return clf
        coef = check_array(arrays, "coef", shape=(None, m))
        if len(coef) not in (rows, n_classes):
            raise ValueError(
                f"tensor 'coef' has {len(coef)} rows; {n_classes} classes need {rows}."
            )
        intercept = check_array(arrays, "intercept", shape=(len(coef),))
        n_iter = check_array(arrays, "n_iter", shape=(1,), kinds="iu")
        clf._set_linear(coef, intercept, n_iter)
        return clf

    def _novelty_from_state(self, meta, arrays, n_classes, m):
        """Novelty statistics and threshold of a model file (absent in files of
        earlier versions: ``novelty_score`` then asks for a new fit)."""
        if "novelty_threshold" in meta:
            self.novelty_threshold_ = check_value(
                meta, "novelty_threshold", "float", low=0
            )
        if "novelty_means" not in arrays:
            return
        self.novelty_means_ = check_array(arrays, "novelty_means", shape=(n_classes, m))
        cov = arrays["novelty_covariance"] if "novelty_covariance" in arrays else None
        shape = (m,) if cov is not None and np.ndim(cov) == 1 else (m, m)
        cov = check_array(arrays, "novelty_covariance", shape=shape)
        if cov.ndim == 1 and not (cov > 0).all():
            raise ValueError("novelty_covariance must be > 0.")
        self.novelty_covariance_ = cov


def _is_diagonal(cov):
    return np.count_nonzero(cov - np.diag(cov.diagonal())) == 0


def _space_name(tukey_lambda):
    if tukey_lambda is None:
        return "raw features"
    return f"Tukey space (lambda={tukey_lambda})"


def as_base_statistics(base):
    """The :class:`BaseStatistics` behind ``base`` (statistics or a fitted
    calibrated classifier)."""
    if isinstance(base, BaseStatistics):
        return base
    if isinstance(base, CalibratedClassifierBase):
        if not hasattr(base, "base_statistics_"):
            raise ValueError(
                f"base is an unfitted {type(base).__name__}; fit it on the base "
                "classes first (or pass its base_statistics_)."
            )
        return base.base_statistics_
    raise TypeError(
        "base must be None, a BaseStatistics or a fitted calibrated classifier "
        "(CalibratedFewShotClassifier, DistributionCalibrationClassifier); got "
        f"{type(base).__name__}."
    )
