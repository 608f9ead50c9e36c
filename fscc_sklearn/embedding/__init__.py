"""Conv-6 as a scikit-learn transformer: training, callbacks, checkpoints, recipes.

Also the shipped (pre-trained) embedders and the allocator tuning that keeps
training fast on CPUs.
"""

from ._callbacks import EpisodicValidation, WarmupCosineLR
from ._checkpoint import AtomicCheckpoint, load_checkpoint
from ._embedder import Conv6Embedder
from ._pretrained import pretrained_embedder, pretrained_model
from ._recipes import pretraining_recipe
from ._runtime import tune_malloc

__all__ = [
    "AtomicCheckpoint",
    "Conv6Embedder",
    "EpisodicValidation",
    "WarmupCosineLR",
    "load_checkpoint",
    "pretrained_embedder",
    "pretrained_model",
    "pretraining_recipe",
    "tune_malloc",
]
