"""PyTorch building blocks of FSCC (no scikit-learn, skorch or file handling here)."""

from ._augment import WedgeSafeAugment
from ._conv6 import Conv6
from ._fuse import fuse_for_inference, prepack_for_onednn
from ._losses import CESupConLoss, SupConLoss
from ._sampler import ClassBalancedBatchSampler

__all__ = [
    "CESupConLoss",
    "ClassBalancedBatchSampler",
    "Conv6",
    "SupConLoss",
    "WedgeSafeAugment",
    "fuse_for_inference",
    "prepack_for_onednn",
]
