"""Conv6Embedder trained data-parallel with DistributedDataParallel (torchrun)."""

from __future__ import annotations

import numpy as np
import torch
from skorch.utils import to_tensor
from torch.nn.parallel import DistributedDataParallel

from ..embedding._embedder import Conv6Embedder, _dataset_labels
from ..nn import Conv6
from ._gather import DistributedCESupConLoss, is_distributed
from ._sampler import DistributedClassBalancedBatchSampler

__all__ = ["DistributedConv6Embedder"]


class DistributedConv6Embedder(Conv6Embedder):
    """:class:`~fscc_sklearn.Conv6Embedder` that trains on several processes.

    Start one process per GPU (or CPU slot) with ``torchrun``, call
    ``torch.distributed.init_process_group`` and fit the same model on the same
    data in every process: each process then trains on its shard of every
    class-balanced batch (:class:`DistributedClassBalancedBatchSampler`), the
    SupCon term is computed on the features gathered from all processes
    (:class:`DistributedCESupConLoss`), and DistributedDataParallel averages
    the gradients, so all processes hold the same weights after every step.
    ``batch_size`` is the global batch size. Without an initialised process
    group of two or more processes it behaves exactly like ``Conv6Embedder``.

    ``random_state`` must be an integer so that every process draws the same
    batches. BatchNorm statistics are per process during training (use
    ``torch.nn.SyncBatchNorm`` via a custom module on GPUs to change that);
    the final precise-BatchNorm pass runs over the whole training set in every
    process, so the fitted embedders agree. Save the model from rank 0 only.

    Parameters are those of :class:`~fscc_sklearn.Conv6Embedder`; the default
    criterion is :class:`DistributedCESupConLoss`.

    Attributes
    ----------
    ddp_module_ : DistributedDataParallel or None
        The wrapper used for training steps (None in a single process); not
        pickled.
    """

    def __init__(self, module=Conv6, *, criterion=DistributedCESupConLoss, **kwargs):
        super().__init__(module, criterion=criterion, **kwargs)

    def initialize(self):
        if is_distributed() and not isinstance(self.random_state, (int, np.integer)):
            raise ValueError(
                "DistributedConv6Embedder needs an integer random_state shared by all "
                f"processes; got {self.random_state!r}."
            )
        return super().initialize()

    def initialize_module(self):
        super().initialize_module()
        ddp = None
        if is_distributed():
            device = next(self.module_.parameters()).device
            ids = [device] if device.type == "cuda" else None
            ddp = DistributedDataParallel(self.module_, device_ids=ids)
        # plain object attribute: skorch would otherwise register the wrapper
        # as a second module and hand its (shared) parameters to the optimiser
        object.__setattr__(self, "ddp_module_", ddp)
        return self

    def infer(self, x, **fit_params):
        ddp = getattr(self, "ddp_module_", None)
        if ddp is None or not torch.is_grad_enabled() or not self.module_.training:
            return super().infer(x, **fit_params)
        x = to_tensor(x, device=self.device_)
        if self._training_channels_last and x.ndim == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return ddp(x, **fit_params)

    def get_iterator(self, dataset, training=False):
        if not training:
            return super().get_iterator(dataset, training=False)
        kwargs = self.get_params_for("iterator_train")
        seed = int(self.sampler_rng_.integers(2**63 - 1))
        kwargs.setdefault("generator", torch.Generator().manual_seed(seed))
        kwargs.pop("batch_size", None)
        kwargs.pop("shuffle", None)
        sampler = DistributedClassBalancedBatchSampler(
            _dataset_labels(dataset), self.batch_size, seed=seed
        )
        return self.iterator_train(dataset, batch_sampler=sampler, **kwargs)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("ddp_module_", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        object.__setattr__(self, "ddp_module_", None)
