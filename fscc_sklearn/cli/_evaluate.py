"""``fscc evaluate``: N-way K-shot episodes, a report and its plots."""

from __future__ import annotations

import time

import numpy as np

from .._progress import progress_bar
from ..model_selection import sample_episode
from ..report import plotting
from ..report._markdown import chance_warnings, episodic_evaluation, write_report
from ._common import UserError, _check_dir, _class_summary, _prepare_dir, _say, _warn
from ._data import (
    _bars,
    _embed,
    _fit_to_model,
    _load_model,
    _plots_available,
    _read_data,
)
from ._train import _pretraining_fact


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
    for text in chance_warnings(results):
        _warn(args, text)
    plots = {}
    if folder is not None and _plots_available(args):
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

    for k in args.shots:
        try:
            sample_episode(y, args.way, k, args.queries, random_state=0)
        except ValueError as exc:
            raise UserError(f"--shots {k}: {exc}") from None


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
