"""Markdown and plot of ``bench_paper_scale.py``'s report."""

from __future__ import annotations

import numpy as np
from _paper_report import NAMES, PAPER_TABLE2

PIPELINES = {  # name: (pre-training recipe, classifier)
    "paper pipeline": ("paper", "FSCC (paper recipe)"),
    "library default pipeline": ("default", "FSCC (library default)"),
}


def _acc(run, method, k):
    return np.asarray(run["results"][str(k)]["accuracies"][method], dtype=float)


def _mean_ci(a):
    """Mean and 95% half-width in points."""
    if len(a) < 2:
        return 100 * float(np.mean(a)), float("nan")
    return 100 * float(a.mean()), 100 * float(1.96 * a.std(ddof=1) / np.sqrt(len(a)))


def _fmt(a):
    m, h = _mean_ci(a)
    return f"{m:.1f} ± {h:.1f}"


def _fmt_diff(a, b):
    n = min(len(a), len(b))
    m, h = _mean_ci(a[:n] - b[:n])
    return f"{m:+.1f} ± {h:.1f}"


def _find(report, recipe, n, seed):
    for run in report["runs"]:
        job = run["job"]
        if (job["recipe"], job["n_per_class"], job["seed"]) == (recipe, n, seed):
            return run
    return None


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _dataset(report):
    """Dataset key; runs from before the option existed were SHREC'21-like."""
    return report["config"].get("dataset", "shrec21")


def _paper_numbers(report):
    """The paper's Table 2 rows for this report's dataset: {method: (5w5s, 5w1s)}."""
    d = _dataset(report)
    return {m: v for (ds, m), v in PAPER_TABLE2.items() if ds == d}


def _scales(report):
    return sorted({r["job"]["n_per_class"] for r in report["runs"]})


def _header(report):
    cfg, env = report["config"], report["environment"]
    load = report.get("loadavg_start", [float("nan")])[0]
    end = report.get("loadavg_end", [float("nan")])[0]
    state = (
        "complete"
        if report.get("complete")
        else "PARTIAL (the run continues; rows appear as stages finish)"
    )
    title = "# The paper's Table 2 at the paper's scale"
    classes = report.get("classes", {"base": 8, "novel": 5})
    split = f"{classes['base']} base, {classes['novel']} novel classes"
    return (
        f"{title} ({NAMES[_dataset(report)]}, SNR {cfg['snr']})\n\n"
        f"Status: {state}. {env.get('date_utc', '')} · {env.get('cpu', '')} · "
        f"{env.get('cpu_count', '?')} CPUs · torch threads {cfg['threads']} · "
        f"load average at start {load:.1f}, at last save {end:.1f} "
        "(shared machine).\n\n"
        f"Data: simulated {NAMES[_dataset(report)]} subtomograms, "
        f"{cfg['box']}^3, the paper's split ({split}), "
        f"up to {max(cfg['scales'])} per base class; smaller base sets are the "
        "first n per class of the same data, and every embedder is evaluated on "
        "the same novel subtomograms and the same episodes (5-way, 15 queries per "
        f"class, {cfg['episodes']} episodes per cell). Conv-6 width "
        f'{cfg["width"]}. Recipes: **paper** = `pretraining_recipe("paper")` '
        "(Adam lr 0.05, batch 128, 5 epochs, lambda 0.05, no augmentation, "
        "constant rate); **default** = `Conv6Embedder()` defaults (Adam lr 1e-3, "
        "batch 64, 8 epochs, lambda 0.05, flip + shift augmentation, warm-up + "
        "cosine). Mean accuracy (%) ± 95% CI (1.96 sd / sqrt(episodes)); "
        "differences are paired per episode.\n"
    )


def _table2(report, top):
    out = []
    for run in report["runs"]:
        job = run["job"]
        if job["n_per_class"] != top:
            continue
        methods = list(run["results"]["5"]["accuracies"])
        rows = [[m, _fmt(_acc(run, m, 5)), _fmt(_acc(run, m, 1))] for m in methods]
        out.append(
            f"\n## Table 2, {top} per class, {job['recipe']} pre-training, "
            f"seed {job['seed']}\n\n" + _table(["method", "5w5s", "5w1s"], rows)
        )
        ref = "FSCC (paper recipe)"
        rows = [
            [
                m,
                _fmt_diff(_acc(run, ref, 5), _acc(run, m, 5)),
                _fmt_diff(_acc(run, ref, 1), _acc(run, m, 1)),
            ]
            for m in methods
            if m != ref
        ]
        out.append(
            f"\nPaired: {ref} minus each method (points)\n\n"
            + _table(["method", "5w5s", "5w1s"], rows)
        )
    rows = [
        [f"paper: {m}", f"{a:.2f}", f"{b:.2f}"]
        for m, (a, b) in _paper_numbers(report).items()
    ]
    name = NAMES[_dataset(report)].removesuffix("-like")
    out.append(
        f"\nThe paper's {name} numbers (Table 2; its Baselines had 10K labelled):\n\n"
        + _table(["method", "5w5s", "5w1s"], rows)
    )
    return "\n".join(out)


def _pipelines(report, top):
    seeds = sorted(
        {r["job"]["seed"] for r in report["runs"] if r["job"]["n_per_class"] == top}
    )
    rows = []
    for seed in seeds:
        runs = {
            name: _find(report, recipe, top, seed)
            for name, (recipe, _) in PIPELINES.items()
        }
        if any(r is None for r in runs.values()):
            continue
        pm = PIPELINES["paper pipeline"][1]
        dm = PIPELINES["library default pipeline"][1]
        p, d = runs["paper pipeline"], runs["library default pipeline"]
        rows.append(
            [seed, *(_fmt_diff(_acc(d, dm, k), _acc(p, pm, k)) for k in (5, 1))]
        )
    if not rows:
        return ""
    return (
        f"\n## Library default pipeline minus paper pipeline, {top} per class\n\n"
        "Default recipe + `CalibratedFewShotClassifier()` against paper recipe + "
        "`DistributionCalibrationClassifier()`, on the same episodes (points).\n\n"
        + _table(["seed", "5w5s", "5w1s"], rows)
    )


def _seed_noise(report, top):
    rows = []
    for recipe in ("paper", "default"):
        a, b = _find(report, recipe, top, 0), _find(report, recipe, top, 1)
        if a is None or b is None:
            continue
        for m in a["results"]["5"]["accuracies"]:
            rows.append(
                [recipe, m, *(_fmt_diff(_acc(b, m, k), _acc(a, m, k)) for k in (5, 1))]
            )
    if not rows:
        return ""
    return (
        f"\n## Seed noise at {top} per class: seed 1 minus seed 0 "
        "(same data, same episodes)\n\n"
        + _table(["pre-training", "method", "5w5s", "5w1s"], rows)
    )


def _curve(report):
    rows = []
    for n in _scales(report):
        for recipe in ("paper", "default"):
            run = _find(report, recipe, n, 0)
            if run is None:
                continue
            for m in run["results"]["5"]["accuracies"]:
                if m in (
                    "FSCC (paper recipe)",
                    "FSCC (library default)",
                    "Baseline",
                    "Prototype",
                ):
                    rows.append(
                        [n, recipe, m, _fmt(_acc(run, m, 5)), _fmt(_acc(run, m, 1))]
                    )
    return "\n## Learning curve (seed 0)\n\n" + _table(
        ["per class", "pre-training", "method", "5w5s", "5w1s"], rows
    )


def _training(report):
    rows = []
    for run in report["runs"]:
        e, job = run["embedder"], run["job"]
        hist = e.get("history") or [{}]
        rows.append(
            [
                job["recipe"],
                job["n_per_class"],
                job["seed"],
                e["n_base"],
                len(hist),
                f"{hist[-1].get('train_loss', float('nan')):.3f}",
                f"{hist[-1].get('train_acc', float('nan')):.3f}",
                f"{sum(h.get('dur', 0) for h in hist) / 60:.0f}",
                f"{e['train_per_s']:.1f}" if e.get("train_per_s") else "resumed",
                f"{e['loadavg_before'][0]:.1f}",
            ]
        )
    return "\n## Pre-training runs\n\n" + _table(
        [
            "recipe",
            "per class",
            "seed",
            "base subtomograms",
            "epochs",
            "final loss",
            "final train acc",
            "train min",
            "subtomograms/s",
            "load",
        ],
        rows,
    )


def render_markdown(report: dict) -> str:
    if not report["runs"]:
        return _header(report)
    top = max(_scales(report))
    parts = [
        _header(report),
        _pipelines(report, top),
        _table2(report, top),
        _seed_noise(report, top),
        _curve(report),
        _training(report),
    ]
    return "\n".join(p for p in parts if p) + "\n"


def save_plot(report: dict, path) -> None:
    """Accuracy against subtomograms per class, one panel per shot count."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    if not report["runs"]:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    lines = [
        ("paper", "FSCC (paper recipe)", "paper pipeline"),
        ("default", "FSCC (library default)", "library default pipeline"),
        ("default", "Prototype", "default pre-training + prototype"),
        ("paper", "Baseline", "paper pre-training + Baseline"),
    ]
    for ax, k in zip(axes, (5, 1), strict=True):
        for recipe, method, label in lines:
            pts = [
                (n, *_mean_ci(_acc(r, method, k)))
                for n in _scales(report)
                if (r := _find(report, recipe, n, 0)) is not None
                and method in r["results"][str(k)]["accuracies"]
            ]
            if pts:
                n, m, h = map(np.asarray, zip(*pts, strict=True))
                ax.errorbar(n, m, yerr=h, marker="o", capsize=3, label=label)
        ax.axhline(
            _paper_numbers(report)["FSCC"][0 if k == 5 else 1],
            color="k",
            ls="--",
            lw=1,
            label="paper: FSCC",
        )
        ax.set_xscale("log")
        ax.set_xlabel("base subtomograms per class")
        ax.set_title(f"{NAMES[_dataset(report)]}, 5-way {k}-shot")
    axes[0].set_ylabel("novel-class accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
