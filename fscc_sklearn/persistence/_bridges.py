"""Model state of the package classes that do not say it themselves.

The persistence protocol (:mod:`._state`) asks each estimator for
``_get_model_state``/``_from_model_state``.
:class:`~fscc_sklearn.io.SubtomogramNormalizer` learns nothing, and io/ knows
nothing of persistence, so its (empty) state is given here.
"""

from __future__ import annotations

import numpy as np

from ..io import SubtomogramNormalizer
from ._state import register_saveable


def _normalizer_state(norm):
    return {}, {}


def _normalizer_from_state(cls, params, meta, arrays, *, device="cpu"):
    if meta:
        raise ValueError(f"unexpected state {sorted(meta)}.")
    return cls(**params).fit(np.zeros((1, 2, 2, 2), np.float32))


register_saveable(
    SubtomogramNormalizer,
    get_state=_normalizer_state,
    from_state=_normalizer_from_state,
)
