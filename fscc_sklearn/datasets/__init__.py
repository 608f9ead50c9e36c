"""Simulated SHREC-like subtomogram datasets and the density maps behind them."""

from ._cache import get_data_home
from ._maps import available_maps, load_map, prepare_map
from ._procedural import make_procedural_maps, symmetry_operators
from ._shrec import (
    SHREC19_CLASSES,
    SHREC19_NOVEL,
    SHREC21_CLASSES,
    SHREC21_NOVEL,
    load_shrec19_like,
    load_shrec21_like,
)
from ._simulate import missing_wedge_mask, simulate_subtomograms
from ._stats import SHREC21_REFERENCE_STATS, noise_spectrum_stats
from ._stream import SubtomogramStream

__all__ = [
    "SHREC19_CLASSES",
    "SHREC19_NOVEL",
    "SHREC21_CLASSES",
    "SHREC21_NOVEL",
    "SHREC21_REFERENCE_STATS",
    "SubtomogramStream",
    "available_maps",
    "get_data_home",
    "load_map",
    "load_shrec19_like",
    "load_shrec21_like",
    "make_procedural_maps",
    "missing_wedge_mask",
    "noise_spectrum_stats",
    "prepare_map",
    "simulate_subtomograms",
    "symmetry_operators",
]
