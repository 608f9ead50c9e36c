"""Few-shot adaptation, N-way K-shot episodes and an episodic scorer."""

import numbers
from dataclasses import dataclass

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted


def few_shot_clone(classifier):
    """An unfitted copy of ``classifier`` that will transfer its base statistics.

    Classifiers with a ``base`` parameter (such as
    :class:`CalibratedFewShotClassifier`) get ``base`` set to the fitted
    classifier's ``base_statistics_``; an unfitted one whose ``base`` is
    already given is simply cloned, as are classifiers without ``base``.
    Searches with a ``param_grid`` (such as
    :class:`CalibratedFewShotClassifierCV`) give the few-shot clone of their
    ``best_estimator_``: the best parameters, with base statistics.
    """
    params = classifier.get_params(deep=False)
    if "param_grid" in params:
        check_is_fitted(classifier, "best_estimator_")
        return few_shot_clone(classifier.best_estimator_)
    new = clone(classifier)
    if "base" in params:
        if hasattr(classifier, "base_statistics_"):
            new.set_params(base=classifier.base_statistics_)
        elif params["base"] is None:
            check_is_fitted(classifier, "base_statistics_")  # raises NotFittedError
    return new


def adapt(estimator, X, y):
    """Adapt a fitted model to novel classes from a few labelled examples.

    Parameters
    ----------
    estimator : Pipeline or classifier
        Fitted on the base classes; for a Pipeline, every step but the last is
        frozen (``FrozenEstimator``) and the last one is re-fitted few-shot.
    X : array-like
        Support set, in the input space of ``estimator``.
    y : array-like of shape (n_support,)
        Labels of the novel classes.

    Returns
    -------
    Pipeline or classifier
        A new fitted model; ``estimator`` is left unchanged.
    """
    check_is_fitted(estimator)
    if not isinstance(estimator, Pipeline):
        return few_shot_clone(estimator).fit(X, y)
    *head, (name, last) = estimator.steps
    steps = [(n, freeze(step)) for n, step in head]
    return Pipeline([*steps, (name, few_shot_clone(last))]).fit(X, y)


def freeze(estimator):
    """``estimator`` in a ``FrozenEstimator``, unless it already is one."""
    if isinstance(estimator, FrozenEstimator):
        return estimator
    return FrozenEstimator(estimator)


def unfreeze(estimator):
    """``estimator`` without its ``FrozenEstimator`` wrappers (the opposite of
    :func:`freeze`).

    A ``Pipeline`` gives a new pipeline of its unwrapped steps (to fit or adapt
    again); any other estimator gives the one inside all wrappers.
    """
    if isinstance(estimator, Pipeline):
        return Pipeline([(name, unfreeze(step)) for name, step in estimator.steps])
    while isinstance(estimator, FrozenEstimator):
        estimator = estimator.estimator
    return estimator


def _check_count(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}.")


def _check_labels(y, n_samples=None):
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-dimensional (n_samples,); got shape {y.shape}.")
    if n_samples is not None and len(y) != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {len(y)}.")
    return y


def sample_episode(y, n_way, k_shot, n_query, random_state=None):
    """Indices of the support and query sets of one N-way K-shot episode.

    ``n_way`` classes are drawn uniformly among those with at least
    ``k_shot + n_query`` samples, then ``k_shot + n_query`` distinct samples of
    each, so no support sample is ever a query.

    Returns
    -------
    support, query : ndarray of int
        ``n_way * k_shot`` and ``n_way * n_query`` indices into ``y``.
    """
    rng = check_random_state(random_state)
    y = _check_labels(y)
    _check_count(n_way, "n_way", minimum=1)
    _check_count(k_shot, "k_shot", minimum=1)
    _check_count(n_query, "n_query", minimum=1)
    classes, counts = np.unique(y, return_counts=True)
    eligible = classes[counts >= k_shot + n_query]
    if len(eligible) < n_way:
        raise ValueError(
            f"A {n_way}-way {k_shot}-shot episode with {n_query} queries needs "
            f"{n_way} classes with >= {k_shot + n_query} samples; only "
            f"{len(eligible)} of {len(classes)} classes have that many."
        )
    support, query = [], []
    for c in rng.choice(eligible, size=n_way, replace=False):
        picked = rng.choice(
            np.flatnonzero(y == c), size=k_shot + n_query, replace=False
        )
        support.append(picked[:k_shot])
        query.append(picked[k_shot:])
    return np.concatenate(support), np.concatenate(query)


@dataclass
class EpisodeResult:
    """Outcome of an episodic evaluation.

    Attributes
    ----------
    mean : float
        Mean accuracy over episodes.
    ci95 : float
        Half-width of the 95% confidence interval, ``1.96 * std / sqrt(n)``.
    accuracies : ndarray of shape (n_episodes,)
    seeds : ndarray of shape (n_episodes,)
        Seed of every episode (sampling and classifier).
    queries : list of ndarray or None
        Query indices into ``X`` of every episode (``return_predictions``).
    predictions : list of ndarray or None
        Predicted labels of those queries (``return_predictions``).
    """

    mean: float
    ci95: float
    accuracies: np.ndarray
    seeds: np.ndarray
    queries: list | None = None
    predictions: list | None = None


def _split_features(estimator, X):
    """Features of ``X`` under the frozen part of ``estimator``, and its classifier."""
    if isinstance(estimator, Pipeline):
        return estimator[:-1].transform(X), estimator[-1]
    return X, estimator


def _run_episode(classifier, F, y, support, query, seed):
    """Predictions for the queries of a few-shot copy of ``classifier`` fitted
    on the support (seeded with ``seed`` where it takes a ``random_state``)."""
    model = few_shot_clone(classifier)
    if "random_state" in model.get_params(deep=False):
        model.set_params(random_state=seed)
    model.fit(F[support], y[support])
    return query, model.predict(F[query])


def _sampled_episodes(y, seeds, n_way, k_shot, n_query):
    for seed in seeds:
        support, query = sample_episode(y, n_way, k_shot, n_query, random_state=seed)
        yield support, query, seed


def evaluate_episodes(
    estimator,
    X,
    y,
    *,
    n_way=5,
    k_shot=1,
    n_query=15,
    n_episodes=100,
    random_state=None,
    n_jobs=None,
    episodes=None,
    return_predictions=False,
    progress=None,
):
    """N-way K-shot episodic accuracy of a model fitted on base classes.

    ``X`` is embedded once by the frozen steps of a Pipeline; every episode then
    fits a few-shot copy of the final classifier on its support set and scores
    it on its queries. Episodes are seeded individually, so the result does not
    depend on ``n_jobs``.

    Parameters
    ----------
    estimator : Pipeline or classifier
        Fitted on the base classes, or a classifier whose ``base`` is given.
    X : array-like
        Samples of the novel classes, in the input space of ``estimator``.
    y : array-like of shape (n_samples,)
        Their labels.
    n_way, k_shot, n_query : int, default=5, 1, 15
        Classes, support samples per class and queries per class of an
        episode (:func:`sample_episode`).
    n_episodes : int, default=100
    random_state : int, RandomState or None, default=None
        Draws one seed per episode.
    n_jobs : int or None, default=None
        Episodes run in parallel (joblib).
    episodes : iterable of (support, query, seed), optional
        Episodes to run instead of sampling them (index arrays into ``X`` and
        the classifier's seed), e.g. the same episodes for several
        classifiers; ``n_way``, ``k_shot``, ``n_query``, ``n_episodes`` and
        ``random_state`` are then unused.
    return_predictions : bool, default=False
        Also keep every episode's query indices and predictions.
    progress : object with an ``update(n)`` method, optional
        Called with 1 after every episode (e.g. a tqdm bar).

    Returns
    -------
    EpisodeResult
    """
    y = _check_labels(y, n_samples=len(X))
    if episodes is None:
        _check_count(n_episodes, "n_episodes", minimum=1)
        rng = check_random_state(random_state)
        seeds = rng.randint(0, 2**31 - 1, size=n_episodes)
        episodes = _sampled_episodes(y, seeds, n_way, k_shot, n_query)
    else:
        episodes = list(episodes)
        if not episodes:
            raise ValueError("episodes holds no episode; pass at least one.")
        seeds = np.array([seed for _, _, seed in episodes])
    F, classifier = _split_features(estimator, X)
    runs = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_run_episode)(classifier, F, y, support, query, seed)
        for support, query, seed in episodes
    )
    accs, queries, predictions = [], [], []
    for query, pred in runs:
        accs.append(float(np.mean(pred == y[query])))
        if return_predictions:
            queries.append(query)
            predictions.append(pred)
        if progress is not None:
            progress.update(1)
    accs = np.asarray(accs)
    ci95 = 1.96 * accs.std(ddof=1) / np.sqrt(len(accs)) if len(accs) > 1 else np.nan
    return EpisodeResult(
        float(accs.mean()),
        float(ci95),
        accs,
        seeds,
        queries if return_predictions else None,
        predictions if return_predictions else None,
    )


def beats_by_one_standard_error(differences) -> bool:
    """Whether paired differences (candidate minus reference, at least 2) have
    a mean above one standard error of the mean.

    The rule keeps a reference (defaults, a prior) unless a candidate clearly
    beats it: the winner of many noisy candidates overstates its gain.
    """
    d = np.asarray(differences, dtype=float)
    return bool(d.mean() > d.std(ddof=1) / np.sqrt(len(d)))


def _check_fold_classes(y, n_way, per_class):
    """Refuse a test fold with too few classes for one episode, naming its count.

    ``GridSearchCV`` turns a scorer's error into a NaN score (with a warning
    that quotes this message), or raises it with ``error_score="raise"``.
    """
    classes, counts = np.unique(_check_labels(y), return_counts=True)
    usable = int(np.sum(counts >= per_class))
    if usable < n_way:
        raise ValueError(
            f"The test fold holds {len(classes)} classes ({usable} with >= "
            f"{per_class} samples); a {n_way}-way episodic score needs {n_way}. "
            "Use fewer folds (e.g. GroupKFold(n_splits=2)) or a smaller n_way."
        )


def make_episodic_scorer(n_way=5, k_shot=1, n_query=15, n_episodes=100, random_state=0):
    """A scorer ``(estimator, X, y) -> mean episodic accuracy`` for ``GridSearchCV``.

    Use it with a class-disjoint split (e.g. ``GroupKFold`` with ``groups=y``) so
    each test fold holds classes the estimator never saw, as novel classes are.
    A test fold with fewer than ``n_way`` classes (of ``k_shot + n_query``
    samples each) raises a ValueError naming its class count; pass
    ``error_score="raise"`` to ``GridSearchCV`` to stop there instead of
    scoring that candidate NaN.
    """

    def episodic_accuracy(estimator, X, y):
        _check_fold_classes(y, n_way, k_shot + n_query)
        return evaluate_episodes(
            estimator,
            X,
            y,
            n_way=n_way,
            k_shot=k_shot,
            n_query=n_query,
            n_episodes=n_episodes,
            random_state=random_state,
        ).mean

    return episodic_accuracy
