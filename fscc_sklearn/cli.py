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

from ._progress import bars_enabled, progress_bar

DEFAULT_MODEL = "fscc_model.safetensors"


class UserError(Exception):
    """A mistake in the command line or the inputs: reported in one line."""


def _say(args, *parts) -> None:
    if not getattr(args, "quiet", False):
        print(*parts, flush=True)


def _note(args, text: str) -> None:
    """Progress notes go to stderr so stdout holds only results."""
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr, flush=True)


def _bars(args) -> bool:
    return bars_enabled(getattr(args, "quiet", False))


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


def _prepare_dir(args, folder) -> Path:
    """An output folder that is new or empty (or anything, with --force)."""
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise UserError(f"'{folder}' exists and is not a folder")
        if any(folder.iterdir()) and not args.force:
            raise UserError(f"folder '{folder}' is not empty; pass --force to reuse it")
    else:
        if not folder.parent.exists():
            raise UserError(f"parent folder '{folder.parent}' does not exist")
        folder.mkdir()
    return folder


def _load_model(args, path):
    from ._persistence import load_model

    model, meta = load_model(path, device=args.device, return_metadata=True)
    return model, meta


def _read_data(args, *, need_labels: bool, box: int | None = None):
    """Labelled data from DATA (+ --labels) or --tomogram + --particles."""
    from ._cli_inputs import load_subtomogram_data, load_tomogram_data

    tomogram = getattr(args, "tomogram", None)
    if tomogram is not None:
        if args.data is not None:
            raise UserError("give either DATA or --tomogram/--particles, not both")
        if args.particles is None:
            raise UserError("--tomogram needs --particles (a particle list)")
        box = box or args.box
        if box is None:
            raise UserError("--tomogram needs --box (box edge in voxels)")
        from .io import read_particle_list

        n = len(read_particle_list(args.particles))
        with progress_bar(n, "extracting", _bars(args)) as bar:
            data, skipped = load_tomogram_data(
                tomogram,
                args.particles,
                box,
                need_labels=need_labels,
                voxel_size=args.voxel_size,
                progress=bar,
            )
        if skipped:
            _note(args, f"skipped {skipped} particle(s) whose box crosses the border")
    else:
        if args.data is None:
            raise UserError("give DATA (folder or MRC stack) or --tomogram/--particles")
        data = load_subtomogram_data(
            args.data, args.labels, need_labels=need_labels, voxel_size=args.voxel_size
        )
    if data.y is not None and getattr(args, "classes", None):
        wanted = [c.strip() for c in args.classes.split(",") if c.strip()]
        present = set(data.y.tolist())
        unknown = [c for c in wanted if c not in present]
        if unknown:
            raise UserError(
                f"unknown class '{unknown[0]}' in --classes; the labels have "
                f"{sorted(present)}"
            )
        data = data.subset(np.flatnonzero(np.isin(data.y, wanted)))
    return data


def _fit_to_model(args, data, meta):
    """Check (or, with --resample, fix) box and voxel size against the model."""
    from ._cli_inputs import resample_volumes
    from ._persistence import check_model_input

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
    with progress_bar(len(X), desc, _bars(args)) as bar:
        for start in range(0, len(X), chunk):
            out.append(head.transform(X[start : start + chunk]))
            bar.update(len(out[-1]))
    return np.concatenate(out)


def _class_summary(y) -> str:
    classes, counts = np.unique(y, return_counts=True)
    return ", ".join(f"{c} ({n})" for c, n in zip(classes, counts, strict=True))


def _plots_available(args) -> bool:
    from .plotting import matplotlib_available

    if matplotlib_available():
        return True
    _note(
        args, "no plots: matplotlib is not installed (pip install 'fscc-sklearn[plot]')"
    )
    return False


# ----------------------------------------------------------------------------
# commands


def cmd_simulate(args):
    from ._cli_inputs import write_labels_table
    from .datasets import load_shrec19_like, load_shrec21_like
    from .io import write_subtomograms

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


def _new_pipeline(args, log):
    from sklearn.pipeline import Pipeline

    from . import CalibratedFewShotClassifier, Conv6Embedder
    from ._progress import TrainingMonitor
    from .io import SubtomogramNormalizer

    return Pipeline(
        [
            ("normalize", SubtomogramNormalizer(lowpass=args.lowpass)),
            (
                "embed",
                Conv6Embedder(
                    module__width=args.width,
                    max_epochs=args.epochs,
                    lr=args.lr,
                    batch_size=args.batch_size,
                    sup_con_weight=args.sup_con_weight,
                    temperature=args.temperature,
                    device=args.device,
                    random_state=args.seed,
                    callbacks=[("monitor", TrainingMonitor(bars=_bars(args), log=log))],
                ),
            ),
            ("clf", CalibratedFewShotClassifier(random_state=args.seed)),
        ]
    )


def _train(args, X, y):
    pipe = _new_pipeline(args, None if args.quiet else lambda s: _note(args, "  " + s))
    t0 = time.perf_counter()
    pipe.fit(X, y)
    return pipe, time.perf_counter() - t0


def _training_facts(args, n, seconds) -> dict:
    return {
        "command": " ".join(["fscc", *args.argv]) if hasattr(args, "argv") else None,
        "n_train": int(n),
        "train_seconds": round(seconds, 1),
    }


def cmd_pretrain(args):
    from ._persistence import save_model

    _check_outputs(args, args.output)
    data = _read_data(args, need_labels=True)
    classes = np.unique(data.y)
    if len(classes) < 2:
        raise UserError(f"pre-training needs at least 2 classes; got {list(classes)}")
    _note(
        args,
        f"pre-training on {len(data.y)} subtomograms ({data.X.shape[-1]}^3) of "
        f"{len(classes)} classes: {_class_summary(data.y)}",
    )
    pipe, seconds = _train(args, data.X, data.y)
    meta = {
        "voxel_size": data.voxel_size,
        "seed": args.seed,
        "training_data": data.source,
        **_training_facts(args, len(data.y), seconds),
    }
    save_model(pipe, args.output, meta, overwrite=args.force)
    hist = pipe.named_steps["embed"].history
    _say(
        args,
        f"saved {args.output}: base classes {', '.join(map(str, classes))}, last "
        f"epoch loss "
        f"{hist[-1, 'train_loss']:.4f}, accuracy {hist[-1, 'train_acc']:.3f}, "
        f"{seconds:.0f} s, seed {args.seed}",
    )
    if args.plot_dir is not None:
        _pretrain_plots(args, pipe, data)


def _pretrain_plots(args, pipe, data):
    if not _plots_available(args):
        return
    from . import plotting

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
    from . import adapt
    from ._persistence import save_model

    _check_outputs(args, args.output)
    model, meta = _load_model(args, args.model)
    data = _read_data(args, need_labels=True, box=meta.get("box_size"))
    data = _fit_to_model(args, data, meta)
    if args.shots is not None:
        data = data.subset(_pick_shots(data.y, args.shots, args.seed))
    base = set(meta.get("base_classes") or [])
    overlap = sorted(set(data.y.tolist()) & {str(c) for c in base})
    if overlap:
        _note(args, f"warning: {overlap} are base classes of this model")
    model = _unfrozen(model)
    if args.k is not None:
        model.set_params(clf__k=args.k)
    adapted = adapt(model, data.X, data.y)
    extra = {
        "voxel_size": meta.get("voxel_size") or data.voxel_size,
        "seed": args.seed,
        "support_data": data.source,
        "support": data.names,
        "pretrained_model": str(args.model),
    }
    save_model(adapted, args.output, extra, overwrite=args.force)
    _say(
        args,
        f"saved {args.output}: adapted to {len(np.unique(data.y))} classes from "
        f"{len(data.y)} examples: {_class_summary(data.y)}",
    )


def cmd_predict(args):
    from ._cli_inputs import write_prediction_table

    _check_outputs(args, args.output)
    model, meta = _load_model(args, args.model)
    if meta.get("kind") == "pretrained":
        _note(args, "note: this model is not adapted; it predicts its base classes")
    if args.scheduler is not None:
        return _predict_on_cluster(args, model, meta)
    data = _read_data(args, need_labels=False, box=meta.get("box_size"))
    data = _fit_to_model(args, data, meta)
    classes = model.classes_
    if data.y is not None:
        known = {str(c) for c in classes}
        unknown = sorted(set(data.y.tolist()) - known)
        if unknown:
            raise UserError(
                f"unknown class '{unknown[0]}' in the labels; the model predicts "
                f"{sorted(known)}"
            )
    F = _embed(args, model, data.X)
    clf = model[-1]
    proba = clf.predict_proba(F)
    pred = clf.predict(F)
    write_prediction_table(
        args.output, data, pred, proba, classes, overwrite=args.force
    )
    _say(args, f"wrote {args.output}: {len(pred)} particles, {_class_summary(pred)}")
    if data.y is not None:
        acc = float(np.mean(pred.astype(str) == data.y))
        _say(args, f"accuracy against the labels: {acc:.3f} ({len(pred)} particles)")


def _predict_on_cluster(args, model, meta):
    """``fscc predict --scheduler``: extract and classify on a Dask cluster."""
    from ._persistence import check_model_input
    from .distributed import ParticleJob, predict_particles_distributed
    from .io import read_voxel_size

    if args.tomogram is None or args.particles is None or args.data is not None:
        raise UserError("--scheduler works on --tomogram with --particles")
    box = args.box or meta.get("box_size")
    if box is None:
        raise UserError("--scheduler needs --box (box edge in voxels)")
    voxel_size = args.voxel_size or read_voxel_size(args.tomogram)
    check_model_input(meta, box, voxel_size, source=args.tomogram)
    try:
        result = predict_particles_distributed(
            model,
            [ParticleJob(args.tomogram, args.particles)],
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
    from ._report import episodic_evaluation, write_report

    F = _embed(args, model, data.X)
    results = []
    for k in shots:
        t0 = time.perf_counter()
        with progress_bar(
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
    plots = {}
    if folder is not None and _plots_available(args):
        from . import plotting

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


def cmd_evaluate(args):
    folder = _prepare_dir(args, args.report_dir) if args.report_dir else None
    model, meta = _load_model(args, args.model)
    data = _read_data(args, need_labels=True, box=meta.get("box_size"))
    data = _fit_to_model(args, data, meta)
    base = {str(c) for c in meta.get("base_classes") or []}
    overlap = sorted(set(data.y.tolist()) & base)
    if overlap:
        _note(
            args, f"warning: {overlap} are base classes: the model was trained on them"
        )
    facts = {
        "model": str(args.model),
        "data": data.source,
        "classes": _class_summary(data.y),
        "seed": args.seed,
        "model seed": meta.get("seed"),
        "box": f"{data.X.shape[-1]}^3",
        "voxel size (A)": data.voxel_size,
    }
    _evaluate(args, model, data, folder, args.shots, title="fscc evaluate", facts=facts)


def cmd_demo(args):
    import torch

    from . import adapt
    from ._persistence import save_model
    from .datasets import load_shrec21_like

    t_start = time.perf_counter()
    folder = _prepare_dir(args, args.out_dir)
    _say(
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
    _say(
        args,
        f"data: {len(data.y_base)} base subtomograms of {len(data.base_classes)} "
        f"classes ({', '.join(data.base_classes)}), {len(data.y_novel)} of "
        f"{len(data.novel_classes)} novel classes ({', '.join(data.novel_classes)}) "
        f"[{t_sim:.0f} s]",
    )
    _say(args, f"pre-training Conv-6 (width {args.width}) for {args.epochs} epochs ...")
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

    from ._cli_inputs import LabelledData

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
    acc = float(np.mean(adapted.predict(novel.X[rest]) == novel.y[rest]))
    save_model(
        adapted,
        folder / "adapted_5shot.safetensors",
        {"voxel_size": 10.0, "seed": args.seed},
        overwrite=args.force,
    )
    _say(
        args,
        f"adapted with 5 examples per novel class: accuracy {acc:.3f} on the other "
        f"{len(rest)} novel subtomograms (chance {1 / len(data.novel_classes):.3f})",
    )
    extra_plots = {}
    if _plots_available(args):
        from . import plotting

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
        "pre-training": f"{args.epochs} epochs, width {args.width}, lr {args.lr}, "
        f"batch {args.batch_size}, {t_train:.0f} s",
        "adapted with 5 shots": f"accuracy {acc:.3f} on the other {len(rest)} novel "
        "subtomograms",
        "seed": args.seed,
        "models": f"{model_path}, {folder / 'adapted_5shot.safetensors'}",
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


def _common(sub, *, seed=True, device=True):
    sub.add_argument(
        "--quiet", "-q", action="store_true", help="no progress bars or notes"
    )
    sub.add_argument(
        "--force", action="store_true", help="replace existing output files"
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


def _data_args(sub, *, labels_required: bool):
    sub.add_argument(
        "data",
        nargs="?",
        default=None,
        help="folder of MRC subtomograms or an MRC stack (.mrcs)",
    )
    sub.add_argument(
        "--labels",
        help="CSV (subtomogram,label) or STAR (_rlnImageName, _fsccLabel) table; "
        "default: labels.csv/.star in the DATA folder"
        + ("" if labels_required else " (optional: to report accuracy)"),
    )
    sub.add_argument("--tomogram", help="tomogram MRC to extract particles from")
    sub.add_argument(
        "--particles", help="particle list (SHREC, STAR or CSV) for --tomogram"
    )
    sub.add_argument(
        "--box", type=int, help="box edge for --tomogram (default: model's)"
    )
    sub.add_argument(
        "--voxel-size",
        type=float,
        help="voxel size in Angstrom when the MRC header has none",
    )
    sub.add_argument("--classes", help="comma-separated classes to keep (default: all)")


def _resample_arg(sub):
    sub.add_argument(
        "--resample",
        action="store_true",
        help="resample subtomograms whose box or voxel size differ from the model's "
        "(refused by default)",
    )


def _training_args(sub, *, epochs=10, width=64):
    g = sub.add_argument_group("pre-training")
    g.add_argument(
        "--epochs", type=int, default=epochs, help=f"epochs (default {epochs})"
    )
    g.add_argument(
        "--width",
        type=int,
        default=width,
        help=f"channels of every Conv-6 block (default {width})",
    )
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    g.add_argument("--batch-size", type=int, default=128, help="batch size (128)")
    g.add_argument(
        "--sup-con-weight",
        type=float,
        default=0.05,
        help="weight lambda of the SupCon loss (0.05)",
    )
    g.add_argument(
        "--temperature", type=float, default=0.07, help="SupCon temperature (0.07)"
    )
    g.add_argument(
        "--lowpass",
        type=float,
        default=None,
        help="low-pass cutoff (fraction of Nyquist) before normalising",
    )


def _episode_args(sub, *, shots=(1, 5)):
    g = sub.add_argument_group("episodes")
    g.add_argument("--way", type=int, default=5, help="classes per episode (5)")
    g.add_argument(
        "--shots",
        type=int,
        nargs="+",
        default=list(shots),
        help="labelled examples per class, one or more (1 5)",
    )
    g.add_argument("--queries", type=int, default=15, help="queries per class (15)")
    g.add_argument(
        "--episodes", type=int, default=100, help="episodes per setting (100)"
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
        "--n-per-class", type=int, default=50, help="subtomograms per class (50)"
    )
    p.add_argument(
        "--snr",
        type=float,
        default=None,
        help="signal-to-noise ratio (shrec21: 0.05, shrec19: 0.02)",
    )
    p.add_argument("--box", type=int, default=32, help="box edge in voxels (32)")
    p.add_argument(
        "--voxel-size",
        type=float,
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
    _data_args(p, labels_required=True)
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
            "fscc adapt base.safetensors mine/ --labels few.csv -o mine.safetensors",
        ],
    )
    p.add_argument("model", help="pre-trained model file")
    _data_args(p, labels_required=True)
    p.add_argument(
        "-o",
        "--output",
        default="fscc_adapted.safetensors",
        help="adapted model file (fscc_adapted.safetensors)",
    )
    p.add_argument(
        "--shots",
        type=int,
        help="use only this many random examples per class (default: all)",
    )
    p.add_argument("--k", type=int, help="nearest base classes used for calibration")
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
        "--chunk-size", type=int, default=256, help="particles per task (256)"
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
        "simulate, pre-train, adapt, evaluate and plot in a few minutes",
        "The whole job on SHREC'21-like simulated data: pre-train on the 8 "
        "base classes, adapt to the 5 novel ones with 1 and 5 shots, print "
        "mean ± 95% CI, save models, plots and a report.",
        [
            "fscc demo",
            "fscc demo --seed 1 --episodes 300 --out-dir demo1",
            "fscc demo --n-per-class 200 --epochs 20 --width 32",
        ],
    )
    p.add_argument("--out-dir", default="fscc_demo", help="output folder (fscc_demo)")
    p.add_argument(
        "--n-per-class",
        type=int,
        default=100,
        help="simulated subtomograms per class (100)",
    )
    p.add_argument("--box", type=int, default=32, help="box edge (32)")
    p.add_argument(
        "--episodes", type=int, default=100, help="episodes per setting (100)"
    )
    p.add_argument("--queries", type=int, default=15, help="queries per class (15)")
    _training_args(p, epochs=10, width=16)
    _common(p)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"fscc: warning: {str(message).splitlines()[0]}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run ``fscc``; returns the exit code (0 ok, 1 error, 2 usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.n_jobs == 0:
        parser.error("--n-jobs must be a positive number or -1")
    args.argv = argv
    from ._runtime import tune_malloc

    # an application may set process-wide malloc behaviour; the library may not
    tune_malloc()  # measured: embedding 110/s -> 165/s on 2 idle cores
    if args.n_jobs is not None and args.command != "simulate":
        import torch

        torch.set_num_threads(os.cpu_count() if args.n_jobs < 0 else args.n_jobs)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            args.func(args)
        except KeyboardInterrupt:
            print("fscc: interrupted", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
