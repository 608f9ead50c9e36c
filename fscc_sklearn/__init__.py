"""Few-shot classification of cryo-ET subtomograms (FSCC) as scikit-learn estimators."""

import importlib

from ._baselines import (
    BaselineClassifier,
    BaselinePlusPlusClassifier,
    PrototypeClassifier,
    TukeyLogisticRegression,
)
from ._calibration import BaseStatistics, CalibratedFewShotClassifier, tukey_transform
from ._calibration_cv import CalibratedFewShotClassifierCV
from ._callbacks import EpisodicValidation, WarmupCosineLR
from ._checkpoint import AtomicCheckpoint, load_checkpoint
from ._embedder import Conv6Embedder
from ._persistence import load_model, save_model
from ._pretrained import pretrained_embedder, pretrained_model
from ._recipes import pretraining_recipe
from ._runtime import tune_malloc
from .model_selection import (
    EpisodeResult,
    adapt,
    evaluate_episodes,
    make_episodic_scorer,
    sample_episode,
)

__version__ = "0.1.0"

__all__ = [
    "AtomicCheckpoint",
    "BaseStatistics",
    "BaselineClassifier",
    "BaselinePlusPlusClassifier",
    "CalibratedFewShotClassifier",
    "CalibratedFewShotClassifierCV",
    "Conv6Embedder",
    "EpisodeResult",
    "EpisodicValidation",
    "PrototypeClassifier",
    "TukeyLogisticRegression",
    "WarmupCosineLR",
    "adapt",
    "evaluate_episodes",
    "load_checkpoint",
    "load_model",
    "make_episodic_scorer",
    "pretrained_embedder",
    "pretrained_model",
    "pretraining_recipe",
    "sample_episode",
    "save_model",
    "tukey_transform",
    "tune_malloc",
]

# subpackages reachable as attributes (``fs.datasets``) without importing the
# optional ones (plotting needs matplotlib, distributed needs dask) up front
_SUBMODULES = ("datasets", "distributed", "io", "nn", "plotting")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
