"""``fscc demo``: simulate, adapt (or pre-train first), evaluate and plot."""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from ..datasets import load_shrec21_like
from ..embedding._pretrained import pretrained_model
from ..io import write_predictions
from ..model_selection import adapt
from ..persistence._model_file import save_model
from ..report import plotting
from ._common import _note, _prepare_dir, _say
from ._data import _bars, _draw, _embed, _plots_available
from ._evaluate import _evaluate
from ._inputs import LabelledData
from ._parser import DEMO_TRAINING
from ._predict import _pick_shots
from ._train import _pretraining_fact, _train

# base subtomograms per class in the embedding map: the map reads the same, and
# embedding all 100 took a third of the demo's time
_PLOT_PER_BASE_CLASS = 40


def _first_per_class(y, n: int) -> np.ndarray:
    """Indices of the first ``n`` samples of every class of ``y``, in order."""
    y = np.asarray(y)
    rank = np.zeros(len(y), dtype=int)
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        rank[rows] = np.arange(len(rows))
    return np.flatnonzero(rank < n)


def cmd_demo(args):
    t_start = time.perf_counter()
    if not args.pretrain and args.box != 32:
        raise ValueError(
            f"the shipped general model reads 32^3 boxes, not --box {args.box}; "
            "add --pretrain to train on other boxes"
        )
    folder = _prepare_dir(args, args.out_dir)
    _note(
        args,
        f"fscc demo: SHREC'21-like simulated data, {args.n_per_class} subtomograms per "
        f"class, box {args.box}, seed {args.seed}, torch threads "
        f"{torch.get_num_threads()}",
    )
    data = load_shrec21_like(
        n_per_class=args.n_per_class,
        box=args.box,
        random_state=args.seed,
        progress=_bars(args),
        n_jobs=args.n_jobs,
    )
    t_sim = time.perf_counter() - t_start
    _note(
        args,
        f"data: {len(data.y_base)} base subtomograms of {len(data.base_classes)} "
        f"classes ({', '.join(data.base_classes)}), {len(data.y_novel)} of "
        f"{len(data.novel_classes)} novel classes ({', '.join(data.novel_classes)}) "
        f"[{t_sim:.0f} s]",
    )
    if not args.pretrain:
        pipe, t_train = pretrained_model(device=args.device), 0.0
        _say(args, "using the shipped general model (no pre-training; see --pretrain)")
    else:
        _note(args, "pre-training Conv-6 on the base classes ...")
        for option, value in DEMO_TRAINING.items():
            # a recipe sets the schedule; the demo's small width stays
            recipe_sets = args.recipe is not None and option != "width"
            if getattr(args, option) is None and not recipe_sets:
                setattr(args, option, value)
        pipe, t_train = _train(args, data.X_base, data.y_base)
        hist = pipe.named_steps["embed"].history
        _say(
            args,
            f"pre-trained in {t_train:.0f} s: base-class training accuracy "
            f"{hist[-1, 'train_acc']:.3f}",
        )
    model_path = folder / "pretrained.safetensors"
    save_model(
        pipe,
        model_path,
        {
            "voxel_size": 10.0,
            "seed": args.seed,
            "training_data": "load_shrec21_like",
            "n_per_class": args.n_per_class,
        },
        overwrite=args.force,
    )

    novel = LabelledData(
        data.X_novel,
        np.asarray(data.y_novel, dtype=str),
        10.0,
        [f"novel_{i}" for i in range(len(data.y_novel))],
        None,
        "load_shrec21_like (novel classes)",
    )
    # embedding is most of the demo's time: every novel subtomogram is embedded
    # once, and the adapted model's classifier (same frozen embedder) reuses it
    F_novel = _embed(args, pipe, novel.X)
    # one concrete adaptation: 5 labelled examples per novel class, the rest predicted
    rows = _pick_shots(novel.y, 5, args.seed)
    adapted = adapt(pipe, novel.X[rows], novel.y[rows])
    rest = np.setdiff1d(np.arange(len(novel.y)), rows)
    pred = adapted[-1].predict(F_novel[rest])
    acc = float(np.mean(pred == novel.y[rest]))
    save_model(
        adapted,
        folder / "adapted_5shot.safetensors",
        {"voxel_size": 10.0, "seed": args.seed},
        overwrite=args.force,
    )
    predictions = write_predictions(
        folder / "predictions.csv",
        None,
        pred,
        adapted[-1].predict_proba(F_novel[rest]),
        classes=adapted.classes_,
        names=[novel.names[i] for i in rest],
        overwrite=args.force,
    )
    _say(
        args,
        f"adapted with 5 examples per novel class: accuracy {acc:.3f} on the other "
        f"{len(rest)} novel subtomograms (chance {1 / len(data.novel_classes):.3f}); "
        f"predictions: {predictions}",
    )
    extra_plots, notes = {}, []
    if _plots_available(args):
        # the map shows at most _PLOT_PER_BASE_CLASS of each base class
        base = _first_per_class(data.y_base, _PLOT_PER_BASE_CLASS)
        X_all = np.concatenate([data.X_base[base], data.X_novel])
        y_all = np.concatenate([np.asarray(data.y_base)[base], data.y_novel]).astype(
            str
        )
        _draw(
            args,
            extra_plots,
            notes,
            "Embeddings of base and novel classes (PCA)",
            plotting.plot_embedding,
            folder / "embedding.png",
            np.concatenate([_embed(args, pipe, data.X_base[base]), F_novel]),
            y_all,
            novel=data.novel_classes,
        )
        _draw(
            args,
            extra_plots,
            notes,
            "Examples and class averages",
            plotting.plot_class_examples,
            folder / "examples.png",
            X_all,
            y_all,
        )
    facts = {
        "data": f"SHREC'21-like simulated, {args.n_per_class} per class, box "
        f"{args.box}, SNR 0.05",
        "base classes": ", ".join(data.base_classes),
        "novel classes": ", ".join(data.novel_classes),
        "pre-training": f"{_pretraining_fact(pipe)}, {t_train:.0f} s"
        if args.pretrain
        else "none: the shipped general model (docs/pretrained.md)",
        "adapted with 5 shots": f"accuracy {acc:.3f} on the other {len(rest)} novel "
        "subtomograms",
        "seed": args.seed,
        "models": f"{model_path}, {folder / 'adapted_5shot.safetensors'}",
        "predictions": str(predictions),
    }
    args.way = 5
    _evaluate(
        args,
        pipe,
        novel,
        folder,
        (1, 5),
        title="fscc demo",
        facts=facts,
        novel_plots=False,
        extra_plots=extra_plots,
        notes=notes,
        features=F_novel,
    )
    _say(
        args,
        f"seed {args.seed}, wall time {time.perf_counter() - t_start:.0f} s, load "
        f"average {os.getloadavg()[0]:.1f}; outputs in {folder}",
    )
