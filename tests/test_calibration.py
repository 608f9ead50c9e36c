import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from fscc_sklearn import BaseStatistics, CalibratedFewShotClassifier, tukey_transform
from fscc_sklearn._calibration import calibrated_training_set

EXPECTED_FAILED = {
    "check_decision_proba_consistency": (
        "feeds negative test data although the positive_only tag is set; the Tukey "
        "transform rejects negative features"
    ),
}


@parametrize_with_checks(
    [CalibratedFewShotClassifier(n_samples=20)],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_api(estimator, check):
    check(estimator)


def make_base(n_classes=4, n_per_class=30, d=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 4, size=(n_classes, d))
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = np.abs(centres[y] + rng.normal(scale=0.3, size=(len(y), d)))
    return X, y


def test_base_mode_stores_unbiased_statistics_and_predicts_base_classes():
    X, y = make_base()
    clf = CalibratedFewShotClassifier(random_state=0).fit(X, y)
    stats = clf.base_statistics_
    np.testing.assert_allclose(stats.means[2], X[y == 2].mean(0))
    np.testing.assert_allclose(stats.covariances[1], np.cov(X[y == 1].T, ddof=1))
    assert stats.counts.tolist() == [30] * 4
    assert clf.score(X, y) > 0.95


def test_few_shot_fit_classifies_novel_classes_with_one_shot():
    X, y = make_base(n_classes=9, seed=1)
    base = CalibratedFewShotClassifier(random_state=0).fit(X[y < 5], y[y < 5])
    novel = y >= 5
    Xn, yn = X[novel], y[novel]
    support = np.array([np.flatnonzero(yn == c)[0] for c in range(5, 9)])
    clf = CalibratedFewShotClassifier(base=base, n_samples=200, random_state=0)
    clf.fit(Xn[support], yn[support])
    assert clf.classes_.tolist() == [5, 6, 7, 8]
    assert clf.score(Xn, yn) > 0.8
    proba = clf.predict_proba(Xn)
    np.testing.assert_allclose(proba.sum(1), 1)


def test_draws_n_samples_per_class_and_calibrated_means():
    X, y = make_base(d=3)
    base = CalibratedFewShotClassifier().fit(X, y)
    stats = base.base_statistics_
    v = np.sqrt([1.0, 2.0, 3.0])
    X_train, y_train = calibrated_training_set(
        v[None], np.array([7]), stats, k=2, alpha=0.0, n_samples=9000,
        rng=np.random.RandomState(0))
    assert len(X_train) == 9001 and set(y_train) == {7}
    nearest = np.argsort(((stats.means - v) ** 2).sum(1))[:2]
    expected_mean = (stats.means[nearest].sum(0) + v) / 3
    np.testing.assert_allclose(X_train[1:].mean(0), expected_mean, atol=0.05)
    np.testing.assert_allclose(np.cov(X_train[1:].T),
                               stats.covariances[nearest].mean(0), atol=0.05)


def test_alpha_is_added_to_every_covariance_entry():
    X, y = make_base(d=3)
    stats = CalibratedFewShotClassifier().fit(X, y).base_statistics_
    f0 = stats.sampling_factor((0, 1), 0.0)
    f1 = stats.sampling_factor((1, 0), 0.5)
    np.testing.assert_allclose(f1 @ f1.T - f0 @ f0.T, np.full((3, 3), 0.5), atol=1e-4)
    assert stats.sampling_factor((1, 0), 0.0) is f0  # memoised per neighbour set


def test_rank_deficient_base_covariances_stay_finite():
    rng = np.random.default_rng(0)
    X = rng.gamma(1.0, size=(12, 40))  # 3 samples per class, 40 dimensions
    y = np.repeat(np.arange(4), 3)
    base = CalibratedFewShotClassifier(alpha=0.0).fit(X, y)
    clf = CalibratedFewShotClassifier(base=base, alpha=0.0, n_samples=50, random_state=0)
    clf.fit(rng.gamma(1.0, size=(2, 40)), ["a", "b"])
    assert np.isfinite(clf.logreg_.coef_).all()
    zero = CalibratedFewShotClassifier(alpha=0.0).fit(np.zeros((6, 5)), [0, 0, 1, 1, 2, 2])
    few = CalibratedFewShotClassifier(base=zero, alpha=0.0, n_samples=10, random_state=0)
    assert np.isfinite(few.fit(np.zeros((2, 5)), [0, 1]).predict_proba(np.ones((1, 5)))).all()


def test_same_seed_same_predictions():
    X, y = make_base(n_classes=8)
    base = CalibratedFewShotClassifier().fit(X[y < 4], y[y < 4])
    Xs, ys = X[y >= 4][::10], y[y >= 4][::10]
    fits = [CalibratedFewShotClassifier(base=base, random_state=s).fit(Xs, ys)
            for s in (3, 3, 4)]
    p = [f.predict_proba(X) for f in fits]
    np.testing.assert_array_equal(p[0], p[1])
    assert not np.array_equal(p[0], p[2])


def test_clone_shares_base_statistics():
    X, y = make_base()
    base = CalibratedFewShotClassifier().fit(X, y)
    clf = CalibratedFewShotClassifier(base=base.base_statistics_, k=1)
    assert clone(clf).base is base.base_statistics_


def test_tukey_transform_log_and_power():
    X = np.array([[0.0, 1.0, 4.0]])
    np.testing.assert_allclose(tukey_transform(X, 0.5), [[0, 1, 2]])
    logged = tukey_transform(X, 0.0)
    assert np.isfinite(logged).all() and logged[0, 2] == pytest.approx(np.log(4))


@pytest.mark.parametrize(
    ("make_call", "error", "match"),
    [
        (lambda b: CalibratedFewShotClassifier(base=b).fit(np.ones((2, 5)), [0, 1]),
         ValueError, "Support features have 5 dimensions; the base statistics have 6"),
        (lambda b: CalibratedFewShotClassifier(base=b, k=5).fit(np.ones((2, 6)), [0, 1]),
         ValueError, "k=5 exceeds the number of base classes \\(4\\)"),
        (lambda b: CalibratedFewShotClassifier(base=b).fit(-np.ones((2, 6)), [0, 1]),
         ValueError, "Negative values"),
        (lambda b: CalibratedFewShotClassifier(base=b).fit(np.full((2, 6), np.nan), [0, 1]),
         ValueError, "NaN"),
        (lambda b: CalibratedFewShotClassifier(base=b).fit(np.ones((0, 6)), []),
         ValueError, "0 sample"),
        (lambda b: CalibratedFewShotClassifier(base=CalibratedFewShotClassifier()).fit(
            np.ones((2, 6)), [0, 1]), ValueError, "unfitted"),
        (lambda b: CalibratedFewShotClassifier(base="stats").fit(np.ones((2, 6)), [0, 1]),
         TypeError, "base must be None, a BaseStatistics"),
        (lambda b: CalibratedFewShotClassifier().fit(np.ones((3, 6)), [0, 0, 1]),
         ValueError, "class '1' has only 1 sample"),
    ],
)
def test_bad_input_is_named(make_call, error, match):
    X, y = make_base()
    base = CalibratedFewShotClassifier().fit(X, y)
    with pytest.raises(error, match=match):
        make_call(base)


def test_predict_before_fit_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        CalibratedFewShotClassifier().predict(np.ones((1, 3)))


def test_base_statistics_from_features_requires_two_per_class():
    with pytest.raises(ValueError, match="at least 2 samples per class"):
        BaseStatistics.from_features(np.ones((3, 2)), np.array([0, 1, 1]))
