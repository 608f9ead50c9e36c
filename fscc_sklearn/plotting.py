"""Deprecated alias of :mod:`fscc_sklearn.report.plotting` (moved in 0.2)."""

import warnings

from .report.plotting import *  # noqa: F403
from .report.plotting import __all__  # noqa: F401

warnings.warn(
    "fscc_sklearn.plotting moved to fscc_sklearn.report.plotting; the old name "
    "will be removed in a future release.",
    FutureWarning,
    stacklevel=2,
)
