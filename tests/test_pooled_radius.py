import numpy as np
import pytest

from fscc_sklearn import BaseStatistics, CalibratedFewShotClassifier
from fscc_sklearn.calibration._bayes import pool_radii


def base_and_support(seed=0, d=6):
    rng = np.random.default_rng(seed)
    X_base = rng.gamma(2.0, size=(90, d)) + np.repeat(rng.uniform(0, 3, (3, d)), 30, 0)
    y_base = np.repeat(["a", "b", "c"], 30)
    return X_base, y_base, rng.gamma(2.0, size=(4, d)) * rng.uniform(0.5, 4, (4, 1))


def implied_means(clf):
    """Class means of the fitted isotropic Gaussian rule (diagonal covariance
    ``v * I``): ``coef = means / v`` and ``intercept = -v * |coef|^2 / 2``."""
    v = -2 * clf.intercept_ / (clf.coef_**2).sum(1)
    return clf.coef_ * v[:, None]


def test_centre_is_the_mean_of_all_base_features():
    X_base, y_base, _ = base_and_support()
    Z = np.sqrt(X_base)
    stats = BaseStatistics.from_features(X_base, y_base, tukey_lambda=0.5)
    np.testing.assert_allclose(stats.centre, Z.mean(0))


def test_pooled_means_take_the_mean_radius_and_keep_their_direction():
    rng = np.random.default_rng(1)
    centre = rng.normal(size=5)
    means = centre + rng.normal(size=(4, 5)) * [[1], [3], [0.5], [2]]
    chosen = np.array([True, True, False, True])
    pooled = pool_radii(means, chosen, centre)
    radii = np.linalg.norm(means - centre, axis=1)
    new = np.linalg.norm(pooled - centre, axis=1)
    np.testing.assert_allclose(new[chosen], radii.mean())
    np.testing.assert_array_equal(pooled[2], means[2])  # 5 shots: its own
    cos = np.einsum("ij,ij->i", pooled - centre, means - centre) / (new * radii)
    np.testing.assert_allclose(cos, 1.0)


def test_a_pooled_mean_at_the_centre_stays_there():
    centre = np.ones(3)
    means = np.array([[1.0, 1, 1], [2, 1, 1]])
    pooled = pool_radii(means, np.array([True, True]), centre)
    assert np.isfinite(pooled).all()
    np.testing.assert_array_equal(pooled[0], centre)


@pytest.mark.parametrize("kappa", [0.0, "auto"])
def test_classifier_puts_one_shot_means_at_one_distance_from_the_base_centre(kappa):
    X_base, y_base, X_new = base_and_support()
    base = CalibratedFewShotClassifier().fit(X_base, y_base)
    centre = base.base_statistics_.centre
    y_new = ["w", "x", "y", "z"]
    pooled = CalibratedFewShotClassifier(base=base, kappa=kappa).fit(X_new, y_new)
    own = CalibratedFewShotClassifier(base=base, kappa=kappa, pool_radius_shots=0)
    own.fit(X_new, y_new)
    r_pooled = np.linalg.norm(implied_means(pooled) - centre, axis=1)
    r_own = np.linalg.norm(implied_means(own) - centre, axis=1)
    np.testing.assert_allclose(r_pooled, r_own.mean())
    assert r_own.std() > 0.1 * r_own.mean()
    if kappa == 0.0:  # own: the Tukey-transformed examples themselves
        np.testing.assert_allclose(implied_means(own), np.sqrt(X_new))


def two_and_three_shot_support(seed=0):
    X_base, y_base, X_new = base_and_support(seed)
    rng = np.random.default_rng(seed + 1)
    noisy = X_new[[0, 0, 0, 1, 1, 2, 2, 3, 3]] * rng.uniform(0.7, 1.3, (9, 1))
    return X_base, y_base, noisy, ["w", "w", "w", "x", "x", "y", "y", "z", "z"]


@pytest.mark.parametrize("shots", [0, 1, 2, 3])
def test_classes_with_more_shots_than_the_limit_keep_their_own_mean(shots):
    X_base, y_base, X_new, y_new = two_and_three_shot_support()
    base = CalibratedFewShotClassifier().fit(X_base, y_base)
    params = dict(base=base, support_scatter="off")
    fit = CalibratedFewShotClassifier(**params, pool_radius_shots=shots)
    own = CalibratedFewShotClassifier(**params, pool_radius_shots=0)
    fit.fit(X_new, y_new)
    own.fit(X_new, y_new)
    same = np.isclose(fit.coef_, own.coef_).all(1)
    counts = np.array([3, 2, 2, 2])
    np.testing.assert_array_equal(same, counts > shots)


def test_support_scatter_is_learnt_from_unpooled_classes_only():
    X_base, y_base, X_new, y_new = two_and_three_shot_support()
    base = CalibratedFewShotClassifier().fit(X_base, y_base)
    params = dict(base=base, support_scatter=0.25)
    # class "w" (3 shots) alone keeps its radius: its scatter is the one used
    fit = CalibratedFewShotClassifier(**params).fit(X_new, y_new)
    assert fit.support_scatter_ == 0.25
    noisier = X_new.copy()
    noisier[3:] = noisier[3:] * np.random.default_rng(5).uniform(0.5, 1.5, (6, 1))
    other = CalibratedFewShotClassifier(**params).fit(noisier, y_new)
    # the pooled classes' means moved, so compare how class "w" is scored
    # relative to its own mean, which depends on the covariance only
    np.testing.assert_allclose(fit.coef_[0], other.coef_[0])
    # with every class pooled there is no scatter to learn
    all_pooled = CalibratedFewShotClassifier(**params, pool_radius_shots=3)
    assert all_pooled.fit(X_new, y_new).support_scatter_ == np.inf
