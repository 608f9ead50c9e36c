"""Save and load fitted pipelines: a safe safetensors format, or joblib.

The safe format stores every array (network weights, base-class statistics,
classifier coefficients) as a tensor of a ``.safetensors`` file and everything
else (hyper-parameters, class names, box and voxel size, versions, seed,
training history) as JSON in the file's metadata. Each estimator says what it
saves (``_get_model_state``) and how it is rebuilt (``_from_model_state``); the
file is a loop over the pipeline's steps (:mod:`._state`). Loading runs no code
from the file: only the package's registered classes are built, and every
value is checked by the class that reads it.

Jobs are split: :mod:`._format` (file, header, hash), :mod:`._state` (protocol
and loop), :mod:`._v1` (files of format version 1), :mod:`._joblib` (pickle),
:mod:`._inputs` (box and voxel size of new data).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ..io import SubtomogramNormalizer
from ..model_selection import unfreeze
from . import _v1
from ._format import (
    FORMAT_VERSION,
    PICKLE_SUFFIXES,
    SAFE_SUFFIXES,
    content_hash,
    format_of,
    header,
    read_safe,
    write_safe,
)
from ._inputs import ModelInputError, check_model_input
from ._joblib import UnsafeModelFileWarning, read_joblib, write_joblib
from ._state import model_from_state, model_state, to_json_scalar

__all__ = [
    "FORMAT_VERSION",
    "PICKLE_SUFFIXES",
    "SAFE_SUFFIXES",
    "ModelInputError",
    "UnsafeModelFileWarning",
    "check_model_input",
    "load_model",
    "model_metadata",
    "save_model",
]

_content_hash = content_hash  # the name the tests' file editor uses


def _steps(model) -> list:
    steps = model.steps if isinstance(model, Pipeline) else [("model", model)]
    return [unfreeze(step) for _, step in steps]


def _json_params(est) -> dict:
    """The constructor params of ``est`` that are JSON scalars."""
    skip = getattr(type(est), "_model_state_skip_params", ())
    out = {}
    for key, value in est.get_params(deep=False).items():
        if key in skip or key.startswith("_"):
            continue
        try:
            out[key] = to_json_scalar(value, key)
        except ValueError:
            continue  # classes, callbacks, statistics: not a fact to show
    return out


def model_metadata(model) -> dict:
    """Facts read off a fitted model: box, classes, parameters, kind.

    Parameters
    ----------
    model : Pipeline or estimator
        Fitted; typically ``[normalizer,] Conv6Embedder, classifier``.

    Returns
    -------
    dict
        ``kind`` ("pretrained": a classifier of its base classes, "adapted":
        of novel classes from base statistics, "fitted": anything else),
        ``box_size`` (None without an embedder), ``base_classes``,
        ``classes`` (what ``predict`` returns), ``novel_classes`` (adapted
        models), ``normalization`` and ``training`` (embedder and classifier
        parameters), all JSON-serialisable.
    """
    steps = _steps(model)
    final = steps[-1]
    check_is_fitted(final)
    emb = next((s for s in steps if hasattr(s, "input_shape_")), None)
    norm = next((s for s in steps if isinstance(s, SubtomogramNormalizer)), None)
    stats = getattr(final, "base_statistics_", None)
    classes = np.asarray(getattr(final, "classes_", [])).tolist()
    if stats is None:
        kind = "fitted"
    else:
        kind = "pretrained" if getattr(final, "base", None) is None else "adapted"
    training = {"classifier": _json_params(final)}
    if emb is not None:
        training["embedder"] = _json_params(emb)
        training["epochs_run"] = len(getattr(emb, "history", []) or [])
    if stats is not None:
        training["n_base_features"] = int(stats.n_features)
    return {
        "kind": kind,
        "box_size": None if emb is None else int(emb.input_shape_[-1]),
        "base_classes": [] if stats is None else np.asarray(stats.classes).tolist(),
        "classes": classes,
        "novel_classes": classes if kind == "adapted" else [],
        "normalization": (
            None
            if norm is None
            else {
                "per_subtomogram": "zero mean, unit variance",
                "lowpass": norm.lowpass,
            }
        ),
        "training": training,
    }


def save_model(
    model,
    path: str | os.PathLike,
    metadata: dict | None = None,
    *,
    format: str = "auto",
    overwrite: bool = False,
) -> Path:
    """Save a fitted pipeline with its metadata.

    Parameters
    ----------
    model : Pipeline or estimator
        For the safe format: a fitted estimator of this package, or a
        ``Pipeline`` of them (e.g. an optional
        :class:`~fscc_sklearn.io.SubtomogramNormalizer`, a
        :class:`Conv6Embedder` and a classifier; steps may be wrapped in
        ``FrozenEstimator``, as :func:`adapt` does). Any estimator for joblib.
    path : str or path-like
        Output file. ``.safetensors`` (or ``.fscc``) selects the safe format,
        ``.joblib``/``.pkl`` joblib.
    metadata : dict, optional
        Extra JSON-serialisable facts to store (e.g. ``voxel_size`` in
        Angstrom, ``seed``). Box size, classes, parameters, versions and a
        content hash are added automatically.
    format : {"auto", "safetensors", "joblib"}, default="auto"
        ``"auto"`` follows the suffix.
    overwrite : bool, default=False
        Whether an existing file may be replaced.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        If the model cannot be stored in the safe format, or the metadata is
        not JSON-serialisable.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.pipeline import Pipeline
    >>> from fscc_sklearn import CalibratedFewShotClassifier, Conv6Embedder
    >>> from fscc_sklearn.datasets._toy import make_toy_volumes
    >>> X, y = make_toy_volumes(n_classes=3, n_per_class=4, box=8, random_state=0)
    >>> pipe = Pipeline([
    ...     ("embed", Conv6Embedder(module__width=2, max_epochs=1, random_state=0)),
    ...     ("clf", CalibratedFewShotClassifier()),
    ... ]).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = save_model(pipe, os.path.join(tmp, "m.safetensors"),
    ...                       {"voxel_size": 10.0, "seed": 0})
    ...     loaded, meta = load_model(path, return_metadata=True)
    >>> bool((loaded.predict(X) == pipe.predict(X)).all()), meta["box_size"]
    (True, 8)
    """
    path = Path(path)
    fmt = format_of(path, format)
    info = header(metadata)
    if fmt == "joblib":
        try:
            info.update(model_metadata(model))
        except (ValueError, AttributeError, TypeError):
            pass  # any estimator may be pickled; describe what we can
        return write_joblib(path, model, info, overwrite=overwrite)
    description, tensors = model_state(model)
    info.update(model_metadata(model))
    info["model"] = description
    return write_safe(path, tensors, info, overwrite=overwrite)


def load_model(
    path: str | os.PathLike,
    *,
    format: str = "auto",
    device: str = "cpu",
    return_metadata: bool = False,
):
    """Load a model saved by :func:`save_model`.

    The safe format (``.safetensors``) rebuilds the pipeline from the
    library's classes without running code from the file; its tensors,
    shapes, metadata and content hash are checked. A joblib file is unpickled
    after a :class:`UnsafeModelFileWarning`: unpickling can run arbitrary code,
    so load only files you trust.

    Parameters
    ----------
    path : str or path-like
        The model file.
    format : {"auto", "safetensors", "joblib"}, default="auto"
        ``"auto"`` follows the suffix.
    device : str, default="cpu"
        Torch device of the embedder (``"auto"``: CUDA when available). Only
        used by the safe format.
    return_metadata : bool, default=False
        Also return the metadata dict.

    Returns
    -------
    model : Pipeline
        The fitted pipeline; ``predict`` gives what the saved one gave.
    metadata : dict
        Only with ``return_metadata=True``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a model file of this library, was modified
        (content hash), or holds unexpected tensors, shapes or metadata.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Model file not found: '{path}'")
    if not path.is_file():
        raise ValueError(f"Model path '{path}' is not a file.")
    if format_of(path, format) == "joblib":
        model, info = read_joblib(path)
    else:
        model, info = _load_safe(path, device)
    return (model, info) if return_metadata else model


def _load_safe(path: Path, device: str):
    tensors, info = read_safe(path)
    try:
        if info["format_version"] == 1:
            description, tensors = _v1.translate(info["structure"], tensors)
        else:
            description = info["model"]
        model = model_from_state(description, tensors, device=device)
    except KeyError as exc:
        raise ValueError(f"'{path}': malformed model metadata ({exc!r}).") from None
    except ValueError as exc:
        raise ValueError(f"'{path}': {exc}") from None
    return model, info
