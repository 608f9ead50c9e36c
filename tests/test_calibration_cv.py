import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from fscc_sklearn import (
    CalibratedFewShotClassifier,
    CalibratedFewShotClassifierCV,
    DistributionCalibrationClassifier,
    adapt,
)
from fscc_sklearn.calibration._cv import _default_grid
from fscc_sklearn.model_selection import few_shot_clone

FAST = dict(n_splits=4, n_episodes=10, random_state=0)


def make_classes(n_classes=10, n_per_class=20, d=8, scale=0.5, seed=0):
    """Well separated classes: every class is unlike every other."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 4, size=(n_classes, d))
    y = np.repeat(np.arange(n_classes), n_per_class)
    return np.abs(centres[y] + rng.normal(scale=scale, size=(len(y), d))), y


def make_twins(n_pairs=12, n_per_class=20, d=8, seed=0):
    """Pairs of classes with almost the same mean in heavy noise: a class's
    nearest other class tells where its mean is, better than one shot."""
    rng = np.random.default_rng(seed)
    centres = 10 + rng.uniform(0, 4, size=(n_pairs, d))
    offset = rng.normal(size=(n_pairs, d))
    offset *= 0.05 / np.linalg.norm(offset, axis=1, keepdims=True)
    centres = np.concatenate([centres + offset, centres - offset])
    y = np.repeat(np.arange(2 * n_pairs), n_per_class)
    return np.abs(centres[y] + rng.normal(scale=1.5, size=(len(y), d))), y


def make_anisotropic(n_classes=12, n_per_class=20, d=8, seed=0):
    """Noise shared by all classes, 13x larger in half of the features: the
    base-class covariance is the right metric, the identity is not."""
    rng = np.random.default_rng(seed)
    centres = 20 + rng.uniform(0, 3, size=(n_classes, d))
    sd = np.r_[np.full(d // 2, 0.3), np.full(d - d // 2, 4.0)]
    y = np.repeat(np.arange(n_classes), n_per_class)
    return np.abs(centres[y] + rng.normal(size=(len(y), d)) * sd), y


@pytest.mark.parametrize(
    ("make_data", "param_grid", "expected"),
    [
        (
            make_twins,
            # pooled radii narrow the gap this case is about
            {"k": [1], "kappa": [0.0, 1.0], "pool_radius_shots": [0]},
            {"k": 1, "kappa": 1.0, "pool_radius_shots": 0},
        ),
        (make_classes, {"k": [1], "kappa": [20.0, 0.0]}, {"k": 1, "kappa": 0.0}),
        (
            make_anisotropic,
            {"kappa": [0.0], "shrinkage": [1.0, 0.0]},
            {"kappa": 0.0, "shrinkage": 0.0},
        ),
    ],
    ids=["informative-base-means", "unrelated-base-means", "shared-covariance"],
)
def test_selects_the_setting_the_data_call_for(make_data, param_grid, expected):
    X, y = make_data()
    cv = CalibratedFewShotClassifierCV(param_grid, n_shot=1, **FAST).fit(X, y)
    assert cv.best_params_ == expected
    scores = cv.cv_results_["mean_test_score"]
    assert cv.best_index_ == np.argmax(scores)
    assert cv.best_params_ == cv.cv_results_["params"][np.argmax(scores)]
    assert cv.best_score_ == scores.max() > scores.min() + 0.03
    assert cv.best_estimator_.get_params() | expected == cv.best_estimator_.get_params()


def test_pseudo_novel_classes_are_left_out_of_the_base_statistics():
    # a prototype made of the nearest base mean only would be perfect if the
    # class itself were among the base classes
    X, y = make_classes()
    grid = {"k": [1], "kappa": [0.0, np.inf]}
    scores = CalibratedFewShotClassifierCV(grid, **FAST).fit(X, y).cv_results_
    assert scores["mean_test_score"][0] > 0.95
    assert scores["mean_test_score"][1] < 0.8


def test_cv_results_hold_every_split_and_rank_ties_first():
    X, y = make_classes(n_classes=7)
    grid = [{"kappa": [0.0], "k": [1, 2]}, {"kappa": [4.0]}]
    cv = CalibratedFewShotClassifierCV(grid, n_shot=3, **FAST).fit(X, y)
    r = cv.cv_results_
    assert cv.n_way_ == 5  # min(5, 7 - 2)
    assert r["params"] == [
        {"k": 1, "kappa": 0.0},
        {"k": 2, "kappa": 0.0},
        {"kappa": 4.0},
    ]
    splits = np.stack([r[f"split{i}_test_score"] for i in range(4)], axis=1)
    assert "split4_test_score" not in r
    np.testing.assert_allclose(r["mean_test_score"], splits.mean(1))
    np.testing.assert_allclose(r["std_test_score"], splits.std(1))
    # kappa=0 with the identity metric does not use k: equal scores, equal ranks
    np.testing.assert_array_equal(splits[0], splits[1])
    assert r["rank_test_score"][0] == r["rank_test_score"][1]
    assert r["rank_test_score"].tolist() == [1, 1, 3]  # unrelated base means hurt
    assert r["rank_test_score"].dtype == np.int32
    assert cv.best_index_ == 0 and cv.best_params_ == {"k": 1, "kappa": 0.0}
    assert r["param_k"].mask.tolist() == [False, False, True]
    assert r["param_kappa"].tolist() == [0.0, 0.0, 4.0]


def test_same_seed_and_any_n_jobs_give_the_same_results():
    X, y = make_classes(n_classes=8, scale=1.5)
    grid = {"k": [1, 2], "kappa": ["auto", 0.0]}
    runs = [
        CalibratedFewShotClassifierCV(grid, n_shot=1, n_jobs=n_jobs, **FAST)
        .fit(X, y)
        .cv_results_
        for n_jobs in (None, None, 2)
    ]
    for other in runs[1:]:
        assert other.keys() == runs[0].keys()
        assert other["params"] == runs[0]["params"]
        for key in runs[0]:
            if key.endswith("_score"):
                np.testing.assert_array_equal(other[key], runs[0][key])
    different = CalibratedFewShotClassifierCV(grid, n_shot=1, n_splits=4, n_episodes=10)
    scores = different.set_params(random_state=1).fit(X, y).cv_results_
    assert not np.array_equal(scores["split0_test_score"], runs[0]["split0_test_score"])


def test_estimator_contract_and_base_mode_prediction():
    cv = CalibratedFewShotClassifierCV({"k": [1, 2]}, n_shot=3, n_jobs=1, **FAST)
    params = cv.get_params()
    assert clone(cv).get_params() == params
    assert cv.set_params(n_shot=2) is cv and cv.n_shot == 2
    assert not [k for k in vars(cv) if k.endswith("_")]  # nothing learned yet
    X, y = make_classes()
    labels = np.array(list("abcdefghij"))[y]
    cv.fit(X, labels)
    learned = {k for k in vars(cv) if k.endswith("_") and not k.startswith("_")}
    assert learned == {
        "best_params_", "best_score_", "best_index_", "cv_results_",
        "best_estimator_", "base_statistics_", "classes_", "n_way_",
        "n_features_in_",
    }  # fmt: skip
    assert set(vars(cv)) - learned == set(params)
    assert cv.base_statistics_ is cv.best_estimator_.base_statistics_
    assert cv.classes_.tolist() == list("abcdefghij") and cv.n_features_in_ == 8
    assert cv.score(X, labels) > 0.95
    np.testing.assert_array_equal(
        cv.predict_proba(X), cv.best_estimator_.predict_proba(X)
    )
    np.testing.assert_array_equal(
        cv.classes_[cv.decision_function(X).argmax(1)], cv.predict(X)
    )


@pytest.mark.parametrize("pipeline", [False, True])
def test_adapt_transfers_best_params_and_base_statistics(pipeline):
    X, y = make_classes(n_classes=13)
    base, novel = y < 8, y >= 8
    cv = CalibratedFewShotClassifierCV({"k": [1, 3], "kappa": [0.0, 2.0]}, **FAST)
    model = Pipeline([("sqrt", FunctionTransformer(np.sqrt)), ("clf", cv)])
    model = model if pipeline else cv
    model.fit(X[base], y[base])
    rng = np.random.default_rng(0)
    support = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), 5, replace=False) for c in range(8, 13)]
    )
    few = adapt(model, X[support], y[support])
    clf = few["clf"] if pipeline else few
    assert type(clf) is CalibratedFewShotClassifier
    assert clf.get_params() | cv.best_params_ == clf.get_params()
    assert clf.base is cv.base_statistics_
    assert clf.classes_.tolist() == list(range(8, 13))
    query = np.setdiff1d(np.flatnonzero(novel), support)
    assert np.mean(few.predict(X[query]) == y[query]) > 0.9
    unfitted = few_shot_clone(cv)
    assert not hasattr(unfitted, "classes_") and unfitted.k == cv.best_params_["k"]


def test_few_shot_clone_of_an_unfitted_search_raises():
    with pytest.raises(NotFittedError):
        few_shot_clone(CalibratedFewShotClassifierCV())


def test_default_grid_starts_with_the_classifier_defaults():
    grid = _default_grid()
    defaults = CalibratedFewShotClassifier().get_params()
    assert all(defaults[name] == value for name, value in grid[0].items())
    assert len(grid) <= 24 and all(grid.count(p) == 1 for p in grid)
    X, y = make_classes(n_classes=6, n_per_class=8)
    cv = CalibratedFewShotClassifierCV(n_shot=2, n_splits=1, n_episodes=2).fit(X, y)
    assert cv.n_way_ == 2  # 6 classes, k up to 4
    assert cv.cv_results_["params"] == grid
    assert cv.base_statistics_.tukey_lambda == cv.best_params_["tukey_lambda"]


def test_each_tukey_lambda_and_the_paper_method_get_their_own_feature_space():
    X, y = make_classes(n_classes=7)
    cv = CalibratedFewShotClassifierCV({"tukey_lambda": [1.0, 0.5]}, **FAST)
    lam = cv.fit(X, y).best_params_["tukey_lambda"]
    assert cv.base_statistics_.tukey_lambda == lam
    paper = CalibratedFewShotClassifierCV(
        {"k": [1], "n_samples": [20]}, method="paper", n_shot=1, n_splits=1,
        n_episodes=2, random_state=0,
    ).fit(X, y)  # fmt: skip
    assert paper.base_statistics_.tukey_lambda is None
    assert isinstance(paper.best_estimator_, DistributionCalibrationClassifier)
    assert paper.best_score_ > 0.8


def test_queries_are_capped_by_the_samples_a_class_has():
    X, y = make_classes(n_classes=7, n_per_class=20)
    keep = np.r_[np.flatnonzero(y != 3), np.flatnonzero(y == 3)[:2]]
    cv = CalibratedFewShotClassifierCV({"k": [1]}, n_shot=1, n_query=30, **FAST)
    assert cv.fit(X[keep], y[keep]).best_score_ > 0.8


@pytest.mark.parametrize(
    ("params", "data", "error", "match"),
    [
        (
            {"param_grid": {"k": [1, 4]}},
            {"n_classes": 5},
            ValueError,
            r"5 base classes are too few .* plus k=4 .* at least 6 classes",
        ),
        (
            {"param_grid": {"k": [2]}, "n_way": 4},
            {"n_classes": 5},
            ValueError,
            r"too few for n_way=4 .* plus k=2 .*; need at least 6",
        ),
        (
            {"param_grid": {"k": [1]}, "n_shot": 5},
            {"n_classes": 6, "small_class": 5},
            ValueError,
            r"Class '2' has 5 sample\(s\); .* n_shot \+ 1 = 6",
        ),
        (
            {"param_grid": {"k": [1], "lambda": [0.5]}},
            {},
            ValueError,
            r"invalid parameter\(s\) \['lambda'\] of CalibratedFewShotClassifier; "
            r"valid: \['k', 'kappa', 'pool_radius_shots', 'shrinkage', 'support_",
        ),
        (
            {"param_grid": {"method": ["paper"]}},
            {},
            ValueError,
            r"invalid parameter\(s\) \['method'\]",
        ),
        (
            {"param_grid": [{"k": [1]}, "k"]},
            {},
            TypeError,
            "a dict or a list of dicts; got an element of type str",
        ),
        ({"param_grid": {"k": [0]}}, {}, ValueError, "'k' parameter"),
        ({"param_grid": []}, {}, ValueError, "no candidate"),
        ({"n_way": 1}, {}, ValueError, "'n_way' parameter"),
        ({}, {"nan": True}, ValueError, "NaN"),
        ({}, {"negative": True}, ValueError, "must be >= 0 .* got min -1"),
    ],
)
def test_bad_input_is_named(params, data, error, match):
    n_classes = data.get("n_classes", 8)
    X, y = make_classes(n_classes=n_classes, n_per_class=10)
    if "small_class" in data:
        keep = (y != 2) | (np.cumsum(y == 2) <= data["small_class"])
        X, y = X[keep], y[keep]
    if data.get("nan"):
        X[3, 1] = np.nan
    if data.get("negative"):
        X[3, 1] = -1.0
    with pytest.raises(error, match=match):
        CalibratedFewShotClassifierCV(**params, n_splits=1, n_episodes=1).fit(X, y)


def test_joblib_round_trip(tmp_path):
    X, y = make_classes()
    cv = CalibratedFewShotClassifierCV({"kappa": [0.0, "auto"]}, **FAST).fit(X, y)
    joblib.dump(cv, tmp_path / "cv.joblib")
    loaded = joblib.load(tmp_path / "cv.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), cv.predict_proba(X))
    assert loaded.best_params_ == cv.best_params_
    support = np.flatnonzero(y < 3)[::7]
    np.testing.assert_array_equal(
        adapt(loaded, X[support], y[support]).predict_proba(X),
        adapt(cv, X[support], y[support]).predict_proba(X),
    )


def test_first_candidate_kept_unless_clearly_beaten():
    from fscc_sklearn.calibration._cv import _choose

    first = np.array([0.60, 0.70, 0.50, 0.65])
    noisy = first + np.array([0.04, -0.03, 0.03, -0.02])  # +0.005 mean, SE 0.017
    clear = first + np.array([0.03, 0.02, 0.04, 0.03])
    scores = np.stack([first, noisy])
    assert _choose(scores, prefer_first=True) == 0
    assert _choose(scores, prefer_first=False) == 1
    assert _choose(np.stack([first, noisy, clear]), prefer_first=True) == 2


def test_fit_leaves_get_params_unchanged():
    X, y = make_classes(n_classes=7)
    cv = CalibratedFewShotClassifierCV({"k": [1, 2]}, **FAST)
    before = cv.get_params()
    cv.fit(X, y)
    after = cv.get_params()
    assert before.keys() == after.keys()
    assert all(after[name] is value for name, value in before.items())
