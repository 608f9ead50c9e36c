"""Few-shot classification of cryo-ET subtomograms (FSCC) as scikit-learn estimators."""

import importlib

from ._version import __version__  # noqa: F401  (public attribute)

# Public names and the modules that define them, imported on first use: the
# ``fscc`` command (``fscc --help``) must not pay for torch before it needs it
_PUBLIC = {
    ".baselines": (
        "BaselineClassifier",
        "BaselinePlusPlusClassifier",
        "PrototypeClassifier",
        "TukeyLogisticRegression",
    ),
    ".calibration": (
        "BaseStatistics",
        "CalibratedFewShotClassifier",
        "CalibratedFewShotClassifierCV",
        "DistributionCalibrationClassifier",
        "tukey_transform",
    ),
    ".embedding": (
        "AtomicCheckpoint",
        "Conv6Embedder",
        "EpisodicValidation",
        "WarmupCosineLR",
        "load_checkpoint",
        "pretrained_embedder",
        "pretrained_model",
        "pretraining_recipe",
        "tune_malloc",
    ),
    ".discovery": ("cluster_embeddings", "suggest_labels"),
    ".persistence": ("load_model", "save_model"),
    ".model_selection": (
        "EpisodeResult",
        "adapt",
        "evaluate_episodes",
        "make_episodic_scorer",
        "sample_episode",
    ),
}
_MODULE_OF = {name: module for module, names in _PUBLIC.items() for name in names}


__all__ = [
    "AtomicCheckpoint",
    "BaseStatistics",
    "BaselineClassifier",
    "BaselinePlusPlusClassifier",
    "CalibratedFewShotClassifier",
    "CalibratedFewShotClassifierCV",
    "Conv6Embedder",
    "DistributionCalibrationClassifier",
    "EpisodeResult",
    "EpisodicValidation",
    "PrototypeClassifier",
    "TukeyLogisticRegression",
    "WarmupCosineLR",
    "adapt",
    "cluster_embeddings",
    "evaluate_episodes",
    "load_checkpoint",
    "load_model",
    "make_episodic_scorer",
    "pretrained_embedder",
    "pretrained_model",
    "pretraining_recipe",
    "sample_episode",
    "save_model",
    "suggest_labels",
    "tukey_transform",
    "tune_malloc",
]

# subpackages reachable as attributes (``fs.datasets``) without importing the
# optional ones (plotting needs matplotlib, distributed needs dask) up front
_SUBMODULES = (
    "baselines",
    "calibration",
    "datasets",
    "discovery",
    "distributed",
    "embedding",
    "io",
    "model_selection",
    "nn",
    "persistence",
    "plotting",
    "report",
)


def __getattr__(name):
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name], __name__), name)
        globals()[name] = value  # once imported, a plain attribute
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
