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
from _machine import load_at_start, machine_info, write_result  # noqa: E402
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
    # what a Python user gets: no tune_malloc, fit's own malloc scope only
    "channels_last, library only (no tune_malloc)": {"trim_threshold": "library"},
}
# profiled phases of a training step: (name, regular expression on op names)
OP_GROUPS = (
    ("convolution forward", r"^aten::(mkldnn_)?convolution$|^aten::_convolution$"),
    ("convolution backward", r"convolution_backward"),
    ("BatchNorm", r"batch_norm"),
    ("max pooling", r"max_pool3d"),
    ("ReLU", r"relu|threshold_backward|clamp_min"),
    ("Adam", r"_foreach_|addcdiv|addcmul|lerp|sqrt"),
)


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
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the default recipe's training steps (torch.profiler)",
    )
    args = parser.parse_args(argv)
    n_per_class = args.n_per_class or (26 if args.quick else 64)
    epochs = args.epochs or (2 if args.quick else 3)
    if args.variant is not None:
        params = dict(VARIANTS[args.variant])
        trim = params.pop("trim_threshold", None)
        if trim != "library":
            tune_malloc(trim_threshold=trim)
        torch.set_num_threads(args.threads)
        X, y = make_toy_volumes(
            n_classes=10, n_per_class=n_per_class, box=32, noise=0.8, random_state=SEED
        )
        # the ceiling beside the fit, in this process: the load changes by the minute
        before = matmul_ceiling(5)["gflops"]
        r = run(X, y, epochs, params)
        r["matmul_gflops_beside"] = [before, matmul_ceiling(5)["gflops"]]
        print(json.dumps(r, default=str))
        return
    if args.profile:
        profile(args.threads, args.tag)
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
        beside = statistics.mean(r["matmul_gflops_beside"])
        r["fraction_of_matmul_beside"] = r["per_s_median_epoch"] * gflop / beside
        res["variants"][name] = r
        print(
            f"  {name:32s} {r['per_s_median_epoch']:6.1f}/s per epoch "
            f"(after the first: {r['per_s_after_first_epoch']:.1f}/s), "
            f"{r['fraction_of_matmul']:.0%} of matmul "
            f"({r['fraction_of_matmul_beside']:.0%} of the one beside it), fit "
            f"{r['fit_seconds']:.0f} s, load {r['load_1min']:.1f}",
            flush=True,
        )
        for e in r["epochs"]:
            print(
                f"      epoch {e['epoch']}: loss {e['train_loss']:.3f} "
                f"acc {e['train_acc']:.3f} {e['seconds']:.1f} s"
            )
    res["load_average_at_end"] = list(os.getloadavg())
    stem = "pretraining" + (f"_{args.tag}" if args.tag else "")
    m = res["machine"]
    lines = [
        "# Pre-training benchmark (`Conv6Embedder.fit`)",
        "",
        f"{m['date_utc']}, {m['cpu']}, torch {m['torch']}, {args.threads} threads, "
        f"load average at start {load_at_start(m):.1f} (shared machine), "
        f"OMP_WAIT_POLICY={m['env'].get('OMP_WAIT_POLICY')}."
        f" {n} toy subtomograms 32^3 in 10 classes, width 64, batch {BATCH} "
        f"unless named (class-balanced), {epochs} epochs, CE + 0.05 SupCon, "
        "Adam lr 1e-3. `tune_malloc()` (never trim) unless named.",
        "",
        f"Compute: {gflop:.2f} GFLOP per training sample (forward, weight and "
        f"input gradients of the convolutions); float32 matmul ceiling in this run "
        f"{ceiling['gflops']:.0f} GFLOP/s, i.e. at most "
        f"{ceiling['gflops'] / gflop:.1f} samples/s.",
        "",
        "The ceiling is measured once at the start and again in each variant's "
        "process just before and after its fit (mean of the two: 'beside'); on a "
        "shared machine the one beside is the fairer reference.",
        "",
        "| variant | subtomograms/s (median epoch) | after epoch 1 | "
        "of matmul ceiling | of the ceiling beside | fit s | "
        "precise BN + setup s | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in res["variants"].items():
        lines.append(
            f"| {name} | {r['per_s_median_epoch']:.1f} | "
            f"{r['per_s_after_first_epoch']:.1f} | {r['fraction_of_matmul']:.0%} | "
            f"{r['fraction_of_matmul_beside']:.0%} | "
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
    write_result(RESULTS / stem, res, "\n".join(lines), echo=False)
    print(f"wrote {RESULTS / stem}.json and .md")


class _ProfiledEmbedder(Conv6Embedder):
    """Conv6Embedder whose training steps mark their phases for the profiler."""

    def infer(self, x, **fit_params):
        with torch.profiler.record_function("forward"):
            return super().infer(x, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        with torch.profiler.record_function("loss: CE + SupCon"):
            return super().get_loss(y_pred, y_true, X=X, training=training)

    def get_iterator(self, dataset, training=False):
        iterator = super().get_iterator(dataset, training=training)
        return _MarkedLoader(iterator) if training else iterator


class _MarkedLoader:
    """A loader whose every batch is drawn inside a "data loading" range."""

    def __init__(self, loader):
        self.loader = loader
        self.batch_sampler = getattr(loader, "batch_sampler", None)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        it = iter(self.loader)
        while True:
            with torch.profiler.record_function("data loading"):
                batch = next(it, None)
            if batch is None:
                return
            yield batch


def _marked_augment(augment):
    def run(X, generator):
        with torch.profiler.record_function("augmentation"):
            return augment(X, generator)

    return run


def profile(threads: int, tag: str, n_per_class: int = 32, steps: int = 6) -> None:
    """Where a training step of the default recipe spends its time."""
    import re

    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from fscc_sklearn.nn import WedgeSafeAugment

    malloc_tuned = tune_malloc()
    torch.set_num_threads(threads)
    X, y = make_toy_volumes(
        n_classes=10, n_per_class=n_per_class, box=32, noise=0.8, random_state=SEED
    )
    defaults = Conv6Embedder().get_params()
    batch = defaults["batch_size"]
    common = dict(device="cpu", random_state=SEED, augment=_marked_augment(
        WedgeSafeAugment()), callbacks__precise_bn=None)  # fmt: skip
    n = steps * batch
    # one epoch un-profiled first (kernels chosen, heap grown), then one profiled
    emb = _ProfiledEmbedder(max_epochs=1, warm_start=True, **common).fit(X[:n], y[:n])
    ceiling_before = matmul_ceiling(5)["gflops"]
    load = os.getloadavg()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        emb.fit(X[:n], y[:n])  # warm start: one more epoch
        wall = time.perf_counter() - t0
    ceiling = statistics.mean([ceiling_before, matmul_ceiling(5)["gflops"]])
    n_steps = len(emb.history[-1, "batches"])
    n_samples = sum(emb.history[-1, "batches", :, "train_batch_size"])
    events = prof.key_averages()
    total_self = sum(e.self_cpu_time_total for e in events) / 1e6
    ranges = {
        name: next((e.cpu_time_total / 1e6 for e in events if e.key == name), 0.0)
        for name in ("data loading", "augmentation", "forward", "loss: CE + SupCon")
    }
    # skorch runs forward, loss and backward in the closure of optimizer.step
    step = sum(
        e.cpu_time_total / 1e6 for e in events if e.key.startswith("Optimizer.step#")
    )
    ranges["backward and Adam"] = step - sum(ranges.values()) + ranges["data loading"]
    ranges["outside the steps (skorch, callbacks)"] = (
        wall - step - ranges["data loading"]
    )
    groups, claimed = {}, set()
    for name, pattern in OP_GROUPS:
        keys = [e for e in events if re.search(pattern, e.key) and e.key not in claimed]
        claimed |= {e.key for e in keys}
        groups[name] = sum(e.self_cpu_time_total for e in keys) / 1e6
    groups["other ops"] = total_self - sum(groups.values())
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:15]
    gflop = training_gflop()
    res = {
        "machine": machine_info(threads=threads),
        "params": {
            "recipe": "Conv6Embedder() defaults",
            "width": 64,
            "box": 32,
            "batch_size": batch,
            "steps": n_steps,
            "threads": threads,
            "seed": SEED,
            "malloc_tuned": malloc_tuned,
            "precise_bn": "off (not a training step)",
        },  # fmt: skip
        "wall_s": wall,
        "per_s": n_samples / wall,
        "matmul_gflops": ceiling,
        "fraction_of_matmul": n_samples / wall * gflop / ceiling,
        "load_start": list(load),
        "load_end": list(os.getloadavg()),
        "ranges_s": ranges,
        "op_groups_self_s": groups,
        "profiled_self_s": total_self,
        "top_ops": [
            {"op": e.key, "self_s": e.self_cpu_time_total / 1e6, "calls": e.count}
            for e in top
        ],
    }
    stem = "pretraining_profile" + (f"_{tag}" if tag else "")
    m = res["machine"]
    lines = [
        "# Where a pre-training step spends its time (torch.profiler, CPU)",
        "",
        f"{m['date_utc']}, {m['cpu']}, torch {m['torch']}, {threads} threads, "
        f"load average {load[0]:.1f} at start and {res['load_end'][0]:.1f} at the "
        "end (shared machine). The default recipe (`Conv6Embedder()`: width 64, "
        f"batch {batch}, flips and shifts, CE + SupCon), 32^3 toy subtomograms, "
        f"{n_steps} steps ({n_samples} subtomograms) after one un-profiled epoch, "
        "`tune_malloc()`.",
        "",
        f"{res['per_s']:.1f} subtomograms/s = {res['fraction_of_matmul']:.0%} of the "
        f"float32 matmul ceiling measured beside it ({ceiling:.0f} GFLOP/s, "
        f"{gflop:.2f} GFLOP per training sample); the profiler itself costs a "
        "little.",
        "",
        "Phases (elapsed time of the marked ranges on the main thread; skorch "
        "runs forward, loss and backward inside `optimizer.step`, so 'backward "
        "and Adam' is the step minus the marked parts):",
        "",
        "| phase | s | share of wall |",
        "|---|---:|---:|",
    ]
    for name, sec in ranges.items():
        lines.append(f"| {name} | {sec:.2f} | {sec / wall:.0%} |")
    lines += [
        "",
        "By operator (self time):",
        "",
        "| ops | s | share |",
        "|---|---:|---:|",
    ]
    for name, sec in groups.items():
        lines.append(f"| {name} | {sec:.2f} | {sec / total_self:.0%} |")
    lines += ["", "Top operators:", "", "| op | calls | self s |", "|---|---:|---:|"]
    lines += [
        f"| `{t['op']}` | {t['calls']} | {t['self_s']:.2f} |" for t in res["top_ops"]
    ]
    lines.append("")
    write_result(RESULTS / stem, res, "\n".join(lines))


if __name__ == "__main__":
    main()
