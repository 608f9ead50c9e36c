import numpy as np
import pytest
import torch
from _ddp_workers import TinyNet, loss_and_grads, toy_batch

from fscc_sklearn.distributed import (
    DistributedCESupConLoss,
    GatherSupConLoss,
    all_gather_with_grad,
    is_distributed,
)
from fscc_sklearn.nn import CESupConLoss, SupConLoss


def _single_process(sup_con_weight=0.5, temperature=0.1):
    torch.manual_seed(0)
    model = TinyNet()
    X, y = toy_batch()
    logits, feats = model(X)
    loss = CESupConLoss(sup_con_weight, temperature)((logits, feats), y)
    loss.backward()
    supcon = SupConLoss(temperature)(feats.detach(), y)
    return loss.detach(), supcon, {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("sizes", [(8, 8), (5, 11)])
def test_two_gloo_ranks_match_one_process_on_the_full_batch(run_ranks, sizes):
    ranks = run_ranks(loss_and_grads, list(sizes))
    loss, supcon, grads = _single_process()
    for r in ranks:
        # the contrastive term is global: every rank sees the full-batch value
        torch.testing.assert_close(r["supcon"], supcon)
        for name, g in grads.items():
            torch.testing.assert_close(r["grads"][name], g, rtol=1e-5, atol=1e-6)
    # the per-rank losses average to the full-batch loss (as DDP averages grads)
    torch.testing.assert_close(
        torch.stack([r["loss"] for r in ranks]).mean(), loss, rtol=1e-5, atol=1e-6
    )


def test_local_supcon_would_be_a_different_objective():
    # guards the test above against a toy batch where gathering makes no difference
    X, y = toy_batch()
    torch.manual_seed(0)
    _, feats = TinyNet()(X)
    loss = SupConLoss(0.1)
    halves = (loss(feats[:8], y[:8]) + loss(feats[8:], y[8:])) / 2
    assert not torch.isclose(halves, loss(feats, y), rtol=1e-3)


def test_without_process_group_everything_is_the_plain_loss():
    assert not is_distributed()
    f = torch.randn(6, 4, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    assert all_gather_with_grad(f) is f
    assert GatherSupConLoss(0.2)(f, y) == SupConLoss(0.2)(f, y)
    logits = torch.randn(6, 3)
    torch.testing.assert_close(
        DistributedCESupConLoss(0.3, 0.2)((logits, f), y),
        CESupConLoss(0.3, 0.2)((logits, f), y),
    )


def test_distributed_criterion_plugs_into_conv6embedder():
    from fscc_sklearn import Conv6Embedder
    from fscc_sklearn.datasets._toy import make_toy_volumes

    X, y = make_toy_volumes(n_classes=3, n_per_class=8, box=8, random_state=0)
    kwargs = dict(module__width=4, max_epochs=1, batch_size=12, random_state=0)
    a = Conv6Embedder(criterion=DistributedCESupConLoss, **kwargs).fit(X, y)
    b = Conv6Embedder(**kwargs).fit(X, y)
    assert isinstance(a.criterion_, DistributedCESupConLoss)
    assert a.criterion_.sup_con_weight == 0.05
    np.testing.assert_allclose(a.transform(X), b.transform(X), rtol=1e-5, atol=1e-6)
