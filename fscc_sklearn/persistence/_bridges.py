"""Model state of the package classes that do not say it themselves.

The persistence protocol (:mod:`._state`) asks each estimator for
``_get_model_state``/``_from_model_state``.
:class:`~fscc_sklearn.io.SubtomogramNormalizer` learns nothing and io/ knows
nothing of persistence, so it is registered here. The :class:`Conv6Embedder`
bridge stands in until the embedder defines the two methods itself (with the
same state layout; a class's own methods take precedence).
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from ..embedding import Conv6Embedder
from ..io import SubtomogramNormalizer
from ._state import (
    check_array,
    check_value,
    labels_from_json,
    labels_to_json,
    register_saveable,
    to_json_scalar,
)

# ----------------------------------------------------------------------------
# SubtomogramNormalizer: nothing fitted


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

# ----------------------------------------------------------------------------
# Conv6Embedder: the network's weights, classes, input shape and history

# how to run, not what was learnt; the device is chosen when loading and the
# initial weights are overwritten by the saved ones
_EMBEDDER_SKIP = frozenset(
    {
        "device",
        "initial_weights",
        "callbacks",
        "train_split",
        "iterator_train",
        "iterator_valid",
        "dataset",
        "torch_load_kwargs",
    }
)
_MODULE = "module."


def history_rows(history) -> list:
    """The JSON scalars of every epoch of a skorch history (no batches)."""
    return [
        {
            k: to_json_scalar(v, f"history {k}")
            for k, v in row.items()
            if k != "batches" and isinstance(v, (Real, str, bool, type(None)))
        }
        for row in history
    ]


def _embedder_state(emb):
    emb.check_is_fitted(["module_", "input_shape_"])
    meta = {
        "classes": labels_to_json(emb.classes_),
        "input_shape": [int(s) for s in emb.input_shape_],
        "history": history_rows(emb.history),
    }
    arrays = {
        _MODULE + k: v.detach().cpu().numpy().copy()
        for k, v in emb.module_.state_dict().items()
    }
    return meta, arrays


def _embedder_from_state(cls, params, meta, arrays, *, device="cpu"):
    import torch
    from skorch.history import History

    shape = check_value(meta, "input_shape", "list")
    if len(shape) != 4 or not all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise ValueError(f"input_shape {shape} is not (1, D, H, W).")
    history = check_value(meta, "history", "list")
    if not all(isinstance(row, dict) for row in history):
        raise ValueError("history must be a list of JSON objects.")
    emb = cls(**params, device=device)
    emb.classes_ = labels_from_json(meta["classes"])
    emb.input_shape_ = tuple(shape)
    try:
        emb.initialize()
    except TypeError as exc:  # e.g. an unknown module__ parameter
        raise ValueError(f"cannot rebuild the network: {exc}") from None
    expected = emb.module_.state_dict()
    got = {k[len(_MODULE) :] for k in arrays if k.startswith(_MODULE)}
    missing, extra = sorted(set(expected) - got), sorted(got - set(expected))
    if missing or extra:
        raise ValueError(
            f"network tensors do not match the module: missing {missing[:5]}, "
            f"unexpected {extra[:5]}."
        )
    state = {
        key: torch.from_numpy(
            check_array(
                arrays,
                _MODULE + key,
                shape=tuple(ref.shape),
                dtype=str(ref.dtype).replace("torch.", ""),
                finite=ref.is_floating_point(),
            )
        )
        for key, ref in expected.items()
    }
    emb.module_.load_state_dict(state, strict=True)
    emb.module_.eval()
    emb.history = History(history)
    return emb


if "_model_state_skip_params" not in vars(Conv6Embedder):
    Conv6Embedder._model_state_skip_params = _EMBEDDER_SKIP
register_saveable(
    Conv6Embedder, get_state=_embedder_state, from_state=_embedder_from_state
)
