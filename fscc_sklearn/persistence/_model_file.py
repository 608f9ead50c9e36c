"""Save and load fitted pipelines: a safe safetensors format, or joblib.

The safe format stores every array (network weights, base-class statistics,
classifier coefficients) as a tensor of a ``.safetensors`` file and everything
else (hyper-parameters, class names, box and voxel size, versions, seed,
training history) as JSON in the file's metadata. Each estimator says what it
saves (``_get_model_state``) and how it is rebuilt (``_from_model_state``); the
file is a loop over the pipeline's steps (:mod:`._state`). Loading runs no code
from the file: the metadata is checked against the format's limits before
anything is built (:mod:`._schema`), only the package's registered classes are
built, every value is checked by the class that reads it, and the header's
description (classes, box) must be what was built.

Jobs are split: :mod:`._format` (file, header, hash, signature),
:mod:`._schema` (limits), :mod:`._state` (protocol and loop), :mod:`._v1`
(files of format version 1), :mod:`._joblib` (pickle), :mod:`._inputs` (box
and voxel size of new data).
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
    model_key,
    read_safe,
    write_safe,
)
from ._inputs import ModelInputError, check_model_input
from ._joblib import UnsafeModelFileWarning, read_joblib, write_joblib
from ._schema import ModelFileError, check_description
from ._state import model_from_state, model_state, to_json_scalar

__all__ = [
    "FORMAT_VERSION",
    "PICKLE_SUFFIXES",
    "SAFE_SUFFIXES",
    "ModelFileError",
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
    key: str | bytes | None = None,
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
    key : str or bytes, optional
        Sign the file with HMAC-SHA256 under this secret key (default: the
        environment variable ``FSCC_MODEL_KEY``, if set); :func:`load_model`
        with the same key then refuses any edited or unsigned file. Safe format
        only.

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
    key = model_key(key)
    info = header(metadata)
    if fmt == "joblib":
        if key is not None:
            raise ValueError(
                "A signing key is set (key= or FSCC_MODEL_KEY), but only the safe "
                "format (.safetensors) can be signed."
            )
        try:
            info.update(model_metadata(model))
        except (ValueError, AttributeError, TypeError):
            pass  # any estimator may be pickled; describe what we can
        return write_joblib(path, model, info, overwrite=overwrite)
    description, tensors = model_state(model)
    info.update(model_metadata(model))
    info["model"] = description
    try:
        check_description(description)
    except ModelFileError as exc:
        raise ValueError(f"cannot save this model: {exc}") from None
    return write_safe(path, tensors, info, overwrite=overwrite, key=key)


def load_model(
    path: str | os.PathLike,
    *,
    format: str = "auto",
    device: str = "cpu",
    return_metadata: bool = False,
    key: str | bytes | None = None,
):
    """Load a model saved by :func:`save_model`.

    The safe format (``.safetensors``) rebuilds the pipeline from the
    library's classes without running code from the file. The file is
    untrusted input: its metadata is checked against the format's limits
    (docs/reliability.md) before anything is built, then its tensors, shapes
    and content hash. A joblib file is unpickled
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
    key : str or bytes, optional
        Refuse the file unless it was signed with this key by
        :func:`save_model` (default: the environment variable
        ``FSCC_MODEL_KEY``, if set). The models shipped inside the package
        need no signature. A joblib file cannot be signed: it is refused.

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
        (content hash, or signature with a key), or holds unexpected tensors,
        shapes or metadata; the message names the field.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Model file not found: '{path}'")
    if not path.is_file():
        raise ValueError(f"Model path '{path}' is not a file.")
    fmt = format_of(path, format)
    key = model_key(key)
    if fmt == "joblib":
        if key is not None:
            raise ValueError(
                f"'{path}': a signing key is set (key= or FSCC_MODEL_KEY), and a "
                "joblib file cannot be verified; load a signed .safetensors file."
            )
        model, info = read_joblib(path)
    else:
        model, info = _load_safe(path, device, key)
    return (model, info) if return_metadata else model


def _shipped(path: Path) -> bool:
    """Whether ``path`` is a model file shipped inside the package: as trusted
    as the package's code, so no signature is asked of it."""
    shipped = Path(__file__).resolve().parents[1] / "pretrained"
    return path.resolve().parent == shipped


def _load_safe(path: Path, device: str, key=None):
    tensors, info = read_safe(path, key, shipped=_shipped(path))
    try:
        if info["format_version"] == 1:
            description, tensors = _v1.translate(info["structure"], tensors)
        else:
            description = info["model"]
        check_description(description)
        model = model_from_state(description, tensors, device=device)
        _check_description_matches(info, model)
    except ModelFileError as exc:
        raise exc.at(path) from None
    except KeyError as exc:
        raise ValueError(f"'{path}': malformed model metadata ({exc!r}).") from None
    except ValueError as exc:
        raise ValueError(f"'{path}': {exc}") from None
    return model, info


def _check_description_matches(info: dict, model) -> None:
    """The header's facts (classes, box, kind) and the steps' feature counts
    must be those of the model built: callers trust the header."""
    steps = _steps(model)
    for before, after in zip(steps, steps[1:], strict=False):
        made = getattr(getattr(before, "module_", None), "num_features", None)
        wanted = getattr(after, "n_features_in_", None)
        if made is not None and wanted is not None and made != wanted:
            raise ModelFileError(
                "model.steps",
                f"do not fit: {type(before).__name__} makes {made} features, "
                f"{type(after).__name__} expects n_features_in = {wanted}.",
            )
    facts = model_metadata(model)
    for key in ("kind", "box_size", "classes", "base_classes", "novel_classes"):
        if key in info and info[key] != facts[key]:
            raise ModelFileError(
                key,
                f"= {str(info[key])[:60]} is not what the model holds "
                f"({str(facts[key])[:60]}).",
            )
