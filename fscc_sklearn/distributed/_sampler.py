"""Class-balanced batches sharded consistently across data-parallel processes."""

from __future__ import annotations

import torch.distributed as dist

from ..nn import ClassBalancedBatchSampler

__all__ = ["DistributedClassBalancedBatchSampler"]


class DistributedClassBalancedBatchSampler(ClassBalancedBatchSampler):
    """This process's share of the batches of :class:`ClassBalancedBatchSampler`.

    Every process draws the same global class-balanced batches (same labels,
    same ``seed``) and keeps every ``num_replicas``-th sample of each, starting
    at its ``rank``. The shards of one step are disjoint, their union is
    exactly the batch a single process would draw, and every process takes the
    same number of steps. Since global batches are laid out class by class,
    each shard holds about ``1 / num_replicas`` of every class.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
    batch_size : int
        Global batch size (over all processes).
    seed : int or None
        Must be the same on every process; None would make the shards
        inconsistent, so it is refused when ``num_replicas > 1``.
    num_replicas, rank : int, optional
        Default: world size and rank of the initialised process group (1 and 0
        without one).

    Examples
    --------
    >>> labels = [0] * 4 + [1] * 4
    >>> shards = [list(DistributedClassBalancedBatchSampler(
    ...     labels, 8, seed=0, num_replicas=2, rank=r)) for r in (0, 1)]
    >>> whole = list(ClassBalancedBatchSampler(labels, 8, seed=0))
    >>> sorted(shards[0][0] + shards[1][0]) == sorted(whole[0])
    True
    """

    def __init__(self, labels, batch_size, seed=None, num_replicas=None, rank=None):
        initialised = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if initialised else 1
        if rank is None:
            rank = dist.get_rank() if initialised else 0
        if not 0 <= rank < num_replicas:
            raise ValueError(
                f"rank must be in [0, num_replicas={num_replicas}); got {rank}."
            )
        if num_replicas > 1 and seed is None:
            raise ValueError(
                "seed=None would give every process different batches; pass the "
                "same integer seed on every process."
            )
        super().__init__(labels, batch_size, seed=seed)
        global_batch = self.per_class * len(self._members)
        if global_batch < num_replicas:
            raise ValueError(
                f"A balanced batch of {global_batch} samples cannot be shared by "
                f"{num_replicas} processes; increase batch_size."
            )
        self.num_replicas = num_replicas
        self.rank = rank

    def __iter__(self):
        for batch in super().__iter__():
            yield batch[self.rank :: self.num_replicas]
