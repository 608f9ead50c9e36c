"""Which picks to label next: accuracy against labels spent, suggested vs random.

Data: the 5 SHREC'21 novel classes x 120 picks (32^3, 10 A), simulated at SNR
0.05 and 0.02 (seed 100), embedded once with the shipped general model
(benchmarks/_discovery_data.py, cached); classifier: the shipped model's
``CalibratedFewShotClassifier`` adapted on the labelled picks.

Each episode (seeded) splits every class into 20 test picks and 100 unlabelled
pool picks, and labels 1 random pool pick per class (the same start for every
strategy). Then 9 rounds: the strategy (``suggest_labels``) names 5 pool picks,
their true labels are added, the classifier is adapted again and scored on the
100 test picks. Budgets 1 to 10 labels per class (5 to 50 labels). Strategies
see no labels of the pool; 'balanced' (k random picks of every class) does,
and is shown as the usual k-shot reference. Differences are paired per episode
against 'random' (uniform picks from the pool), mean +- 95% CI.

Run: python benchmarks/bench_suggest.py [--episodes 40]
Writes benchmarks/results/suggest.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

# one thread per BLAS/OpenMP pool: on a busy 2-core machine more threads only
# oversubscribe (k-means: 1.5 s instead of 0.13 s)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import _discovery_data as data  # noqa: E402
import numpy as np  # noqa: E402
from _machine import machine_info, write_result  # noqa: E402

from fscc_sklearn import adapt, pretrained_model, suggest_labels  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SNRS = (0.05, 0.02)
N_PER_CLASS = 120
N_TEST = 20
BUDGETS = tuple(range(1, 11))
STRATEGIES = ("random", "typical", "margin", "entropy", "kcenter", "unknown")


def episode(clf, F, y, seed) -> dict:
    """Accuracy at every budget for each strategy on one episode."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    test, pool = [], []
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        test += list(idx[:N_TEST])
        pool += list(idx[N_TEST:])
    test, pool = np.array(test), np.array(pool)
    start = [rng.choice(pool[y[pool] == c]) for c in classes]
    out = {}

    def acc(labelled):
        model = adapt(clf, F[labelled], y[labelled])
        return float(np.mean(model.predict(F[test]) == y[test]))

    for s in STRATEGIES:
        labelled = list(start)
        accs = [acc(labelled)]
        for b in BUDGETS[1:]:
            rest = np.setdiff1d(pool, labelled)
            r = suggest_labels(
                clf,
                F[labelled],
                y[labelled],
                F[rest],
                n_suggest=len(classes),
                strategy=s,
                random_state=seed * 100 + b,
            )
            labelled += list(rest[r.indices])
            accs.append(acc(labelled))
        out[s] = accs
    # the k-shot reference: knows the pool's labels
    accs = []
    for b in BUDGETS:
        labelled = list(start)
        for c, first in zip(classes, start, strict=True):
            others = pool[(y[pool] == c) & (pool != first)]
            labelled += list(rng.choice(others, b - 1, replace=False))
        accs.append(acc(labelled))
    out["balanced"] = accs
    return out


def ci(v):
    v = np.asarray(v, dtype=float)
    return [float(v.mean()), float(1.96 * v.std(ddof=1) / np.sqrt(len(v)))]


def summarise(per_snr) -> dict:
    out = {}
    for snr, eps in per_snr.items():
        cell = {}
        names = list(eps[0])
        for s in names:
            A = np.array([e[s] for e in eps])  # (episodes, budgets)
            R = np.array([e["random"] for e in eps])
            cell[s] = {
                "accuracy": [ci(A[:, j]) for j in range(len(BUDGETS))],
                "minus_random": [ci(A[:, j] - R[:, j]) for j in range(len(BUDGETS))],
                "area_minus_random": ci((A - R)[:, 1:].mean(1)),
            }
        out[str(snr)] = cell
    return out


def plot(record, path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, len(SNRS))
    for ax, snr in zip(axes, SNRS, strict=True):
        cell = record["summary"][str(snr)]
        for s, v in cell.items():
            m = np.array([a[0] for a in v["accuracy"]])
            h = np.array([a[1] for a in v["accuracy"]])
            style = "--" if s in ("random", "balanced") else "-"
            ax.plot(BUDGETS, m, style, marker="o", ms=3, label=s)
            ax.fill_between(BUDGETS, m - h, m + h, alpha=0.15)
        ax.set_title(f"SNR {snr}, 5 classes, {record['episodes']} episodes")
        ax.set_xlabel("labels per class (5 classes: 5 to 50 labels in all)")
        ax.set_ylabel("accuracy on held-out picks")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.savefig(path, dpi=110)


def notes(summary) -> list[str]:
    """Per SNR: which strategies beat random over budgets 2-10 (CI excludes 0)."""
    out = []
    for snr in SNRS:
        cell = summary[str(snr)]
        parts = []
        for s, v in cell.items():
            if s in ("random", "balanced"):
                continue
            m, h = v["area_minus_random"]
            verdict = (
                "better" if m - h > 0 else "worse" if m + h < 0 else "no different"
            )
            parts.append(f"{s} {100 * m:+.1f} +- {100 * h:.1f} ({verdict})")
        out.append(
            f"- SNR {snr}, mean paired gain over random at 2-10 labels per class: "
            + "; ".join(parts)
            + "."
        )
    return out


def report(record) -> str:
    m = record["machine"]
    lines = [
        "# Which picks to label next: suggested vs random",
        "",
        f"`python benchmarks/bench_suggest.py --episodes {record['episodes']}`, "
        f"{m['date_utc']}, {m['cpu']}, load {m['loadavg_start'][0]:.1f} at start, "
        f"{record['wall_s']:.0f} s. Episodes seeded 0..{record['episodes'] - 1}.",
        "",
        "Set-up: see the docstring of benchmarks/bench_suggest.py. Accuracy on 100 "
        "held-out picks (5 classes x 20) after adapting the shipped model's "
        "classifier to the labelled picks; 'minus random': paired difference "
        "against uniform random picks on the same episodes, points, mean +- 95% "
        "CI. 'balanced' knows the labels (k random picks of every class): the "
        "usual k-shot reference, not something a user can do.",
        "",
    ]
    for snr in SNRS:
        cell = record["summary"][str(snr)]
        lines += [
            f"## SNR {snr}",
            "",
            "| strategy | " + " | ".join(f"{b}/class" for b in BUDGETS) + " | "
            "mean gain (2-10) |",
            "|---|" + "---|" * (len(BUDGETS) + 1),
        ]
        for s, v in cell.items():
            accs = " | ".join(f"{a[0]:.3f}" for a in v["accuracy"])
            g = v["area_minus_random"]
            lines.append(f"| {s} | {accs} | {100 * g[0]:+.1f} +- {100 * g[1]:.1f} |")
        lines += [
            "",
            "Paired difference to random (points):",
            "",
            "| strategy | " + " | ".join(f"{b}/class" for b in BUDGETS[1:]) + " |",
            "|---|" + "---|" * (len(BUDGETS) - 1),
        ]
        for s, v in cell.items():
            if s == "random":
                continue
            d = " | ".join(
                f"{100 * a[0]:+.1f} +- {100 * a[1]:.1f}" for a in v["minus_random"][1:]
            )
            lines.append(f"| {s} | {d} |")
        lines.append("")
    lines += [*notes(record["summary"]), ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument(
        "--render", action="store_true", help="rewrite suggest.md/.png from the JSON"
    )
    args = parser.parse_args(argv)
    if args.render:
        record = json.loads((RESULTS / "suggest.json").read_text())
        (RESULTS / "suggest.md").write_text(report(record))
        plot(record, RESULTS / "suggest.png")
        return
    warnings.filterwarnings("ignore", category=FutureWarning)
    info = machine_info()
    clf = pretrained_model()[-1]
    t0 = time.perf_counter()
    per_snr = {}
    for snr in SNRS:
        f = data.features(data.UNSEEN, N_PER_CLASS, snr, 100)
        per_snr[snr] = []
        for e in range(args.episodes):
            per_snr[snr].append(episode(clf, f["F"], f["y"], e))
            if (e + 1) % 10 == 0:
                print(
                    f"SNR {snr}: {e + 1} episodes, {time.perf_counter() - t0:.0f} s",
                    flush=True,
                )
    record = {
        "machine": info,
        "episodes": args.episodes,
        "data_seed": 100,
        "classes": list(data.UNSEEN),
        "n_per_class": N_PER_CLASS,
        "n_test_per_class": N_TEST,
        "budgets": list(BUDGETS),
        "wall_s": time.perf_counter() - t0,
        "episodes_raw": {str(k): v for k, v in per_snr.items()},
        "summary": summarise(per_snr),
    }
    write_result(RESULTS / "suggest", record, report(record))
    plot(record, RESULTS / "suggest.png")


if __name__ == "__main__":
    main()
