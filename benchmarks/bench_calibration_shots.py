"""Benchmark of the default classifier at shot counts between the main table's 1 and 5.

Uses the features cached by ``bench_calibration.py`` (run that first) and the
same episode sampler, and compares on the same episodes per (split, SNR):
the default, the default with only one-shot classes pooled
(``pool_radius_shots=1``), the default without pooled radii
(``pool_radius_shots=0``), nearest prototype and support-only logistic
regression. Writes benchmarks/results/calibration_shots.{json,md}.

Run: python benchmarks/bench_calibration_shots.py [--shots 2 3] [--episodes 300]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).parent))
import bench_calibration as bc  # noqa: E402

from fscc_sklearn import CalibratedFewShotClassifier  # noqa: E402

RESULTS = Path(__file__).parent / "results"
METHODS = {
    "default": {},
    "pool_1": {"pool_radius_shots": 1},
    "pool_0": {"pool_radius_shots": 0},
}
BASELINES = {"proto": bc.proto_predict, "support_lr": bc.lr_predict}


def evaluate(split: str, snr: float, k_shot: int, n_episodes: int) -> dict:
    f = dict(np.load(bc.features_path(split, snr)))
    Fn, yn = f["F_novel"].astype(float), f["y_novel"]
    base = CalibratedFewShotClassifier().fit(f["F_base"].astype(float), f["y_base"])
    acc = {m: [] for m in [*METHODS, *BASELINES]}
    t0 = time.perf_counter()
    with threadpool_limits(1):
        for _, sup, qry in bc.episode_indices(yn, k_shot, n_episodes, bc.SEED):
            for name, params in METHODS.items():
                clf = CalibratedFewShotClassifier(base=base, **params)
                pred = clf.fit(Fn[sup], yn[sup]).predict(Fn[qry])
                acc[name].append(float(np.mean(pred == yn[qry])))
            Zs, Zq = bc.tukey(Fn[sup]), bc.tukey(Fn[qry])
            for name, rule in BASELINES.items():
                acc[name].append(float(np.mean(rule(Zs, yn[sup], Zq) == yn[qry])))
    return {"accuracies": acc, "seconds": time.perf_counter() - t0}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    settings = [(s, snr) for s in bc.make_splits(bc.class_sizes()) for snr in bc.SNRS]
    missing = [k for k in settings if not bc.features_path(*k).exists()]
    if missing:
        raise SystemExit(f"no cached features for {missing}; run bench_calibration.py")
    jobs = [(s, snr, k) for k in args.shots for s, snr in settings]
    out = Parallel(n_jobs=args.workers)(
        delayed(evaluate)(s, snr, k, args.episodes) for s, snr, k in jobs
    )
    results = {f"{s}|{snr}|{k}": r for (s, snr, k), r in zip(jobs, out, strict=True)}
    info = {"machine": bc.machine_info(), "seed": bc.SEED, "episodes": args.episodes}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "calibration_shots.json").write_text(
        json.dumps({"info": info, "methods": METHODS, "results": results}, indent=1)
    )
    lines = [
        "# The default at 2 and 3 shots (5-way, 15 queries, paired episodes)",
        "",
        f"{info['machine'].get('date_utc', '')} · seed {bc.SEED} · "
        f"{args.episodes} episodes per row · features cached by bench_calibration.py.",
        "`pool_1`: only one-shot classes pooled; `pool_0`: no pooled radii (the "
        "default before `pool_radius_shots`). Differences ± 95% CI half-width; "
        "**worse** marks a significant loss.",
        "",
        "| split | SNR | K | default | pool_1 | pool_0 | proto | support_lr | "
        "default − best(proto, lr) | default − pool_0 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        a = {m: np.asarray(v) for m, v in r["accuracies"].items()}
        best = max(("proto", "support_lr"), key=lambda m: a[m].mean())
        cells = [f"{a[m].mean():.3f}" for m in [*METHODS, *BASELINES]]
        diffs = [bc.paired_cell(a["default"], a[other]) for other in (best, "pool_0")]
        lines.append(f"| {' | '.join(key.split('|'))} | {' | '.join(cells)} | "
                     f"{diffs[0]} ({best}) | {diffs[1]} |")  # fmt: skip
    (RESULTS / "calibration_shots.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
