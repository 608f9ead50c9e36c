"""``fscc evaluate``: N-way K-shot episodes, a report and its plots."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .._progress import progress_bar
from ..model_selection import sample_episode
from ..report import plotting
from ..report._markdown import chance_warnings, episodic_evaluation, write_report
from ._common import UserError, _check_dir, _class_summary, _prepare_dir, _say, _warn
from ._data import (
    _bars,
    _draw,
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
    notes=(),
    prepare=False,
    features=None,
):
    """Episodes for every K in ``shots``; report + plots into ``folder``
    (created or, with ``prepare``, cleared only once the episodes ran).
    ``features``: those of ``data.X`` under ``model``, where already known."""

    F = _embed(args, model, data.X) if features is None else features
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
    if folder is None:
        return results, F, {}
    if prepare:  # only now: a run that fails leaves no report folder behind
        folder = _prepare_dir(args, folder)
    plots, notes = {}, list(notes)
    if _plots_available(args):
        _report_plots(args, model, data, F, results, folder, plots, notes, novel_plots)
    plots.update(extra_plots or {})
    paths = write_report(
        folder, title, facts, results, plots, notes=notes, overwrite=args.force
    )
    _say(args, f"report: {paths[1]} ({len(plots)} plots)")
    return results, F, plots


def _report_plots(args, model, data, F, results, folder, plots, notes, novel_plots):
    for r in results:
        _draw(
            args,
            plots,
            notes,
            f"Confusion matrix, {r.n_way}-way {r.k_shot}-shot",
            plotting.plot_confusion_matrix,
            folder / f"confusion_{r.k_shot}shot.png",
            r.confusion,
            r.classes,
            title=f"{r.n_way}-way {r.k_shot}-shot, all episodes",
        )
    _draw(
        args,
        plots,
        notes,
        "Accuracy against shots",
        plotting.plot_accuracy_vs_shots,
        folder / "accuracy_vs_shots.png",
        {f"{args.way}-way": {r.k_shot: (r.mean, r.ci95) for r in results}},
        chance=1 / args.way,
    )
    hist = model.named_steps["embed"]
    hist = getattr(hist, "estimator", hist).history
    if len(hist):
        _draw(
            args,
            plots,
            notes,
            "Pre-training",
            plotting.plot_training_curves,
            folder / "training.png",
            [dict(r) for r in hist],
        )
    if novel_plots:
        _draw(
            args,
            plots,
            notes,
            "Embeddings of the evaluation data",
            plotting.plot_embedding,
            folder / "embedding.png",
            F,
            data.y,
            novel=np.unique(data.y),
        )
        _draw(
            args,
            plots,
            notes,
            "Examples and class averages",
            plotting.plot_class_examples,
            folder / "examples.png",
            data.X,
            data.y,
        )


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
    folder = Path(args.report_dir) if args.report_dir else None
    _evaluate(
        args,
        model,
        data,
        folder,
        args.shots,
        title="fscc evaluate",
        facts=facts,
        prepare=True,
    )
