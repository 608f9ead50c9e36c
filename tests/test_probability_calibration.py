"""Probabilities of few-shot fits: a softmax temperature from base-class episodes."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.extmath import softmax

from fscc_sklearn import (
    BaseStatistics,
    CalibratedFewShotClassifier,
    CalibratedFewShotClassifierCV,
    DistributionCalibrationClassifier,
    adapt,
    load_model,
    save_model,
    tukey_transform,
)
from fscc_sklearn.calibration._temperature import (
    fit_temperature,
    mean_log_loss,
    temperature_for_shots,
)
from fscc_sklearn.model_selection import few_shot_clone

PARAMS = {"bayes": {}, "paper": {"n_samples": 100, "random_state": 0}}
CLASSES = {
    "bayes": CalibratedFewShotClassifier,
    "paper": DistributionCalibrationClassifier,
}


def noisy_classes(n_classes=14, n_per_class=30, d=40, noise=2.0, seed=0):
    """Overlapping classes in 40 dimensions: few-shot scores are over-confident."""
    rng = np.random.default_rng(seed)
    centres = rng.gamma(2.0, size=(n_classes, d))
    y = np.repeat(np.arange(n_classes), n_per_class)
    return np.abs(centres[y] + rng.normal(scale=noise, size=(len(y), d))), y


@pytest.fixture(scope="module")
def data():
    X, y = noisy_classes()
    return X[y < 8], y[y < 8], X[y >= 8], y[y >= 8]


@pytest.fixture(scope="module", params=["bayes", "paper"])
def bases(request, data):
    """Base classifiers of one method, with and without calibrated probabilities."""
    X, y, _, _ = data
    method = request.param
    cls = CLASSES[method]
    on = cls(**PARAMS[method]).fit(X, y)
    off = cls(**PARAMS[method], calibrate_proba=None).fit(X, y)
    return on, off


def episodes(y, k_shot, n_episodes, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n_episodes):
        support = np.concatenate(
            [rng.choice(np.flatnonzero(y == c), k_shot, replace=False) for c in set(y)]
        )
        yield support, np.setdiff1d(np.arange(len(y)), support)


def test_base_fit_stores_temperatures_above_one_for_1_and_5_shots(bases):
    on, off = bases
    shots, temps = zip(*on.base_statistics_.proba_temperatures, strict=True)
    assert shots == (1, 5)
    assert all(np.isfinite(temps))
    assert temps[0] > 1.5  # scores of one noisy example are far too confident
    assert off.base_statistics_.proba_temperatures == ()
    assert on.temperature_ == off.temperature_ == 1.0  # base mode: the rule's own


@pytest.mark.parametrize("k_shot", [1, 5])
def test_temperature_lowers_novel_log_loss_and_keeps_every_prediction(
    bases, data, k_shot
):
    on, off = bases
    _, _, Xn, yn = data
    before, after = [], []
    for support, query in episodes(yn, k_shot, n_episodes=6):
        a = few_shot_clone(on).fit(Xn[support], yn[support])
        b = few_shot_clone(off).fit(Xn[support], yn[support])
        assert a.temperature_ == temperature_for_shots(
            on.base_statistics_.proba_temperatures, k_shot
        )
        assert b.temperature_ == 1.0
        np.testing.assert_array_equal(a.predict(Xn[query]), b.predict(Xn[query]))
        np.testing.assert_array_equal(
            a.decision_function(Xn[query]), b.decision_function(Xn[query])
        )
        proba = a.predict_proba(Xn[query])
        np.testing.assert_allclose(proba.sum(1), 1.0)
        np.testing.assert_array_equal(a.classes_[proba.argmax(1)], a.predict(Xn[query]))
        target = np.searchsorted(a.classes_, yn[query])
        before.append(
            -np.log(b.predict_proba(Xn[query])[np.arange(len(query)), target])
        )
        after.append(-np.log(proba[np.arange(len(query)), target]))
    before, after = np.concatenate(before).mean(), np.concatenate(after).mean()
    assert after < before
    if (
        isinstance(on, CalibratedFewShotClassifier) and k_shot == 1
    ):  # the rule's scores are far too sharp
        assert after < 0.8 * before


def test_none_keeps_the_scores_own_softmax_exactly(bases, data):
    _, off = bases
    _, _, Xn, yn = data
    support, query = next(episodes(yn, 2, 1))
    few = few_shot_clone(off).fit(Xn[support], yn[support])
    Z = tukey_transform(Xn[query], few.tukey_lambda)
    old = softmax(Z @ few.coef_.T + few.intercept_)  # the rule before calibration
    np.testing.assert_array_equal(few.predict_proba(Xn[query]), old)


def test_lbfgs_paper_recipe_is_calibrated_and_none_keeps_logreg_probabilities():
    X, y = noisy_classes(n_classes=6, d=10)
    X, y, Xn, yn = X[y < 4], y[y < 4], X[y >= 4], y[y >= 4]
    kw = dict(solver="lbfgs", n_samples=30, random_state=0)
    base = DistributionCalibrationClassifier(**kw).fit(X, y)
    support = np.array([np.flatnonzero(yn == c)[0] for c in (4, 5)])  # binary
    few = few_shot_clone(base).fit(Xn[support], yn[support])
    assert few.temperature_ != 1.0
    scores = few.decision_function(Xn)
    expected = 1 / (1 + np.exp(-scores / few.temperature_))
    np.testing.assert_allclose(few.predict_proba(Xn)[:, 1], expected)
    plain = few_shot_clone(base).set_params(calibrate_proba=None)
    plain.fit(Xn[support], yn[support])
    # only coef_ and intercept_ are kept of the regression: its own probabilities
    assert plain.temperature_ == 1.0 and not hasattr(plain, "logreg_")
    Z = tukey_transform(Xn, plain.tukey_lambda)
    logistic = 1 / (1 + np.exp(-(Z @ plain.coef_.T + plain.intercept_).ravel()))
    np.testing.assert_allclose(plain.predict_proba(Xn)[:, 1], logistic, rtol=1e-12)


def test_parameter_is_validated_cloned_and_transferred(bases):
    on, _ = bases
    assert on.get_params()["calibrate_proba"] == "base_episodes"
    assert clone(on.set_params(calibrate_proba=None)).calibrate_proba is None
    on.set_params(calibrate_proba="base_episodes")
    copy = few_shot_clone(on)
    assert copy.base is on.base_statistics_  # temperatures travel with the stats
    X, y = noisy_classes(n_classes=4)
    with pytest.raises(InvalidParameterError, match="calibrate_proba"):
        CalibratedFewShotClassifier(calibrate_proba="isotonic").fit(X, y)


def test_same_data_gives_the_same_temperatures_without_a_seed(data):
    X, y, _, _ = data
    a, b = (CalibratedFewShotClassifier().fit(X, y) for _ in range(2))
    assert (
        a.base_statistics_.proba_temperatures == b.base_statistics_.proba_temperatures
    )


def test_statistics_without_temperatures_warn_unless_calibration_is_off(data):
    X, y, Xn, yn = data
    stats = BaseStatistics.from_features(X, y, tukey_lambda=0.5)
    support = np.array([np.flatnonzero(yn == c)[0] for c in (8, 9, 10)])
    with pytest.warns(UserWarning, match="no probability temperatures"):
        few = CalibratedFewShotClassifier(base=stats).fit(Xn[support], yn[support])
    assert few.temperature_ == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CalibratedFewShotClassifier(base=stats, calibrate_proba=None).fit(
            Xn[support], yn[support]
        )


def test_too_few_base_classes_give_no_temperatures_and_three_are_enough():
    X, y = noisy_classes(n_classes=3)
    three = CalibratedFewShotClassifier().fit(X, y)
    assert [s for s, _ in three.base_statistics_.proba_temperatures] == [1, 5]
    two = CalibratedFewShotClassifier().fit(X[y < 2], y[y < 2])
    assert two.base_statistics_.proba_temperatures == ()


def test_shots_without_enough_base_samples_are_skipped():
    X, y = noisy_classes(n_classes=5, n_per_class=4)  # 5 shots need 6 per class
    clf = CalibratedFewShotClassifier().fit(X, y)
    assert [s for s, _ in clf.base_statistics_.proba_temperatures] == [1]


def test_cv_search_candidates_do_not_warn_and_its_best_estimator_is_calibrated(data):
    X, y, _, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cv = CalibratedFewShotClassifierCV(
            param_grid={"kappa": [0.0, "auto"]}, n_shot=1, n_splits=2, n_episodes=3,
            random_state=0,
        ).fit(X, y)  # fmt: skip
    assert len(cv.base_statistics_.proba_temperatures) == 2
    with pytest.raises(ValueError, match="invalid parameter"):
        CalibratedFewShotClassifierCV(param_grid={"calibrate_proba": [None]}).fit(X, y)


def test_interpolation_is_log_log_between_shots_and_flat_beyond():
    table = ((1, 8.0), (5, 2.0))
    assert temperature_for_shots(table, 1) == pytest.approx(8.0)
    assert temperature_for_shots(table, 5) == pytest.approx(2.0)
    assert temperature_for_shots(table, np.sqrt(5)) == pytest.approx(4.0)
    assert temperature_for_shots(table, 20) == pytest.approx(2.0)
    assert temperature_for_shots((), 3) == 1.0


def test_fit_temperature_recovers_the_temperature_that_generated_labels():
    rng = np.random.default_rng(0)
    scores = rng.normal(scale=6.0, size=(4000, 5))
    p = softmax(scores / 3.0)
    y = np.array([rng.choice(5, p=row) for row in p])
    T = fit_temperature(scores, y)
    assert T == pytest.approx(3.0, rel=0.1)
    assert mean_log_loss(scores, y, T) < mean_log_loss(scores, y, 1.0)
    assert fit_temperature(np.zeros((3, 4)), np.array([0, 1, 2])) == 1.0


def test_model_file_keeps_temperatures_and_adapted_temperature(
    fitted_pipeline, toy_data, tmp_path
):
    _, _, X_novel, y_novel = toy_data
    table = fitted_pipeline[-1].base_statistics_.proba_temperatures
    assert table
    base = load_model(save_model(fitted_pipeline, tmp_path / "base.safetensors"))
    assert base[-1].base_statistics_.proba_temperatures == table
    support = np.concatenate(
        [np.flatnonzero(y_novel == c)[:2] for c in np.unique(y_novel)]
    )
    novel = adapt(fitted_pipeline, X_novel[support], y_novel[support])
    again = adapt(base, X_novel[support], y_novel[support])
    assert again[-1].temperature_ == novel[-1].temperature_ != 1.0
    loaded = load_model(save_model(novel, tmp_path / "novel.safetensors"))
    assert loaded[-1].temperature_ == novel[-1].temperature_
    np.testing.assert_array_equal(
        loaded.predict_proba(X_novel), novel.predict_proba(X_novel)
    )


def test_model_file_with_damaged_temperatures_is_refused_and_old_files_load(
    fitted_pipeline, toy_data, tmp_path
):
    from test_persistence import _rewrite  # the shared model-file editor

    good = save_model(fitted_pipeline, tmp_path / "base.safetensors")

    def statistics(info):  # the base statistics' entry of the classifier step
        return info["model"]["steps"][-1]["meta"]["base_statistics"]["meta"]

    def damage(info):
        statistics(info)["proba_temperatures"] = [[1, -3.0]]

    _rewrite(good, tmp_path / "bad.safetensors", edit_info=damage)
    with pytest.raises(ValueError, match=r"temperatures \[\[1, -3.0\]\] are not"):
        load_model(tmp_path / "bad.safetensors")

    def older(info):  # a file written before temperatures existed
        del statistics(info)["proba_temperatures"]

    _rewrite(good, tmp_path / "old.safetensors", edit_info=older)
    old = load_model(tmp_path / "old.safetensors")
    assert old[-1].base_statistics_.proba_temperatures == ()
    _, _, X_novel, y_novel = toy_data
    support = np.concatenate(
        [np.flatnonzero(y_novel == c)[:1] for c in np.unique(y_novel)]
    )
    with pytest.warns(UserWarning, match="no probability temperatures"):
        adapt(old, X_novel[support], y_novel[support])
