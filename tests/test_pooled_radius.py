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
    pooled = CalibratedFewShotClassifier(base=base, kappa=kappa, pool_radius_shots=2)
    pooled.fit(X_new, y_new)
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
    params = dict(base=base, support_scatter=0.25, pool_radius_shots=2)
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
    all_pooled = CalibratedFewShotClassifier(**{**params, "pool_radius_shots": 3})
    assert all_pooled.fit(X_new, y_new).support_scatter_ == np.inf


# --- pool_radius_shots="auto": measured on pseudo-novel episodes of the base


def nested_or_even_classes(nested, seed=0, n=40, d=12):
    """Eight base classes and four novel ones, in pairs along six directions
    (three axes, both ways, so the base classes centre on the common point).

    ``nested``: the two classes of a pair lie at radii 1 and 4 from that
    point, with little noise, so only their distance tells them apart and
    pooling it must lose. Otherwise every class lies at radius 2.5 with more
    noise, so a one-shot example's distance is mostly noise.
    """
    rng = np.random.default_rng(seed)
    axes = np.linalg.qr(rng.normal(size=(d, 3)))[0].T
    directions = np.concatenate([axes, -axes])[[0, 3, 1, 4, 2, 5]]
    radii = np.tile([1.0, 4.0], 6) if nested else np.full(12, 2.5)
    means = 6 + np.repeat(directions, 2, 0) * radii[:, None]
    noise = 0.15 if nested else 0.6
    X = np.repeat(means, n, 0) + rng.normal(scale=noise, size=(12 * n, d))
    y = np.repeat(np.arange(12), n)
    assert X.min() > 0
    is_base = y < 8
    return X[is_base], y[is_base], X[~is_base], y[~is_base]


@pytest.mark.parametrize("nested", [True, False])
def test_auto_measures_pooling_on_base_episodes_and_chooses_by_it(nested):
    X_base, y_base, X_new, y_new = nested_or_even_classes(nested)
    base = CalibratedFewShotClassifier(pool_radius_shots="auto", random_state=0)
    gain = base.fit(X_base, y_base).base_statistics_.pooling_gain
    assert (gain < -2) if nested else (gain > -2)
    assert base.pool_radius_shots_ == (0 if nested else 2)  # what few-shot fits use
    one_shot = np.concatenate([np.flatnonzero(y_new == c)[:1] for c in range(8, 12)])
    auto = CalibratedFewShotClassifier(base=base, pool_radius_shots="auto")
    auto.fit(X_new[one_shot], y_new[one_shot])
    assert auto.pool_radius_shots_ == (0 if nested else 2)
    same = CalibratedFewShotClassifier(
        base=base, pool_radius_shots=auto.pool_radius_shots_
    )
    same.fit(X_new[one_shot], y_new[one_shot])
    np.testing.assert_array_equal(auto.coef_, same.coef_)
    if nested:  # and not pooling is what the novel classes need too
        pooled = CalibratedFewShotClassifier(base=base, pool_radius_shots=2)
        pooled.fit(X_new[one_shot], y_new[one_shot])
        assert auto.score(X_new, y_new) > pooled.score(X_new, y_new) + 0.2


def test_auto_is_reproducible_and_measures_only_when_asked():
    X_base, y_base, _, _ = nested_or_even_classes(True)
    fits = [
        CalibratedFewShotClassifier(pool_radius_shots=p, random_state=3).fit(
            X_base, y_base
        )
        for p in ("auto", "auto", 2)
    ]
    a, b, fixed = (f.base_statistics_ for f in fits)
    assert a.pooling_gain == b.pooling_gain
    assert a.proba_temperatures == b.proba_temperatures
    assert fixed.pooling_gain is None


def test_auto_without_a_measurement_pools():
    X_base, y_base, X_new, y_new = nested_or_even_classes(True)
    base = CalibratedFewShotClassifier(pool_radius_shots=0, random_state=0)
    base.fit(X_base, y_base)
    assert base.base_statistics_.pooling_gain is None
    one_shot = np.concatenate([np.flatnonzero(y_new == c)[:1] for c in range(8, 12)])
    auto = CalibratedFewShotClassifier(base=base, pool_radius_shots="auto")
    auto.fit(X_new[one_shot], y_new[one_shot])
    assert auto.pool_radius_shots_ == 2
    pooled = CalibratedFewShotClassifier(base=base, pool_radius_shots=2)
    pooled.fit(X_new[one_shot], y_new[one_shot])
    np.testing.assert_array_equal(auto.coef_, pooled.coef_)
    assert base.pool_radius_shots_ == 0  # its own setting


def test_model_file_keeps_the_pooling_gain_and_refuses_a_damaged_one(tmp_path):
    from test_persistence import _rewrite  # the shared model-file editor

    from fscc_sklearn import load_model, save_model

    X_base, y_base, X_new, y_new = nested_or_even_classes(True)
    base = CalibratedFewShotClassifier(pool_radius_shots="auto", random_state=0)
    base.fit(X_base, y_base)
    path = save_model(base, tmp_path / "base.safetensors")
    loaded = load_model(path)
    assert loaded.base_statistics_.pooling_gain == base.base_statistics_.pooling_gain
    one_shot = np.concatenate([np.flatnonzero(y_new == c)[:1] for c in range(8, 12)])
    again = CalibratedFewShotClassifier(base=loaded, pool_radius_shots="auto")
    assert again.fit(X_new[one_shot], y_new[one_shot]).pool_radius_shots_ == 0

    def damage(info):
        stats = info["model"]["steps"][0]["meta"]["base_statistics"]["meta"]
        stats["pooling_gain"] = "lots"

    _rewrite(path, tmp_path / "bad.safetensors", edit_info=damage)
    with pytest.raises(ValueError, match="pooling_gain"):
        load_model(tmp_path / "bad.safetensors")
