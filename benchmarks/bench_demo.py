"""Where the time of ``fscc demo`` goes: a profile by phase.

Runs ``fscc demo`` (the shipped model unless ``--pretrain``) in a fresh process
whose library functions are wrapped by timers: simulate, load the model,
pre-train, embed (every ``Conv6Embedder.transform``), calibrate (``adapt`` and
the classifier's predictions), episodes, plots, report and model files; the
rest of the wall time is start-up (interpreter, imports, parsing). Each phase
counts its own time only (the embedding inside ``adapt`` counts as embed).
Also records the process's CPU time and the load average, as the machine may
be shared. Writes benchmarks/results/demo_profile{_tag}.json and .md.

Run: nice -n 5 python benchmarks/bench_demo.py [--pretrain] [--tag name]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import load_at_start, machine_info, write_result  # noqa: E402

RESULTS = Path(__file__).parent / "results"

# the child: wrap each phase's functions where the demo looks them up
CHILD = r"""
import json, sys, time
t_child, c_child = time.perf_counter(), time.process_time()
import fscc_sklearn.cli as cli  # no torch yet, as in `fscc`
spent, stack = {}, []

def timed(phase, fn, outer_only=False):
    def wrapper(*args, **kwargs):
        if outer_only and stack:  # part of the phase that called it
            return fn(*args, **kwargs)
        t0, c0 = time.perf_counter(), time.process_time()
        stack.append([0.0, 0.0])
        try:
            return fn(*args, **kwargs)
        finally:
            total = [time.perf_counter() - t0, time.process_time() - c0]
            nested = stack.pop()
            wall, cpu = spent.setdefault(phase, [0.0, 0.0])
            spent[phase] = [wall + total[0] - nested[0], cpu + total[1] - nested[1]]
            if stack:
                stack[-1] = [a + b for a, b in zip(stack[-1], total)]
    return wrapper

setup = cli._setup_runtime

def setup_then_wrap(args):
    setup(args)  # the command's own settings first (threads, malloc, OpenMP)
    from fscc_sklearn.cli import _demo, _evaluate
    from fscc_sklearn.embedding import Conv6Embedder
    from fscc_sklearn.calibration._base import CalibratedClassifierBase
    for module, name, phase in [
        (_demo, "load_shrec21_like", "simulate"),
        (_demo, "pretrained_model", "load model"),
        (_demo, "_train", "pre-train"),
        (_demo, "adapt", "calibrate"),
        (_demo, "save_model", "model files"),
        (_demo, "write_predictions", "report"),
        (_demo, "_draw", "plots"),
        (_evaluate, "_draw", "plots"),
        (_evaluate, "episodic_evaluation", "episodes"),
        (_evaluate, "write_report", "report"),
    ]:
        setattr(module, name, timed(phase, getattr(module, name)))
    Conv6Embedder.transform = timed("embed", Conv6Embedder.transform)
    for name in ("predict", "predict_proba"):
        method = getattr(CalibratedClassifierBase, name)
        setattr(CalibratedClassifierBase, name, timed("calibrate", method, True))

cli._setup_runtime = setup_then_wrap
code = cli.main(sys.argv[1:])
spent["process cpu"] = [0.0, time.process_time()]
print(json.dumps(spent))
sys.exit(code)
"""

PHASES = (
    "start-up (interpreter, imports, parsing)",
    "simulate",
    "load model",
    "pre-train",
    "embed",
    "calibrate",
    "episodes",
    "plots",
    "report",
    "model files",
)


def run_demo(extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", CHILD, "demo", "--out-dir", f"{tmp}/demo"]
        load = os.getloadavg()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(cmd + extra, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    phases = {p: spent.get(p, [0.0, 0.0]) for p in PHASES[1:]}
    phases[PHASES[0]] = [
        wall - sum(w for w, _ in phases.values()),
        cpu - sum(c for _, c in phases.values()),
    ]
    printed = [
        line
        for line in done.stdout.splitlines()
        if "accuracy" in line or "wall" in line
    ]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "load_start": list(load),
        "load_end": list(os.getloadavg()),
        # per phase: [wall s, CPU s of all threads]
        "phases_s": {p: phases[p] for p in PHASES},
        "printed": printed,
        "raw_s": spent,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain", action="store_true")
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)
    extra = ["--pretrain"] if args.pretrain else []
    info = machine_info(packages=("torch",))
    r = run_demo(extra)
    res = {"machine": info, "command": "fscc demo " + " ".join(extra), **r}
    stem = "demo_profile" + (f"_{args.tag}" if args.tag else "")
    write_result(RESULTS / stem, res, markdown(res))


def markdown(res: dict) -> str:
    info, r = res["machine"], res
    lines = [
        f"# Where `{res['command'].strip()}` spends its time",
        "",
        f"{info['date_utc']}, {info['cpu']}, {info['cpu_count']} cores, git "
        f"{info['git']}; load average {load_at_start(info):.1f} at start, "
        f"{r['load_end'][0]:.1f} at the end (shared machine: wall times stretch "
        "with the load, CPU time much less).",
        "",
        f"Wall {r['wall_s']:.1f} s, CPU (user + system) {r['cpu_s']:.1f} s.",
        "",
        "| phase | wall s | share of wall | CPU s | share of CPU |",
        "|---|---:|---:|---:|---:|",
    ]
    for phase, (wall, cpu) in r["phases_s"].items():
        lines.append(
            f"| {phase} | {wall:.1f} | {wall / r['wall_s']:.0%} | {cpu:.1f} | "
            f"{cpu / r['cpu_s']:.0%} |"
        )
    lines += ["", "Printed:", ""] + [f"    {line}" for line in r["printed"]] + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
