"""Pre-training learning rate: the paper's Adam lr 0.05 against 1e-3, small setting.

A reduced stand-in for item 6 of bench_paper.py (same code, fewer samples and
epochs) so that the choice of lr is backed by a measurement even when the full
list does not finish. Writes ``benchmarks/results/paper_lr.{json,md}``.

    nice -n 10 python benchmarks/bench_paper_lr.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_paper as bp  # noqa: E402
from _machine import write_result  # noqa: E402

METHODS = ["Prototype", "Baseline", "Tukey LR"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-per-class", type=int, default=70)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 0.05])
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--cache", type=Path, default=HERE / ".cache")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    cfg = dict(bp.PROFILES["full"])
    cfg.update(n_per_class=args.n_per_class, epochs=args.epochs)
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", flush=True)

    report = {
        "benchmark": "bench_paper_lr",
        "config": cfg,
        "episodes": args.episodes,
        "environment": bp.environment(args),
        "runs": [],
    }
    for lr in args.lrs:
        job = {"dataset": "shrec19", "snr": 0.02, "lam": 0.05, "lr": lr}
        log(f"embedder {job}")
        data, meta = bp.features(job, cfg, args, log)
        results = {}
        for k in (1, 5):
            res, _ = bp.run_episodes(data, METHODS, k, args.episodes, args.seed + k)
            results[str(k)] = res
            for m in METHODS:
                log(f"  5w{k}s {m:10s} {100 * res[m]['mean']:.2f}")
        report["runs"].append({"job": job, "embedder": meta, "results": results})
    report["wall_seconds"] = time.perf_counter() - t0
    report["environment"]["loadavg_end"] = list(os.getloadavg())
    write_result(args.out / "paper_lr", report, render(report), echo=False)
    log("wrote paper_lr.json and paper_lr.md")


def render(report):
    cfg = report["config"]
    env = report["environment"]
    lines = [
        "# Pre-training learning rate: Adam 0.05 (paper) vs 1e-3",
        "",
        f"{env['date']} · load average {env['loadavg_start'][0]:.1f} at start "
        "(shared CPU). SHREC'19-like, SNR 0.02, lambda 0.05, "
        f"{cfg['n_per_class']} subtomograms per class, {cfg['box']}^3, width "
        f"{cfg['width']}, batch {cfg['batch_size']}, {cfg['epochs']} epochs; "
        f"{report['episodes']} episodes, 5-way, 15 queries, same episodes for "
        "both rates. Accuracy % ± 95% CI.",
        "",
        "| lr | train loss per epoch | train acc per epoch | "
        + " | ".join(f"{m} 5w5s | {m} 5w1s" for m in METHODS)
        + " |",
        "|" + "---|" * (3 + 2 * len(METHODS)),
    ]
    for run in report["runs"]:
        h = run["embedder"]["history"]
        cells = [
            str(run["job"]["lr"]),
            " → ".join(f"{v:.2f}" for v in h.get("train_loss", [])),
            " → ".join(f"{v:.2f}" for v in h.get("train_acc", [])),
        ]
        for m in METHODS:
            for k in ("5", "1"):
                r = run["results"][k][m]
                cells.append(f"{100 * r['mean']:.1f} ± {100 * r['ci95']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
