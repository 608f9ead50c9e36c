"""Losses and calibration stay finite on degenerate data; float32 ~ float64."""

import numpy as np
import pytest
import torch

from fscc_sklearn import CalibratedFewShotClassifier
from fscc_sklearn.nn import CESupConLoss, SupConLoss

LABELS = torch.tensor([0, 0, 1, 1, 2, 2])


def _features(kind, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    base = torch.rand(6, 5, generator=g, dtype=torch.float64)
    return {
        "random": base,
        "constant": torch.full((6, 5), 3.0, dtype=torch.float64),
        "zeros": torch.zeros(6, 5, dtype=torch.float64),
        "duplicated": base[[0, 0, 2, 2, 4, 4]],
        "huge": base * 1e30,
        "tiny": base * 1e-30,
        "one_hot_collapse": torch.eye(5, dtype=torch.float64)[[0, 0, 0, 0, 0, 0]],
    }[kind].to(dtype)


KINDS = [
    "random",
    "constant",
    "zeros",
    "duplicated",
    "huge",
    "tiny",
    "one_hot_collapse",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("temperature", [0.07, 1e-3, 10.0])
def test_supcon_loss_and_gradient_are_finite(kind, temperature):
    features = _features(kind).requires_grad_()
    loss = SupConLoss(temperature=temperature)(features, LABELS)
    loss.backward()
    assert torch.isfinite(loss) and loss >= 0
    assert torch.isfinite(features.grad).all()


@pytest.mark.parametrize("kind", ["random", "duplicated", "huge", "tiny"])
def test_supcon_float32_matches_float64(kind):
    loss = SupConLoss()
    a = loss(_features(kind, torch.float32), LABELS)
    b = loss(_features(kind, torch.float64), LABELS)
    assert torch.isclose(a.double(), b.double(), rtol=1e-5, atol=1e-6)


def test_supcon_edge_batches():
    loss = SupConLoss()
    distinct = loss(_features("random"), torch.arange(6))
    assert distinct == 0  # no positive pair: nothing to pull together
    single = loss(_features("random")[:1], torch.tensor([0]))
    assert single == 0
    same = loss(_features("random"), torch.zeros(6, dtype=torch.long))
    assert torch.isfinite(same)


def test_ce_supcon_with_extreme_logits_is_finite():
    logits = torch.tensor([[1e30, -1e30, 0.0]] * 6, requires_grad=True)
    feats = _features("huge").requires_grad_()
    total = CESupConLoss()((logits, feats), torch.tensor([0, 1, 2, 0, 1, 2]))
    total.backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(feats.grad).all()


# --------------------------------------------------------------------------
# calibration


def _base_features(kind):
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, size=(30, 6)) + np.repeat(np.eye(3, 6) * 4, 10, axis=0)
    if kind == "duplicated":
        X = np.repeat(X[::2], 2, axis=0)
    elif kind == "constant_column":
        X[:, 3] = 2.0
    elif kind == "zeros":
        X = np.zeros_like(X)
    elif kind == "huge":
        X = X * 1e12
    elif kind == "tiny":
        X = X * 1e-12
    elif kind == "rank_deficient":  # 60 dims from 30 samples of rank 3
        X = np.abs(rng.normal(size=(30, 3)) @ rng.normal(size=(3, 60)))
    return X, np.repeat([0, 1, 2], 10)


CAL_KINDS = ["plain", "duplicated", "constant_column", "zeros", "huge", "tiny",
             "rank_deficient"]  # fmt: skip


@pytest.mark.parametrize("method", ["bayes", "paper"])
@pytest.mark.parametrize("kind", CAL_KINDS)
def test_calibration_stays_finite(method, kind):
    X, y = _base_features(kind)
    params = dict(method=method, n_samples=40, random_state=0)
    base = CalibratedFewShotClassifier(**params).fit(X, y)
    assert np.isfinite(base.predict_proba(X)).all()
    support = X[[0, 10]] * 1.01 + 1e-3 * X.max()
    few = CalibratedFewShotClassifier(base=base, k=2, **params).fit(support, [7, 8])
    proba = few.predict_proba(X)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0)
    # a support set whose classes share one feature vector is still finite
    tie = CalibratedFewShotClassifier(base=base, k=1, **params)
    assert np.isfinite(tie.fit(X[[0, 0]], [7, 8]).predict_proba(X[:3])).all()


@pytest.mark.parametrize("method", ["bayes", "paper"])
def test_calibration_float32_and_float64_agree(method):
    X, y = _base_features("plain")
    X32 = X.astype(np.float32)
    params = dict(method=method, n_samples=40, random_state=0)
    runs = []
    for data in (X32, X32.astype(np.float64)):
        base = CalibratedFewShotClassifier(**params).fit(data, y)
        few = CalibratedFewShotClassifier(base=base, k=2, **params)
        few.fit(data[[0, 1, 10, 11]], [7, 7, 8, 8])
        runs.append((few.predict(data), few.predict_proba(data)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-6, atol=1e-9)
