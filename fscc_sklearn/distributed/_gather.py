"""Gather features across processes, with gradients, so SupCon sees the global batch."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..nn import CESupConLoss, SupConLoss

__all__ = [
    "DistributedCESupConLoss",
    "GatherSupConLoss",
    "all_gather_with_grad",
    "is_distributed",
]


def is_distributed(group=None) -> bool:
    """Whether a torch.distributed process group with more than one process is up."""
    return (
        dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1
    )


def _gather_sizes(n: int, device, group) -> list[int]:
    size = torch.tensor([n], dtype=torch.int64, device=device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size(group))]
    dist.all_gather(sizes, size, group=group)
    return [int(s) for s in sizes]


def _all_gather_cat(tensor: torch.Tensor, group) -> tuple[torch.Tensor, list[int]]:
    """Concatenate ``tensor`` of every process in rank order (sizes may differ)."""
    sizes = _gather_sizes(len(tensor), tensor.device, group)
    longest = max(sizes)
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: len(tensor)] = tensor
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous(), group=group)
    return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)]), sizes


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, group):
        gathered, sizes = _all_gather_cat(tensor.detach(), group)
        rank = dist.get_rank(group)
        ctx.group = group
        ctx.start = sum(sizes[:rank])
        ctx.stop = ctx.start + sizes[rank]
        return gathered

    @staticmethod
    def backward(ctx, grad):
        # every process differentiates its own loss with respect to all rows;
        # the rows a process owns collect the gradient of every process's loss
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad[ctx.start : ctx.stop], None


def all_gather_with_grad(tensor: torch.Tensor, group=None) -> torch.Tensor:
    """Concatenate ``tensor`` from every process, differentiably for the local rows.

    Rows are stacked in rank order; processes may hold different numbers of
    rows. In the backward pass the gradient reaching a process's own rows is
    the sum over all processes of their loss's gradient with respect to those
    rows (the other rows carry no gradient back to their owners directly: each
    owner receives it through this sum). When every process computes the same
    loss on the gathered tensor and the optimiser step averages gradients over
    processes, as :class:`torch.nn.parallel.DistributedDataParallel` does, the
    update equals the one a single process would make on the whole batch.

    Without an initialised process group of two or more processes, returns
    ``tensor`` unchanged.

    Parameters
    ----------
    tensor : torch.Tensor of shape (n_local, ...)
    group : torch.distributed.ProcessGroup, optional
        Default: the world.

    Returns
    -------
    torch.Tensor of shape (n_global, ...)
    """
    if not is_distributed(group):
        return tensor
    return _GatherWithGrad.apply(tensor, group)


def _gather_labels(labels: torch.Tensor, group) -> torch.Tensor:
    return _all_gather_cat(labels, group)[0]


class GatherSupConLoss(SupConLoss):
    """:class:`~fscc_sklearn.nn.SupConLoss` over the batch of all processes.

    Features and labels are gathered from every process first
    (:func:`all_gather_with_grad`), so positives and negatives span the global
    batch; every process returns the global loss value. In a single process it
    is exactly :class:`~fscc_sklearn.nn.SupConLoss`.

    Parameters
    ----------
    temperature : float, default=0.07
    group : torch.distributed.ProcessGroup, optional
        Default: the world.

    Examples
    --------
    >>> import torch
    >>> f, y = torch.eye(4), torch.tensor([0, 0, 1, 1])
    >>> bool(GatherSupConLoss()(f, y) == SupConLoss()(f, y))
    True
    """

    def __init__(self, temperature=0.07, group=None):
        super().__init__(temperature=temperature)
        self.group = group

    def forward(self, features, labels):
        if is_distributed(self.group):
            features = all_gather_with_grad(features, self.group)
            labels = _gather_labels(labels, self.group)
        return super().forward(features, labels)


class DistributedCESupConLoss(CESupConLoss):
    """FSCC's ``CE + sup_con_weight * SupCon`` for data-parallel training.

    Pass it as ``Conv6Embedder(criterion=DistributedCESupConLoss)`` (the default
    of :class:`DistributedConv6Embedder`). The SupCon term is computed on the
    features and labels of all processes (:class:`GatherSupConLoss`). The cross
    entropy stays local but is weighted by ``world_size * n_local / n_global``,
    so averaging the gradients over processes (what DDP does) gives the
    gradient of the mean over the global batch even when processes hold
    different numbers of samples. With one process it equals
    :class:`~fscc_sklearn.nn.CESupConLoss`.

    Parameters
    ----------
    sup_con_weight : float, default=0.05
    temperature : float, default=0.07
    group : torch.distributed.ProcessGroup, optional
        Default: the world.
    """

    def __init__(self, sup_con_weight=0.05, temperature=0.07, group=None):
        super().__init__(sup_con_weight=sup_con_weight, temperature=temperature)
        self.group = group
        self.supcon = GatherSupConLoss(temperature=temperature, group=group)

    def loss_terms(self, y_pred, y_true):
        if not is_distributed(self.group):
            return super().loss_terms(y_pred, y_true)
        logits, features = y_pred
        n_global = torch.tensor([len(y_true)], dtype=torch.int64, device=logits.device)
        dist.all_reduce(n_global, group=self.group)
        world = dist.get_world_size(self.group)
        ce_sum = F.cross_entropy(logits, y_true, reduction="sum")
        terms = {"ce": ce_sum * (world / n_global.item())}
        if self.sup_con_weight:
            terms["supcon"] = self.supcon(features, y_true)
        return terms
