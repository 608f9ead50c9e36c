"""The network's weights in and out of a Conv6Embedder: the state a safe model
file holds (the persistence protocol), the shipped model files, and the initial
weights of a fit."""

from __future__ import annotations

from importlib import resources
from numbers import Real
from pathlib import Path

import numpy as np
import torch
from skorch.history import History

from ..persistence._state import (
    check_array,
    check_value,
    labels_from_json,
    labels_to_json,
    to_json_scalar,
)

# how to run, not what was learnt: the device is chosen when loading, the
# initial weights are overwritten by the saved ones
SKIPPED_PARAMS = frozenset(
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

PRETRAINED = {"general": "general.safetensors"}


def pretrained_path(name: str = "general") -> Path:
    """Path of a shipped model file (see ``fscc_sklearn/pretrained/MODEL_CARD.md``)."""
    if name not in PRETRAINED:
        raise ValueError(
            f"Unknown pretrained model {name!r}; available: {sorted(PRETRAINED)}."
        )
    path = Path(str(resources.files("fscc_sklearn.pretrained") / PRETRAINED[name]))
    if not path.is_file():
        raise FileNotFoundError(
            f"The shipped model file {path} is missing from this installation; "
            "reinstall fscc-sklearn or train it with benchmarks/train_general.py."
        )
    return path


def model_state(emb) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a fitted embedder: see ``_get_model_state``."""
    emb.check_is_fitted(["module_", "input_shape_"])
    meta = {
        "classes": labels_to_json(emb.classes_),
        "input_shape": [int(s) for s in emb.input_shape_],
        "history": [
            {
                k: to_json_scalar(v, f"history {k}")
                for k, v in row.items()
                if k != "batches" and isinstance(v, (Real, str, bool, type(None)))
            }
            for row in emb.history
        ],
    }
    module = getattr(emb.module_, "_orig_mod", emb.module_)  # torch.compile
    arrays = {
        # copy(): C order, whatever the training memory format was
        _MODULE + k: v.detach().cpu().numpy().copy()
        for k, v in module.state_dict().items()
    }
    return meta, arrays


def from_model_state(cls, params, meta, arrays, *, device="cpu"):
    """The fitted embedder of a :func:`model_state`, every value checked."""
    shape = check_value(meta, "input_shape", "list")
    if len(shape) != 4 or not all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape
    ):
        raise ValueError(f"model state: input_shape {shape} is not (1, D, H, W).")
    history = check_value(meta, "history", "list")
    scalars = (type(None), bool, int, float, str)
    if not all(
        isinstance(row, dict) and all(isinstance(v, scalars) for v in row.values())
        for row in history
    ):
        raise ValueError(
            "model state: history must be a list of JSON objects of scalars."
        )
    emb = cls(**{**params, "device": device})
    emb.classes_ = labels_from_json(check_value(meta, "classes", "dict"))
    emb.input_shape_ = tuple(shape)
    # the tensors are checked against a network built on the meta device (no
    # memory) first: the real one is then no larger than the file's tensors
    state = _checked_weights(arrays, _module_shapes(emb, "meta"))
    try:
        emb.initialize()
    except TypeError as exc:  # e.g. an unknown module__ parameter
        raise ValueError(f"cannot rebuild the network: {exc}") from None
    # compile=True wraps the network; its weights are those of the original
    getattr(emb.module_, "_orig_mod", emb.module_).load_state_dict(state, strict=True)
    emb.module_.eval()
    emb.history = History(history)
    return emb


def _module_shapes(emb, device) -> dict:
    """``name -> tensor`` of the network ``emb`` would build, on ``device``."""
    kwargs = emb.get_params_for("module")
    kwargs.setdefault("n_classes", len(emb.classes_))
    kwargs.setdefault("volume_size", emb.input_shape_[-1])
    try:
        with torch.device(device):
            return emb.initialized_instance(emb.module, kwargs).state_dict()
    except TypeError as exc:  # e.g. an unknown module__ parameter
        raise ValueError(f"cannot rebuild the network: {exc}") from None


# trained Conv-6 weights and batch-norm statistics stay below ~10 (the shipped
# model: 7.3); one value near float32's limit turns every feature into inf
_MAX_WEIGHT = 1e8


def _checked_weights(arrays, expected) -> dict:
    """The network's tensors of ``arrays``, each as ``expected`` has it: same
    names, shapes and dtypes, finite, batch-norm variances >= 0."""
    got = {k[len(_MODULE) :] for k in arrays if k.startswith(_MODULE)}
    missing, extra = sorted(set(expected) - got), sorted(got - set(expected))
    if missing or extra:
        raise ValueError(
            f"network tensors do not match the module: missing {missing[:5]}, "
            f"unexpected {extra[:5]}."
        )
    state = {}
    for key, ref in expected.items():
        arr = check_array(
            arrays,
            _MODULE + key,
            shape=tuple(ref.shape),
            dtype=str(ref.dtype).replace("torch.", ""),
            finite=ref.is_floating_point(),
        )
        if ref.is_floating_point() and arr.size and np.abs(arr).max() > _MAX_WEIGHT:
            raise ValueError(
                f"tensor '{_MODULE}{key}' holds a value of magnitude "
                f"{np.abs(arr).max():.3g}, above the {_MAX_WEIGHT:g} a trained "
                "network stays far below: its features would overflow."
            )
        if key.endswith("running_var") and (arr < 0).any():
            raise ValueError(
                f"tensor '{_MODULE}{key}' holds negative variances "
                f"(min {arr.min():.3g})."
            )
        state[key] = torch.from_numpy(arr)
    return state


def load_initial_weights(emb, source_module) -> None:
    """Copy every layer but the class layer ``fc`` of ``source_module`` into
    ``emb.module_`` (the base classes differ); ValueError if shapes differ."""
    source = source_module.state_dict()
    target = emb.module_.state_dict()
    wanted = [k for k in target if not k.startswith("fc.")]
    mismatched = [
        f"{k} {tuple(source[k].shape)} vs {tuple(target[k].shape)}"
        for k in wanted
        if k in source and source[k].shape != target[k].shape
    ]
    missing = [k for k in wanted if k not in source]
    if mismatched or missing:
        raise ValueError(
            f"initial_weights={emb.initial_weights!r} does not fit this network "
            f"(give the same module__width and module__ params): "
            f"{'; '.join(mismatched + missing)[:300]}"
        )
    target.update({k: source[k] for k in wanted})
    emb.module_.load_state_dict(target)
