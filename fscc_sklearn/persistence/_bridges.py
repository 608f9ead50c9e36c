"""Model state of the package classes that do not yet say it themselves.

The persistence protocol (:mod:`._state`) asks each estimator for
``_get_model_state``/``_from_model_state``. Until :class:`Conv6Embedder`, the
calibration estimators and :class:`BaseStatistics` define those methods, the
functions here stand in for them, with the same state layout (a class's own
methods take precedence, so each bridge can be deleted when its class has
them). :class:`~fscc_sklearn.io.SubtomogramNormalizer` learns nothing; io/
knows no estimators' persistence, so it is registered here.
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from ..calibration import BaseStatistics, CalibratedFewShotClassifier
from ..embedding import Conv6Embedder
from ..io import SubtomogramNormalizer
from ._state import (
    check_array,
    check_value,
    labels_from_json,
    labels_to_json,
    logistic_regression_from_state,
    logistic_regression_state,
    object_from_state,
    object_state,
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


Conv6Embedder._model_state_skip_params = _EMBEDDER_SKIP
register_saveable(
    Conv6Embedder, get_state=_embedder_state, from_state=_embedder_from_state
)

# ----------------------------------------------------------------------------
# BaseStatistics: three arrays, classes and two facts

_STATS_ARRAYS = {"means": "float64", "covariances": "float64", "counts": "int64"}


def temperatures_from_json(entry) -> tuple:
    """``proba_temperatures`` pairs, checked (``[]`` in files made before them)."""
    ok = isinstance(entry, list) and all(
        isinstance(pair, list)
        and len(pair) == 2
        and isinstance(pair[0], int)
        and not isinstance(pair[0], bool)
        and pair[0] >= 1
        and isinstance(pair[1], (int, float))
        and np.isfinite(pair[1])
        and pair[1] > 0
        for pair in entry
    )
    if not ok:
        raise ValueError(
            f"probability temperatures {entry!r} are not [shots, temperature] pairs "
            "of a positive integer and a positive number."
        )
    return tuple((shots, float(t)) for shots, t in entry)


def _stats_state(stats):
    meta = {
        "classes": labels_to_json(stats.classes),
        "tukey_lambda": to_json_scalar(stats.tukey_lambda, "tukey_lambda"),
        "proba_temperatures": [[int(s), float(t)] for s, t in stats.proba_temperatures],
    }
    arrays = {
        name: np.asarray(getattr(stats, name), dtype=dtype)
        for name, dtype in _STATS_ARRAYS.items()
    }
    return meta, arrays


def _stats_from_state(cls, params, meta, arrays, *, device="cpu"):
    if params:
        raise ValueError(f"unexpected parameters {sorted(params)}.")
    classes = labels_from_json(meta["classes"])
    n = len(classes)
    means = check_array(arrays, "means", shape=(n, None), dtype="float64")
    m = means.shape[1]
    return cls(
        classes=classes,
        means=means,
        covariances=check_array(
            arrays, "covariances", shape=(n, m, m), dtype="float64"
        ),
        counts=check_array(arrays, "counts", shape=(n,), dtype="int64"),
        tukey_lambda=check_value(meta, "tukey_lambda", "float", none=True),
        proba_temperatures=temperatures_from_json(
            check_value(meta, "proba_temperatures", "list", default=[])
        ),
    )


register_saveable(BaseStatistics, get_state=_stats_state, from_state=_stats_from_state)

# ----------------------------------------------------------------------------
# CalibratedFewShotClassifier: linear scores (or a LogisticRegression), the
# base statistics (stored once when they are the ``base`` parameter)


def _clf_state(clf):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(clf)
    stats = clf.base_statistics_
    base = clf.base
    same = base is stats or getattr(base, "base_statistics_", None) is stats
    meta = {"classes": labels_to_json(clf.classes_)}
    meta["n_features_in"] = int(clf.n_features_in_)
    arrays = {}
    if same:
        meta["base_statistics"] = "base"
    else:
        entry, sub = object_state(stats, "base_statistics_/")
        meta["base_statistics"] = entry
        arrays.update(sub)
    if hasattr(clf, "temperature_"):
        meta["temperature"] = float(clf.temperature_)
    if hasattr(clf, "support_scatter_"):  # inf: no scatter used (not JSON)
        arrays["support_scatter"] = np.asarray(clf.support_scatter_, dtype=np.float64)
    for name in ("coef_", "intercept_", "n_iter_"):
        if hasattr(clf, name):
            arrays[name.rstrip("_")] = np.asarray(getattr(clf, name))
    if hasattr(clf, "logreg_"):
        meta["logreg"], lr_arrays = logistic_regression_state(clf.logreg_)
        arrays.update(lr_arrays)
    return meta, arrays


def _clf_from_state(cls, params, meta, arrays, *, device="cpu"):
    clf = cls(**params)
    classes = labels_from_json(meta["classes"])
    m = check_value(meta, "n_features_in", "int", low=1)
    entry = meta["base_statistics"]
    if entry == "base":
        if params.get("base") is None:
            raise ValueError("base_statistics refers to a missing base parameter.")
        stats = params["base"]
        stats = getattr(stats, "base_statistics_", stats)
    else:
        stats = object_from_state(entry, arrays, "base_statistics_/")
    if not isinstance(stats, BaseStatistics) or stats.n_features != m:
        raise ValueError(f"base statistics do not have {m} features.")
    rows = 1 if len(classes) == 2 else len(classes)
    clf.base_statistics_ = stats
    clf.classes_ = classes
    clf.n_features_in_ = m
    if "temperature" in meta:
        clf.temperature_ = check_value(meta, "temperature", "float", low=0)
    if "support_scatter" in arrays:
        scatter = check_array(arrays, "support_scatter", shape=(), finite=False)
        if not scatter >= 0:
            raise ValueError(f"support_scatter {scatter} is not >= 0.")
        clf.support_scatter_ = float(scatter)
    if "coef" in arrays:
        coef = check_array(arrays, "coef", shape=(None, m))
        if len(coef) not in (rows, len(classes)):
            raise ValueError(
                f"tensor 'coef' has {len(coef)} rows for {len(classes)} classes."
            )
        clf.coef_ = coef
        clf.intercept_ = check_array(arrays, "intercept", shape=(len(coef),))
        clf.n_iter_ = check_array(arrays, "n_iter", shape=(None,), kinds="iu")
    if "logreg" in meta:
        clf.logreg_ = logistic_regression_from_state(
            meta["logreg"], arrays, n_features=m
        )
        if list(clf.logreg_.classes_) != list(classes):
            raise ValueError(
                "logistic-regression classes differ from the classifier's."
            )
    elif "coef" not in arrays:
        raise ValueError("neither linear scores (coef) nor a logistic regression.")
    return clf


register_saveable(
    CalibratedFewShotClassifier, get_state=_clf_state, from_state=_clf_from_state
)
