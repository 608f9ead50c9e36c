"""The ``fscc`` command: a thin shell over the public API; all printing is here."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "fscc_model.safetensors"

# What the commands write into a report, plot or demo folder: with --force an
# earlier run's files of these names are removed first, and nothing else.
_OWN_FILES = (
    "report.md",
    "report.html",
    "results.json",
    "training.png",
    "embedding.png",
    "examples.png",
    "accuracy_vs_shots.png",
    "confusion_*shot.png",
    "pretrained.safetensors",
    "adapted_5shot.safetensors",
    "predictions.csv",
)


class UserError(Exception):
    """A mistake in the command line or the inputs: reported in one line."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what was (not) written, for the one-line message."""


def _say(args, *parts) -> None:
    """Results: on stdout, also with --quiet."""
    print(*parts, flush=True)


def _note(args, text: str) -> None:
    """Progress notes go to stderr so stdout holds only results; -q hides them."""
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr, flush=True)


def _warn(args, text: str) -> None:
    """Something the user should act on: on stderr, also with --quiet."""
    print(f"fscc: warning: {text}", file=sys.stderr, flush=True)


def _bars(args) -> bool:
    from .._progress import bars_enabled

    return bars_enabled(getattr(args, "quiet", False))


def _progress_bar(total, desc, enabled):
    # imported on use: _progress needs skorch, hence torch (slow for --help)
    from .._progress import progress_bar

    return progress_bar(total, desc, enabled)


# ----------------------------------------------------------------------------
# shared pieces


def _check_outputs(args, *paths) -> None:
    """Refuse existing outputs before any work starts (unless --force)."""
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        if p.exists() and not args.force:
            raise UserError(f"output '{p}' already exists; pass --force to replace it")
        if not p.parent.exists():
            raise UserError(f"output folder '{p.parent}' does not exist")


def _check_dir(args, folder) -> Path:
    """Refuse an output folder that cannot be used (before any work starts)."""
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise UserError(f"'{folder}' exists and is not a folder")
        if any(folder.iterdir()) and not args.force:
            raise UserError(f"folder '{folder}' is not empty; pass --force to reuse it")
    elif not folder.parent.exists():
        raise UserError(f"parent folder '{folder.parent}' does not exist")
    return folder


def _prepare_dir(args, folder) -> Path:
    """An output folder that is new or empty (or, with --force, cleared of the
    files an earlier run of these commands wrote there; nothing else)."""
    folder = _check_dir(args, folder)
    if not folder.exists():
        folder.mkdir()
        return folder
    stale = sorted({f for pattern in _OWN_FILES for f in folder.glob(pattern)})
    for f in stale:
        if f.is_file():
            f.unlink()
    if stale:
        _note(args, f"--force: removed {len(stale)} file(s) of an earlier run")
    return folder


def _load_model(args, path):
    from ..persistence._model_file import load_model

    model, meta = load_model(path, device=args.device, return_metadata=True)
    return model, meta


def _particle_table(args):
    """The --particles list, read in --format (auto: only when the file decides)."""
    from ..io import ParticleListFormatError, read_particle_list

    try:
        return read_particle_list(args.particles, format=args.format)
    except ParticleListFormatError as exc:
        choices = " or ".join(f"--format {c}" for c in exc.candidates)
        raise UserError(
            f"cannot tell the format of '{exc.path}': {exc.reason}; pass {choices}"
        ) from None


def _extraction_box(args, meta, voxel_size) -> int:
    """Box edge (tomogram voxels) to cut: --box, or what the model needs."""
    model_box = None if meta is None else meta.get("box_size")
    if model_box is None:
        if args.box is None:
            raise UserError("--tomogram needs --box (box edge in voxels)")
        return args.box
    model_box = int(model_box)
    if getattr(args, "resample", False):
        if args.box is not None:
            return args.box
        model_vs = meta.get("voxel_size")
        if voxel_size is None or model_vs is None:
            return model_box
        # the same physical size as the model's box, resampled to it afterwards
        return max(1, round(model_box * float(model_vs) / voxel_size))
    if args.box is not None and args.box != model_box:
        raise UserError(
            f"--box {args.box}: the model takes {model_box}^3 boxes; omit --box, or "
            f"pass --resample to cut {args.box}^3 and resample to {model_box}^3"
        )
    return model_box


def _report_edges(args, table, edge) -> None:
    """Name the particles skipped or padded at the tomogram's edge."""

    def listed(rows):
        shown = ", ".join(
            f"#{i + 1} (x, y, z)=({', '.join(f'{v:g}' for v in table.coords[i])})"
            for i in rows[:5]
        )
        return shown + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")

    if len(edge.outside):
        _note(
            args,
            f"note: skipped {len(edge.outside)} particle(s) whose centre lies outside "
            f"the tomogram (Z, Y, X)={edge.shape}: {listed(edge.outside)}",
        )
    if len(edge.crossing) and edge.padded:
        _note(
            args,
            f"note: padded {len(edge.crossing)} particle(s) whose box crosses the "
            f"tomogram edge: {listed(edge.crossing)}",
        )
    elif len(edge.crossing):
        _warn(
            args,
            f"skipped {len(edge.crossing)} particle(s) whose box crosses the tomogram "
            f"edge (--edge pad keeps them): {listed(edge.crossing)}",
        )


def _read_tomogram(args, *, need_labels, use_labels, meta):
    from ._inputs import _voxel_size, load_tomogram_data, tomogram_info

    if args.data is not None:
        raise UserError("give either DATA or --tomogram/--particles, not both")
    if args.particles is None:
        raise UserError("--tomogram needs --particles (a particle list)")
    table = _particle_table(args)
    _, header_vs = tomogram_info(args.tomogram)
    box = _extraction_box(
        args, meta, _voxel_size(header_vs, args.voxel_size, args.tomogram)
    )
    with _progress_bar(len(table), "extracting", _bars(args)) as bar:
        data, edge = load_tomogram_data(
            args.tomogram,
            table,
            box,
            need_labels=need_labels,
            use_labels=use_labels,
            voxel_size=args.voxel_size,
            edge=args.edge,
            progress=bar,
        )
    _report_edges(args, table, edge)
    return data


def _read_data(args, *, need_labels: bool, meta: dict | None = None):
    """Subtomograms from DATA (+ --labels) or --tomogram + --particles.

    Commands that need labels keep only the labelled subtomograms; ``meta``
    (the model's metadata) sets the box cut from a tomogram.
    """
    from ._inputs import load_subtomogram_data

    use_labels = getattr(args, "labels_use", "auto") != "ignore"
    if getattr(args, "tomogram", None) is not None:
        data = _read_tomogram(
            args, need_labels=need_labels, use_labels=use_labels, meta=meta
        )
    else:
        if args.data is None:
            raise UserError("give DATA (folder or MRC stack) or --tomogram/--particles")
        if args.particles is not None:
            raise UserError("--particles needs --tomogram")
        if args.box is not None:
            raise UserError(
                f"--box {args.box} sets the box cut from --tomogram; the "
                "subtomograms in DATA keep their own box (--resample fits them to "
                "the model's)"
            )
        data = load_subtomogram_data(
            args.data,
            args.labels,
            need_labels=need_labels,
            voxel_size=args.voxel_size,
            use_labels=use_labels,
        )
    if data.voxel_size is None:
        _note(
            args,
            f"note: the voxel size of '{data.source}' is unknown (0 in the header): "
            "treated as unknown, so it is not checked; pass --voxel-size to set it",
        )
    if need_labels:
        data = _labelled_only(args, data)
    if getattr(args, "classes", None):
        data = _keep_classes(args, data)
    return data


def _labelled_only(args, data):
    """The labelled subtomograms (a table may label a subset of a folder)."""
    n_missing = int(np.sum(~data.labelled))
    if n_missing == len(data.labelled):
        raise UserError(
            f"none of the {n_missing} subtomograms of '{data.source}' has a label in "
            f"'{data.labels_source}'"
        )
    if n_missing:
        _note(
            args,
            f"note: {n_missing} of {len(data.labelled)} subtomograms have no label in "
            f"'{data.labels_source}' and are not used",
        )
        data = data.subset(np.flatnonzero(data.labelled))
    return data


def _keep_classes(args, data):
    wanted = [c.strip() for c in args.classes.split(",") if c.strip()]
    if data.y is None:
        raise UserError(
            "--classes needs labels (--labels FILE, a labels.csv in the folder, or "
            "a labelled particle list)"
        )
    present = set(data.y[data.labelled].tolist())
    unknown = [c for c in wanted if c not in present]
    if unknown:
        raise UserError(
            f"unknown class '{unknown[0]}' in --classes; the labels have "
            f"{sorted(present)}"
        )
    return data.subset(np.flatnonzero(np.isin(data.y, wanted) & data.labelled))


def _fit_to_model(args, data, meta):
    """Check (or, with --resample, fix) box and voxel size against the model."""
    from ..persistence._model_file import check_model_input
    from ._inputs import resample_volumes

    box, vs = data.X.shape[-1], data.voxel_size
    if getattr(args, "resample", False):
        want_box, want_vs = int(meta["box_size"]), meta.get("voxel_size")
        if box != want_box or (
            vs is not None and want_vs is not None and not np.isclose(vs, want_vs)
        ):
            _note(args, f"resampling {box}^3 at {vs} A to {want_box}^3 at {want_vs} A")
            data.X = resample_volumes(data.X, vs, want_vs, want_box)
            data.voxel_size = want_vs if want_vs is not None else vs
        return data
    check_model_input(meta, box, vs, source=data.source)
    return data


def _embed(args, pipe, X, desc="embedding"):
    """Features of ``X`` under all steps but the last, in chunks (with a bar)."""
    head = pipe[:-1]
    chunk = 256
    out = []
    with _progress_bar(len(X), desc, _bars(args)) as bar:
        for start in range(0, len(X), chunk):
            out.append(head.transform(X[start : start + chunk]))
            bar.update(len(out[-1]))
    return np.concatenate(out)


def _class_summary(y) -> str:
    classes, counts = np.unique(y, return_counts=True)
    return ", ".join(f"{c} ({n})" for c, n in zip(classes, counts, strict=True))


def _plots_available(args) -> bool:
    from ..report.plotting import matplotlib_available

    if matplotlib_available():
        return True
    _note(
        args, "no plots: matplotlib is not installed (pip install 'fscc-sklearn[plot]')"
    )
    return False


# ----------------------------------------------------------------------------
# commands


def cmd_simulate(args):
    from ..datasets import load_shrec19_like, load_shrec21_like
    from ..io import write_subtomograms
    from ._inputs import write_labels_table

    out = _prepare_dir(args, args.out_dir)
    loader = {"shrec21": load_shrec21_like, "shrec19": load_shrec19_like}[args.dataset]
    split = "paper" if args.novel is None else [c for c in args.novel.split(",") if c]
    t0 = time.perf_counter()
    data = loader(
        n_per_class=args.n_per_class,
        snr=args.snr
        if args.snr is not None
        else (0.05 if args.dataset == "shrec21" else 0.02),
        box=args.box,
        split=split,
        cache=False,
        random_state=args.seed,
        progress=_bars(args),
        n_jobs=args.n_jobs,
        simulate_kwargs={"voxel_size": args.voxel_size},
    )
    for part in ("base", "novel"):
        X, y = data[f"X_{part}"], data[f"y_{part}"]
        folder = out / part
        folder.mkdir(exist_ok=True)
        if args.force:  # an earlier simulation's files would be read back with these
            for f in folder.glob("subtomo*.mrc*"):
                f.unlink()
            for f in folder.glob("labels.*"):
                f.unlink()
        if args.layout == "stack":
            stack = folder / "subtomograms.mrcs"
            write_subtomograms(stack, X, args.voxel_size, overwrite=args.force)
            names = [f"{i + 1}@{stack.name}" for i in range(len(X))]
        else:
            files = write_subtomograms(
                folder, X, args.voxel_size, layout="folder", overwrite=args.force
            )
            names = [f.name for f in files]
        write_labels_table(
            folder / f"labels.{args.labels_format}", names, y, overwrite=args.force
        )
        _say(args, f"{part}: {len(X)} subtomograms -> {folder} ({_class_summary(y)})")
    _say(
        args,
        f"{args.dataset}-like, box {args.box}, voxel {args.voxel_size:g} A, seed "
        f"{args.seed}, {time.perf_counter() - t0:.1f} s",
    )


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


def _new_pipeline(args, log, checkpoint=None):
    from sklearn.pipeline import Pipeline

    from .. import CalibratedFewShotClassifier, Conv6Embedder
    from .._progress import TrainingMonitor
    from ..embedding._callbacks import RaiseOnInterrupt
    from ..io import SubtomogramNormalizer

    callbacks = [("monitor", TrainingMonitor(bars=_bars(args), log=log))]
    if checkpoint is not None:
        callbacks.append(("checkpoint", checkpoint))
    callbacks.append(("interrupt", RaiseOnInterrupt()))  # last: after the others
    given = {
        param: getattr(args, option)
        for option, param in _TRAINING_OPTIONS.items()
        if getattr(args, option) is not None
    }
    embedder = Conv6Embedder(
        device=args.device, random_state=args.seed, callbacks=callbacks, **given
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
        import inspect

        width = inspect.signature(p["module"]).parameters["width"].default
    return (
        f"{p['max_epochs']} epochs, batch {p['batch_size']}, lr {p['lr']:g}, width "
        f"{width}, SupCon weight {p['sup_con_weight']:g}, temperature "
        f"{p['temperature']:g}"
    )


def _warn_few_steps(args, embedder, y) -> None:
    """Warn when an epoch makes too few optimiser steps to learn anything."""
    from ..nn import ClassBalancedBatchSampler

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
    """A checkpoint beside the output: a rerun after Ctrl-C resumes from it."""
    from ..embedding._checkpoint import AtomicCheckpoint

    folder = Path(f"{args.output}.checkpoint")
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
    from ..persistence._model_file import save_model

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
    if args.plot_dir is not None:
        _pretrain_plots(args, pipe, data)


def _pretrain_plots(args, pipe, data):
    if not _plots_available(args):
        return
    from ..report import plotting

    folder = _prepare_dir(args, args.plot_dir)
    hist = [dict(r) for r in pipe.named_steps["embed"].history]
    paths = [
        plotting.plot_training_curves(
            hist, folder / "training.png", overwrite=args.force
        ),
        plotting.plot_embedding(
            _embed(args, pipe, data.X),
            data.y,
            folder / "embedding.png",
            overwrite=args.force,
        ),
        plotting.plot_class_examples(
            data.X, data.y, folder / "examples.png", overwrite=args.force
        ),
    ]
    _say(args, "plots: " + ", ".join(str(p) for p in paths))


def _unfrozen(model):
    """The pipeline with FrozenEstimator wrappers removed (to adapt again)."""
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline

    steps = []
    for name, step in model.steps:
        while isinstance(step, FrozenEstimator):
            step = step.estimator
        steps.append((name, step))
    return Pipeline(steps)


def _pick_shots(y, k, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < k:
            raise UserError(f"--shots {k}: class '{c}' has only {len(idx)} example(s)")
        rows.append(np.sort(rng.choice(idx, size=k, replace=False)))
    return np.concatenate(rows)


def cmd_adapt(args):
    from .. import adapt
    from ..persistence._model_file import save_model
    from ._inputs import volume_digests

    _check_outputs(args, args.output)
    source = _adapt_source(args)
    model, meta = _load_model(args, source)
    data = _read_data(args, need_labels=True, meta=meta)
    if args.shots is not None:
        data = data.subset(_pick_shots(data.y, args.shots, args.seed))
    # the support set by content, before resampling: predict recognises it
    digests = volume_digests(data.X)
    data = _fit_to_model(args, data, meta)
    base = set(meta.get("base_classes") or [])
    overlap = sorted(set(data.y.tolist()) & {str(c) for c in base})
    if overlap:
        _warn(args, f"{overlap} are base classes of this model")
    model = _unfrozen(model)
    if args.k is not None:
        model.set_params(clf__k=args.k)
    adapted = adapt(model, data.X, data.y)
    extra = {
        "voxel_size": meta.get("voxel_size") or data.voxel_size,
        "seed": args.seed,
        "support_data": data.source,
        "support": data.names,
        "support_sha256": digests,
        "pretrained_model": args.pretrained or str(args.model),
    }
    save_model(adapted, args.output, extra, overwrite=args.force)
    _say(
        args,
        f"saved {args.output}: adapted to {len(np.unique(data.y))} classes from "
        f"{len(data.y)} examples: {_class_summary(data.y)}",
    )


def _adapt_source(args):
    """The model to adapt: a file, or the path of a shipped model."""
    from ..embedding._pretrained import pretrained_path

    if args.pretrained is not None and args.data is None:
        # argparse fills the first positional (MODEL) with the data folder
        args.data, args.model = args.model, None
    if args.pretrained is None and args.data is None and not args.tomogram:
        raise ValueError(
            "give a pre-trained MODEL file and the DATA to adapt to, or "
            "--pretrained general and the DATA"
        )
    if (args.model is None) == (args.pretrained is None):
        raise ValueError(
            "give either a pre-trained MODEL file or --pretrained NAME (e.g. "
            "--pretrained general), not both"
            if args.model
            else "give a pre-trained MODEL file or --pretrained general"
        )
    return args.model if args.pretrained is None else pretrained_path(args.pretrained)


def cmd_predict(args):
    from ._inputs import volume_digests, write_prediction_table

    _check_outputs(args, args.output)
    model, meta = _load_model(args, args.model)
    if meta.get("kind") == "pretrained":
        _note(args, "note: this model is not adapted; it predicts its base classes")
    if args.scheduler is not None:
        return _predict_on_cluster(args, model, meta)
    data = _read_data(args, need_labels=False, meta=meta)
    digests = volume_digests(data.X) if data.y is not None else None
    data = _fit_to_model(args, data, meta)
    classes = model.classes_
    F = _embed(args, model, data.X)
    clf = model[-1]
    proba = clf.predict_proba(F)
    pred = clf.predict(F)
    write_prediction_table(
        args.output, data, pred, proba, classes, overwrite=args.force
    )
    _say(args, f"wrote {args.output}: {len(pred)} particles, {_class_summary(pred)}")
    if data.y is not None:
        _score(args, data, pred, classes, meta, digests)


def _score(args, data, pred, classes, meta, digests) -> None:
    """Accuracy against the input's labels, on what can fairly be scored.

    Not scored: unlabelled subtomograms, labels naming classes the model does
    not predict, and the model's own support examples (recognised by content).
    """
    y = data.y
    known = data.labelled & np.isin(y, [str(c) for c in classes])
    foreign = data.labelled & ~known
    foreign_names = sorted(set(y[foreign].tolist()))
    if foreign.any() and args.labels_use == "auto":
        _note(
            args,
            f"note: not scoring: the labels name classes the model does not predict "
            f"({_few(foreign_names)}); --labels-use score scores the other particles",
        )
        return
    support_digests = (meta.get("user") or {}).get("support_sha256")
    if support_digests is None and meta.get("kind") == "adapted":
        _note(
            args,
            "note: the model does not record its support examples (adapted without "
            "fscc adapt); the accuracy may include them",
        )
    support = np.isin(digests, support_digests or [])
    scored = known & ~support
    excluded = [
        (int(np.sum(known & support)), "support examples of the model"),
        (
            int(foreign.sum()),
            f"with labels the model does not know ({_few(foreign_names)})",
        ),
        (int(np.sum(~data.labelled)), "unlabelled"),
    ]
    excluded = "; ".join(f"{n} {why}" for n, why in excluded if n)
    excluded = f"; not scored: {excluded}" if excluded else ""
    if not scored.any():
        _say(args, f"accuracy against the labels: none scorable{excluded}")
        return
    acc = float(np.mean(pred[scored].astype(str) == y[scored]))
    _say(
        args,
        f"accuracy against the labels: {acc:.3f} ({int(scored.sum())} particles"
        f"{excluded})",
    )


def _few(names, n=5) -> str:
    return ", ".join(map(str, names[:n])) + (" ..." if len(names) > n else "")


def _predict_on_cluster(args, model, meta):
    """``fscc predict --scheduler``: extract and classify on a Dask cluster."""
    from ..distributed import ParticleJob, predict_particles_distributed
    from ..io import read_voxel_size
    from ..persistence._model_file import check_model_input

    if args.tomogram is None or args.particles is None or args.data is not None:
        raise UserError("--scheduler works on --tomogram with --particles")
    if args.resample:
        raise UserError("--resample is not available with --scheduler")
    if args.edge != "skip":
        raise UserError("--edge pad is not available with --scheduler")
    box = args.box or meta.get("box_size")
    if box is None:
        raise UserError("--scheduler needs --box (box edge in voxels)")
    voxel_size = args.voxel_size or read_voxel_size(args.tomogram)
    check_model_input(meta, box, voxel_size, source=args.tomogram)
    try:
        result = predict_particles_distributed(
            model,
            [ParticleJob(args.tomogram, _particle_table(args))],
            args.output,
            scheduler=args.scheduler,
            box=int(box),
            chunk_size=args.chunk_size,
            overwrite=args.force,
        )
    except OSError as exc:  # no scheduler at that address
        raise UserError(
            f"cannot use the Dask scheduler {args.scheduler}: {exc}"
        ) from exc
    if len(result.skipped):
        _note(args, f"skipped {len(result.skipped)} particle(s) crossing the border")
    _say(
        args,
        f"wrote {args.output}: {len(result.labels)} particles in {result.n_chunks} "
        f"chunks on {args.scheduler}: {_class_summary(result.labels)}",
    )


def _evaluate(
    args,
    model,
    data,
    folder,
    shots,
    *,
    title,
    facts,
    novel_plots=True,
    extra_plots=None,
):
    """Episodes for every K in ``shots``; report + plots into ``folder``."""
    from ..report._markdown import chance_warnings, episodic_evaluation, write_report

    F = _embed(args, model, data.X)
    results = []
    for k in shots:
        t0 = time.perf_counter()
        with _progress_bar(
            args.episodes, f"{args.way}-way {k}-shot", _bars(args)
        ) as bar:
            try:
                r = episodic_evaluation(
                    model[-1],
                    F,
                    data.y,
                    n_way=args.way,
                    k_shot=k,
                    n_query=args.queries,
                    n_episodes=args.episodes,
                    random_state=args.seed,
                    n_jobs=args.n_jobs,
                    progress=bar,
                )
            except ValueError as exc:
                raise UserError(str(exc)) from None
        r.extra["seconds"] = round(time.perf_counter() - t0, 2)
        results.append(r)
        _say(
            args,
            f"{args.way}-way {k}-shot accuracy: {r.mean:.3f} ± {r.ci95:.3f} (95% CI, "
            f"{args.episodes} episodes, {args.queries} queries/class, chance "
            f"{1 / args.way:.3f})",
        )
    for text in chance_warnings(results):
        _warn(args, text)
    plots = {}
    if folder is not None and _plots_available(args):
        from ..report import plotting

        f = args.force
        for r in results:
            name = f"confusion_{r.k_shot}shot.png"
            plotting.plot_confusion_matrix(
                r.confusion,
                r.classes,
                folder / name,
                overwrite=f,
                title=f"{r.n_way}-way {r.k_shot}-shot, all episodes",
            )
            plots[f"Confusion matrix, {r.n_way}-way {r.k_shot}-shot"] = name
        plotting.plot_accuracy_vs_shots(
            {f"{args.way}-way": {r.k_shot: (r.mean, r.ci95) for r in results}},
            folder / "accuracy_vs_shots.png",
            chance=1 / args.way,
            overwrite=f,
        )
        plots["Accuracy against shots"] = "accuracy_vs_shots.png"
        hist = model.named_steps["embed"]
        hist = getattr(hist, "estimator", hist).history
        if len(hist):
            plotting.plot_training_curves(
                [dict(r) for r in hist], folder / "training.png", overwrite=f
            )
            plots["Pre-training"] = "training.png"
        if novel_plots:
            plotting.plot_embedding(
                F,
                data.y,
                folder / "embedding.png",
                novel=np.unique(data.y),
                overwrite=f,
            )
            plots["Embeddings of the evaluation data"] = "embedding.png"
            plotting.plot_class_examples(
                data.X, data.y, folder / "examples.png", overwrite=f
            )
            plots["Examples and class averages"] = "examples.png"
    if folder is not None:
        plots.update(extra_plots or {})
        paths = write_report(folder, title, facts, results, plots, overwrite=args.force)
        _say(args, f"report: {paths[1]} ({len(plots)} plots)")
    return results, F, plots


def _check_episodes(args, y) -> None:
    """Refuse every shot count the data cannot serve, before running any."""
    from ..model_selection import sample_episode

    for k in args.shots:
        try:
            sample_episode(y, args.way, k, args.queries, random_state=0)
        except ValueError as exc:
            raise UserError(f"--shots {k}: {exc}") from None


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


def cmd_evaluate(args):
    if args.report_dir:
        _check_dir(args, args.report_dir)
    model, meta = _load_model(args, args.model)
    data = _read_data(args, need_labels=True, meta=meta)
    _check_episodes(args, data.y)
    data = _fit_to_model(args, data, meta)
    base = {str(c) for c in meta.get("base_classes") or []}
    overlap = sorted(set(data.y.tolist()) & base)
    if overlap:
        _warn(args, f"{overlap} are base classes: the model was trained on them")
    facts = {
        "model": str(args.model),
        "data": data.source,
        "classes": _class_summary(data.y),
        "seed": args.seed,
        "model seed": meta.get("seed"),
        "pre-training": _pretraining_fact(model),
        "box": f"{data.X.shape[-1]}^3",
        "voxel size (A)": data.voxel_size,
    }
    folder = _prepare_dir(args, args.report_dir) if args.report_dir else None
    _evaluate(args, model, data, folder, args.shots, title="fscc evaluate", facts=facts)


def cmd_demo(args):
    import torch

    from .. import adapt
    from ..datasets import load_shrec21_like
    from ..persistence._model_file import save_model

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
        from ..embedding._pretrained import pretrained_model

        pipe, t_train = pretrained_model(device=args.device), 0.0
        _say(args, "using the shipped general model (no pre-training; see --pretrain)")
    else:
        _note(args, "pre-training Conv-6 on the base classes ...")
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

    from ._inputs import LabelledData, write_prediction_table

    novel = LabelledData(
        data.X_novel,
        np.asarray(data.y_novel, dtype=str),
        10.0,
        [f"novel_{i}" for i in range(len(data.y_novel))],
        None,
        "load_shrec21_like (novel classes)",
    )
    # one concrete adaptation: 5 labelled examples per novel class, the rest predicted
    rows = _pick_shots(novel.y, 5, args.seed)
    adapted = adapt(pipe, novel.X[rows], novel.y[rows])
    rest = np.setdiff1d(np.arange(len(novel.y)), rows)
    pred = adapted.predict(novel.X[rest])
    acc = float(np.mean(pred == novel.y[rest]))
    save_model(
        adapted,
        folder / "adapted_5shot.safetensors",
        {"voxel_size": 10.0, "seed": args.seed},
        overwrite=args.force,
    )
    predictions = write_prediction_table(
        folder / "predictions.csv",
        novel.subset(rest),
        pred,
        adapted.predict_proba(novel.X[rest]),
        adapted.classes_,
        overwrite=args.force,
    )
    _say(
        args,
        f"adapted with 5 examples per novel class: accuracy {acc:.3f} on the other "
        f"{len(rest)} novel subtomograms (chance {1 / len(data.novel_classes):.3f}); "
        f"predictions: {predictions}",
    )
    extra_plots = {}
    if _plots_available(args):
        from ..report import plotting

        X_all = np.concatenate([data.X_base, data.X_novel])
        y_all = np.concatenate([data.y_base, data.y_novel]).astype(str)
        plotting.plot_embedding(
            _embed(args, pipe, X_all),
            y_all,
            folder / "embedding.png",
            novel=data.novel_classes,
            overwrite=args.force,
        )
        plotting.plot_class_examples(
            X_all, y_all, folder / "examples.png", overwrite=args.force
        )
        extra_plots = {
            "Embeddings of base and novel classes (PCA)": "embedding.png",
            "Examples and class averages": "examples.png",
        }
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
    )
    _say(
        args,
        f"seed {args.seed}, wall time {time.perf_counter() - t_start:.0f} s, load "
        f"average {os.getloadavg()[0]:.1f}; outputs in {folder}",
    )


# ----------------------------------------------------------------------------
# parser


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got '{text}'"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _common(sub, *, seed=True, device=True):
    sub.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bars or notes (results and warnings are still printed)",
    )
    sub.add_argument(
        "--force",
        action="store_true",
        help="replace existing output files (in output folders: the files an "
        "earlier run wrote)",
    )
    if seed:
        sub.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    if device:
        sub.add_argument(
            "--device",
            default="auto",
            help="torch device: auto (CUDA if present), cpu, cuda, cuda:1",
        )
    sub.add_argument(
        "--n-jobs",
        type=int,
        default=None,
        help="CPU threads for torch and simulation, parallel episodes (-1: all "
        "cores; default: torch's own thread count, one episode at a time)",
    )


# the readers' formats (fscc_sklearn.io.PARTICLE_LIST_FORMATS, which a test
# compares), written out so that building the parser imports no library code
_LIST_FORMATS = ("shrec19", "shrec21", "star", "csv")


def _data_args(sub, *, labels_required: bool, model: bool = True):
    sub.add_argument(
        "data",
        nargs="?",
        default=None,
        help="folder of MRC subtomograms or an MRC stack (.mrcs)",
    )
    sub.add_argument(
        "--labels",
        help="CSV (subtomogram,label) or STAR (_rlnImageName, _fsccLabel) table, "
        "may label a subset of the files; default: labels.csv/.star in the DATA "
        "folder" + ("" if labels_required else " (optional: to report accuracy)"),
    )
    sub.add_argument("--tomogram", help="tomogram MRC to extract particles from")
    sub.add_argument(
        "--particles", help="particle list (SHREC, STAR or CSV) for --tomogram"
    )
    sub.add_argument(
        "--format",
        choices=("auto", *_LIST_FORMATS),
        default="auto",
        help="format of --particles (default auto: from the extension and "
        "content; a SHREC list whose axis order the file does not decide is "
        "refused: then give shrec19 (pdb_id Z Y X ...) or shrec21 (class x y z ...))",
    )
    sub.add_argument(
        "--box",
        type=_positive_int,
        help="box edge cut from --tomogram, in its voxels"
        + (
            " (default: the model's; another box needs --resample)"
            if model
            else " (required with --tomogram)"
        ),
    )
    sub.add_argument(
        "--edge",
        choices=("skip", "pad"),
        default="skip",
        help="particles whose box crosses the tomogram edge: skip them (default, "
        "named in a warning) or pad the missing voxels with the mean of the part "
        "of the box inside the tomogram",
    )
    sub.add_argument(
        "--voxel-size",
        type=_positive_float,
        help="voxel size in Angstrom when the MRC header has none",
    )
    sub.add_argument(
        "--classes",
        help="comma-separated classes to keep (default: all; needs labels)",
    )


def _resample_arg(sub):
    sub.add_argument(
        "--resample",
        action="store_true",
        help="resample subtomograms whose box or voxel size differ from the model's "
        "(refused by default); from --tomogram, cut the box covering the model's "
        "physical box size",
    )


def _training_args(sub, *, demo_defaults=None):
    """Training options; unset ones take Conv6Embedder's defaults (the demo has
    its own, for a few-minute run)."""
    d = demo_defaults or {}

    def default(name):
        value = d.get(name)
        return f"default {value}" if value is not None else "default: Conv6Embedder's"

    g = sub.add_argument_group("pre-training")
    g.add_argument(
        "--epochs",
        type=_positive_int,
        default=d.get("epochs"),
        help=f"epochs ({default('epochs')})",
    )
    g.add_argument(
        "--width",
        type=_positive_int,
        default=d.get("width"),
        help=f"channels of every Conv-6 block ({default('width')})",
    )
    g.add_argument(
        "--lr",
        type=_positive_float,
        help="Adam learning rate (default: Conv6Embedder's)",
    )
    g.add_argument(
        "--batch-size",
        type=_positive_int,
        default=d.get("batch_size"),
        help=f"batch size ({default('batch_size')})",
    )
    g.add_argument(
        "--sup-con-weight",
        type=float,
        help="weight lambda of the SupCon loss (default: Conv6Embedder's)",
    )
    g.add_argument(
        "--temperature",
        type=_positive_float,
        help="SupCon temperature (default: Conv6Embedder's)",
    )
    g.add_argument(
        "--lowpass",
        type=float,
        default=None,
        help="low-pass cutoff (fraction of Nyquist) before normalising",
    )


def _episode_args(sub, *, shots=(1, 5)):
    g = sub.add_argument_group("episodes")
    g.add_argument(
        "--way", type=_positive_int, default=5, help="classes per episode (5)"
    )
    g.add_argument(
        "--shots",
        type=_positive_int,
        nargs="+",
        default=list(shots),
        help="labelled examples per class, one or more (1 5)",
    )
    g.add_argument(
        "--queries", type=_positive_int, default=15, help="queries per class (15)"
    )
    g.add_argument(
        "--episodes",
        type=_positive_int,
        default=100,
        help="episodes per setting (100)",
    )


def _add(subparsers, name, func, help, description, examples):
    sub = subparsers.add_parser(
        name,
        help=help,
        description=textwrap.fill(description, 79),
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.set_defaults(func=func)
    return sub


def build_parser() -> argparse.ArgumentParser:
    """The ``fscc`` argument parser (one sub-command per step)."""
    parser = argparse.ArgumentParser(
        prog="fscc",
        description="Few-shot classification of cryo-ET subtomograms (FSCC): "
        "pre-train on labelled base classes, adapt to new classes from a few "
        "examples, predict and evaluate.",
        epilog="Run 'fscc COMMAND --help' for the options and examples of a command.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _add(
        sub,
        "simulate",
        cmd_simulate,
        "simulate a SHREC-like labelled dataset (MRC files + labels)",
        "Simulate subtomograms of the SHREC'21 (or SHREC'19) protein classes "
        "and write OUT_DIR/base and OUT_DIR/novel, each with MRC files and "
        "a labels table.",
        [
            "fscc simulate shrec_like --n-per-class 50",
            "fscc simulate data --dataset shrec19 --snr 0.02 --box 32 "
            "--layout stack --labels-format star",
            "fscc simulate data --novel 1bxn,3qm1 --n-per-class 20",
        ],
    )
    p.add_argument("out_dir", help="output folder (new or empty)")
    p.add_argument("--dataset", choices=("shrec21", "shrec19"), default="shrec21")
    p.add_argument(
        "--n-per-class",
        type=_positive_int,
        default=50,
        help="subtomograms per class (50)",
    )
    p.add_argument(
        "--snr",
        type=float,
        default=None,
        help="signal-to-noise ratio (shrec21: 0.05, shrec19: 0.02)",
    )
    p.add_argument(
        "--box", type=_positive_int, default=32, help="box edge in voxels (32)"
    )
    p.add_argument(
        "--voxel-size",
        type=_positive_float,
        default=10.0,
        help="voxel size in Angstrom of the simulation and the headers (10)",
    )
    p.add_argument(
        "--novel", help="comma-separated novel classes (default: the paper's)"
    )
    p.add_argument(
        "--layout",
        choices=("folder", "stack"),
        default="folder",
        help="one MRC file per subtomogram, or one stack (.mrcs)",
    )
    p.add_argument("--labels-format", choices=("csv", "star"), default="csv")
    _common(p, device=False)

    p = _add(
        sub,
        "pretrain",
        cmd_pretrain,
        "train the embedder and base-class statistics; save a model",
        "Pre-train Conv-6 with CE + lambda * SupCon on labelled base-class "
        "subtomograms and store the base-class feature statistics.",
        [
            "fscc pretrain shrec_like/base -o base.safetensors",
            "fscc pretrain subtomos/ --labels labels.star --epochs 20 --width 32",
            "fscc pretrain --tomogram tomo.mrc --particles particles.star --box 32 "
            "-o base.safetensors --plot-dir pretrain_plots",
        ],
    )
    _data_args(p, labels_required=True, model=False)
    p.add_argument(
        "-o",
        "--output",
        default=DEFAULT_MODEL,
        help=f"model file (.safetensors, safe; or .joblib) ({DEFAULT_MODEL})",
    )
    p.add_argument("--plot-dir", help="also save training curves and maps here")
    _training_args(p)
    _common(p)

    p = _add(
        sub,
        "adapt",
        cmd_adapt,
        "adapt a pre-trained model to new classes from a few examples",
        "Few-shot adaptation: the frozen embedder and the base statistics of "
        "MODEL calibrate a classifier of the new classes in DATA.",
        [
            "fscc adapt base.safetensors data/novel --shots 5 -o novel.safetensors",
            "fscc adapt --pretrained general data/novel --shots 5 -o novel.safetensors",
            "fscc adapt base.safetensors mine/ --labels few.csv -o mine.safetensors",
        ],
    )
    p.add_argument(
        "model", nargs="?", help="pre-trained model file (or use --pretrained)"
    )
    p.add_argument(
        "--pretrained",
        choices=("general",),
        help="start from the model shipped with the package instead of a file "
        "(no pre-training needed; see docs/pretrained.md)",
    )
    _data_args(p, labels_required=True)
    p.add_argument(
        "-o",
        "--output",
        default="fscc_adapted.safetensors",
        help="adapted model file (fscc_adapted.safetensors)",
    )
    p.add_argument(
        "--shots",
        type=_positive_int,
        help="use only this many random examples per class (default: all)",
    )
    p.add_argument(
        "--k", type=_positive_int, help="nearest base classes used for calibration"
    )
    _resample_arg(p)
    _common(p)

    p = _add(
        sub,
        "predict",
        cmd_predict,
        "classify subtomograms with an adapted model; write a CSV/STAR table",
        "Predict the class of every subtomogram (or of every particle of a "
        "tomogram) with its probability; coordinates are kept when known.",
        [
            "fscc predict novel.safetensors shrec_like/novel -o predictions.csv",
            "fscc predict novel.safetensors --tomogram tomo.mrc --particles picks.star "
            "-o predictions.star",
        ],
    )
    p.add_argument("model", help="adapted model file")
    _data_args(p, labels_required=False)
    p.add_argument(
        "-o",
        "--output",
        default="predictions.csv",
        help="output table, .csv or .star (predictions.csv)",
    )
    p.add_argument(
        "--labels-use",
        choices=("auto", "score", "ignore"),
        default="auto",
        help="labels found in the input: score the predictions against them "
        "(labels the model does not know are left out), ignore them, or auto "
        "(default: score when every label is a class of the model, else ignore "
        "with a note); they never block prediction",
    )
    _resample_arg(p)
    g = p.add_argument_group("cluster (needs fscc-sklearn[distributed])")
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler (e.g. tcp://10.0.0.5:8786): extract and classify "
        "--tomogram/--particles on that cluster; tomograms must be on a file "
        "system the workers see (default: run here)",
    )
    g.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=256,
        help="particles per task (256)",
    )
    _common(p)

    p = _add(
        sub,
        "evaluate",
        cmd_evaluate,
        "N-way K-shot episodic accuracy (mean, 95%% CI) and a report",
        "Episodic evaluation on labelled data of classes the model did not "
        "train on: each episode adapts to N classes from K examples and "
        "classifies queries. Writes report.html/.md, results.json and plots.",
        [
            "fscc evaluate base.safetensors shrec_like/novel --report-dir report",
            "fscc evaluate base.safetensors data/ --way 3 --shots 1 5 10 "
            "--episodes 300 --n-jobs 2",
        ],
    )
    p.add_argument("model", help="pre-trained model file")
    _data_args(p, labels_required=True)
    p.add_argument("--report-dir", help="folder for report, results.json and plots")
    _resample_arg(p)
    _episode_args(p)
    _common(p)

    p = _add(
        sub,
        "demo",
        cmd_demo,
        "simulate, adapt, evaluate and plot in seconds (or pre-train first)",
        "The whole job on SHREC'21-like simulated data: adapt the shipped "
        "general model (or, with --pretrain, a Conv-6 pre-trained on the 8 base "
        "classes) to the 5 novel ones with 1 and 5 shots, print mean ± 95% CI, "
        "save models, predictions, plots and a report.",
        [
            "fscc demo",
            "fscc demo --pretrain",
            "fscc demo --seed 1 --episodes 300 --out-dir demo1",
            "fscc demo --pretrain --n-per-class 200 --epochs 20 --width 32",
        ],
    )
    p.add_argument(
        "--pretrain",
        action="store_true",
        help="pre-train on the simulated base classes instead of using the "
        "shipped general model",
    )
    p.add_argument("--out-dir", default="fscc_demo", help="output folder (fscc_demo)")
    p.add_argument(
        "--n-per-class",
        type=_positive_int,
        default=100,
        help="simulated subtomograms per class (100)",
    )
    p.add_argument("--box", type=_positive_int, default=32, help="box edge (32)")
    p.add_argument(
        "--episodes",
        type=_positive_int,
        default=100,
        help="episodes per setting (100)",
    )
    p.add_argument(
        "--queries", type=_positive_int, default=15, help="queries per class (15)"
    )
    _training_args(p, demo_defaults={"epochs": 10, "width": 16, "batch_size": 128})
    _common(p)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"fscc: warning: {str(message).splitlines()[0]}", file=sys.stderr)


def _check_device(args) -> None:
    """One line instead of torch's traceback for a device this machine lacks."""
    device = getattr(args, "device", "auto")
    if not str(device).startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "no visible GPU"
        raise UserError(
            f"--device {device}: torch {torch.__version__} has {build}; use "
            "--device cpu (or auto)"
        )
    index = str(device).partition(":")[2]
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        raise UserError(
            f"--device {device}: this machine has {torch.cuda.device_count()} CUDA "
            f"device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})"
        )


def main(argv: list[str] | None = None) -> int:
    """Run ``fscc``; returns the exit code (0 ok, 1 error, 2 usage, 130 Ctrl-C)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.n_jobs == 0:
        parser.error("--n-jobs must be a positive number or -1")
    args.argv = argv
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            _check_device(args)
            _setup_runtime(args)
            args.func(args)
        except KeyboardInterrupt as exc:
            detail = f": {exc}" if isinstance(exc, Interrupted) else ""
            print(f"fscc {args.command}: interrupted{detail}", file=sys.stderr)
            return 130
        except (
            UserError,
            ValueError,
            FileNotFoundError,
            FileExistsError,
            NotADirectoryError,
            IsADirectoryError,
            PermissionError,
            ImportError,
        ) as exc:
            if os.environ.get("FSCC_DEBUG"):
                raise
            message = " ".join(str(exc).split()) or type(exc).__name__
            print(f"fscc {args.command}: error: {message}", file=sys.stderr)
            return 1
    return 0


def _setup_runtime(args) -> None:
    from ..embedding._runtime import tune_malloc

    # an application may set process-wide malloc behaviour; the library may not
    tune_malloc()  # measured: embedding 110/s -> 165/s on 2 idle cores
    if args.n_jobs is not None and args.command != "simulate":
        import torch

        torch.set_num_threads(os.cpu_count() if args.n_jobs < 0 else args.n_jobs)


if __name__ == "__main__":
    sys.exit(main())
