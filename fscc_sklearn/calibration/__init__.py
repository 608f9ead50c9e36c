"""Few-shot classifiers on frozen features that borrow base-class statistics.

Works on feature matrices only (no torch), so it serves any backbone.
"""

from ._calibration import BaseStatistics, CalibratedFewShotClassifier, tukey_transform
from ._cv import CalibratedFewShotClassifierCV

__all__ = [
    "BaseStatistics",
    "CalibratedFewShotClassifier",
    "CalibratedFewShotClassifierCV",
    "tukey_transform",
]
