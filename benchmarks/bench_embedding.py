"""Benchmark of Conv6Embedder.transform: throughput, levers, scaling, memory, episodes.

Measures subtomograms per second for 32^3 boxes with the default Conv-6
(width 64, ~1.15 GFLOP per subtomogram) on the CPU, against a float32 matmul
ceiling measured in the same process, for the levers that matter: memory
layout, BatchNorm folding, oneDNN weight prepacking, CPU micro-batch size,
threads, glibc malloc settings, bfloat16 autocast and torch.compile. Then how
time grows with n, the peak resident memory while streaming a large
memory-mapped stack, and whether episodic evaluation gives the same accuracies
for every ``n_jobs``.

Writes benchmarks/results/embedding.json and benchmarks/results/embedding.md.

Run: python benchmarks/bench_embedding.py [--quick] [--threads 2] [--compile]
     [--memory-n 100000] [--skip-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _machine import load_at_start, machine_info, write_result

import fscc_sklearn.embedding._embedder as embedder_mod
import fscc_sklearn.embedding._runtime as runtime
from fscc_sklearn import CalibratedFewShotClassifier, Conv6Embedder, evaluate_episodes
from fscc_sklearn.datasets._toy import make_toy_volumes
from fscc_sklearn.embedding._runtime import cpu_has_native_bfloat16, tune_malloc
from fscc_sklearn.nn import Conv6

RESULTS = Path(__file__).parent / "results"
SEED = 0
BOX = 32
GFLOP_PER_SUBTOMOGRAM = None  # filled in by conv6_gflop()


def conv6_gflop(width: int = 64, box: int = BOX) -> float:
    """GFLOP (2 x multiply-adds) of the convolutions of one forward pass."""
    net = Conv6(n_classes=2, width=width, volume_size=box)
    flop, side = 0, box
    for block in net.blocks:
        conv = block[0]
        flop += 2 * side**3 * conv.in_channels * conv.out_channels * 27
        if any(isinstance(m, torch.nn.MaxPool3d) for m in block):
            side //= 2
    return flop / 1e9


def matmul_ceiling(repeats: int) -> dict:
    """Best float32 GEMM rate of this process (the practical compute ceiling)."""
    out = {}
    for n in (1024, 2048, 3072):
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        times = []
        for _ in range(max(3, repeats)):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        out[n] = 2 * n**3 / statistics.median(times) / 1e9
    return {"gflops_by_size": out, "gflops": max(out.values())}


def ready_embedder(**params) -> Conv6Embedder:
    """A width-64 embedder with random weights, as after fit (speed only)."""
    emb = Conv6Embedder(random_state=SEED, device="cpu", **params)
    emb.classes_ = np.arange(10)
    emb.input_shape_ = (1, BOX, BOX, BOX)
    emb.initialize()
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        g = torch.Generator().manual_seed(SEED)
        for m in emb.module_.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
    return emb


def old_transform(emb: Conv6Embedder, X: np.ndarray) -> np.ndarray:
    """The transform before this work: unfused, default layout, batches of 128."""
    module = Conv6(10, volume_size=BOX)
    module.load_state_dict(emb.module_.state_dict())
    module.eval()
    out = np.empty((len(X), module.num_features), dtype=np.float32)
    Xc = X[:, None]
    with torch.inference_mode():
        for lo in range(0, len(X), 128):
            xb = torch.from_numpy(Xc[lo : lo + 128])
            out[lo : lo + len(xb)] = module.forward_head(
                module.forward_features(xb), pre_logits=True
            ).numpy()
    return out


def gemm_rate(n: int = 2048, repeats: int = 3) -> float:
    """GFLOP/s of a float32 GEMM now (median of a few): the ceiling beside a
    measurement, for a machine whose load changes by the minute."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def timed(fn, n: int, repeats: int, gflop: float, ceiling: float) -> dict:
    fn()  # warm-up: oneDNN primitive creation, allocator
    walls, cpus, loads, beside = [], [], [], [gemm_rate()]
    for _ in range(repeats):
        loads.append(os.getloadavg()[0])
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        beside.append(gemm_rate())
    rate = n / statistics.median(walls)
    return {
        "per_s": rate,
        "per_s_all": [n / w for w in walls],
        "per_cpu_s": n / statistics.median(cpus),
        "gflops": rate * gflop,
        "fraction_of_matmul": rate * gflop / ceiling,
        # the GEMM rate just before and after every repeat
        "matmul_gflops_beside": beside,
        "fraction_of_matmul_beside": rate * gflop / statistics.median(beside),
        "load_1min": statistics.median(loads),
    }


def levers(X, repeats, threads, ceiling, gflop, use_compile) -> dict:
    torch.set_num_threads(threads)
    n = len(X)
    res = {}

    def run(name, fn):
        res[name] = timed(fn, n, repeats, gflop, ceiling)
        r = res[name]
        print(
            f"  {name:34s} {r['per_s']:7.1f}/s  {r['gflops']:6.1f} GFLOP/s "
            f"({100 * r['fraction_of_matmul']:4.1f}% of matmul, "
            f"{100 * r['fraction_of_matmul_beside']:4.1f}% beside)  "
            f"{r['per_cpu_s']:6.1f}/cpu-s  load {r['load_1min']:.1f}",
            flush=True,
        )

    emb = ready_embedder()
    run("before: unfused NCDHW batch 128", lambda: old_transform(emb, X))
    plain = ready_embedder(channels_last=False)
    run("fused, NCDHW", lambda: plain.transform(X))
    unpacked = ready_embedder()
    prepack, runtime.prepack_for_onednn = runtime.prepack_for_onednn, lambda b: None
    try:  # the inference copy is built, without prepacking, on the warm-up call
        run("fused, channels_last, no prepacking", lambda: unpacked.transform(X))
    finally:
        runtime.prepack_for_onednn = prepack
    run("fused, channels_last (default)", lambda: emb.transform(X))
    default_micro = embedder_mod._CPU_MICRO_BATCH
    for micro in (2, 8, 16, 128):
        embedder_mod._CPU_MICRO_BATCH = micro
        run(f"default, micro-batch {micro}", lambda: emb.transform(X))
    embedder_mod._CPU_MICRO_BATCH = default_micro
    if cpu_has_native_bfloat16():  # emulated it takes minutes and shows nothing
        amp = ready_embedder(amp=True)
        run("default + amp (bfloat16)", lambda: amp.transform(X))
    if threads > 1:
        torch.set_num_threads(1)
        run("default, 1 thread", lambda: emb.transform(X))
        torch.set_num_threads(threads)
    if use_compile:
        res["torch.compile"] = compiled(emb, X, repeats, gflop, ceiling)
    return res


def compiled(emb, X, repeats, gflop, ceiling) -> dict:
    """torch.compile (inductor) of the fused inference module, same micro-batches."""
    fused = emb._inference_module()
    micro = embedder_mod._CPU_MICRO_BATCH
    fwd = torch.compile(lambda x: fused.forward_features(x).flatten(1), dynamic=False)
    Xt = torch.from_numpy(X[:, None]).contiguous(memory_format=torch.channels_last_3d)

    def run():
        with torch.inference_mode():
            return torch.cat(
                [
                    fwd(Xt[lo : lo + micro])
                    for lo in range(0, len(X) - len(X) % micro, micro)
                ]
            )

    try:
        t0 = time.perf_counter()
        with torch.inference_mode():
            fwd(Xt[:micro])
        compile_s = time.perf_counter() - t0
        r = timed(run, len(X) - len(X) % micro, repeats, gflop, ceiling)
        ref = emb.transform(X[: len(X) - len(X) % micro])
        r["max_abs_diff_vs_eager"] = float(np.abs(run().numpy() - ref).max())
        r["compile_s"] = compile_s
        print(
            f"  {'torch.compile (inductor)':34s} {r['per_s']:7.1f}/s  compile "
            f"{compile_s:.0f} s  max diff {r['max_abs_diff_vs_eager']:.2g}",
            flush=True,
        )
        return r
    except Exception as exc:  # noqa: BLE001 - report whatever breaks
        print(f"  torch.compile failed: {exc!r}")
        return {"error": repr(exc)}


MALLOC_CHILD = """
import json, sys, time, numpy as np, torch
sys.path.insert(0, {bench_dir!r})
import bench_embedding as b
import fscc_sklearn.embedding._embedder as m
mode, micro, threads, n = {mode!r}, {micro}, {threads}, {n}
if mode == "mallopt":
    from fscc_sklearn.embedding._runtime import tune_malloc
    tune_malloc()
torch.set_num_threads(threads)
m._CPU_MICRO_BATCH = micro
X = np.random.default_rng(0).standard_normal((n, 32, 32, 32), dtype=np.float32)
emb = b.ready_embedder()
r = b.timed(lambda: emb.transform(X), n, {repeats}, {gflop}, {ceiling})
print(json.dumps(r))
"""


PROCESS_MODES = {
    # glibc's defaults outside; transform keeps the heap for its own duration
    "no tune_malloc (transform's own malloc scope)": {},
    "env MALLOC_*": {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "1073741824"},
    "mallopt": {},
    "mallopt + OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    # threads pinned to cores (libgomp)
    "mallopt + OMP_PROC_BIND=close": {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"},
}


def process_settings(n, repeats, threads, gflop, ceiling) -> dict:
    """Same transform in fresh processes: malloc and OpenMP settings at start-up."""
    out = {}
    for micro in (embedder_mod._CPU_MICRO_BATCH, 128):
        for mode, extra_env in PROCESS_MODES.items():
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith("MALLOC_")
                and k not in ("OMP_WAIT_POLICY", "OMP_PROC_BIND", "OMP_PLACES")
            }
            env.update(extra_env)
            code = MALLOC_CHILD.format(
                bench_dir=str(Path(__file__).parent),
                mode="mallopt" if mode.startswith("mallopt") else mode,
                micro=micro,
                threads=threads,
                n=n,
                repeats=repeats,
                gflop=gflop,
                ceiling=ceiling,
            )
            proc = subprocess.run(
                [sys.executable, "-c", code],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            out[f"{mode}, micro-batch {micro}"] = r
            print(
                f"  {mode:34s} micro-batch {micro:3d}: {r['per_s']:7.1f}/s "
                f"{r['per_cpu_s']:6.1f}/cpu-s  load {r['load_1min']:.1f}",
                flush=True,
            )
    return out


def scaling(ns, threads) -> dict:
    torch.set_num_threads(threads)
    emb = ready_embedder()
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((max(ns), BOX, BOX, BOX), dtype=np.float32)
    emb.transform(X[:8])
    out = []
    for n in ns:
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        emb.transform(X[:n])
        dt = time.perf_counter() - t0
        out.append(
            {
                "n": n,
                "seconds": dt,
                "ms_per_subtomogram": 1e3 * dt / n,
                "load_1min": load,
            }
        )
        print(
            f"  n={n:6d}: {dt:7.2f} s, {1e3 * dt / n:6.2f} ms each, load {load:.1f}",
            flush=True,
        )
    # slope of log(time) on log(n): 1 is linear, 2 quadratic
    slope = float(np.polyfit(np.log(ns), np.log([o["seconds"] for o in out]), 1)[0])
    return {"points": out, "log_log_slope": slope}


MEMORY_CHILD = """
import json, resource, sys, time, numpy as np, torch
from fscc_sklearn import Conv6Embedder
torch.set_num_threads({threads})
X = np.load({path!r}, mmap_mode="r")[: {n}]
emb = Conv6Embedder(random_state=0, device="cpu", module__width={width})
emb.classes_ = np.arange(10)
emb.input_shape_ = (1, 32, 32, 32)
emb.initialize()

def status():
    out = {{}}
    with open("/proc/self/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) / 1024
    return out

peak = {{"RssAnon": 0.0, "RssFile": 0.0, "VmRSS": 0.0}}
log = []
t0 = time.perf_counter()

def progress(done, total):
    s = status()
    for k in peak:
        peak[k] = max(peak[k], s[k])
    if done == total or len(log) == 0 or done // 5000 != log[-1]["done"] // 5000:
        log.append({{"done": done, "total": total, "s": time.perf_counter() - t0, **s}})
        print(f"{{done}}/{{total}} {{time.perf_counter() - t0:.0f}} s "
              f"RSS {{s['VmRSS']:.0f}} MB", file=sys.stderr, flush=True)

emb.set_params(progress=progress)
F = emb.transform(X)
dt = time.perf_counter() - t0
print(json.dumps({{"n": len(X), "width": {width}, "seconds": dt, "per_s": len(X) / dt,
    "peak_rss_mb": status()["VmHWM"],
    "peak_mb": peak, "log": log, "features_shape": list(F.shape)}}))
"""


def make_stack(path: Path, n: int) -> float:
    """Write an (n, 32, 32, 32) float32 .npy by tiling 1,000 random volumes."""
    t0 = time.perf_counter()
    X = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float32, shape=(n, BOX, BOX, BOX)
    )
    block = np.random.default_rng(SEED).standard_normal(
        (1000, BOX, BOX, BOX), dtype=np.float32
    )
    for lo in range(0, n, len(block)):
        X[lo : lo + len(block)] = block[: n - lo]
    X.flush()
    del X
    return time.perf_counter() - t0


def memory(n, runs, threads) -> dict:
    need = n * BOX**3 * 4
    tmp = Path(tempfile.gettempdir())
    free = shutil.disk_usage(tmp).free
    if free < need + 5e9:
        n_fit = int((free - 5e9) // (BOX**3 * 4))
        print(f"  only {free / 1e9:.0f} GB free in {tmp}: using n={n_fit}")
        n = n_fit
    path = tmp / f"fscc_bench_stack_{os.getpid()}.npy"
    out = {"n_stack": n, "file_gb": n * BOX**3 * 4 / 1e9, "runs": []}
    try:
        out["write_s"] = make_stack(path, n)
        print(f"  wrote {out['file_gb']:.1f} GB in {out['write_s']:.0f} s", flush=True)
        for width, n_run in runs:
            n_run = min(n_run, n)
            code = MEMORY_CHILD.format(
                path=str(path), n=n_run, width=width, threads=threads
            )
            proc = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["progress_lines"] = proc.stderr.count("\n")
            out["runs"].append(r)
            print(
                f"  width {width}, n={r['n']}: {r['seconds']:.0f} s "
                f"({r['per_s']:.0f}/s), peak RSS {r['peak_rss_mb']:.0f} MB "
                f"(anon {r['peak_mb']['RssAnon']:.0f}, file "
                f"{r['peak_mb']['RssFile']:.0f})",
                flush=True,
            )
    finally:
        path.unlink(missing_ok=True)
    return out


def episodes(threads, n_episodes) -> dict:
    """evaluate_episodes with n_jobs=1 and 2: identical accuracies, and time."""
    torch.set_num_threads(threads)
    X, y = make_toy_volumes(
        n_classes=10, n_per_class=30, box=16, noise=0.8, random_state=SEED
    )
    base = y < 6
    from sklearn.pipeline import Pipeline

    pipe = Pipeline(
        [
            (
                "embed",
                Conv6Embedder(
                    module__width=16,
                    max_epochs=8,
                    lr=0.01,
                    batch_size=48,
                    random_state=SEED,
                ),
            ),
            ("clf", CalibratedFewShotClassifier(random_state=SEED)),
        ]
    ).fit(X[base], y[base])
    out = {}
    for n_jobs in (1, 2):
        t0 = time.perf_counter()
        r = evaluate_episodes(
            pipe,
            X[~base],
            y[~base],
            n_way=4,
            k_shot=1,
            n_query=10,
            n_episodes=n_episodes,
            random_state=SEED,
            n_jobs=n_jobs,
        )
        out[n_jobs] = {
            "seconds": time.perf_counter() - t0,
            "mean": r.mean,
            "accuracies": r.accuracies.tolist(),
            "seeds": r.seeds.tolist(),
        }
    same = (
        out[1]["accuracies"] == out[2]["accuracies"]
        and out[1]["seeds"] == out[2]["seeds"]
    )
    print(
        f"  n_jobs=1: {out[1]['seconds']:.1f} s, n_jobs=2: {out[2]['seconds']:.1f} s,"
        f" identical accuracies: {same}",
        flush=True,
    )
    return {"n_episodes": n_episodes, "by_n_jobs": out, "identical": same}


def markdown(res: dict) -> str:
    m, lv = res["machine"], res["levers"]
    ceiling = res["matmul"]["gflops"]
    lines = [
        "# Embedding benchmark (`Conv6Embedder.transform`)",
        "",
        f"{m['date_utc']}, {m['cpu']} ({m['cpu_count']} CPUs, {m['cpu_capability']}),"
        f" torch {m['torch']}, numpy {m['numpy']}, {m['torch_threads']} threads. "
        f"Load average at start {load_at_start(m):.1f} "
        "(the machine is shared; every figure is a median of "
        f"{res['params']['repeats']} repeats and carries the 1-minute load).",
        "",
        f"32^3 boxes, Conv-6 width 64: {res['gflop_per_subtomogram']:.3f} GFLOP per"
        f" subtomogram. float32 matmul ceiling measured in the same run: "
        f"{ceiling:.0f} GFLOP/s, i.e. at most "
        f"{ceiling / res['gflop_per_subtomogram']:.0f} subtomograms/s.",
        "",
        f"## Levers (n = {res['params']['n']})",
        "",
        "'% beside': against the GEMM rate measured just before and after every "
        "repeat of the variant (median), the fairer reference on a shared machine.",
        "",
        "| variant | subtomograms/s | per CPU-second | GFLOP/s | % of matmul | "
        "% beside | load |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in lv.items():
        if "per_s" in r:
            beside = r.get("fraction_of_matmul_beside", float("nan"))
            lines.append(
                f"| {name} | {r['per_s']:.1f} | {r['per_cpu_s']:.1f} | "
                f"{r['gflops']:.1f} | {100 * r['fraction_of_matmul']:.0f} | "
                f"{100 * beside:.0f} | {r['load_1min']:.1f} |"
            )
        else:
            lines.append(f"| {name} | failed: {r.get('error')} | | | | | |")
    if "malloc" in res:
        lines += [
            "",
            "## glibc malloc and OpenMP wait policy (fresh process each)",
            "",
            "| setting | subtomograms/s | per CPU-second | % of matmul beside | load |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, r in res["malloc"].items():
            beside = r.get("fraction_of_matmul_beside", float("nan"))
            lines.append(
                f"| {name} | {r['per_s']:.1f} | {r['per_cpu_s']:.1f} | "
                f"{100 * beside:.0f} | {r['load_1min']:.1f} |"
            )
    sc = res["scaling"]
    lines += [
        "",
        "## Scaling with n",
        "",
        "| n | seconds | ms each | load |",
        "|---:|---:|---:|---:|",
    ]
    for p in sc["points"]:
        lines.append(
            f"| {p['n']} | {p['seconds']:.2f} | {p['ms_per_subtomogram']:.2f} "
            f"| {p['load_1min']:.1f} |"
        )
    lines += [
        "",
        f"log-log slope of time on n: {sc['log_log_slope']:.2f} (1 = linear).",
    ]
    if "memory" in res:
        mem = res["memory"]
        lines += [
            "",
            f"## Memory: memory-mapped stack of {mem['n_stack']} subtomograms "
            f"({mem['file_gb']:.1f} GB .npy)",
            "",
            "| width | n embedded | seconds | subtomograms/s | peak RSS MB | "
            "peak anon MB | peak file-backed MB |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in mem["runs"]:
            lines.append(
                f"| {r['width']} | {r['n']} | {r['seconds']:.0f} | {r['per_s']:.0f} | "
                f"{r['peak_rss_mb']:.0f} | {r['peak_mb']['RssAnon']:.0f} | "
                f"{r['peak_mb']['RssFile']:.0f} |"
            )
    if "episodes" in res:
        ep = res["episodes"]
        lines += [
            "",
            f"## Episodes ({ep['n_episodes']}, toy data): n_jobs=1 "
            f"{ep['by_n_jobs'][1]['seconds']:.1f} s, n_jobs=2 "
            f"{ep['by_n_jobs'][2]['seconds']:.1f} s; identical accuracies and seeds: "
            f"{ep['identical']}.",
        ]
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-malloc", action="store_true")
    parser.add_argument("--memory-n", type=int, default=100_000)
    parser.add_argument("--memory-width64-n", type=int, default=2_000)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 3)
    n = 64 if args.quick else args.n
    # as `fscc` does (the library keeps the heap only during fit and transform)
    malloc_tuned = tune_malloc()
    torch.set_num_threads(args.threads)
    gflop = conv6_gflop()
    res = {
        "machine": machine_info(threads=args.threads),
        "params": {
            "n": n,
            "repeats": repeats,
            "seed": SEED,
            "box": BOX,
            "width": 64,
            "threads": args.threads,
            "cpu_micro_batch": embedder_mod._CPU_MICRO_BATCH,
            "malloc_tuned_in_main_process": malloc_tuned,
        },
        "gflop_per_subtomogram": gflop,
    }
    print(f"Conv-6 width 64 at {BOX}^3: {gflop:.3f} GFLOP; load {os.getloadavg()}")
    res["matmul"] = matmul_ceiling(repeats)
    ceiling = res["matmul"]["gflops"]
    print(f"matmul ceiling {ceiling:.0f} GFLOP/s ({args.threads} threads)")
    X = np.random.default_rng(SEED).standard_normal(
        (n, BOX, BOX, BOX), dtype=np.float32
    )
    print("levers:")
    res["levers"] = levers(X, repeats, args.threads, ceiling, gflop, args.compile)
    if not args.skip_malloc:
        print("process settings (fresh processes):")
        res["malloc"] = process_settings(n, repeats, args.threads, gflop, ceiling)
    print("scaling:")
    ns = [64, 128, 256] if args.quick else [250, 500, 1000, 2000]
    res["scaling"] = scaling(ns, args.threads)
    if not args.skip_memory:
        print("memory:")
        mem_n = 5_000 if args.quick else args.memory_n
        runs = [(4, mem_n), (64, 500 if args.quick else args.memory_width64_n)]
        res["memory"] = memory(mem_n, runs, args.threads)
    print("episodes:")
    res["episodes"] = episodes(args.threads, 10 if args.quick else 40)
    res["ru_maxrss_mb_main"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["load_average_at_end"] = list(os.getloadavg())
    stem = "embedding" + (f"_{args.tag}" if args.tag else "")
    write_result(RESULTS / stem, res, markdown(res))


if __name__ == "__main__":
    main()
