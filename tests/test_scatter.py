import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from fscc_sklearn import BaseStatistics, CalibratedFewShotClassifier
from fscc_sklearn.calibration._bayes import support_scatter_linear
from fscc_sklearn.calibration._scatter import choose_strength, scatter_gaussian

D = 40


def gaussian_rule(means, cov):
    """Exact weights and intercepts of the shared-covariance Gaussian rule."""
    coef = np.linalg.solve(cov, means.T).T
    return coef, -0.5 * (coef * means).sum(1)


def base_statistics(seed=0, n_classes=6):
    """Isotropic base classes, built in Tukey space (X = Z**2)."""
    rng = np.random.default_rng(seed)
    centres = 10 + rng.normal(size=(n_classes, D))
    y = np.repeat(np.arange(n_classes), 40)
    Z = centres[y] + rng.normal(scale=0.3, size=(len(y), D))
    return BaseStatistics.from_features(Z**2, y, tukey_lambda=0.5)


def novel_features(rng, n_per_class, nuisance, n_way=5):
    """Classes 0.5 apart per feature pair, plus a shared within-class nuisance
    along one direction (standard deviation ``nuisance``)."""
    centres = 10 + 0.25 * np.random.default_rng(1).normal(size=(n_way, D))
    direction = np.random.default_rng(2).normal(size=D)
    direction /= np.linalg.norm(direction)
    y = np.repeat(np.arange(n_way), n_per_class)
    Z = centres[y] + rng.normal(scale=0.15, size=(len(y), D))
    Z += nuisance * rng.normal(size=(len(y), 1)) * direction
    return Z**2, y


def episode_accuracies(nuisance, support_scatter, n_episodes=10, k_shot=5):
    stats = base_statistics()
    acc, chosen = [], []
    for seed in range(n_episodes):
        rng = np.random.default_rng(100 + seed)
        Xs, ys = novel_features(rng, k_shot, nuisance)
        Xq, yq = novel_features(rng, 30, nuisance)
        clf = CalibratedFewShotClassifier(base=stats, support_scatter=support_scatter)
        clf.fit(Xs, ys)
        acc.append(np.mean(clf.predict(Xq) == yq))
        chosen.append(clf.support_scatter_)
    return np.array(acc), np.array(chosen)


def test_auto_learns_a_nuisance_direction_the_prior_does_not_know():
    off, chosen_off = episode_accuracies(nuisance=3.0, support_scatter="off")
    auto, chosen = episode_accuracies(nuisance=3.0, support_scatter="auto")
    assert np.all(np.isinf(chosen_off))
    assert np.mean(np.isfinite(chosen)) >= 0.8
    assert auto.mean() > off.mean() + 0.2


def test_auto_keeps_the_prior_when_the_support_agrees_with_it():
    off, _ = episode_accuracies(nuisance=0.0, support_scatter="off")
    auto, chosen = episode_accuracies(nuisance=0.0, support_scatter="auto")
    assert np.mean(np.isinf(chosen)) >= 0.8
    assert abs(auto.mean() - off.mean()) < 0.02


def test_one_shot_cannot_leave_one_out_and_keeps_the_prior():
    _, chosen = episode_accuracies(nuisance=3.0, support_scatter="auto", k_shot=1)
    assert np.all(np.isinf(chosen))


def test_scatter_gaussian_matches_the_dense_covariance():
    rng = np.random.default_rng(0)
    means, R = rng.normal(size=(3, 7)), rng.normal(size=(9, 7))
    dof, nu = 6, 2.5
    coef, intercept = scatter_gaussian(means, R, dof, nu)
    S = (nu * np.eye(7) + R.T @ R) / (nu + dof)
    expected, expected_b = gaussian_rule(means, S)
    np.testing.assert_allclose(coef, expected, rtol=1e-10)
    np.testing.assert_allclose(intercept, expected_b, rtol=1e-10)


@pytest.mark.parametrize("diagonal", [True, False])
def test_scatter_update_of_any_prior_covariance(diagonal):
    rng = np.random.default_rng(1)
    d, n_classes = 6, 3
    Z = rng.normal(size=(9, d)) + 3
    y_idx = np.repeat(np.arange(n_classes), 3)
    means = rng.normal(size=(n_classes, d))
    A = rng.normal(size=(d, d))
    cov = np.diag(rng.uniform(0.5, 2, d)) if diagonal else A @ A.T + np.eye(d)
    coef, intercept, strength = support_scatter_linear(
        Z, y_idx, n_classes, means, cov, 0.5
    )
    centres = np.stack([Z[y_idx == c].mean(0) for c in range(n_classes)])
    R = Z - centres[y_idx]
    nu, dof = 0.5 * d, len(Z) - n_classes
    expected = gaussian_rule(means, (nu * cov + R.T @ R) / (nu + dof))
    assert strength == 0.5
    # a full prior is factorised with a 1e-6 relative jitter (_cholesky_psd)
    rtol = 1e-8 if diagonal else 1e-4
    np.testing.assert_allclose(coef, expected[0], rtol=rtol)
    np.testing.assert_allclose(intercept, expected[1], rtol=rtol)


def test_strength_limits_and_fixed_values():
    stats = base_statistics()
    Xs, ys = novel_features(np.random.default_rng(5), 4, nuisance=3.0)
    Xq, _ = novel_features(np.random.default_rng(6), 10, nuisance=3.0)
    off = CalibratedFewShotClassifier(base=stats, support_scatter="off").fit(Xs, ys)
    huge = CalibratedFewShotClassifier(base=stats, support_scatter=1e12).fit(Xs, ys)
    np.testing.assert_allclose(huge.predict_proba(Xq), off.predict_proba(Xq), atol=1e-6)
    fixed = CalibratedFewShotClassifier(base=stats, support_scatter=0.25).fit(Xs, ys)
    assert fixed.support_scatter_ == 0.25 and np.isinf(off.support_scatter_)
    again = CalibratedFewShotClassifier(base=stats).fit(Xs, ys)
    np.testing.assert_array_equal(
        again.decision_function(Xq),
        CalibratedFewShotClassifier(base=stats).fit(Xs, ys).decision_function(Xq),
    )


def test_choose_strength_needs_something_to_leave_out():
    Z = np.random.default_rng(0).normal(size=(3, 5))
    assert np.isinf(choose_strength(Z, np.arange(3), 3))
    # one class with two shots, but no residual left once one is held out
    assert np.isinf(choose_strength(Z, np.array([0, 0, 1]), 2))


@pytest.mark.parametrize("value", [0, -1.0, "on", None])
def test_bad_support_scatter_is_refused(value):
    clf = CalibratedFewShotClassifier(support_scatter=value)
    with pytest.raises(InvalidParameterError, match="support_scatter"):
        clf.fit(np.ones((4, 3)) + np.eye(4, 3), [0, 0, 1, 1])
