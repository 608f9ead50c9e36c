"""``fscc pretrain``: train the embedder and the base statistics; save a model."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

from ..calibration import CalibratedFewShotClassifier
from ..embedding import Conv6Embedder, pretraining_recipe
from ..embedding._callbacks import RaiseOnInterrupt, TrainingMonitor
from ..embedding._checkpoint import AtomicCheckpoint
from ..io import SubtomogramNormalizer
from ..nn import ClassBalancedBatchSampler
from ..persistence._model_file import save_model
from ..report import plotting
from ._common import (
    Interrupted,
    UserError,
    _check_dir,
    _check_outputs,
    _class_summary,
    _note,
    _pooling_summary,
    _prepare_dir,
    _say,
    _warn,
)
from ._data import _bars, _draw, _embed, _plots_available, _read_data

# CLI option -> Conv6Embedder parameter; options left unset keep the library's
# defaults, which are read from the estimator and never repeated here
_TRAINING_OPTIONS = {
    "epochs": "max_epochs",
    "width": "module__width",
    "lr": "lr",
    "batch_size": "batch_size",
    "sup_con_weight": "sup_con_weight",
    "temperature": "temperature",
}


def _embedder_params(args) -> dict:
    """Conv6Embedder parameters of the command line: those of --recipe, then the
    options given; nothing else (the rest are the library's defaults)."""
    params = pretraining_recipe(args.recipe) if args.recipe is not None else {}
    params.update(
        (param, getattr(args, option))
        for option, param in _TRAINING_OPTIONS.items()
        if getattr(args, option) is not None
    )
    return params


def _new_pipeline(args, log, checkpoint=None):
    callbacks = [("monitor", TrainingMonitor(bars=_bars(args), log=log))]
    if checkpoint is not None:
        callbacks.append(("checkpoint", checkpoint))
    callbacks.append(("interrupt", RaiseOnInterrupt()))  # last: after the others
    embedder = Conv6Embedder(
        device=args.device,
        random_state=args.seed,
        callbacks=callbacks,
        **_embedder_params(args),
    )
    return Pipeline(
        [
            ("normalize", SubtomogramNormalizer(lowpass=args.lowpass)),
            ("embed", embedder),
            ("clf", CalibratedFewShotClassifier(random_state=args.seed)),
        ]
    )


def _training_settings(embedder) -> str:
    """The settings a Conv6Embedder trains with, in one line."""
    p = embedder.get_params()
    width = p.get("module__width")
    if width is None:
        width = inspect.signature(p["module"]).parameters["width"].default
    return (
        f"{p['max_epochs']} epochs, batch {p['batch_size']}, lr {p['lr']:g}, width "
        f"{width}, SupCon weight {p['sup_con_weight']:g}, temperature "
        f"{p['temperature']:g}"
    )


def _warn_few_steps(args, embedder, y) -> None:
    """Warn when an epoch makes too few optimiser steps to learn anything."""

    batch = embedder.get_params()["batch_size"]
    try:
        steps = len(ClassBalancedBatchSampler(np.asarray(y), batch, seed=0))
    except ValueError:
        return  # a batch too small for the classes: the embedder says so
    if steps < 5:
        _warn(
            args,
            f"{len(y)} subtomograms at batch size {batch} make {steps} optimiser "
            f"step(s) per epoch (fewer than 5): training may stay at chance; use a "
            f"smaller --batch-size (e.g. {max(2, len(y) // 10)}) or more data",
        )


def _chance_band(n: int, n_classes: int) -> tuple[float, float]:
    """Chance accuracy and the upper end of its 95% binomial interval on n."""
    chance = 1 / n_classes
    return chance, chance + 1.96 * np.sqrt(chance * (1 - chance) / max(n, 1))


def _warn_if_at_chance(args, embedder, y) -> None:
    acc = embedder.history[-1, "train_acc"]
    chance, upper = _chance_band(len(y), len(np.unique(y)))
    if acc <= upper:
        _warn(
            args,
            f"training accuracy {acc:.3f} is at chance ({chance:.3f}; the 95% "
            f"interval of chance on {len(y)} subtomograms reaches {upper:.3f}): the "
            "embedder has not learned; train longer, with more data or a smaller "
            "--batch-size",
        )


def _train(args, X, y, checkpoint=None):
    log = None if args.quiet else lambda s: _note(args, "  " + s)
    pipe = _new_pipeline(args, log, checkpoint)
    embedder = pipe.named_steps["embed"]
    _note(args, f"training settings: {_training_settings(embedder)}")
    _warn_few_steps(args, embedder, y)
    t0 = time.perf_counter()
    pipe.fit(X, y)
    _warn_if_at_chance(args, embedder, y)
    return pipe, time.perf_counter() - t0


def _training_facts(args, n, seconds) -> dict:
    return {
        "command": " ".join(["fscc", *args.argv]) if hasattr(args, "argv") else None,
        "n_train": int(n),
        "train_seconds": round(seconds, 1),
    }


def _checkpoint_for(args):
    """A checkpoint (--checkpoint, or beside the output): a rerun after Ctrl-C
    resumes from it."""
    folder = Path(args.checkpoint or f"{args.output}.checkpoint")
    return AtomicCheckpoint(folder, resume=not args.force)


def _train_resumable(args, data):
    """Train with a checkpoint; Ctrl-C leaves the checkpoint and no model."""
    checkpoint = _checkpoint_for(args)
    if checkpoint.path.exists() and not args.force:
        _note(args, f"resuming from the checkpoint '{checkpoint.path}'")
    try:
        pipe, seconds = _train(args, data.X, data.y, checkpoint)
    except KeyboardInterrupt as exc:
        done = f" {exc}" if str(exc) else ""
        saved = checkpoint.path.exists()
        raise Interrupted(
            f"pre-training stopped{done}; no model written"
            + (
                f"; run the same command again to resume from '{checkpoint.path}'"
                if saved
                else ""
            )
        ) from None
    except ValueError as exc:
        if str(checkpoint.path) in str(exc):
            raise UserError(
                f"'{checkpoint.path}' is the checkpoint of another training (other "
                "data or settings); pass --force to start over"
            ) from None
        raise
    return pipe, seconds, checkpoint


def _remove_checkpoint(checkpoint) -> None:
    checkpoint.path.unlink(missing_ok=True)
    folder = Path(checkpoint.dirname)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def cmd_pretrain(args):
    _check_outputs(args, args.output)
    if args.plot_dir is not None:
        _check_dir(args, args.plot_dir)
    data = _read_data(args, need_labels=True)
    classes = np.unique(data.y)
    if len(classes) < 2:
        raise UserError(f"pre-training needs at least 2 classes; got {list(classes)}")
    _note(
        args,
        f"pre-training on {len(data.y)} subtomograms ({data.X.shape[-1]}^3) of "
        f"{len(classes)} classes: {_class_summary(data.y)}",
    )
    pipe, seconds, checkpoint = _train_resumable(args, data)
    meta = {
        "voxel_size": data.voxel_size,
        "seed": args.seed,
        "training_data": data.source,
        **_training_facts(args, len(data.y), seconds),
    }
    save_model(pipe, args.output, meta, overwrite=args.force)
    _remove_checkpoint(checkpoint)
    embedder = pipe.named_steps["embed"]
    hist = embedder.history
    _say(
        args,
        f"saved {args.output}: base classes {', '.join(map(str, classes))}; "
        f"{_training_settings(embedder)}; last epoch loss "
        f"{hist[-1, 'train_loss']:.4f}, accuracy {hist[-1, 'train_acc']:.3f} "
        f"(chance {1 / len(classes):.3f}), {seconds:.0f} s, seed {args.seed}",
    )
    _note(args, _pooling_summary(pipe.named_steps["clf"]))
    if args.plot_dir is not None:
        _pretrain_plots(args, pipe, data)


def _pretrain_plots(args, pipe, data):
    if not _plots_available(args):
        return

    folder = _prepare_dir(args, args.plot_dir)
    hist = [dict(r) for r in pipe.named_steps["embed"].history]
    plots, notes = {}, []
    _draw(
        args,
        plots,
        notes,
        "training curves",
        plotting.plot_training_curves,
        folder / "training.png",
        hist,
    )
    _draw(
        args,
        plots,
        notes,
        "embedding map",
        plotting.plot_embedding,
        folder / "embedding.png",
        _embed(args, pipe, data.X),
        data.y,
    )
    _draw(
        args,
        plots,
        notes,
        "examples",
        plotting.plot_class_examples,
        folder / "examples.png",
        data.X,
        data.y,
    )
    if plots:
        _say(args, "plots: " + ", ".join(str(folder / p) for p in plots.values()))


def _pretraining_fact(model) -> str:
    """Training settings and final accuracy of a model's embedder."""
    embedder = model.named_steps["embed"]
    embedder = getattr(embedder, "estimator", embedder)
    text = _training_settings(embedder)
    if len(embedder.history):
        text += (
            f"; last epoch training accuracy {embedder.history[-1, 'train_acc']:.3f}"
        )
    return text
