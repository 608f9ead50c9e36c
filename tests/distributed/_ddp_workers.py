"""Functions the distributed tests run in gloo processes (importable by name)."""

import gc

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fscc_sklearn.distributed import (
    DistributedCESupConLoss,
    DistributedConv6Embedder,
    GatherSupConLoss,
)


class TinyNet(nn.Module):
    """Linear features and head, no BatchNorm: DDP and one process agree exactly."""

    def __init__(self, n_in=6, n_feat=5, n_classes=3):
        super().__init__()
        self.body = nn.Linear(n_in, n_feat)
        self.fc = nn.Linear(n_feat, n_classes)

    def forward(self, x):
        feats = torch.relu(self.body(x))
        return self.fc(feats), feats


def toy_batch():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(16, 6, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 0, 1, 2])
    return X, y


def _close():
    # the DDP reducer holds the process group: free it first, or destroying the
    # group leaves gloo threads that hang at exit
    gc.collect()
    dist.destroy_process_group()


def _init(rank, world, store):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=world
    )


def loss_and_grads(rank, world, store, out_dir, sizes):
    """One DDP step on this rank's rows of the toy batch; save loss and gradients."""
    _init(rank, world, store)
    try:
        torch.manual_seed(0)
        model = DistributedDataParallel(TinyNet())
        X, y = toy_batch()
        start = sum(sizes[:rank])
        rows = slice(start, start + sizes[rank])
        logits, feats = model(X[rows])
        loss = DistributedCESupConLoss(sup_con_weight=0.5, temperature=0.1)(
            (logits, feats), y[rows]
        )
        supcon = GatherSupConLoss(temperature=0.1)(feats, y[rows])
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.module.named_parameters()}
        torch.save(
            {"loss": loss.detach(), "supcon": supcon.detach(), "grads": grads},
            f"{out_dir}/rank{rank}.pt",
        )
        del model, loss, logits, feats
    finally:
        _close()


def fit_embedder(rank, world, store, out_dir, X, y):
    """Fit a tiny DistributedConv6Embedder; save weights, history and features."""
    _init(rank, world, store)
    try:
        net = DistributedConv6Embedder(
            module__width=4, max_epochs=2, batch_size=24, lr=0.01, random_state=0
        )
        net.fit(X, y)
        state = {k: v.clone() for k, v in net.module_.state_dict().items()}
        torch.save(
            {
                "state": state,
                "loss": np.asarray(net.history[:, "train_loss"]),
                "features": net.transform(X[:10]),
                "ddp": net.ddp_module_ is not None,
            },
            f"{out_dir}/rank{rank}.pt",
        )
        del net
    finally:
        _close()
