"""Tests for the comparison classifiers (Baseline, Baseline++, prototypes, Tukey LR)."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from fscc_sklearn import (
    BaselineClassifier,
    BaselinePlusPlusClassifier,
    PrototypeClassifier,
    TukeyLogisticRegression,
    adapt,
    evaluate_episodes,
)

EXPECTED_FAILED = {
    TukeyLogisticRegression: {
        "check_decision_proba_consistency": (
            "feeds negative test data although the positive_only tag is set; the "
            "Tukey transform rejects negative features"
        ),
    },
}


@parametrize_with_checks(
    [
        BaselineClassifier(max_epochs=20),
        BaselinePlusPlusClassifier(max_epochs=20),
        PrototypeClassifier(),
        PrototypeClassifier(tukey_lambda=0.5),
        TukeyLogisticRegression(),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED.get(type(est), {}),
)
def test_sklearn_api(estimator, check):
    check(estimator)


def blobs(n_classes=5, n_per_class=20, d=16, spread=0.5, seed=0):
    """Non-negative, sparse, well separated class clusters (like ReLU features)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 3, size=(n_classes, d)) * (
        rng.random((n_classes, d)) < 0.4
    )
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = np.abs(centres[y] + rng.normal(scale=spread, size=(len(y), d)))
    return X, y


ALL = [
    BaselineClassifier(random_state=0),
    BaselinePlusPlusClassifier(random_state=0),
    PrototypeClassifier(),
    PrototypeClassifier(tukey_lambda=0.5),
    TukeyLogisticRegression(random_state=0),
]


def _first_k(y, k):
    return np.concatenate([np.flatnonzero(y == c)[:k] for c in np.unique(y)])


@pytest.mark.parametrize("clf", ALL, ids=lambda c: repr(c))
@pytest.mark.parametrize("k_shot", [1, 5])
def test_learns_from_few_shots_well_above_chance(clf, k_shot):
    X, y = blobs(n_per_class=40)
    support = _first_k(y, k_shot)
    query = np.setdiff1d(np.arange(len(y)), support)
    model = clone(clf).fit(X[support], y[support])
    # chance is 0.2; Chen et al.'s recipe (200 small SGD steps) barely moves a
    # cosine head away from its random start at 1 shot, hence no higher bar
    assert np.mean(model.predict(X[query]) == y[query]) > 0.6
    # 1-shot: each support sample is its own class's nearest example
    assert np.array_equal(model.predict(X[support]), y[support])


@pytest.mark.parametrize("cls", [BaselineClassifier, BaselinePlusPlusClassifier])
def test_sgd_heads_are_deterministic_per_seed(cls):
    X, y = blobs()
    a = cls(random_state=3, max_epochs=5).fit(X, y).coef_
    b = cls(random_state=3, max_epochs=5).fit(X, y).coef_
    c = cls(random_state=4, max_epochs=5).fit(X, y).coef_
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def _torch_reference(clf, X, y, cosine):
    """Chen et al.'s fine-tuning loop in torch, with the numpy head's init and order."""
    rng = np.random.RandomState(clf.random_state)
    n, m = X.shape
    n_classes = len(np.unique(y))
    bound = 1 / np.sqrt(m)
    W0 = rng.uniform(-bound, bound, (n_classes, m))
    layer = torch.nn.Linear(m, n_classes, bias=not cosine).double()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(W0))
        if not cosine:
            layer.bias.copy_(torch.from_numpy(rng.uniform(-bound, bound, n_classes)))
    Xt = torch.from_numpy(X)
    if cosine:
        layer = torch.nn.utils.parametrizations.weight_norm(layer, dim=0)
        Xt = Xt / (Xt.norm(dim=1, keepdim=True) + 1e-5)
    opt = torch.optim.SGD(
        layer.parameters(), lr=0.01, momentum=0.9, dampening=0.9, weight_decay=1e-3
    )
    yt = torch.from_numpy(y)
    for _ in range(clf.max_epochs):
        order = rng.permutation(n)
        for start in range(0, n, 4):
            batch = torch.from_numpy(order[start : start + 4])
            scores = layer(Xt[batch]) * (2.0 if cosine else 1.0)
            loss = torch.nn.functional.cross_entropy(scores, yt[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return layer.weight.detach().numpy()


@pytest.mark.parametrize("cls", [BaselineClassifier, BaselinePlusPlusClassifier])
def test_sgd_heads_match_torch_sgd_with_momentum_and_dampening(cls):
    X, y = blobs(n_classes=3, n_per_class=5, d=6)
    clf = cls(random_state=0, max_epochs=7).fit(X, y)
    expected = _torch_reference(clf, X, y, cosine=cls is BaselinePlusPlusClassifier)
    np.testing.assert_allclose(clf.coef_, expected, rtol=1e-9, atol=1e-12)
    assert clf.n_iter_ == 7 * 4  # ceil(15 / 4) steps per epoch


def test_baseline_pp_scores_are_scaled_cosines():
    X, y = blobs(n_classes=3, d=8)
    clf = BaselinePlusPlusClassifier(random_state=0, max_epochs=3).fit(X, y)
    assert clf.scale_ == 2.0
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    scores = clf.decision_function(X)
    np.testing.assert_allclose(scores, 2.0 * Xn @ clf.coef_.T, rtol=1e-4)
    # scale does not depend on the feature norm: x and 10 x score alike
    np.testing.assert_allclose(clf.decision_function(10 * X), scores, rtol=1e-4)
    many = BaselinePlusPlusClassifier(max_epochs=1, random_state=0)
    assert many.fit(np.eye(201).repeat(2, 0), np.arange(402) // 2).scale_ == 10.0
    assert BaselinePlusPlusClassifier(scale=5.0, max_epochs=1).fit(X, y).scale_ == 5.0


def test_prototype_is_nearest_class_mean():
    X, y = blobs(n_classes=4, d=5)
    clf = PrototypeClassifier().fit(X, y)
    means = np.stack([X[y == c].mean(0) for c in range(4)])
    np.testing.assert_allclose(clf.centroids_, means)
    d2 = ((X[:, None] - means[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(clf.predict(X), d2.argmin(1))


def test_tukey_lr_is_logistic_regression_on_square_roots():
    X, y = blobs(n_classes=3, d=5)
    clf = TukeyLogisticRegression(random_state=0).fit(X, y)
    plain = PrototypeClassifier().fit(np.sqrt(X), y)
    assert np.mean(clf.predict(X) == plain.predict(np.sqrt(X))) > 0.9
    np.testing.assert_allclose(clf.predict_proba(X).sum(1), 1.0)
    assert clf.n_features_in_ == 5


def test_one_class_is_rejected_with_its_name():
    X, _ = blobs(n_classes=1)
    with pytest.raises(
        ValueError, match=r"at least 2 classes in y; got 1 class \('a'\)"
    ):
        BaselineClassifier().fit(X, ["a"] * len(X))


@pytest.mark.parametrize(
    "clf", [TukeyLogisticRegression(), PrototypeClassifier(tukey_lambda=0.5)]
)
def test_tukey_variants_reject_negative_features(clf):
    X, y = blobs(n_classes=2)
    X[0, 0] = -1.0
    with pytest.raises(ValueError, match="features must be >= 0"):
        clf.fit(X, y)


def test_baselines_plug_into_evaluate_episodes_and_adapt():
    X, y = blobs(n_classes=6, n_per_class=25)
    for clf in (BaselineClassifier(max_epochs=20), BaselinePlusPlusClassifier()):
        res = evaluate_episodes(
            clf, X, y, n_way=3, k_shot=1, n_query=5, n_episodes=8, random_state=0
        )
        assert res.mean > 0.6 and len(res.accuracies) == 8  # chance 1/3
        again = evaluate_episodes(
            clf, X, y, n_way=3, k_shot=1, n_query=5, n_episodes=8, random_state=0
        )
        np.testing.assert_array_equal(res.accuracies, again.accuracies)
    base = y < 3
    pipe = Pipeline(
        [("embed", FunctionTransformer(np.sqrt)), ("clf", BaselineClassifier())]
    ).fit(X[base], y[base])
    support = _first_k(np.where(base, -1, y), 2)[2:]  # 2 per novel class
    adapted = adapt(pipe, X[support], y[support])
    assert set(adapted.classes_) == {3, 4, 5}
    novel = ~base
    assert np.mean(adapted.predict(X[novel]) == y[novel]) > 0.8
    assert set(pipe.classes_) == {0, 1, 2}  # the base model is unchanged
