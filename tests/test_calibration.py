import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from fscc_sklearn import (
    BaseStatistics,
    CalibratedFewShotClassifier,
    DistributionCalibrationClassifier,
    tukey_transform,
)
from fscc_sklearn.calibration._bayes import bayes_gaussian_parameters
from fscc_sklearn.calibration._paper import calibrated_training_set
from fscc_sklearn.calibration._statistics import oas_shrinkage

EXPECTED_FAILED = {
    "check_decision_proba_consistency": (
        "feeds negative test data although the positive_only tag is set; the Tukey "
        "transform rejects negative features"
    ),
}


@parametrize_with_checks(
    [
        CalibratedFewShotClassifier(),
        DistributionCalibrationClassifier(n_samples=20),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED,
)
def test_sklearn_api(estimator, check):
    check(estimator)


def few_shot(cls, n_features, **params):
    """``cls`` in few-shot mode: ``base`` holds statistics of 4 base classes."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10)
    X = rng.gamma(2.0, size=(40, n_features)) + y[:, None]
    return cls(base=cls(**params).fit(X, y).base_statistics_, **params)


# A few-shot fit takes features of the base statistics' dimension only, so a
# check that fits other shapes cannot apply; each check runs on an instance
# whose statistics have its data's dimension (2 or 3) where one exists.
_FITS_3 = (
    "check_fit_score_takes_y check_dont_overwrite_parameters "
    "check_pipeline_consistency check_estimators_nan_inf check_estimators_pickle "
    "check_f_contiguous_array_estimator check_supervised_y_2d "
    "check_methods_sample_order_invariance check_methods_subset_invariance "
    "check_dict_unchanged check_fit2d_predict1d"
).split()
_FITS_2 = (
    "check_estimators_overwrite_params check_estimators_fit_returns_self "
    "check_readonly_memmap_input check_classifier_data_not_an_array "
    "check_classifiers_classes check_classifiers_train check_fit_idempotent "
    "check_fit_check_is_fitted check_n_features_in"
).split()
_FITS_OTHER = {
    "check_n_features_in_after_fitting": 4,
    "check_estimators_dtypes": 5,
    "check_dtype_object": 10,
}


def _few_shot_expected_failures(estimator):
    d = estimator.base.n_features
    other = dict(_FITS_OTHER)
    if "max_iter" in estimator.get_params():  # the check runs only then
        other["check_non_transformer_estimators_n_iter"] = 4
    other.update(dict.fromkeys(_FITS_3 if d == 2 else _FITS_2, 3 if d == 2 else 2))
    return {
        **EXPECTED_FAILED,
        **{
            check: f"fits {n} features; the few-shot fit takes the {d} of its "
            "base statistics"
            for check, n in other.items()
        },
    }


@parametrize_with_checks(
    [
        few_shot(cls, d, **params)
        for d in (2, 3)
        for cls, params in (
            # leave-one-out of support_scatter="auto" grows as n^4 on the
            # checks' large supports: the closed form is checked here
            (CalibratedFewShotClassifier, {"support_scatter": "off"}),
            (DistributionCalibrationClassifier, {"n_samples": 20}),
        )
    ],
    expected_failed_checks=_few_shot_expected_failures,
)
def test_sklearn_api_few_shot(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "make",
    [
        CalibratedFewShotClassifier,
        lambda: few_shot(CalibratedFewShotClassifier, 6, k=1),
        lambda: DistributionCalibrationClassifier(n_samples=20, solver="lbfgs"),
        lambda: few_shot(DistributionCalibrationClassifier, 6, n_samples=20),
    ],
)
def test_fit_leaves_get_params_unchanged(make):
    X, y = make_base()
    clf = make()
    before = clf.get_params()
    clf.fit(X, y) if clf.base is None else clf.fit(X[::10], y[::10])
    after = clf.get_params()
    assert before.keys() == after.keys()
    for name, value in before.items():
        assert after[name] is value, name


def make_base(n_classes=4, n_per_class=30, d=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 4, size=(n_classes, d))
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = np.abs(centres[y] + rng.normal(scale=0.3, size=(len(y), d)))
    return X, y


def test_base_mode_stores_unbiased_statistics_and_predicts_base_classes():
    X, y = make_base()
    clf = DistributionCalibrationClassifier(random_state=0).fit(X, y)
    stats = clf.base_statistics_
    np.testing.assert_allclose(stats.means[2], X[y == 2].mean(0))
    np.testing.assert_allclose(stats.covariances[1], np.cov(X[y == 1].T, ddof=1))
    assert stats.counts.tolist() == [30] * 4
    assert clf.score(X, y) > 0.95


def test_few_shot_fit_classifies_novel_classes_with_one_shot():
    X, y = make_base(n_classes=9, seed=1)
    base = DistributionCalibrationClassifier().fit(X[y < 5], y[y < 5])
    novel = y >= 5
    Xn, yn = X[novel], y[novel]
    support = np.array([np.flatnonzero(yn == c)[0] for c in range(5, 9)])
    clf = DistributionCalibrationClassifier(base=base, n_samples=200, random_state=0)
    clf.fit(Xn[support], yn[support])
    assert clf.classes_.tolist() == [5, 6, 7, 8]
    assert clf.score(Xn, yn) > 0.8
    proba = clf.predict_proba(Xn)
    np.testing.assert_allclose(proba.sum(1), 1)


def test_draws_n_samples_per_class_and_calibrated_means():
    X, y = make_base(d=3)
    base = DistributionCalibrationClassifier().fit(X, y)
    stats = base.base_statistics_
    v = np.sqrt([1.0, 2.0, 3.0])
    X_train, y_train = calibrated_training_set(
        v[None],
        np.array([7]),
        stats,
        k=2,
        alpha=0.0,
        n_samples=9000,
        rng=np.random.RandomState(0),
    )
    assert len(X_train) == 9001 and set(y_train) == {7}
    nearest = np.argsort(((stats.means - v) ** 2).sum(1))[:2]
    expected_mean = (stats.means[nearest].sum(0) + v) / 3
    np.testing.assert_allclose(X_train[1:].mean(0), expected_mean, atol=0.05)
    np.testing.assert_allclose(
        np.cov(X_train[1:].T), stats.covariances[nearest].mean(0), atol=0.05
    )


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
    base = DistributionCalibrationClassifier(alpha=0.0).fit(X, y)
    clf = DistributionCalibrationClassifier(
        base=base, alpha=0.0, n_samples=50, random_state=0
    )
    clf.fit(rng.gamma(1.0, size=(2, 40)), ["a", "b"])
    assert np.isfinite(clf.coef_).all()
    zero = DistributionCalibrationClassifier(alpha=0.0).fit(
        np.zeros((6, 5)), [0, 0, 1, 1, 2, 2]
    )
    few = DistributionCalibrationClassifier(
        base=zero, n_samples=10, random_state=0, alpha=0.0
    )
    assert np.isfinite(
        few.fit(np.zeros((2, 5)), [0, 1]).predict_proba(np.ones((1, 5)))
    ).all()


def test_same_seed_same_predictions():
    X, y = make_base(n_classes=8)
    base = DistributionCalibrationClassifier().fit(X[y < 4], y[y < 4])
    Xs, ys = X[y >= 4][::10], y[y >= 4][::10]
    fits = [
        DistributionCalibrationClassifier(base=base, random_state=s).fit(Xs, ys)
        for s in (3, 3, 4)
    ]
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
        (
            lambda b: CalibratedFewShotClassifier(base=b).fit(np.ones((2, 5)), [0, 1]),
            ValueError,
            r"Support features have 5 dimensions \(n_features=5\); the base "
            "statistics have 6",
        ),
        (
            lambda b: CalibratedFewShotClassifier(base=b, k=5).fit(
                np.ones((2, 6)), [0, 1]
            ),
            ValueError,
            "k=5 exceeds the number of base classes \\(4\\)",
        ),
        (
            lambda b: CalibratedFewShotClassifier(base=b).fit(-np.ones((2, 6)), [0, 1]),
            ValueError,
            "Negative values",
        ),
        (
            lambda b: CalibratedFewShotClassifier(base=b).fit(
                np.full((2, 6), np.nan), [0, 1]
            ),
            ValueError,
            "NaN",
        ),
        (
            lambda b: CalibratedFewShotClassifier(base=b).fit(np.ones((0, 6)), []),
            ValueError,
            "0 sample",
        ),
        (
            lambda b: CalibratedFewShotClassifier(
                base=CalibratedFewShotClassifier()
            ).fit(np.ones((2, 6)), [0, 1]),
            ValueError,
            "unfitted",
        ),
        (
            lambda b: CalibratedFewShotClassifier(base="stats").fit(
                np.ones((2, 6)), [0, 1]
            ),
            TypeError,
            "base must be None, a BaseStatistics",
        ),
        (
            lambda b: CalibratedFewShotClassifier().fit(np.ones((3, 6)), [0, 0, 1]),
            ValueError,
            "class '1' has only 1 sample",
        ),
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


# --- method="bayes" (default) ------------------------------------------------


def novel_episode(n_way=4, k_shot=3, d=6, seed=1):
    X, y = make_base(n_classes=5 + n_way, n_per_class=30, d=d, seed=seed)
    base = CalibratedFewShotClassifier().fit(X[y < 5], y[y < 5])
    Xn, yn = X[y >= 5], y[y >= 5]
    support = np.concatenate([np.flatnonzero(yn == c)[:k_shot] for c in np.unique(yn)])
    return base, Xn[support], yn[support], Xn, yn


def test_bayes_base_statistics_are_in_tukey_space():
    X, y = make_base()
    stats = CalibratedFewShotClassifier(tukey_lambda=0.5).fit(X, y).base_statistics_
    assert stats.tukey_lambda == 0.5
    np.testing.assert_allclose(stats.means[2], np.sqrt(X[y == 2]).mean(0))
    np.testing.assert_allclose(stats.covariances[1], np.cov(np.sqrt(X[y == 1]).T))
    paper = DistributionCalibrationClassifier().fit(X, y).base_statistics_
    assert paper.tukey_lambda is None
    np.testing.assert_allclose(paper.means[2], X[y == 2].mean(0))


def test_bayes_classifies_novel_classes_and_has_linear_shapes():
    base, Xs, ys, Xn, yn = novel_episode()
    clf = CalibratedFewShotClassifier(base=base).fit(Xs, ys)
    assert clf.coef_.shape == (4, 6) and clf.intercept_.shape == (4,)
    assert clf.score(Xn, yn) > 0.9
    proba = clf.predict_proba(Xn)
    np.testing.assert_allclose(proba.sum(1), 1)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], clf.predict(Xn))
    assert clf.decision_function(Xn).shape == (len(Xn), 4)


def test_bayes_base_mode_predicts_base_classes():
    X, y = make_base()
    assert CalibratedFewShotClassifier().fit(X, y).score(X, y) > 0.95


def test_bayes_is_deterministic_whatever_the_seed():
    base, Xs, ys, Xn, _ = novel_episode()
    p = [
        CalibratedFewShotClassifier(base=base, random_state=s)
        .fit(Xs, ys)
        .predict_proba(Xn)
        for s in (0, 1)
    ]
    np.testing.assert_array_equal(p[0], p[1])


@pytest.mark.parametrize("k_shot", [1, 3])
def test_kappa_limits_give_support_and_base_means(k_shot):
    base, Xs, ys, _, _ = novel_episode(k_shot=k_shot)
    stats = base.base_statistics_
    Z = np.sqrt(Xs)
    classes, y_idx = np.unique(ys, return_inverse=True)
    support_means = np.stack([Z[y_idx == c].mean(0) for c in range(len(classes))])
    kw = {"k": 2, "shrinkage": 0.5}
    m0, _ = bayes_gaussian_parameters(Z, y_idx, len(classes), stats, kappa=0.0, **kw)
    np.testing.assert_allclose(m0, support_means)
    m_big, _ = bayes_gaussian_parameters(
        Z, y_idx, len(classes), stats, kappa=1e12, **kw
    )
    m_inf, _ = bayes_gaussian_parameters(
        Z, y_idx, len(classes), stats, kappa=np.inf, **kw
    )
    d2 = ((support_means[:, None] - stats.means[None]) ** 2).sum(-1)
    prior = stats.means[np.argsort(d2, axis=1)[:, :2]].mean(1)
    np.testing.assert_allclose(m_inf, prior)
    np.testing.assert_allclose(m_big, prior, atol=1e-9)
    m1, _ = bayes_gaussian_parameters(Z, y_idx, len(classes), stats, kappa=2.0, **kw)
    np.testing.assert_allclose(m1, (2 * prior + k_shot * support_means) / (2 + k_shot))


def test_kappa_zero_full_shrinkage_is_nearest_prototype():
    base, Xs, ys, Xn, _ = novel_episode(k_shot=2, d=8, seed=3)
    clf = CalibratedFewShotClassifier(
        base=base, kappa=0.0, shrinkage=1.0, support_scatter="off", pool_radius_shots=0
    ).fit(Xs, ys)
    Z, Zq = np.sqrt(Xs), np.sqrt(Xn)
    protos = np.stack([Z[ys == c].mean(0) for c in clf.classes_])
    nearest = ((Zq[:, None] - protos[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(clf.predict(Xn), clf.classes_[nearest])


def test_shrinkage_zero_uses_the_neighbours_shrunk_covariance():
    base, Xs, ys, _, _ = novel_episode(n_way=2, k_shot=1)
    stats = base.base_statistics_
    Z = np.sqrt(Xs)
    _, y_idx = np.unique(ys, return_inverse=True)
    _, cov = bayes_gaussian_parameters(Z, y_idx, 2, stats, k=1, kappa=1.0, shrinkage=0)
    d2 = ((Z[:, None] - stats.means[None]) ** 2).sum(-1)
    nearest = d2.argmin(1)
    expected = stats.shrunk_covariances()[nearest].mean(0)
    np.testing.assert_allclose(cov, expected)


def test_shrunk_covariances_are_positive_definite_with_few_samples():
    rng = np.random.default_rng(0)
    X = rng.gamma(1.0, size=(12, 40))  # 3 samples per class, 40 dimensions
    y = np.repeat(np.arange(4), 3)
    stats = BaseStatistics.from_features(X, y, tukey_lambda=0.5)
    for raw, shrunk in zip(stats.covariances, stats.shrunk_covariances(), strict=True):
        assert np.linalg.matrix_rank(raw) <= 2
        assert np.linalg.eigvalsh(shrunk).min() > 0
        np.testing.assert_allclose(np.trace(shrunk), np.trace(raw))
    assert stats.shrunk_covariances() is stats.shrunk_covariances()  # memoised
    base = CalibratedFewShotClassifier(shrinkage=0.0).fit(X, y)
    few = CalibratedFewShotClassifier(base=base, shrinkage=0.0, kappa=0.0)
    few.fit(rng.gamma(1.0, size=(2, 40)), ["a", "b"])
    assert np.isfinite(few.coef_).all()
    zero = CalibratedFewShotClassifier(shrinkage=0.0).fit(
        np.zeros((6, 5)), [0, 0, 1, 1, 2, 2]
    )
    few = CalibratedFewShotClassifier(base=zero, shrinkage=0.0).fit(
        np.zeros((2, 5)), [0, 1]
    )
    assert np.isfinite(few.predict_proba(np.ones((1, 5)))).all()


def test_oas_shrinkage_falls_with_more_samples():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((20, 20))
    X = rng.standard_normal((2000, 20)) @ A
    rhos = [oas_shrinkage(np.cov(X[:n].T), n) for n in (5, 50, 2000)]
    assert all(0 <= r <= 1 for r in rhos)
    assert rhos[0] > rhos[1] > rhos[2] and rhos[2] < 0.05
    assert oas_shrinkage(np.eye(3), 10) == 1.0  # already spherical


def test_bayes_and_paper_base_statistics_do_not_mix():
    X, y = make_base()
    paper_base = DistributionCalibrationClassifier().fit(X, y)
    with pytest.raises(
        ValueError,
        match=r"CalibratedFewShotClassifier needs base statistics of "
        r"Tukey space \(lambda=0.5\); these are of raw features",
    ):
        CalibratedFewShotClassifier(base=paper_base).fit(np.ones((2, 6)), [0, 1])
    bayes_base = CalibratedFewShotClassifier().fit(X, y)
    with pytest.raises(
        ValueError,
        match="DistributionCalibrationClassifier needs base statistics of raw",
    ):
        DistributionCalibrationClassifier(
            base=bayes_base,
        ).fit(np.ones((2, 6)), [0, 1])


def test_paper_draws_float32_samples_with_the_calibrated_covariance():
    X, y = make_base(d=3)
    stats = DistributionCalibrationClassifier().fit(X, y).base_statistics_
    v = np.sqrt([1.0, 2.0, 3.0])
    X_train, _ = calibrated_training_set(
        v[None], np.array([7]), stats, k=1, alpha=0.1, n_samples=20000,
        rng=np.random.RandomState(0), dtype=np.float32,
    )  # fmt: skip
    assert X_train.dtype == np.float32
    nearest = np.argmin(((stats.means - v) ** 2).sum(1))
    np.testing.assert_allclose(
        np.cov(X_train[1:].T), stats.covariances[nearest] + 0.1, atol=0.03
    )


def test_adapt_and_episodes_work_with_the_default():
    from fscc_sklearn import adapt, evaluate_episodes

    X, y = make_base(n_classes=9, seed=2)
    clf = CalibratedFewShotClassifier().fit(X[y < 4], y[y < 4])
    novel = adapt(clf, X[y >= 4][::6], y[y >= 4][::6])
    assert novel.base_statistics_ is clf.base_statistics_
    res = evaluate_episodes(clf, X[y >= 4], y[y >= 4], n_way=3, k_shot=1, n_query=5,
                            n_episodes=5, random_state=0)  # fmt: skip
    assert res.accuracies.shape == (5,) and res.mean > 0.6


def test_auto_kappa_fades_with_distance_and_stays_finite_on_a_base_mean():
    X, y = make_base(n_classes=4, d=6, seed=5)
    base = CalibratedFewShotClassifier().fit(X, y)
    stats = base.base_statistics_
    near = stats.means[0] ** 2  # a support feature exactly on a base mean
    far = (stats.means[0] + 5.0) ** 2
    clf = CalibratedFewShotClassifier(base=base, k=1)
    clf.fit(np.stack([near, far]), ["near", "far"])
    assert np.isfinite(clf.coef_).all() and np.isfinite(clf.intercept_).all()
    Z = np.sqrt(np.stack([near, far]))
    means, _ = bayes_gaussian_parameters(
        Z, np.array([1, 0]), 2, stats, k=1, kappa="auto", shrinkage=1.0
    )
    # "near" is pulled onto its base mean, "far" hardly moves
    np.testing.assert_allclose(means[1], stats.means[0])
    far_prior = stats.means[np.argmin(((stats.means - Z[1]) ** 2).sum(1))]
    moved = np.linalg.norm(means[0] - Z[1]) / np.linalg.norm(far_prior - Z[1])
    assert moved < 0.05


CLASSES = [CalibratedFewShotClassifier, DistributionCalibrationClassifier]
PAPER_ONLY = {DistributionCalibrationClassifier: {"n_samples": 20, "random_state": 0}}


@pytest.mark.parametrize("cls", CLASSES)
def test_constant_features_give_finite_uniform_probabilities(cls):
    base = cls().fit(np.ones((30, 5)), np.repeat([0, 1, 2], 10))
    proba = base.predict_proba(np.ones((2, 5)))
    np.testing.assert_allclose(proba, 1 / 3, atol=1e-6)
    few = cls(base=base, **PAPER_ONLY.get(cls, {}))
    proba = few.fit(np.ones((2, 5)), [0, 1]).predict_proba(np.ones((2, 5)))
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba, 0.5, atol=0.05)  # paper: sampling noise


@pytest.mark.parametrize("cls", CLASSES)
def test_one_class_is_refused(cls):
    with pytest.raises(ValueError, match="needs at least 2 classes; got 1 class"):
        cls().fit(np.ones((4, 5)), [0] * 4)


def _multinomial_objective(X, y_idx, W, b, C):
    """scikit-learn's multinomial logistic objective, written out."""
    from scipy.special import logsumexp

    Z = X @ W.T + b
    return (
        C * (logsumexp(Z, axis=1) - Z[np.arange(len(X)), y_idx]).sum()
        + 0.5 * (W**2).sum()
    )


@pytest.mark.parametrize("counts", [(6, 6, 6), (3, 9, 5)])
def test_newton_step_solves_the_quadratic_model_at_zero(counts):
    from fscc_sklearn.calibration._paper import newton_step_logistic

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), counts)
    X = rng.normal(size=(len(y), 4)) + 3.0 + y[:, None]  # off-centre on purpose
    C = 0.7
    W, b = newton_step_logistic(X, y, 3, C)
    step = np.concatenate([W.ravel(), b])

    def f(v):
        return _multinomial_objective(X, y, v[:12].reshape(3, 4), v[12:], C)

    eps = 1e-4
    for v in rng.normal(size=(5, 15)):
        grad_v = (f(eps * v) - f(-eps * v)) / (2 * eps)
        hess_v_step = (
            f(eps * (v + step)) - f(eps * (v - step))
            - f(eps * (step - v)) + f(-eps * (v + step))
        ) / (4 * eps**2)  # fmt: skip
        # a Newton step from zero solves H @ step = -grad
        np.testing.assert_allclose(hess_v_step, -grad_v, rtol=1e-4, atol=1e-6)


def test_paper_solvers_agree_and_only_the_linear_scores_are_kept():
    X, y = make_base(n_classes=8)
    base = DistributionCalibrationClassifier().fit(X[y < 4], y[y < 4])
    Xs, ys = X[y >= 4][::10], y[y >= 4][::10]
    fits = {
        solver: DistributionCalibrationClassifier(
            base=base, solver=solver, random_state=0
        ).fit(Xs, ys)
        for solver in ("newton", "lbfgs")
    }
    for fit in fits.values():
        assert fit.coef_.shape == (4, X.shape[1]) and fit.intercept_.shape == (4,)
        assert not hasattr(fit, "logreg_")
    assert fits["lbfgs"].n_iter_[0] > 1 and fits["newton"].n_iter_.tolist() == [1]
    Xq, yq = X[y >= 4], y[y >= 4]
    agree = np.mean(fits["newton"].predict(Xq) == fits["lbfgs"].predict(Xq))
    assert agree > 0.9
    assert fits["newton"].score(Xq, yq) >= fits["lbfgs"].score(Xq, yq) - 0.05
    refit = fits["lbfgs"].set_params(solver="newton").fit(Xs, ys)
    np.testing.assert_array_equal(refit.predict(Xq), fits["newton"].predict(Xq))


@pytest.mark.parametrize("n_shot", [1, 5])
def test_auto_kappa_keeps_part_of_a_support_mean_that_sits_near_its_prior(n_shot):
    rng = np.random.default_rng(0)
    X, y = make_base(n_classes=3, n_per_class=40, d=6)
    stats = BaseStatistics.from_features(X, y)
    delta = 1e-3 * rng.normal(size=6)  # far below the within-class spread
    support = np.repeat(stats.means[:1] + delta, n_shot, axis=0)
    means, _ = bayes_gaussian_parameters(
        support, np.zeros(n_shot, int), 1, stats, k=1, kappa="auto", shrinkage=1.0
    )
    s2 = np.trace(stats.covariances[0]) / 6
    t2 = max(0.2 * s2 / n_shot, stats.neighbour_spread(1))  # the spread's floors
    kappa = s2 / (4 * n_shot * t2)
    prior_weight = kappa / (kappa + n_shot)
    assert prior_weight <= 1.25 / (1.25 + n_shot) + 1e-12
    np.testing.assert_allclose(means[0], stats.means[0] + (1 - prior_weight) * delta)


def test_neighbour_spread_of_base_classes():
    # three classes on a line, 0, 1 and 3 units apart from the first; no noise
    means = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    stats = BaseStatistics(
        classes=np.arange(3),
        means=means,
        covariances=np.zeros((3, 2, 2)),
        counts=np.full(3, 10),
    )
    # nearest other class: 1, 1 and 2 units away; squared, per feature: .5 .5 2
    assert stats.neighbour_spread(1) == pytest.approx(0.5)
    assert stats.neighbour_spread(3) == 0.0  # no k other classes
