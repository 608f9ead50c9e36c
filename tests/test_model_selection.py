import joblib
import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline

from fscc_sklearn import (
    CalibratedFewShotClassifier,
    adapt,
    evaluate_episodes,
    make_episodic_scorer,
    sample_episode,
)


def test_episode_support_and_query_are_disjoint_and_sized():
    y = np.repeat(np.arange(8), 25)
    for seed in range(20):
        s, q = sample_episode(y, n_way=5, k_shot=3, n_query=7, random_state=seed)
        assert len(s) == 15 and len(q) == 35
        assert not set(s) & set(q)
        assert len(set(y[s])) == 5 and set(y[s]) == set(y[q])
        assert np.bincount(y[q], minlength=8).max() == 7


def test_episodes_are_reproducible_and_uniform():
    y = np.repeat(np.arange(6), 20)
    a = sample_episode(y, 3, 1, 2, random_state=1)
    b = sample_episode(y, 3, 1, 2, random_state=1)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    class_hits = np.zeros(6)
    sample_hits = np.zeros(len(y))
    for seed in range(3000):
        s, q = sample_episode(y, 3, 1, 2, random_state=seed)
        class_hits[np.unique(y[s])] += 1
        sample_hits[s] += 1
    # each class in half the episodes, each sample support 1/40 of the time
    np.testing.assert_allclose(class_hits / 3000, 0.5, atol=0.04)
    assert sample_hits.min() > 0 and sample_hits.max() < 3000 / 40 * 1.6


def test_episode_needs_enough_classes_and_samples():
    y = np.repeat([0, 1, 2], [20, 20, 3])
    with pytest.raises(ValueError, match="needs 3 classes with >= 6 samples; only 2"):
        sample_episode(y, n_way=3, k_shot=1, n_query=5)


def test_adapt_freezes_embedder_and_predicts_novel_classes(fitted_pipeline, toy_data):
    _, _, X_novel, y_novel = toy_data
    rng = np.random.default_rng(0)
    support = np.concatenate(
        [
            rng.choice(np.flatnonzero(y_novel == c), 5, replace=False)
            for c in np.unique(y_novel)
        ]
    )
    query = np.setdiff1d(np.arange(len(y_novel)), support)
    weights = fitted_pipeline["embed"].module_.fc.weight.detach().clone()
    novel = adapt(fitted_pipeline, X_novel[support], y_novel[support])
    assert isinstance(novel["embed"], FrozenEstimator)
    assert novel["embed"].estimator is fitted_pipeline["embed"]
    assert (novel["embed"].estimator.module_.fc.weight == weights).all()
    assert novel["clf"].base is fitted_pipeline["clf"].base_statistics_
    assert set(novel.classes_) == set(np.unique(y_novel))
    accuracy = np.mean(novel.predict(X_novel[query]) == y_novel[query])
    assert accuracy > 0.6  # 4-way: chance is 0.25
    # the base pipeline still predicts base classes
    assert set(fitted_pipeline.predict(X_novel[:5])) <= set(range(6))


def test_evaluate_episodes_reports_ci_and_is_independent_of_n_jobs(
    fitted_pipeline, toy_data
):
    _, _, X_novel, y_novel = toy_data
    runs = [
        evaluate_episodes(
            fitted_pipeline,
            X_novel,
            y_novel,
            n_way=4,
            k_shot=1,
            n_query=5,
            n_episodes=8,
            random_state=3,
            n_jobs=n_jobs,
        )
        for n_jobs in (1, 2)
    ]
    np.testing.assert_array_equal(runs[0].accuracies, runs[1].accuracies)
    r = runs[0]
    assert r.mean == pytest.approx(r.accuracies.mean())
    assert r.ci95 == pytest.approx(1.96 * r.accuracies.std(ddof=1) / np.sqrt(8))
    assert r.mean > 0.4 and len(r.seeds) == 8


def test_features_and_pipeline_give_same_episodes(fitted_pipeline, toy_data):
    _, _, X_novel, y_novel = toy_data
    feats = fitted_pipeline["embed"].transform(X_novel)
    kw = dict(n_way=4, k_shot=2, n_query=5, n_episodes=4, random_state=0)
    a = evaluate_episodes(fitted_pipeline, X_novel, y_novel, **kw)
    b = evaluate_episodes(fitted_pipeline["clf"], feats, y_novel, **kw)
    np.testing.assert_array_equal(a.accuracies, b.accuracies)


def test_grid_search_over_lambda_and_k_with_class_disjoint_folds(
    toy_data, tiny_embedder, tmp_path
):
    X, y, _, _ = toy_data
    pipe = Pipeline(
        [
            ("embed", tiny_embedder(max_epochs=2, batch_size=24)),
            ("clf", CalibratedFewShotClassifier(random_state=0)),
        ],
        memory=str(tmp_path / "cache"),
    )
    search = GridSearchCV(
        pipe,
        {"embed__sup_con_weight": [0.0, 0.05], "clf__k": [1, 2]},
        cv=GroupKFold(n_splits=2),
        scoring=make_episodic_scorer(n_way=3, k_shot=1, n_query=5, n_episodes=5),
    )
    search.fit(X, y, groups=y)
    assert search.best_params_["clf__k"] in (1, 2)
    assert search.cv_results_["mean_test_score"].shape == (4,)
    assert np.all(search.cv_results_["mean_test_score"] > 1 / 3 - 0.1)
    # 2 lambdas x 2 folds + refit: the k sweep reused the cached embedders
    cached = list((tmp_path / "cache").rglob("output.pkl"))
    assert len(cached) == 5


def test_joblib_round_trip_of_base_and_adapted_pipelines(
    fitted_pipeline, toy_data, tmp_path
):
    _, _, X_novel, y_novel = toy_data
    support = np.concatenate(
        [np.flatnonzero(y_novel == c)[:2] for c in np.unique(y_novel)]
    )
    novel = adapt(fitted_pipeline, X_novel[support], y_novel[support])
    for name, model in (("base", fitted_pipeline), ("novel", novel)):
        path = tmp_path / f"{name}.joblib"
        joblib.dump(model, path)
        loaded = joblib.load(path)
        np.testing.assert_array_equal(
            loaded.predict_proba(X_novel), model.predict_proba(X_novel)
        )


def test_adapt_requires_fitted_model(toy_data):
    from sklearn.exceptions import NotFittedError

    _, _, X_novel, y_novel = toy_data
    with pytest.raises(NotFittedError):
        adapt(CalibratedFewShotClassifier(), np.ones((2, 3)), [0, 1])


def test_adapt_rejects_novel_class_without_samples(fitted_pipeline, toy_data):
    _, _, X_novel, _ = toy_data
    with pytest.raises(ValueError, match="no subtomograms"):
        adapt(fitted_pipeline, X_novel[:0], np.array([]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_way=0), "n_way must be >= 1; got 0"),
        (dict(k_shot=-1), "k_shot must be >= 1; got -1"),
        (dict(n_query=0), "n_query must be >= 1; got 0"),
        (dict(n_way=2.5), "n_way must be an integer; got 2.5"),
    ],
)
def test_sample_episode_rejects_bad_counts(kwargs, match):
    args = {"n_way": 2, "k_shot": 1, "n_query": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        sample_episode(np.repeat(np.arange(5), 6), random_state=0, **args)


def test_episode_inputs_are_checked():
    with pytest.raises(ValueError, match="1-dimensional"):
        sample_episode(np.zeros((6, 2)), 1, 1, 1)
    clf = CalibratedFewShotClassifier().fit(
        np.eye(4).repeat(2, 0), np.arange(4).repeat(2)
    )
    with pytest.raises(ValueError, match="n_episodes must be >= 1; got 0"):
        evaluate_episodes(clf, np.ones((8, 4)), np.arange(8), n_episodes=0)
    with pytest.raises(ValueError, match="X has 8 samples but y has 7"):
        evaluate_episodes(clf, np.ones((8, 4)), np.arange(7))


def _features_and_base(seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(10), 12)
    X = rng.gamma(2.0, size=(len(y), 5)) + 2.0 * (y[:, None] % 5 == np.arange(5))
    base = CalibratedFewShotClassifier(random_state=0).fit(X[y < 5], y[y < 5])
    return X[y >= 5], y[y >= 5], base


def test_evaluate_episodes_keeps_predictions_and_runs_given_episodes():
    X, y, base = _features_and_base()
    kw = dict(n_way=3, k_shot=2, n_query=4, n_episodes=5, random_state=1)
    sampled = evaluate_episodes(base, X, y, **kw, return_predictions=True)
    assert len(sampled.queries) == len(sampled.predictions) == 5
    for acc, query, pred in zip(
        sampled.accuracies, sampled.queries, sampled.predictions, strict=True
    ):
        assert len(query) == 12 and acc == np.mean(pred == y[query])
    assert evaluate_episodes(base, X, y, **kw).queries is None
    seeds = np.random.RandomState(1).randint(0, 2**31 - 1, size=5)
    given = [(*sample_episode(y, 3, 2, 4, random_state=s), s) for s in seeds]
    ticks = []

    class Bar:  # what a tqdm bar offers
        def update(self, n):
            ticks.append(n)

    again = evaluate_episodes(base, X, y, episodes=given, progress=Bar())
    np.testing.assert_array_equal(again.accuracies, sampled.accuracies)
    np.testing.assert_array_equal(again.seeds, seeds)
    assert ticks == [1] * 5
    with pytest.raises(ValueError, match="episodes holds no episode"):
        evaluate_episodes(base, X, y, episodes=[])


def test_one_standard_error_rule():
    from fscc_sklearn.model_selection import beats_by_one_standard_error

    assert beats_by_one_standard_error([0.1, 0.12, 0.09, 0.11])
    assert not beats_by_one_standard_error([0.3, -0.2, 0.25, -0.3])  # noise
    assert not beats_by_one_standard_error([-0.1, -0.1, -0.2])
