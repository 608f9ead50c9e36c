"""Open-set prediction: novelty scores, reject thresholds, the unknown label."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from fscc_sklearn import load_model, save_model
from fscc_sklearn.baselines import BaselineClassifier, PrototypeClassifier
from fscc_sklearn.calibration import (
    CalibratedFewShotClassifier,
    DistributionCalibrationClassifier,
)
from fscc_sklearn.calibration._novelty import (
    energy_score,
    gaussian_rejection_threshold,
    max_softmax_score,
    nearest_mahalanobis,
)

D = 12
CLASSES = (CalibratedFewShotClassifier, DistributionCalibrationClassifier)


def _gaussian_classes(rng, centres, n):
    """Features whose square roots (the Tukey transform) are Gaussian."""
    Z = np.concatenate([rng.normal(c, 1.0, size=(n, D)) for c in centres])
    return np.clip(Z, 0, None) ** 2, np.repeat(np.arange(len(centres)), n)


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    # base and novel class centres: far apart in Tukey space, all > 0
    centres = 10 + 4 * rng.normal(size=(14, D))
    X_base, y_base = _gaussian_classes(rng, centres[:10], 40)
    X_novel, y_novel = _gaussian_classes(rng, centres[10:13], 60)
    X_far, _ = _gaussian_classes(rng, centres[13:], 60)
    return X_base, y_base, X_novel, np.array(["a", "b", "c"])[y_novel], X_far


def _bases(problem):
    X_base, y_base = problem[:2]
    return {cls: cls(random_state=0).fit(X_base, y_base) for cls in CLASSES}


@pytest.fixture(scope="module")
def bases(problem):
    return _bases(problem)


def _support(y, k, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.choice(np.flatnonzero(y == c), k, replace=False) for c in np.unique(y)]
    )


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("k", [1, 5])
def test_reject_none_and_infinity_give_todays_predictions(problem, bases, cls, k):
    _, _, X, y, X_far = problem
    s = _support(y, k)
    queries = np.concatenate([X, X_far])
    today = cls(base=bases[cls], random_state=0).fit(X[s], y[s])
    expected = today.predict(queries)
    for reject in (np.inf, "auto"):
        clf = cls(base=bases[cls], random_state=0, reject=reject).fit(X[s], y[s])
        np.testing.assert_array_equal(clf.decision_function(queries),
                                      today.decision_function(queries))  # fmt: skip
        np.testing.assert_array_equal(clf.predict_proba(queries),
                                      today.predict_proba(queries))  # fmt: skip
        if reject == "auto":
            clf.set_params(reject=None)
        np.testing.assert_array_equal(clf.predict(queries), expected)
    # a threshold of 0 rejects all but exact class means
    clf.set_params(reject=0.0)
    assert (clf.predict(queries) == "unknown").mean() > 0.99


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("k", [1, 3])
def test_auto_rejects_unknown_and_never_a_support_example(problem, bases, cls, k):
    _, _, X, y, X_far = problem
    s = _support(y, k, seed=1)
    clf = cls(base=bases[cls], random_state=0, reject="auto").fit(X[s], y[s])
    assert np.isfinite(clf.novelty_threshold_) and clf.novelty_threshold_ > 0
    # each support example alone and in a batch with other queries
    assert not np.any(clf.predict(X[s]) == "unknown")
    for i in s:
        assert clf.predict(X[[i]])[0] != "unknown"
    far = clf.predict(X_far)
    assert np.mean(far == "unknown") > 0.9
    known = clf.predict(np.delete(X, s, axis=0))
    assert np.mean(known == "unknown") < 0.3
    assert clf.novelty_score(X_far).min() > np.median(clf.novelty_score(X))


def test_auto_false_rejection_rate_when_the_model_holds(problem, bases):
    """Gaussian classes in Tukey space, the same spread as the base classes:
    the rejected share of a class's own queries is about the target."""
    _, _, X, y, _ = problem
    cls = CalibratedFewShotClassifier
    rates = {}
    for target in (0.02, 0.2):
        rejected = []
        for seed in range(6):
            s = _support(y, 5, seed=seed)
            q = np.setdiff1d(np.arange(len(y)), s)
            clf = cls(base=bases[cls], reject="auto", false_rejection=target)
            clf.fit(X[s], y[s])
            rejected.append(np.mean(clf.predict(X[q]) == "unknown"))
        rates[target] = np.mean(rejected)
    assert rates[0.02] <= 0.06
    assert 0.05 <= rates[0.2] <= 0.3
    assert rates[0.02] < rates[0.2]


@pytest.mark.parametrize("cls", CLASSES)
def test_determinism_and_clone(problem, bases, cls):
    _, _, X, y, X_far = problem
    s = _support(y, 2)
    queries = np.concatenate([X, X_far])
    params = dict(base=bases[cls], random_state=3, reject="auto", false_rejection=0.1)
    a = cls(**params).fit(X[s], y[s])
    b = cls(**params).fit(X[s], y[s])
    assert a.novelty_threshold_ == b.novelty_threshold_
    np.testing.assert_array_equal(a.predict(queries), b.predict(queries))
    np.testing.assert_array_equal(a.novelty_score(queries), b.novelty_score(queries))
    c = clone(a).set_params(base=bases[cls])  # clone unfits an estimator param
    assert c.get_params()["reject"] == "auto"
    assert c.get_params()["false_rejection"] == 0.1
    assert c.get_params()["unknown_label"] is None
    assert not hasattr(c, "novelty_threshold_")
    c.fit(X[s], y[s])
    assert c.novelty_threshold_ == a.novelty_threshold_
    # a refit without reject forgets the threshold
    c.set_params(reject=None).fit(X[s], y[s])
    assert not hasattr(c, "novelty_threshold_")


def test_unknown_label_follows_the_classes(problem, bases):
    _, _, X, y, X_far = problem
    s = _support(y, 2)
    base = bases[CalibratedFewShotClassifier]
    y_int = np.searchsorted(np.unique(y), y) + 5
    clf = CalibratedFewShotClassifier(base=base, reject=1e-6).fit(X[s], y_int[s])
    out = clf.predict(X_far)
    assert out.dtype.kind == "i" and set(out.tolist()) == {-1}
    clf.set_params(unknown_label=99)
    assert set(clf.predict(X_far).tolist()) == {99}
    clf = CalibratedFewShotClassifier(
        base=base, reject=1e-6, unknown_label="none of these"
    ).fit(X[s], y[s])
    assert set(clf.predict(X_far).tolist()) == {"none of these"}


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"reject": "sometimes"}, InvalidParameterError, "reject"),
        ({"reject": -1.0}, InvalidParameterError, "reject"),
        ({"false_rejection": 0.0}, InvalidParameterError, "false_rejection"),
        ({"false_rejection": 1.0}, InvalidParameterError, "false_rejection"),
        ({"reject": "auto", "unknown_label": 3}, ValueError, "must be a string"),
        ({"reject": "auto", "unknown_label": "a"}, ValueError, "one of the classes"),
    ],
)
@pytest.mark.parametrize("cls", CLASSES)
def test_bad_options_say_what_is_wrong(problem, bases, cls, params, error, match):
    _, _, X, y, _ = problem
    s = _support(y, 1)
    with pytest.raises(error, match=match):
        cls(base=bases[cls], **params).fit(X[s], y[s])


def test_integer_classes_refuse_a_string_unknown_label(problem, bases):
    _, _, X, y, _ = problem
    s = _support(y, 1)
    y_int = np.searchsorted(np.unique(y), y)
    clf = CalibratedFewShotClassifier(
        base=bases[CalibratedFewShotClassifier], reject=2.0, unknown_label="unknown"
    )
    with pytest.raises(ValueError, match="must be an integer"):
        clf.fit(X[s], y_int[s])
    clf.set_params(unknown_label=int(y_int[0]))
    with pytest.raises(ValueError, match="one of the classes"):
        clf.fit(X[s], y_int[s])


def test_auto_needs_the_threshold_of_a_fit(problem, bases):
    _, _, X, y, _ = problem
    s = _support(y, 1)
    clf = CalibratedFewShotClassifier(base=bases[CalibratedFewShotClassifier])
    clf.fit(X[s], y[s]).set_params(reject="auto")
    with pytest.raises(ValueError, match="fitted with reject=None"):
        clf.predict(X)
    # a number needs no fit
    clf.set_params(reject=1e9)
    np.testing.assert_array_equal(
        clf.predict(X), clf.set_params(reject=None).predict(X)
    )


@pytest.mark.parametrize("cls", CLASSES)
def test_save_and_load_keep_the_reject_settings(problem, bases, cls, tmp_path):
    _, _, X, y, X_far = problem
    s = _support(y, 2)
    queries = np.concatenate([X, X_far])
    clf = cls(base=bases[cls], random_state=0, reject="auto", false_rejection=0.1)
    clf.fit(X[s], y[s])
    path = tmp_path / "open.safetensors"
    save_model(clf, path)
    loaded = load_model(path)
    assert loaded.get_params()["reject"] == "auto"
    assert loaded.get_params()["false_rejection"] == 0.1
    assert loaded.novelty_threshold_ == clf.novelty_threshold_
    np.testing.assert_array_equal(
        loaded.novelty_score(queries), clf.novelty_score(queries)
    )
    np.testing.assert_array_equal(loaded.predict(queries), clf.predict(queries))
    assert "unknown" in loaded.predict(queries).tolist()


def test_base_mode_scores_and_rejects(problem):
    X_base, y_base, _, _, X_far = problem
    clf = CalibratedFewShotClassifier(calibrate_proba=None, reject="auto")
    clf.fit(X_base, y_base)
    assert not np.any(clf.predict(X_base) == -1)
    assert np.mean(clf.predict(X_far) == -1) > 0.9


def test_nearest_mahalanobis_matches_the_definition():
    rng = np.random.default_rng(1)
    Z, means = rng.normal(size=(7, 4)), rng.normal(size=(3, 4))
    A = rng.normal(size=(4, 4))
    cov = A @ A.T + np.eye(4)
    inv = np.linalg.inv(cov)
    d = np.array([[np.sqrt((z - m) @ inv @ (z - m)) for m in means] for z in Z])
    # the Cholesky factor carries a jitter of 1e-6 of the mean variance
    np.testing.assert_allclose(nearest_mahalanobis(Z, means, cov), d.min(1), rtol=1e-5)
    var = np.diag(cov).copy()
    d = np.sqrt((((Z[:, None] - means[None]) ** 2) / var).sum(-1)).min(1)
    np.testing.assert_allclose(nearest_mahalanobis(Z, means, var), d)


def test_gaussian_threshold_is_the_chi_square_quantile():
    # isotropic: the squared distance is exactly chi-square with d dof
    rng = np.random.default_rng(2)
    t = gaussian_rejection_threshold([np.eye(50)], [1.0], np.ones(50), 0.95)
    draws = np.sqrt((rng.normal(size=(20000, 50)) ** 2).sum(1))
    assert abs(np.mean(draws > t) - 0.05) < 0.01


def test_softmax_and_energy_scores():
    scores = np.array([[5.0, 0.0], [0.1, 0.0]])
    assert (
        np.argmax(max_softmax_score(np.exp(scores) / np.exp(scores).sum(1)[:, None]))
        == 1
    )
    e = energy_score(scores)
    assert e[0] < e[1]
    np.testing.assert_allclose(e, -np.log(np.exp(scores).sum(1)))


def test_baselines_have_novelty_scores():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [6.0, 5.0]])
    y = [0, 0, 1, 1]
    proto = PrototypeClassifier().fit(X, y)
    np.testing.assert_allclose(proto.novelty_score([[0.5, 0.0], [5.5, 9.0]]), [0, 4])
    lin = BaselineClassifier(random_state=0).fit(X, y)
    far = np.array([[40.0, -30.0], [0.5, 0.0]])
    np.testing.assert_allclose(
        lin.novelty_score(far), energy_score(far @ lin.coef_.T + lin.intercept_)
    )
