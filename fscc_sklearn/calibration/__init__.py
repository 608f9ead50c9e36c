"""Few-shot classifiers on frozen features that borrow base-class statistics.

Works on feature matrices only (no torch), so it serves any backbone:
:class:`BaseStatistics` (``_statistics``) holds the base classes' means and
covariances; :class:`CalibratedFewShotClassifier` (``_bayes``, the default
Bayesian rule) and :class:`DistributionCalibrationClassifier` (``_paper``,
FSCC's recipe) share a linear base (``_base``); ``_cv`` chooses
hyper-parameters on episodes of base classes, ``_temperature`` the softmax
temperatures of ``predict_proba``, ``_scatter`` the support's own covariance.
"""

from ._bayes import CalibratedFewShotClassifier
from ._cv import CalibratedFewShotClassifierCV
from ._paper import DistributionCalibrationClassifier
from ._statistics import BaseStatistics, tukey_transform

__all__ = [
    "BaseStatistics",
    "CalibratedFewShotClassifier",
    "CalibratedFewShotClassifierCV",
    "DistributionCalibrationClassifier",
    "tukey_transform",
]
