"""Benchmark of Conv6Embedder.fit: pre-training throughput on the CPU.

Pre-trains the default Conv-6 (width 64) on 32^3 toy subtomograms with the
class-balanced CE + SupCon recipe and reports training subtomograms per second
(from skorch's per-epoch durations), the per-epoch loss and accuracy, and the
cost of the precise-BatchNorm pass at the end, for the memory layout, batch
size and malloc trim options, each as a fraction of a float32 matmul ceiling
measured in the same run. Writes benchmarks/results/pretraining.json and
benchmarks/results/pretraining.md.

Run: python benchmarks/bench_pretraining.py [--quick] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import load_at_start, machine_info  # noqa: E402
from bench_embedding import conv6_gflop, matmul_ceiling  # noqa: E402

from fscc_sklearn import Conv6Embedder  # noqa: E402
from fscc_sklearn.datasets._toy import make_toy_volumes  # noqa: E402
from fscc_sklearn.embedding._runtime import tune_malloc  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SEED = 0
BATCH = 128
VARIANTS = {
    "channels_last (default)": {},
    "NCDHW training": {"channels_last": "inference"},
    # batch size: the library default recipe trains in batches of 64
    "channels_last, batch 64": {"batch_size": 64},
    "channels_last, batch 256": {"batch_size": 256},
    # the previous tune_malloc default: the heap shrinks above 1 GiB of free memory
    "channels_last, malloc trim at 1 GiB": {"trim_threshold": 1 << 30},
}


def training_gflop(width: int = 64) -> float:
    """GFLOP of one training sample: forward, weight gradients, input gradients.

    Each needs the forward convolutions' multiply-adds once, except that the
    first layer needs no gradient for its input (the subtomogram).
    """
    forward = conv6_gflop(width)
    first = 2 * 32**3 * 1 * width * 27 / 1e9
    return 3 * forward - first


def run(X, y, epochs, params) -> dict:
    params = {"batch_size": BATCH, **params}
    emb = Conv6Embedder(max_epochs=epochs, random_state=SEED, device="cpu", **params)
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    emb.fit(X, y)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    h = emb.history
    durs = h[:, "dur"]
    # every epoch of the balanced sampler sees max(1, n // batch) full batches
    seen = max(1, len(X) // params["batch_size"]) * params["batch_size"]
    rates = [seen / d for d in durs]
    return {
        "params": params,
        "epochs": [
            {
                "epoch": i + 1,
                "train_loss": h[i, "train_loss"],
                "train_acc": h[i, "train_acc"],
                "seconds": durs[i],
                "per_s": rates[i],
            }
            for i in range(len(h))
        ],
        "per_s_median_epoch": statistics.median(rates),
        "per_s_after_first_epoch": statistics.median(rates[1:])
        if len(rates) > 1
        else rates[0],
        "fit_seconds": total,
        # training subtomograms per CPU-second of the whole fit (incl. precise BN):
        # less sensitive than wall time to other jobs on a shared machine
        "per_cpu_s_fit": len(h) * seen / cpu,
        "precise_bn_and_setup_seconds": total - sum(durs),
        "load_1min": load,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--n-per-class", type=int, default=None)
    parser.add_argument("--tag", default="")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # one, in this process
    args = parser.parse_args(argv)
    n_per_class = args.n_per_class or (26 if args.quick else 64)
    epochs = args.epochs or (2 if args.quick else 3)
    if args.variant is not None:
        params = dict(VARIANTS[args.variant])
        tune_malloc(trim_threshold=params.pop("trim_threshold", None))
        torch.set_num_threads(args.threads)
        X, y = make_toy_volumes(
            n_classes=10, n_per_class=n_per_class, box=32, noise=0.8, random_state=SEED
        )
        print(json.dumps(run(X, y, epochs, params), default=str))
        return
    malloc_tuned = tune_malloc()
    torch.set_num_threads(args.threads)
    ceiling = matmul_ceiling(5)
    gflop = training_gflop()
    n = 10 * n_per_class
    res = {
        "machine": machine_info(threads=args.threads),
        "params": {
            "n": n,
            "n_classes": 10,
            "box": 32,
            "width": 64,
            "batch_size": BATCH,
            "epochs": epochs,
            "seed": SEED,
            "threads": args.threads,
            "malloc_tuned": malloc_tuned,
        },
        "matmul": ceiling,
        "gflop_per_training_sample": gflop,
        "variants": {},
    }
    print(
        f"pre-training {n} subtomograms 32^3, {epochs} epochs, "
        f"{args.threads} threads, load {os.getloadavg()}"
    )
    for name, params in VARIANTS.items():
        # a fresh process per variant: the heap a variant leaves behind (and so
        # the malloc settings' effect) would otherwise carry over to the next
        cmd = [sys.executable, __file__, "--variant", name, "--threads",
               str(args.threads), "--epochs", str(epochs), "--n-per-class",
               str(n_per_class)]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["params"] = params | r["params"]
        r["fraction_of_matmul"] = r["per_s_median_epoch"] * gflop / ceiling["gflops"]
        res["variants"][name] = r
        print(
            f"  {name:32s} {r['per_s_median_epoch']:6.1f}/s per epoch "
            f"(after the first: {r['per_s_after_first_epoch']:.1f}/s), "
            f"{r['fraction_of_matmul']:.0%} of matmul, fit "
            f"{r['fit_seconds']:.0f} s, load {r['load_1min']:.1f}",
            flush=True,
        )
        for e in r["epochs"]:
            print(
                f"      epoch {e['epoch']}: loss {e['train_loss']:.3f} "
                f"acc {e['train_acc']:.3f} {e['seconds']:.1f} s"
            )
    res["load_average_at_end"] = list(os.getloadavg())
    RESULTS.mkdir(exist_ok=True)
    stem = "pretraining" + (f"_{args.tag}" if args.tag else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=2, default=str))
    m = res["machine"]
    lines = [
        "# Pre-training benchmark (`Conv6Embedder.fit`)",
        "",
        f"{m['date_utc']}, {m['cpu']}, torch {m['torch']}, {args.threads} threads, "
        f"load average at start {load_at_start(m):.1f} (shared machine)."
        f" {n} toy subtomograms 32^3 in 10 classes, width 64, batch {BATCH} "
        f"unless named (class-balanced), {epochs} epochs, CE + 0.05 SupCon, "
        "Adam lr 1e-3. `tune_malloc()` (never trim) unless named.",
        "",
        f"Compute: {gflop:.2f} GFLOP per training sample (forward, weight and "
        f"input gradients of the convolutions); float32 matmul ceiling in this run "
        f"{ceiling['gflops']:.0f} GFLOP/s, i.e. at most "
        f"{ceiling['gflops'] / gflop:.1f} samples/s.",
        "",
        "| variant | subtomograms/s (median epoch) | after epoch 1 | "
        "of matmul ceiling | fit s | precise BN + setup s | load |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in res["variants"].items():
        lines.append(
            f"| {name} | {r['per_s_median_epoch']:.1f} | "
            f"{r['per_s_after_first_epoch']:.1f} | {r['fraction_of_matmul']:.0%} | "
            f"{r['fit_seconds']:.0f} | "
            f"{r['precise_bn_and_setup_seconds']:.0f} | {r['load_1min']:.1f} |"
        )
    lines += [
        "",
        "Per-epoch log:",
        "",
        "| variant | epoch | loss | accuracy | s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in res["variants"].items():
        for e in r["epochs"]:
            lines.append(
                f"| {name} | {e['epoch']} | {e['train_loss']:.3f} | "
                f"{e['train_acc']:.3f} | {e['seconds']:.1f} |"
            )
    lines.append("")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / stem}.json and .md")


if __name__ == "__main__":
    main()
