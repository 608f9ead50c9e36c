"""Markdown tables and the plot of bench_paper.py results (a report dict from JSON)."""

from __future__ import annotations

import numpy as np

NAMES = {"shrec19": "SHREC'19-like", "shrec21": "SHREC'21-like"}
PAPER_SNR = {"shrec19": 0.02, "shrec21": 0.05}
# Gao et al. 2022, Table 2: (5w5s, 5w1s) accuracy in %
PAPER_TABLE2 = {
    ("shrec19", "Baseline"): (73.14, 65.12),
    ("shrec19", "Baseline++"): (75.32, 66.65),
    ("shrec19", "FSCC"): (77.03, 70.56),
    ("shrec21", "Baseline"): (71.36, 59.15),
    ("shrec21", "Baseline++"): (73.64, 65.19),
    ("shrec21", "FSCC"): (76.07, 68.24),
}
LAM0 = 0.05


def _find(report, dataset, snr, lam, lr=None):
    lr = report["config"]["lr"] if lr is None else lr
    for run in report["runs"]:
        j = run["job"]
        if (j["dataset"], j["snr"], j["lam"], j["lr"]) == (dataset, snr, lam, lr):
            return run
    return None


def _cell(run, method, k, digits=1):
    if run is None or method not in run["results"].get(str(k), {}):
        return "–"
    r = run["results"][str(k)][method]
    return f"{100 * r['mean']:.{digits}f} ± {100 * r['ci95']:.{digits}f}"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _methods(report):
    seen = []
    for run in report["runs"]:
        for m in run["results"]["5"]:
            if m not in seen:
                seen.append(m)
    return seen


def _labelled(run, method, k):
    return run["results"][str(k)][method]["labelled_per_class"]


def render_markdown(report: dict) -> str:
    cfg = report["config"]
    env = report["environment"]
    status = "" if report.get("complete") else " (partial: run in progress or stopped)"
    out = [
        "# FSCC paper tables on simulated SHREC-like data",
        "",
        f"Profile `{report['profile']}`{status}. "
        f"{env['date']} · {env['cpu_count']} CPUs · "
        f"torch threads {env['torch_threads']} · "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + f" · load average at start {env['loadavg_start'][0]:.1f}, "
        f"at end {env.get('loadavg_end', [float('nan')])[0]:.1f} (the CPU was shared "
        "with other jobs). "
        f"Wall time {report.get('wall_seconds', 0) / 60:.1f} min.",
        "",
        f"Data: {cfg['n_per_class']} simulated subtomograms per class, {cfg['box']}^3, "
        "paper split (base/novel). Pre-training: Conv-6 width "
        f"{cfg['width']}, Adam lr {cfg['lr']}, batch {cfg['batch_size']} "
        f"(class-balanced), {cfg['epochs']} epochs, CE + lambda SupCon "
        "(temperature 0.07). "
        f"Evaluation: 5-way, 15 queries per class, {cfg['episodes']} episodes per "
        "cell, the same episodes for every method; mean accuracy (%) ± 95% CI "
        "(1.96 sd / sqrt(n)). Seed "
        f"{report['seed']}.",
        "",
        "Methods: **FSCC (paper recipe)** = distribution calibration as in the "
        "paper and Yang et al. 2021 (k=2, alpha 0.21, 750 samples per class, "
        "Tukey 0.5, logistic regression); **FSCC (library default)** = "
        "`CalibratedFewShotClassifier()` with its current defaults; **Baseline** / "
        "**Baseline++** = softmax / cosine head trained with Chen et al.'s recipe "
        "(SGD 0.01, momentum 0.9, dampening 0.9, weight decay 1e-3, batch 4, 100 "
        "epochs) on the K-shot support; **…, 10K labelled** = the same heads given "
        "10 x K labelled samples per class, the budget the paper gave them; "
        "**Prototype** = nearest class mean; **Tukey LR** = logistic regression on "
        "Tukey-transformed support features, no calibration.",
    ]
    methods = _methods(report)

    # Table 2
    datasets = [
        d for d in ("shrec19", "shrec21") if _find(report, d, PAPER_SNR[d], LAM0)
    ]
    if datasets:
        header = ["method", "labelled / class (5s, 1s)"]
        for d in datasets:
            header += [f"{NAMES[d]} 5w5s", f"{NAMES[d]} 5w1s"]
        rows = []
        first = _find(report, datasets[0], PAPER_SNR[datasets[0]], LAM0)
        for m in methods:
            if m not in first["results"]["5"]:
                continue
            row = [m, f"{_labelled(first, m, 5)}, {_labelled(first, m, 1)}"]
            for d in datasets:
                run = _find(report, d, PAPER_SNR[d], LAM0)
                row += [_cell(run, m, 5), _cell(run, m, 1)]
            rows.append(row)
        paper = report["paper"]["table2"]
        for m, budget in (
            ("Baseline", "50, 10"),
            ("Baseline++", "50, 10"),
            ("FSCC", "5, 1"),
        ):
            row = [f"paper: {m}", budget]
            for d in datasets:
                v = paper.get(f"{d}/{m}")
                row += [f"{v[0]:.2f}", f"{v[1]:.2f}"] if v else ["–", "–"]
            rows.append(row)
        snrs = ", ".join(f"{NAMES[d]} SNR {PAPER_SNR[d]}" for d in datasets)
        out += [
            "",
            f"## Table 2: FSCC vs Baseline and Baseline++ (lambda {LAM0}; {snrs})",
            "",
            _table(header, rows),
        ]

    # paired differences: every method saw the same episodes
    for d in datasets:
        run = _find(report, d, PAPER_SNR[d], LAM0)
        ref = "FSCC (paper recipe)"
        if ref not in run["results"]["5"]:
            continue
        rows = []
        for m in run["results"]["5"]:
            if m == ref:
                continue
            row = [m]
            for k in ("5", "1"):
                a = np.asarray(run["results"][k][ref]["accuracies"])
                b = np.asarray(run["results"][k][m]["accuracies"])
                diff = 100 * (a - b)
                ci = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff))
                row.append(f"{diff.mean():+.1f} ± {ci:.1f}")
            rows.append(row)
        out += [
            "",
            f"Paired differences on {NAMES[d]}: FSCC (paper recipe) minus each "
            "method, per episode (same episodes), mean ± 95% CI in points:",
            "",
            _table(["method", "5w5s", "5w1s"], rows),
        ]

    # Table 3: per-class F1
    for d in datasets:
        run = _find(report, d, PAPER_SNR[d], LAM0)
        res = run["results"]["5"]
        shown = [
            m
            for m in (
                "FSCC (paper recipe)",
                "FSCC (library default)",
                "Baseline",
                "Baseline++",
                "Baseline, 10K labelled",
                "Tukey LR",
            )
            if m in res
        ]
        classes = list(res[shown[0]]["f1_per_class"])
        rows = [
            [m]
            + [f"{res[m]['f1_per_class'][c]:.2f}" for c in classes]
            + [f"{sum(res[m]['f1_per_class'].values()) / len(classes):.2f}"]
            for m in shown
        ]
        out += [
            "",
            f"## Table 3 form: per-class F1 on the novel classes, {NAMES[d]}, "
            "5-way 5-shot",
            "",
            "F1 of each class per episode, averaged over episodes (every episode "
            "holds all 5 novel classes).",
            "",
            _table(["method"] + classes + ["mean"], rows),
        ]

    # Table 4: ablation
    with_scl = _find(report, "shrec19", 0.02, LAM0)
    no_scl = _find(report, "shrec19", 0.02, 0.0)
    if with_scl and no_scl:
        pa = report["paper"]["ablation"]
        rows = []
        for cal, method in (
            (False, "Baseline"),
            (False, "Baseline, 10K labelled"),
            (False, "Tukey LR"),
            (True, "FSCC (paper recipe)"),
        ):
            for scl, run in ((False, no_scl), (True, with_scl)):
                p = (
                    pa[f"calibration={cal},contrastive={scl}"]
                    if method in ("Baseline", "FSCC (paper recipe)")
                    else None
                )
                rows.append(
                    [
                        "yes" if cal else "no",
                        "yes" if scl else "no",
                        method,
                        _cell(run, method, 5),
                        _cell(run, method, 1),
                        f"{p[0]:.2f} / {p[1]:.2f}" if p else "",
                    ]
                )
        out += [
            "",
            "## Table 4: ablation on SHREC'19-like (SNR 0.02): SupCon (lambda 0 vs "
            f"{LAM0}) x calibration",
            "",
            "The paper's rows without calibration are its Baseline; here three "
            "classifiers without calibration are shown.",
            "",
            _table(
                [
                    "calibration",
                    "contrastive",
                    "classifier",
                    "5w5s",
                    "5w1s",
                    "paper 5w5s / 5w1s",
                ],
                rows,
            ),
        ]

    # lambda sweep
    sweep = sorted(
        (
            r
            for r in report["runs"]
            if r["job"]["dataset"] == "shrec19"
            and r["job"]["snr"] == 0.02
            and r["job"]["lr"] == cfg["lr"]
        ),
        key=lambda r: r["job"]["lam"],
    )
    if sweep:
        ms = [
            m
            for m in (
                "FSCC (paper recipe)",
                "Baseline",
                "Baseline++",
                "Prototype",
                "Tukey LR",
            )
            if m in sweep[0]["results"]["5"]
        ]
        rows = []
        for r in sweep:
            h = r["embedder"]["history"]
            rows.append(
                [r["job"]["lam"]]
                + [f"{_cell(r, m, 5)} / {_cell(r, m, 1)}" for m in ms]
                + [f"{h['train_acc'][-1]:.2f}" if h.get("train_acc") else "–"]
            )
        out += [
            "",
            "## Lambda sweep (SHREC'19-like, SNR 0.02): 5w5s / 5w1s",
            "",
            _table(["lambda"] + ms + ["final train acc"], rows),
        ]

    # SNR sweep
    snr_runs = sorted(
        (
            r
            for r in report["runs"]
            if r["job"]["dataset"] == "shrec19"
            and r["job"]["lam"] == LAM0
            and r["job"]["lr"] == cfg["lr"]
        ),
        key=lambda r: r["job"]["snr"],
    )
    if len(snr_runs) > 1:
        ms = [
            m
            for m in (
                "FSCC (paper recipe)",
                "Baseline",
                "Baseline++",
                "Prototype",
                "Tukey LR",
            )
            if m in snr_runs[0]["results"]["5"]
        ]
        rows = [
            [r["job"]["snr"]] + [f"{_cell(r, m, 5)} / {_cell(r, m, 1)}" for m in ms]
            for r in snr_runs
        ]
        out += [
            "",
            f"## SNR sweep (SHREC'19-like, lambda {LAM0}): 5w5s / 5w1s",
            "",
            _table(["SNR"] + ms, rows),
        ]

    # learning-rate check
    lr_runs = [
        r
        for r in report["runs"]
        if r["job"]["dataset"] == "shrec19"
        and r["job"]["snr"] == 0.02
        and r["job"]["lam"] == LAM0
    ]
    if len(lr_runs) > 1:
        rows = []
        for r in sorted(lr_runs, key=lambda r: r["job"]["lr"]):
            h = r["embedder"]["history"]
            rows.append(
                [
                    r["job"]["lr"],
                    " → ".join(f"{v:.2f}" for v in h.get("train_loss", [])),
                    " → ".join(f"{v:.2f}" for v in h.get("train_acc", [])),
                    _cell(r, "FSCC (paper recipe)", 5),
                    _cell(r, "FSCC (paper recipe)", 1),
                    _cell(r, "Prototype", 5),
                    _cell(r, "Prototype", 1),
                ]
            )
        out += [
            "",
            "## Pre-training learning rate (Adam; SHREC'19-like, SNR 0.02, lambda "
            f"{LAM0})",
            "",
            _table(
                [
                    "lr",
                    "train loss per epoch",
                    "train acc per epoch",
                    "FSCC 5w5s",
                    "FSCC 5w1s",
                    "Prototype 5w5s",
                    "Prototype 5w1s",
                ],
                rows,
            ),
        ]

    # timings
    rows = []
    for r in report["runs"]:
        e, j = r["embedder"], r["job"]
        rows.append(
            [
                NAMES[j["dataset"]],
                j["snr"],
                j["lam"],
                j["lr"],
                e["n_base"],
                f"{e['seconds']['train']:.0f}",
                f"{e['train_per_s']:.1f}",
                f"{e['seconds']['embed']:.0f}",
                f"{r.get('seconds', 0):.0f}",
                f"{e['loadavg_before'][0]:.1f}",
            ]
        )
    out += [
        "",
        "## Timings",
        "",
        "Per pre-trained embedder: training (incl. the BatchNorm refresh pass), "
        "embedding of base + novel sets, and evaluating all its classifiers on "
        "both shot settings. Cached results show the time of the run that made "
        "them.",
        "",
        _table(
            [
                "dataset",
                "SNR",
                "lambda",
                "lr",
                "base samples",
                "train s",
                "train subtomograms/s",
                "embed s",
                "eval s",
                "load avg",
            ],
            rows,
        ),
    ]
    per_ep = []
    first = report["runs"][0] if report["runs"] else None
    if first:
        for m, r in first["results"]["5"].items():
            per_ep.append(
                [
                    m,
                    f"{1000 * r['seconds_per_episode']:.0f}",
                    f"{1000 * first['results']['1'][m]['seconds_per_episode']:.0f}",
                ]
            )
        out += [
            "",
            "Fit + predict time per episode (ms), first embedder:",
            "",
            _table(["method", "5-shot", "1-shot"], per_ep),
        ]
    if report.get("skipped"):
        out += [
            "",
            "Skipped (time budget): " + "; ".join(str(j) for j in report["skipped"]),
        ]
    return "\n".join(out) + "\n"


def _errorbars(ax, pts, **kwargs):
    """``pts``: list of (x, result dict) -> error bars of accuracy in %."""
    ax.errorbar(
        [p[0] for p in pts],
        [100 * p[1]["mean"] for p in pts],
        yerr=[100 * p[1]["ci95"] for p in pts],
        marker="o",
        capsize=3,
        **kwargs,
    )


def save_plot(report: dict, path) -> None:
    """Accuracy vs shots per dataset, vs SNR and vs lambda, with 95% CI bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = report["config"]
    methods = [
        "FSCC (paper recipe)",
        "FSCC (library default)",
        "Baseline",
        "Baseline++",
        "Baseline, 10K labelled",
        "Prototype",
        "Tukey LR",
    ]
    mains = [
        (d, r)
        for d in ("shrec19", "shrec21")
        if (r := _find(report, d, PAPER_SNR[d], LAM0)) is not None
    ]
    snr_runs = sorted(
        (
            r
            for r in report["runs"]
            if r["job"]["dataset"] == "shrec19"
            and r["job"]["lam"] == LAM0
            and r["job"]["lr"] == cfg["lr"]
        ),
        key=lambda r: r["job"]["snr"],
    )
    lam_runs = sorted(
        (
            r
            for r in report["runs"]
            if r["job"]["dataset"] == "shrec19"
            and r["job"]["snr"] == 0.02
            and r["job"]["lr"] == cfg["lr"]
        ),
        key=lambda r: r["job"]["lam"],
    )
    panels = [("shots", d, r) for d, r in mains]
    panels += [("snr", k, None) for k in (1, 5)] if len(snr_runs) > 1 else []
    panels += [("lambda", None, None)] if len(lam_runs) > 1 else []
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.4))
    axes = np.atleast_1d(axes)
    for ax, (kind, arg, run) in zip(axes, panels, strict=True):
        if kind == "shots":
            for j, m in enumerate(methods):
                if m in run["results"]["5"]:
                    pts = [
                        (k + 0.06 * (j - 3), run["results"][str(k)][m]) for k in (1, 5)
                    ]
                    _errorbars(ax, pts, label=m)
            ax.set_xticks([1, 5])
            ax.set_xlabel("shots (labelled per class; 10K rows get 10x)")
            snr = PAPER_SNR[arg]
            ax.set_title(f"{NAMES[arg]}, SNR {snr}, lambda {LAM0}")
        elif kind == "snr":
            for m in methods:
                pts = [
                    (r["job"]["snr"], r["results"][str(arg)][m])
                    for r in snr_runs
                    if m in r["results"][str(arg)]
                ]
                if len(pts) > 1:
                    _errorbars(ax, pts, label=m)
            ax.set_xscale("log")
            ax.set_xlabel("SNR")
            ax.set_title(f"SHREC'19-like, 5-way {arg}-shot, lambda {LAM0}")
        else:
            for k, style in ((5, "-"), (1, "--")):
                pts = [
                    (r["job"]["lam"], r["results"][str(k)]["FSCC (paper recipe)"])
                    for r in lam_runs
                    if "FSCC (paper recipe)" in r["results"][str(k)]
                ]
                _errorbars(ax, pts, ls=style, label=f"FSCC 5-way {k}-shot")
            ax.set_xlabel("lambda (SupCon weight)")
            ax.set_title("SHREC'19-like, SNR 0.02")
        ax.axhline(20, color="grey", ls=":", lw=1)
        ax.set_ylabel("accuracy (%), dotted: chance")
        ax.legend(fontsize=7)
    fig.suptitle(
        f"Profile {report['profile']}: 5-way, {cfg['episodes']} episodes, 95% CI bars"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
