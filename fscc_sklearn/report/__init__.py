"""Evaluation reports: episodic accuracy tables (Markdown/HTML) and plots.

matplotlib is imported inside the plotting functions, so this package loads
without it.
"""

from . import plotting
from ._markdown import (
    EpisodicEvaluation,
    chance_warnings,
    episodic_evaluation,
    write_report,
)

__all__ = [
    "EpisodicEvaluation",
    "chance_warnings",
    "episodic_evaluation",
    "plotting",
    "write_report",
]
