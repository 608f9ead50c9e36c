"""Hyper-parameters of the calibrated classifier chosen by episodes on base classes."""

from numbers import Integral

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.model_selection import ParameterGrid
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from .._validation import check_labels
from ..model_selection import beats_by_one_standard_error, evaluate_episodes
from ._base_episodes import pseudo_novel_episodes
from ._bayes import CalibratedFewShotClassifier
from ._paper import DistributionCalibrationClassifier
from ._statistics import BaseStatistics

# Set by the search itself, not searchable.
_RESERVED = ("base", "calibrate_proba", "random_state")
# Open-set options: the episodes score closed-set accuracy, which they keep.
_OPEN_SET = ("reject", "false_rejection", "unknown_label")
_METHODS = {
    "bayes": CalibratedFewShotClassifier,
    "paper": DistributionCalibrationClassifier,
}


def _default_grid(estimator_class=CalibratedFewShotClassifier):
    """Candidates of ``param_grid=None``, the classifier's defaults first.

    The grid is written for the Bayesian rule; other classes keep the
    parameters they have (``k`` and ``tukey_lambda``), each setting once.
    """
    defaults = CalibratedFewShotClassifier().get_params()
    first = {p: defaults[p] for p in ("k", "kappa", "shrinkage", "tukey_lambda")}
    grid = [first]
    for shrinkage in (1.0, 0.5):
        for k in (1, 2, 4):
            for kappa in ("auto", 1.0, 4.0):
                grid.append({**first, "k": k, "kappa": kappa, "shrinkage": shrinkage})
    # kappa=0 ignores the neighbours' means; with shrinkage=1 k does not matter
    grid.append({**first, "kappa": 0.0, "shrinkage": 1.0})
    grid += [{**first, "tukey_lambda": lam} for lam in (0.25, 1.0)]
    names = estimator_class().get_params()
    unique = []
    for params in grid:
        params = {p: v for p, v in params.items() if p in names}
        if params not in unique:
            unique.append(params)
    return unique


class CalibratedFewShotClassifierCV(ClassifierMixin, BaseEstimator):
    """Calibrated few-shot classifier with hyper-parameters chosen on base classes.

    ``fit(X, y)`` takes base-class features only. Each of ``n_splits`` random
    splits holds out ``n_way`` classes as pseudo-novel and keeps the rest as
    pseudo-base classes; ``n_episodes`` ``n_way``-way ``n_shot``-shot episodes
    of the pseudo-novel classes score every candidate of ``param_grid``
    (accuracy on the queries, the same episodes for every candidate). The
    candidate of highest mean accuracy is refitted on all base classes as
    ``best_estimator_``; with ``prefer_first`` (default), only if it beats the
    first candidate (the library defaults in the default grid) by more than
    one standard error of their paired per-split differences, since the
    winner of many noisy candidates overstates its gain. Features are fixed, so
    this costs only the closed-form fits of the candidates (``method="bayes"``).
    Every candidate runs on the same episodes through
    :func:`~fscc_sklearn.evaluate_episodes`.

    ``predict`` and friends classify base classes; for novel classes use
    :func:`~fscc_sklearn.adapt` (or ``few_shot_clone``), which transfer the
    best parameters and the base statistics.

    Parameters
    ----------
    param_grid : dict, list of dicts or None, default=None
        Parameters of the classifier (see ``method``) to try, as for
        ``GridSearchCV`` (``base``, ``calibrate_proba`` and ``random_state``
        excluded).
        ``None``: the classifier's defaults; ``k`` in {1, 2, 4} x ``kappa`` in
        {"auto", 1, 4} x ``shrinkage`` in {1, 0.5}; ``kappa=0`` (nearest
        prototype); ``tukey_lambda`` in {0.25, 1}: 21 candidates ("paper":
        the 5 settings of ``k`` and ``tukey_lambda`` among them).
    method : {"bayes", "paper"}, default="bayes"
        Classifier of every candidate: :class:`CalibratedFewShotClassifier`
        ("bayes") or :class:`DistributionCalibrationClassifier` ("paper",
        which samples and fits a logistic regression per episode, hundreds of
        times slower).
    n_shot : int, default=5
        Support examples per class in validation episodes: set it to the K of
        your few-shot task.
    n_way : int or "auto", default="auto"
        Pseudo-novel classes per split; "auto": ``min(5, n_classes - max k)``,
        so that every candidate has ``k`` pseudo-base classes.
    n_query : int, default=15
        Queries per class and episode, fewer for classes without
        ``n_shot + n_query`` samples.
    n_splits : int, default=10
        Random splits of the classes into pseudo-novel and pseudo-base.
    n_episodes : int, default=20
        Episodes per split.
    prefer_first : bool, default=True
        Keep the first candidate unless the best one beats it by more than one
        standard error (see above); False takes the plain argmax.
    n_jobs : int or None, default=None
        Splits run in parallel (joblib); results do not depend on it.
    random_state : int, RandomState or None, default=None
        Seeds the splits, the episodes and the classifiers.

    Attributes
    ----------
    best_params_ : dict
        Chosen candidate of ``param_grid`` (see ``prefer_first``).
    best_score_ : float
        Its mean episodic accuracy.
    best_index_ : int
        Its index in ``cv_results_``.
    cv_results_ : dict of ndarrays
        ``params``, ``param_<name>`` (masked where a candidate lacks it),
        ``split<i>_test_score`` (mean accuracy over the episodes of split i),
        ``mean_test_score``, ``std_test_score`` (over splits) and
        ``rank_test_score``, one entry per candidate.
    best_estimator_ : CalibratedFewShotClassifier or DistributionCalibrationClassifier
        Best candidate fitted on all base classes (``base=None``).
    base_statistics_ : BaseStatistics
        Base-class statistics of ``best_estimator_``.
    classes_ : ndarray of shape (n_classes,)
        Base classes.
    n_way_ : int
        Pseudo-novel classes per split.
    n_features_in_ : int
        Feature dimension.

    Examples
    --------
    >>> import numpy as np
    >>> from fscc_sklearn import adapt
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.uniform(0, 4, size=(10, 6))
    >>> y = np.repeat(np.arange(10), 20)
    >>> X = np.abs(centres[y] + rng.normal(scale=0.5, size=(200, 6)))
    >>> cv = CalibratedFewShotClassifierCV(
    ...     param_grid={"kappa": [0.0, "auto"]}, n_shot=1, n_splits=3,
    ...     n_episodes=5, random_state=0,
    ... ).fit(X[y < 7], y[y < 7])
    >>> cv.n_way_, len(cv.cv_results_["mean_test_score"])
    (5, 2)
    >>> few = adapt(cv, X[y >= 7][::20], y[y >= 7][::20])
    >>> few.classes_.tolist(), few.kappa == cv.best_params_["kappa"]
    ([7, 8, 9], True)
    """

    _parameter_constraints: dict = {
        "param_grid": [dict, list, None],
        "method": [StrOptions({"bayes", "paper"})],
        "n_shot": [Interval(Integral, 1, None, closed="left")],
        "n_way": [Interval(Integral, 2, None, closed="left"), StrOptions({"auto"})],
        "n_query": [Interval(Integral, 1, None, closed="left")],
        "n_splits": [Interval(Integral, 1, None, closed="left")],
        "n_episodes": [Interval(Integral, 1, None, closed="left")],
        "prefer_first": ["boolean"],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        param_grid=None,
        *,
        method="bayes",
        n_shot=5,
        n_way="auto",
        n_query=15,
        n_splits=10,
        n_episodes=20,
        prefer_first=True,
        n_jobs=None,
        random_state=None,
    ):
        self.param_grid = param_grid
        self.method = method
        self.n_shot = n_shot
        self.n_way = n_way
        self.n_query = n_query
        self.n_splits = n_splits
        self.n_episodes = n_episodes
        self.prefer_first = prefer_first
        self.n_jobs = n_jobs
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Score every candidate on episodes of base classes, refit the best."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_labels(y)
        if X.size and X.min() < 0:
            raise ValueError(
                f"Negative values in data passed to {type(self).__name__}: features "
                f"must be >= 0 for the Tukey transform (e.g. after a ReLU); got min "
                f"{X.min():.3g}."
            )
        grid = self._grid()
        candidates = self._candidates(grid)
        max_k = max(c.k for c in candidates)
        classes, y_idx, counts = np.unique(y, return_inverse=True, return_counts=True)
        self.n_way_ = self._check_classes(classes, counts, max_k)

        rng = check_random_state(self.random_state)
        seeds = rng.randint(np.iinfo(np.int32).max, size=self.n_splits + 1)
        episodes = dict(
            n_way=self.n_way_,
            n_shot=self.n_shot,
            n_query=self.n_query,
            n_episodes=self.n_episodes,
        )
        scores = Parallel(n_jobs=self.n_jobs)(
            delayed(_score_split)(X, y_idx, candidates, seed, **episodes)
            for seed in seeds[:-1]
        )
        scores = np.stack(scores, axis=1)
        self.cv_results_ = _results(grid, scores)
        self.best_index_ = _choose(scores, self.prefer_first)
        self.best_params_ = self.cv_results_["params"][self.best_index_]
        self.best_score_ = float(self.cv_results_["mean_test_score"][self.best_index_])

        best = _METHODS[self.method](**self.best_params_, random_state=int(seeds[-1]))
        self.best_estimator_ = best.fit(X, y)
        self.base_statistics_ = best.base_statistics_
        self.classes_ = best.classes_
        return self

    def _grid(self):
        estimator_class = _METHODS[self.method]
        if self.param_grid is None:
            return _default_grid(estimator_class)
        valid = sorted(set(estimator_class().get_params()) - {*_RESERVED, *_OPEN_SET})
        grids = (
            [self.param_grid] if isinstance(self.param_grid, dict) else self.param_grid
        )
        for grid in grids:
            if not isinstance(grid, dict):
                raise TypeError(
                    f"param_grid must be a dict or a list of dicts; got an element "
                    f"of type {type(grid).__name__}."
                )
            bad = sorted(set(grid) - set(valid))
            if bad:
                raise ValueError(
                    f"param_grid has invalid parameter(s) {bad} of "
                    f"{estimator_class.__name__}; valid: {valid}."
                )
        return list(ParameterGrid(self.param_grid))

    def _candidates(self, grid):
        """Unfitted classifiers of the grid, their parameters checked up front."""
        candidates = []
        for params in grid:
            clf = _METHODS[self.method](**params)
            clf._validate_params()  # nested validation is skipped in fit
            candidates.append(clf)
        if not candidates:
            raise ValueError("param_grid holds no candidate.")
        return candidates

    def _check_classes(self, classes, counts, max_k):
        n_classes = len(classes)
        if self.n_way == "auto":
            n_way = min(5, n_classes - max_k)
            if n_way < 2:
                raise ValueError(
                    f"{n_classes} base classes are too few for episodic validation: "
                    f"it needs n_way >= 2 pseudo-novel classes plus k={max_k} "
                    f"pseudo-base classes (the largest k of the candidates), so at "
                    f"least {max_k + 2} classes. Use a param_grid with smaller k."
                )
        else:
            n_way = self.n_way
            if n_classes < n_way + max_k:
                raise ValueError(
                    f"{n_classes} base classes are too few for n_way={n_way} "
                    f"pseudo-novel classes plus k={max_k} pseudo-base classes (the "
                    f"largest k of the candidates); need at least {n_way + max_k}."
                )
        small = np.flatnonzero(counts < self.n_shot + 1)
        if len(small):
            c = small[0]
            raise ValueError(
                f"Class '{classes[c]}' has {counts[c]} sample(s); validation "
                f"episodes need n_shot + 1 = {self.n_shot + 1} per class (n_shot "
                "support examples and at least one query)."
            )
        return n_way

    def predict(self, X):
        """Most probable base class of every feature vector."""
        X = self._validated(X)  # NotFittedError before best_estimator_
        return self.best_estimator_.predict(X)

    def predict_proba(self, X):
        """Base-class probabilities, columns ordered as ``classes_``."""
        X = self._validated(X)
        return self.best_estimator_.predict_proba(X)

    def decision_function(self, X):
        """Base-class scores of ``best_estimator_``."""
        X = self._validated(X)
        return self.best_estimator_.decision_function(X)

    def _validated(self, X):
        check_is_fitted(self)
        return validate_data(self, X, dtype=np.float64, reset=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # Tukey power needs v >= 0
        return tags


def _score_split(X, y_idx, candidates, seed, *, n_way, n_shot, n_query, n_episodes):
    """Mean episode accuracy of every candidate on one pseudo-novel/base split."""
    rng = np.random.RandomState(seed)
    novel = np.sort(rng.permutation(y_idx.max() + 1)[:n_way])
    is_base = ~np.isin(y_idx, novel)
    members = [np.flatnonzero(y_idx == c) for c in novel]
    episodes = list(pseudo_novel_episodes(members, n_shot, n_query, n_episodes, rng))
    acc = np.zeros(len(candidates))
    # small problems: BLAS threads cost more than they save
    with threadpool_limits(1):
        stats = {}
        for i, clf in enumerate(candidates):
            space = clf._stats_space
            if space not in stats:
                stats[space] = BaseStatistics.from_features(
                    X[is_base], y_idx[is_base], tukey_lambda=space
                )
            # scored by accuracy: no probability temperatures needed
            model = clone(clf).set_params(base=stats[space], calibrate_proba=None)
            acc[i] = evaluate_episodes(model, X, y_idx, episodes=episodes).mean
    return acc


def _choose(split_scores, prefer_first):
    """Index of the chosen candidate from scores of shape (n_candidates, n_splits)."""
    best = int(np.argmax(split_scores.mean(1)))
    if not prefer_first or best == 0 or split_scores.shape[1] < 2:
        return best
    clear = beats_by_one_standard_error(split_scores[best] - split_scores[0])
    return best if clear else 0


def _results(params, split_scores):
    """``GridSearchCV``-style results of scores of shape (n_candidates, n_splits)."""
    results = {"params": params}
    for name in sorted({key for p in params for key in p}):
        column = np.ma.masked_all(len(params), dtype=object)
        for i, p in enumerate(params):
            if name in p:
                column[i] = p[name]
        results[f"param_{name}"] = column
    for i, scores in enumerate(split_scores.T):
        results[f"split{i}_test_score"] = scores
    mean = split_scores.mean(1)
    results["mean_test_score"] = mean
    results["std_test_score"] = split_scores.std(1)
    results["rank_test_score"] = rankdata(-mean, method="min").astype(np.int32)
    return results
