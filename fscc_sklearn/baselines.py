"""Comparison classifiers on frozen features: Baseline, Baseline++, sanity checks.

A little over 500 lines: the four classifiers share one support-set base here.
"""

from abc import abstractmethod
from numbers import Integral, Real

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.linear_model import LogisticRegression
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import check_labels
from .calibration._grouping import class_means
from .calibration._novelty import energy_score, nearest_mahalanobis
from .calibration._statistics import TUKEY_LAMBDA, tukey_transform
from .persistence._state import (
    check_array,
    check_value,
    labels_from_json,
    labels_to_json,
    logistic_regression_from_state,
    logistic_regression_state,
    register_saveable,
)

__all__ = [
    "BaselineClassifier",
    "BaselinePlusPlusClassifier",
    "PrototypeClassifier",
    "TukeyLogisticRegression",
]


class _SupportSetClassifier(ClassifierMixin, BaseEstimator):
    """Validation and prediction shared by classifiers fitted on a support set.

    Subclasses implement ``_fit_head(X, y_idx, rng)`` (``y_idx`` indexes
    ``classes_``) and ``_scores(X)`` (one column per class); they never
    re-validate.
    """

    _parameter_constraints: dict = {}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit on a (support) set of features ``X`` with labels ``y``."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_labels(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes in y; got 1 class "
                f"({self.classes_.tolist()[0]!r})."
            )
        rng = check_random_state(getattr(self, "random_state", None))
        self._fit_head(self._prepare(X), y_idx, rng)
        return self

    def _prepare(self, X):
        return X

    @abstractmethod
    def _fit_head(self, X, y_idx, rng): ...

    @abstractmethod
    def _scores(self, X): ...

    def _get_model_state(self):
        """``(meta, arrays)`` of the fitted classifier, for safe model files."""
        check_is_fitted(self)
        meta = {
            "classes": labels_to_json(self.classes_),
            "n_features_in": int(self.n_features_in_),
        }
        if hasattr(self, "scale_"):
            meta["scale"] = float(self.scale_)
        arrays = {
            name.rstrip("_"): np.asarray(getattr(self, name), dtype=np.float64)
            for name in ("coef_", "intercept_", "centroids_")
            if hasattr(self, name)
        }
        if hasattr(self, "logreg_"):
            meta["logreg"], lr_arrays = logistic_regression_state(self.logreg_)
            arrays.update(lr_arrays)
        elif hasattr(self, "n_iter_"):
            meta["n_iter"] = int(self.n_iter_)
        return meta, arrays

    @classmethod
    def _from_model_state(cls, params, meta, arrays, *, device="cpu"):
        """The fitted classifier saved by :meth:`_get_model_state`."""
        clf = cls(**params)
        clf.classes_ = labels_from_json(meta["classes"])
        m = clf.n_features_in_ = check_value(meta, "n_features_in", "int", low=1)
        n = len(clf.classes_)
        if n < 2:
            raise ValueError(f"a classifier needs 2 or more classes; got {n}.")
        for name in ("coef", "centroids"):
            if name in arrays:
                setattr(clf, name + "_", check_array(arrays, name, shape=(n, m)))
        if "intercept" in arrays:
            clf.intercept_ = check_array(arrays, "intercept", shape=(n,))
        if "scale" in meta:
            clf.scale_ = check_value(meta, "scale", "float", low=0)
        if "logreg" in meta:
            clf.logreg_ = logistic_regression_from_state(
                meta["logreg"], arrays, n_features=m
            )
            if clf.logreg_.classes_.tolist() != list(range(n)):
                raise ValueError(f"logreg classes must be 0..{n - 1}.")
            clf.n_iter_ = clf.logreg_.n_iter_
        elif "n_iter" in meta:
            clf.n_iter_ = check_value(meta, "n_iter", "int", low=0)
        try:
            clf._scores(np.zeros((1, m)))
        except AttributeError as exc:
            raise ValueError(f"incomplete state for {cls.__name__} ({exc}).") from None
        return clf

    def _validated_scores(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._scores(self._prepare(X))

    def decision_function(self, X):
        """Class scores; for two classes, the score of ``classes_[1]`` minus ``[0]``."""
        scores = self._validated_scores(X)
        return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

    def predict(self, X):
        """Highest-scoring class of every feature vector."""
        scores = self._validated_scores(X)
        return self.classes_[scores.argmax(1)]

    def novelty_score(self, X):
        """Novelty of every feature vector (higher: more novel): the distance to
        the nearest centroid for prototypes, else the energy of the scores."""
        if not hasattr(self, "centroids_"):
            return energy_score(self._validated_scores(X))
        check_is_fitted(self)
        Z = self._prepare(validate_data(self, X, dtype=np.float64, reset=False))
        return nearest_mahalanobis(Z, self.centroids_, np.ones(Z.shape[1]))


class _SGDHead(_SupportSetClassifier):
    """A softmax layer trained by SGD with momentum, as Chen et al. (2019) fine-tune.

    The update follows ``torch.optim.SGD``: weight decay is added to the
    gradient, the momentum buffer starts at the first gradient and is then
    ``momentum * buf + (1 - dampening) * grad``.
    """

    _parameter_constraints: dict = {
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "dampening": [Interval(Real, 0, 1, closed="both")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def _fit_head(self, X, y_idx, rng):
        n, m = X.shape
        n_classes = len(self.classes_)
        # torch.nn.Linear's default initialisation: U(-1/sqrt(m), 1/sqrt(m))
        bound = 1.0 / np.sqrt(m)
        params = self._init_params(rng.uniform(-bound, bound, (n_classes, m)), rng)
        onehot = np.eye(n_classes)[y_idx]
        buffers = [None] * len(params)
        for _ in range(self.max_epochs):
            order = rng.permutation(n)
            for start in range(0, n, self.batch_size):
                batch = order[start : start + self.batch_size]
                logits = self._logits(params, X[batch])
                # mean cross-entropy, as torch's CrossEntropyLoss
                d_logits = (softmax(logits, axis=1) - onehot[batch]) / len(batch)
                grads = self._backward(params, X[batch], d_logits)
                for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                    g = g + self.weight_decay * p
                    if buffers[i] is None:
                        buffers[i] = g.copy()
                    else:
                        buffers[i] *= self.momentum
                        buffers[i] += (1 - self.dampening) * g
                    p -= self.lr * buffers[i]
        self._store(params)
        self.n_iter_ = self.max_epochs * -(-n // self.batch_size)

    def predict_proba(self, X):
        """Softmax of the class scores, columns ordered as ``classes_``."""
        return softmax(self._validated_scores(X), axis=1)


@register_saveable
class BaselineClassifier(_SGDHead):
    """Chen et al.'s (2019) Baseline: a new linear softmax layer on frozen features.

    The layer (weights and bias) is trained from scratch on the support set with
    the fine-tuning recipe of the public CloserLookFewShot code: cross-entropy,
    SGD with learning rate 0.01, momentum 0.9, dampening 0.9, weight decay 1e-3,
    mini-batches of 4 and 100 passes over the support set. Features are used as
    given (no normalisation).

    Parameters
    ----------
    max_epochs : int, default=100
        Passes over the support set.
    batch_size : int, default=4
        Support samples per SGD step.
    lr : float, default=0.01
        Learning rate.
    momentum : float, default=0.9
    dampening : float, default=0.9
    weight_decay : float, default=1e-3
        L2 penalty added to the gradient of every parameter.
    random_state : int, RandomState or None, default=None
        Seeds the initial weights and the batch order.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (n_classes, n_features)
        Weights of the softmax layer.
    intercept_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    n_iter_ : int
        SGD steps taken.

    See Also
    --------
    BaselinePlusPlusClassifier : the cosine-similarity variant.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> clf = BaselineClassifier(random_state=0).fit(X, ["a", "a", "b", "b"])
    >>> clf.predict([[0.8, 0.0], [0.0, 0.7]]).tolist()
    ['a', 'b']
    """

    def __init__(
        self,
        *,
        max_epochs=100,
        batch_size=4,
        lr=0.01,
        momentum=0.9,
        dampening=0.9,
        weight_decay=1e-3,
        random_state=None,
    ):
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.weight_decay = weight_decay
        self.random_state = random_state

    def _init_params(self, weights, rng):
        bound = 1.0 / np.sqrt(weights.shape[1])
        return [weights, rng.uniform(-bound, bound, len(weights))]

    @staticmethod
    def _logits(params, X):
        W, b = params
        return X @ W.T + b

    @staticmethod
    def _backward(params, X, d_logits):
        return [d_logits.T @ X, d_logits.sum(0)]

    def _store(self, params):
        self.coef_, self.intercept_ = params

    def _scores(self, X):
        return X @ self.coef_.T + self.intercept_


@register_saveable
class BaselinePlusPlusClassifier(_SGDHead):
    """Chen et al.'s (2019) Baseline++: a cosine-similarity classifier.

    Scores are ``scale * <x / |x|, w_c>`` with ``w_c = g_c * v_c / |v_c|``: the
    class vectors are weight-normalised (``torch.nn.utils.weight_norm``, so
    ``g_c`` and ``v_c`` are both learned, ``g_c`` starting at ``|v_c|``) and
    there is no bias. Training uses the same SGD recipe as
    :class:`BaselineClassifier`. Features are L2-normalised (with 1e-5 added to
    the norm, as the reference code does).

    Parameters
    ----------
    scale : float or None, default=None
        Multiplies the cosine scores; ``None`` uses the reference choice, 2 for
        at most 200 classes and 10 above.
    max_epochs : int, default=100
    batch_size : int, default=4
    lr : float, default=0.01
    momentum : float, default=0.9
    dampening : float, default=0.9
    weight_decay : float, default=1e-3
    random_state : int, RandomState or None, default=None
        Seeds the initial weights and the batch order.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (n_classes, n_features)
        Effective class vectors ``g_c * v_c / |v_c|``.
    scale_ : float
        Scale used.
    n_features_in_ : int
    n_iter_ : int
        SGD steps taken.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [2.0, 0.2], [0.0, 1.0], [0.1, 3.0]])
    >>> clf = BaselinePlusPlusClassifier(random_state=0).fit(X, [0, 0, 1, 1])
    >>> clf.predict([[5.0, 0.1], [0.2, 0.4]]).tolist()
    [0, 1]
    """

    _parameter_constraints: dict = {
        **_SGDHead._parameter_constraints,
        "scale": [None, Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        scale=None,
        max_epochs=100,
        batch_size=4,
        lr=0.01,
        momentum=0.9,
        dampening=0.9,
        weight_decay=1e-3,
        random_state=None,
    ):
        self.scale = scale
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.weight_decay = weight_decay
        self.random_state = random_state

    def _prepare(self, X):
        return X / (np.linalg.norm(X, axis=1, keepdims=True) + 1e-5)

    def _init_params(self, weights, rng):
        self.scale_ = float(
            self.scale
            if self.scale is not None
            else (2.0 if len(self.classes_) <= 200 else 10.0)
        )
        return [weights, np.linalg.norm(weights, axis=1)]

    def _logits(self, params, X):
        v, g = params
        W = v * (g / np.linalg.norm(v, axis=1))[:, None]
        return self.scale_ * X @ W.T

    def _backward(self, params, X, d_logits):
        v, g = params
        v_norm = np.linalg.norm(v, axis=1)
        u = v / v_norm[:, None]
        dW = self.scale_ * d_logits.T @ X
        dW_along_u = (dW * u).sum(1)
        d_v = (g / v_norm)[:, None] * (dW - dW_along_u[:, None] * u)
        return [d_v, dW_along_u]

    def _store(self, params):
        v, g = params
        self.coef_ = v * (g / np.linalg.norm(v, axis=1))[:, None]

    def _scores(self, X):
        return self.scale_ * X @ self.coef_.T


@register_saveable
class PrototypeClassifier(_SupportSetClassifier):
    """Nearest class mean (prototype) in Euclidean distance.

    Parameters
    ----------
    tukey_lambda : float or None, default=None
        If given, features are Tukey-transformed first (they must be >= 0).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    centroids_ : ndarray of shape (n_classes, n_features)
        Class means (of the transformed features).
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [6.0, 5.0]])
    >>> PrototypeClassifier().fit(X, [0, 0, 1, 1]).predict([[4.0, 4.0]]).tolist()
    [1]
    """

    _parameter_constraints: dict = {
        "tukey_lambda": [None, TUKEY_LAMBDA],
    }

    def __init__(self, *, tukey_lambda=None):
        self.tukey_lambda = tukey_lambda

    def _prepare(self, X):
        if self.tukey_lambda is None:
            return X
        return tukey_transform(X, self.tukey_lambda)

    def _fit_head(self, X, y_idx, rng):
        self.centroids_ = class_means(X, y_idx, y_idx.max() + 1)

    def _scores(self, X):
        # -|x - c|^2 without the |x|^2 term, which is the same for every class
        return 2 * X @ self.centroids_.T - (self.centroids_**2).sum(1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = self.tukey_lambda is not None
        return tags


@register_saveable
class TukeyLogisticRegression(_SupportSetClassifier):
    """Logistic regression on Tukey-transformed support features, without calibration.

    This is distribution calibration minus the sampling step: it shows how much
    of FSCC's accuracy the calibrated samples add.

    Parameters
    ----------
    tukey_lambda : float, default=0.5
        Power of the Tukey transform (0 means log); features must be >= 0.
    C : float, default=1.0
        Inverse regularisation strength.
    max_iter : int, default=1000
    random_state : int, RandomState or None, default=None

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    logreg_ : LogisticRegression
        Fitted on the transformed features.
    n_features_in_ : int
    n_iter_ : ndarray of shape (1,)
        Iterations the solver ran.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[4.0, 0.0], [9.0, 1.0], [0.0, 4.0], [1.0, 9.0]])
    >>> clf = TukeyLogisticRegression().fit(X, ["a", "a", "b", "b"])
    >>> clf.predict([[16.0, 0.0]]).tolist()
    ['a']
    """

    _parameter_constraints: dict = {
        "tukey_lambda": [TUKEY_LAMBDA],
        "C": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, *, tukey_lambda=0.5, C=1.0, max_iter=1000, random_state=None):
        self.tukey_lambda = tukey_lambda
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def _prepare(self, X):
        return tukey_transform(X, self.tukey_lambda)

    def _fit_head(self, X, y_idx, rng):
        self.logreg_ = LogisticRegression(
            C=self.C, max_iter=self.max_iter, random_state=rng.randint(2**31 - 1)
        ).fit(X, y_idx)
        self.n_iter_ = self.logreg_.n_iter_

    def _scores(self, X):
        scores = self.logreg_.decision_function(X)
        return np.stack([-scores / 2, scores / 2], 1) if scores.ndim == 1 else scores

    def predict_proba(self, X):
        """Class probabilities, columns ordered as ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.logreg_.predict_proba(self._prepare(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # Tukey power needs v >= 0
        return tags
