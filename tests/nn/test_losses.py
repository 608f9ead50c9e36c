import math

import pytest
import torch
import torch.nn.functional as F

from fscc_sklearn.nn import CESupConLoss, SupConLoss


def supcon_by_loops(features, labels, temperature):
    """The paper's formula, term by term, averaged over anchors with positives."""
    z = F.normalize(features.double(), dim=1)
    m = len(z)
    per_anchor = []
    for i in range(m):
        positives = [j for j in range(m) if j != i and labels[j] == labels[i]]
        if not positives:
            continue
        denom = sum(math.exp(z[i] @ z[k] / temperature) for k in range(m) if k != i)
        terms = [
            math.log(math.exp(z[i] @ z[j] / temperature) / denom) for j in positives
        ]
        per_anchor.append(-sum(terms) / len(positives))
    return sum(per_anchor) / len(per_anchor)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_supcon_matches_loop_formula(seed, temperature):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(12, 5, generator=g).abs()
    labels = torch.randint(0, 3, (12,), generator=g)
    expected = supcon_by_loops(features, labels, temperature)
    got = SupConLoss(temperature)(features, labels)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_supcon_ignores_anchors_without_positives():
    features = torch.randn(5, 4)
    labels = torch.tensor([0, 0, 1, 1, 2])  # class 2 has no positive
    expected = supcon_by_loops(features, labels, 0.07)
    assert SupConLoss()(features, labels).item() == pytest.approx(expected, rel=1e-5)


def test_supcon_without_any_positive_is_zero_with_gradient():
    features = torch.randn(3, 4, requires_grad=True)
    loss = SupConLoss()(features, torch.tensor([0, 1, 2]))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(features.grad, torch.zeros_like(features))


def test_supcon_gradients_flow_and_stay_finite_for_extreme_inputs():
    for scale in (1e-6, 1.0, 1e6):
        features = (torch.randn(8, 6) * scale).requires_grad_()
        loss = SupConLoss(temperature=0.01)(features, torch.tensor([0, 1] * 4))
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(features.grad).all()
        assert features.grad.abs().sum() > 0


def test_supcon_is_finite_for_zero_and_constant_features():
    labels = torch.tensor([0, 0, 1, 1])
    for features in (torch.zeros(4, 3), torch.ones(4, 3)):
        features.requires_grad_()
        loss = SupConLoss()(features, labels)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(features.grad).all()


def test_supcon_lower_for_clustered_features():
    labels = torch.tensor([0, 0, 1, 1])
    clustered = torch.tensor([[1.0, 0], [1, 0.01], [0, 1], [0.01, 1]])
    mixed = torch.tensor([[1.0, 0], [0, 1], [1, 0.01], [0.01, 1]])
    assert SupConLoss()(clustered, labels) < SupConLoss()(mixed, labels)


def test_supcon_rejects_bad_shapes_and_temperature():
    with pytest.raises(ValueError, match="features \\(M, d\\)"):
        SupConLoss()(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SupConLoss(temperature=0)


def test_ce_supcon_combines_terms():
    logits, feats = torch.randn(6, 3), torch.randn(6, 4)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    ce = F.cross_entropy(logits, y)
    sc = SupConLoss(0.1)(feats, y)
    total = CESupConLoss(sup_con_weight=0.3, temperature=0.1)((logits, feats), y)
    assert total.item() == pytest.approx((ce + 0.3 * sc).item(), rel=1e-6)
    plain = CESupConLoss(sup_con_weight=0)((logits, feats), y)
    assert plain.item() == pytest.approx(ce.item(), rel=1e-6)


def test_ce_supcon_terms_are_unweighted_and_combine_to_the_loss():
    logits, feats = torch.randn(6, 3), torch.randn(6, 4)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    loss = CESupConLoss(sup_con_weight=0.3, temperature=0.1)
    terms = loss.loss_terms((logits, feats), y)
    assert terms["ce"].item() == pytest.approx(F.cross_entropy(logits, y).item())
    assert terms["supcon"].item() == pytest.approx(SupConLoss(0.1)(feats, y).item())
    assert torch.equal(loss.combine(terms), loss((logits, feats), y))
    assert not hasattr(loss, "last_terms")  # no side channel
    plain = CESupConLoss(sup_con_weight=0).loss_terms((logits, feats), y)
    assert list(plain) == ["ce"]
