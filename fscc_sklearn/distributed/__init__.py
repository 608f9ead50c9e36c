"""FSCC beyond one machine: Dask for prediction and evaluation, DDP for training.

Nothing here imports Dask at import time: :func:`dask_client` and the
``scheduler=`` arguments need the optional ``fscc-sklearn[distributed]``
extra; the torch parts need only torch.
"""

from ._client import dask_client, joblib_backend, set_worker_threads
from ._ddp import DistributedConv6Embedder
from ._gather import (
    DistributedCESupConLoss,
    GatherSupConLoss,
    all_gather_with_grad,
    is_distributed,
)
from ._predict import (
    ParticleJob,
    ParticleResults,
    embed_particles_distributed,
    model_box,
    predict_particles_distributed,
)
from ._sampler import DistributedClassBalancedBatchSampler

__all__ = [
    "DistributedCESupConLoss",
    "DistributedClassBalancedBatchSampler",
    "DistributedConv6Embedder",
    "GatherSupConLoss",
    "ParticleJob",
    "ParticleResults",
    "all_gather_with_grad",
    "dask_client",
    "embed_particles_distributed",
    "is_distributed",
    "joblib_backend",
    "model_box",
    "predict_particles_distributed",
    "set_worker_threads",
]
