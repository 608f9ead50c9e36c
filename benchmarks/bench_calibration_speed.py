"""Speed of distribution calibration per 5-way episode: reference recipe vs ours.

The reference recipe (Yang et al. 2021's public script, as FSCC uses it) is
written out below as a plain function: per support feature, numpy's
``multivariate_normal`` of the calibrated distribution, then
``LogisticRegression(max_iter=1000)`` on support + samples, with default
(multithreaded) BLAS. It is compared with
``DistributionCalibrationClassifier`` (same recipe, faster
implementation) and the default ``method="bayes"`` (no sampling).

Features: the cached Conv6 features (width 64: 512-d) of
benchmarks/bench_calibration.py (paper split, SNR 0.05; run that first).

Accuracy: 5-way 5-shot episodes, the same for every method. The reference's
per-episode results are cached and resumable (``--reference-only`` computes
them, about 6 s per episode on one idle core; ``--available-only`` compares
on the episodes cached so far). Timing: every method in one run, the
reference re-timed on the first 10 episodes. Growth of the episode time with
n (samples per class), d and k for method="paper" and "bayes".

Run: python benchmarks/bench_calibration_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_info, threadpool_limits

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from _machine import write_result  # noqa: E402
from bench_calibration import (  # noqa: E402
    CACHE,
    RESULTS,
    SEED,
    episode_indices,
    features_path,
    machine_info,
    paired,
)

from fscc_sklearn import (  # noqa: E402
    BaseStatistics,
    CalibratedFewShotClassifier,
    DistributionCalibrationClassifier,
)


def reference_episode(base_means, base_covs, X_support, y_support, X_query, rng):
    """The reference recipe, step by step (k=2, alpha=0.21, 750 draws per class)."""
    k, alpha, n_total = 2, 0.21, 750
    support = np.power(X_support, 0.5)
    query = np.power(X_query, 0.5)
    n_shot = np.unique(y_support, return_counts=True)[1][0]
    n_per = int(n_total / n_shot)
    sampled, labels = [support], [y_support]
    for v, label in zip(support, y_support, strict=True):
        dist = np.linalg.norm(base_means - v, axis=1)
        nearest = np.argsort(dist)[:k]
        mean = np.concatenate([base_means[nearest], v[None]]).mean(0)
        cov = base_covs[nearest].mean(0) + alpha
        sampled.append(rng.multivariate_normal(mean, cov, size=n_per))
        labels.append(np.full(n_per, label))
    clf = LogisticRegression(max_iter=1000).fit(
        np.concatenate(sampled), np.concatenate(labels)
    )
    return clf.predict(query)


def expand(F, d, seed=0):
    if d == F.shape[1]:
        return F.astype(np.float64)
    W = np.random.default_rng(seed).standard_normal((F.shape[1], d)) / np.sqrt(
        F.shape[1]
    )
    return np.maximum(F.astype(np.float64) @ W, 0.0)


def load(d):
    with np.load(features_path("paper", 0.05)) as f:
        Fb, yb, Fn, yn = f["F_base"], f["y_base"], f["F_novel"], f["y_novel"]
    return expand(Fb, d), yb, expand(Fn, d), yn


def reference_cache(d, n_episodes):
    return CACHE / f"reference_d{d}_e{n_episodes}.npz"


def reference_results(d, n_episodes, k_shot=5, compute=True):
    """Accuracy and seconds of the reference recipe (one BLAS thread) per
    episode, cached and resumable: 600 episodes take about an hour. With
    ``compute=False`` missing episodes stay NaN."""
    path = reference_cache(d, n_episodes)
    acc = np.full(n_episodes, np.nan)
    sec = np.full(n_episodes, np.nan)
    if path.exists():
        with np.load(path) as f:
            acc, sec = f["accuracy"].copy(), f["seconds"].copy()
    todo = np.flatnonzero(np.isnan(acc))
    if len(todo) and compute:
        Fb, yb, Fn, yn = load(d)
        raw = BaseStatistics.from_features(Fb, yb)
        episodes = episode_indices(yn, k_shot, n_episodes, SEED + 1)
        for n_done, e in enumerate(todo, 1):
            s, sup, qry = episodes[e]
            t0 = time.perf_counter()
            with threadpool_limits(1):
                pred = reference_episode(
                    raw.means, raw.covariances, Fn[sup], yn[sup], Fn[qry],
                    np.random.RandomState(s),
                )  # fmt: skip
            sec[e] = time.perf_counter() - t0
            acc[e] = np.mean(pred == yn[qry])
            if n_done % 10 == 0 or n_done == len(todo):
                np.savez(path, accuracy=acc, seconds=sec)
                print(f"reference {e + 1}/{n_episodes}: {sec[e]:.1f} s", flush=True)
    return acc, sec


def run_methods(
    d, ref_acc, ref_sec, k_shot=5, n_timed_reference=10, n_default_threads=0
):
    """Accuracy and time of each method on the same episodes.

    The reference's accuracies ``ref_acc`` come from :func:`reference_results`
    (cached); it is timed again in this run on the first ``n_timed_reference`` episodes,
    so speed-ups are ratios measured in one run. ``reference_default_threads``
    (the BLAS default, as a user would run it) is timed on the first
    ``n_default_threads`` episodes: on a loaded 2-core machine it can be a
    hundred times slower.
    """
    n_episodes = len(ref_acc)
    Fb, yb, Fn, yn = load(d)
    raw = BaseStatistics.from_features(Fb, yb)
    tuk = BaseStatistics.from_features(Fb, yb, tukey_lambda=0.5)
    episodes = episode_indices(yn, k_shot, n_episodes, SEED + 1)
    methods = {
        "paper_fast": (raw, DistributionCalibrationClassifier, {}),
        "paper_lbfgs": (raw, DistributionCalibrationClassifier, {"solver": "lbfgs"}),
        "bayes": (tuk, CalibratedFewShotClassifier, {}),
    }
    n_lbfgs = min(n_timed_reference, n_episodes)  # the slow exact solver
    acc = {"reference": ref_acc} | {m: np.full(n_episodes, np.nan) for m in methods}
    sec = {m: [] for m in ("reference", "reference_default_threads", *methods)}
    sec["reference_cached"] = ref_sec
    for e, (s, sup, qry) in enumerate(episodes):
        Xs, ys, Xq, yq = Fn[sup], yn[sup], Fn[qry], yn[qry]
        timed = [("reference", 1)] * (e < n_timed_reference)
        timed += [("reference_default_threads", None)] * (e < n_default_threads)
        for name, threads in timed:
            t0 = time.perf_counter()
            with threadpool_limits(threads):
                reference_episode(
                    raw.means, raw.covariances, Xs, ys, Xq, np.random.RandomState(s)
                )
            sec[name].append(time.perf_counter() - t0)
        for m, (stats, recipe, params) in methods.items():
            if m == "paper_lbfgs" and e >= n_lbfgs:
                continue
            t0 = time.perf_counter()
            clf = recipe(base=stats, random_state=s, **params)
            pred = clf.fit(Xs, ys).predict(Xq)
            sec[m].append(time.perf_counter() - t0)
            acc[m][e] = np.mean(pred == yq)
    return acc, {m: np.asarray(t) for m, t in sec.items()}


def scaling(quick):
    """Episode time of method="paper" and "bayes" against n, d and k."""
    Fb, yb, Fn, yn = load(512)
    rows = []
    reps = 2 if quick else 3
    grid = [("d", d, {"n_samples": 750, "k": 2}) for d in (64, 128, 256, 512)]
    grid += [("n", n, {"n_samples": n, "k": 2}) for n in (150, 750, 3000)]
    grid += [("k", k, {"n_samples": 750, "k": k}) for k in (1, 2, 4)]
    episodes = episode_indices(yn, 5, reps, SEED + 2)
    for what, value, params in grid:
        d = value if what == "d" else 512
        raw = BaseStatistics.from_features(Fb[:, :d], yb)
        tuk = BaseStatistics.from_features(Fb[:, :d], yb, tukey_lambda=0.5)
        for method, stats in (("paper", raw), ("bayes", tuk)):
            recipe = {
                "paper": DistributionCalibrationClassifier,
                "bayes": CalibratedFewShotClassifier,
            }[method]
            # the Bayesian rule draws no samples: n_samples is the recipe's
            kw = params if method == "paper" else {"k": params["k"]}
            times = []
            for s, sup, _ in episodes:
                clf = recipe(base=stats, random_state=s, **kw)
                t0 = time.perf_counter()
                clf.fit(Fn[sup, :d], yn[sup])
                times.append(time.perf_counter() - t0)
            rows.append(
                {"vary": what, "value": value, "method": method,
                 "median_s": float(np.median(times))}
            )  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--episodes", type=int, default=600)
    parser.add_argument("--default-thread-episodes", type=int, default=2)
    parser.add_argument(
        "--reference-only",
        action="store_true",
        help="only compute (and cache) the reference recipe's episodes",
    )
    parser.add_argument(
        "--available-only",
        action="store_true",
        help="compare on the reference episodes cached so far (the first n)",
    )
    args = parser.parse_args(argv)
    if not features_path("paper", 0.05).exists():
        sys.exit("Run benchmarks/bench_calibration.py first (it caches the features).")
    n_episodes = 3 if args.quick else args.episodes
    if args.reference_only:
        reference_results(512, n_episodes)
        return
    ref_acc, ref_sec = reference_results(
        512, n_episodes, compute=not args.available_only
    )
    n_done = int(np.argmax(np.isnan(ref_acc))) if np.isnan(ref_acc).any() else None
    ref_acc, ref_sec = ref_acc[:n_done], ref_sec[:n_done]
    info = machine_info()
    out = {
        "machine": info,
        "quick": args.quick,
        "seed": SEED,
        "blas": threadpool_info(),
    }
    acc, sec = run_methods(
        512, ref_acc, ref_sec, n_default_threads=args.default_thread_episodes
    )
    n_lbfgs = int(np.isfinite(acc["paper_lbfgs"]).sum())
    out["d512"] = {
        "n_episodes": len(ref_acc),
        "n_episodes_lbfgs": n_lbfgs,
        "mean_accuracy": {m: float(np.nanmean(a)) for m, a in acc.items()},
        "paper_fast_minus_reference": paired(acc["paper_fast"], acc["reference"]),
        "paper_lbfgs_minus_reference": paired(
            acc["paper_lbfgs"][:n_lbfgs], acc["reference"][:n_lbfgs]
        ),
        "paper_fast_minus_reference_same_episodes": paired(
            acc["paper_fast"][:n_lbfgs], acc["reference"][:n_lbfgs]
        ),
        "bayes_minus_reference": paired(acc["bayes"], acc["reference"]),
        "median_seconds": {m: float(np.median(t)) for m, t in sec.items() if len(t)},
        "mean_seconds": {m: float(np.mean(t)) for m, t in sec.items() if len(t)},
        "seconds": {m: t.round(4).tolist() for m, t in sec.items()},
        "accuracies": {m: a.round(4).tolist() for m, a in acc.items()},
    }
    print(json.dumps(out["d512"]["mean_accuracy"], indent=1), flush=True)
    out["scaling"] = scaling(args.quick)
    out["loadavg_end"] = os.getloadavg()
    name = "calibration_speed_quick" if args.quick else "calibration_speed"
    write_result(RESULTS / name, out, markdown(out))


def markdown(out) -> str:
    m = out["machine"]
    r = out["d512"]
    med = r["median_seconds"]
    ref = med["reference"]
    lines = [
        "# Calibration speed: one 5-way 5-shot episode at 512-d",
        "",
        f"{m['date_utc']} · {m['cpu_count']} cores (shared with other jobs) · numpy "
        f"{m['numpy']}, scikit-learn {m['scikit-learn']} · load average "
        f"{m['loadavg_start'][0]:.1f} at start, {out['loadavg_end'][0]:.1f} at end.",
        "",
        "Features: Conv6Embedder (width 64, 5 epochs) of the paper split, SNR 0.05 "
        "(benchmarks/bench_calibration.py). `reference` = the public recipe "
        "written out in this script (numpy `multivariate_normal` per support "
        "feature, `LogisticRegression(max_iter=1000)`), one BLAS thread; its "
        f"accuracy is over {r['n_episodes']} episodes (cached, resumable), its "
        f"time re-measured in this run on the first {len(r['seconds']['reference'])}. "
        "`reference_default_threads`: the same with default BLAS threads. "
        "`paper_fast` = `DistributionCalibrationClassifier()` (base "
        "statistics once, memoised Cholesky factors per neighbour set, one float32 "
        "matmul per set, closed-form Newton-step logistic regression); "
        '`paper_lbfgs` = the same with `solver="lbfgs"` (L-BFGS to convergence, '
        f"first {r['n_episodes_lbfgs']} episodes); `bayes` = the default (no "
        "sampling). Time = fit + predict. Speed-up = median reference time / "
        "median time, both from this run.",
        "",
        "| method | episodes | accuracy | median s | mean s | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for meth in (
        "reference_default_threads",
        "reference",
        "paper_fast",
        "paper_lbfgs",
        "bayes",
    ):
        if meth not in med:
            continue
        n = len(r["seconds"][meth])
        acc = r["mean_accuracy"].get(meth)
        lines.append(
            f"| {meth} | {n} | {'(same)' if acc is None else f'{acc:.4f}'} | "
            f"{med[meth]:.3f} | {r['mean_seconds'][meth]:.3f} | "
            f"{ref / med[meth]:.1f}x |"
        )
    rows = [
        ("paper_fast − reference", "paper_fast_minus_reference", r["n_episodes"]),
        ("bayes − reference", "bayes_minus_reference", r["n_episodes"]),
        (
            "paper_lbfgs − reference",
            "paper_lbfgs_minus_reference",
            r["n_episodes_lbfgs"],
        ),
        (
            "paper_fast − reference (same episodes)",
            "paper_fast_minus_reference_same_episodes",
            r["n_episodes_lbfgs"],
        ),
    ]
    lines += ["", "Paired accuracy differences (95% CI):", ""]
    for label, key, n in rows:
        d, c = r[key]
        lines.append(f"- {label}: {d:+.4f} ± {c:.4f} ({n} episodes)")
    lines += [
        "",
        "## Growth of the fit time (median s, 5-way 5-shot)",
        "",
        "| varied | value | paper | bayes |",
        "|---|---|---|---|",
    ]
    rows = out["scaling"]
    for what, value in dict.fromkeys((r["vary"], r["value"]) for r in rows):
        t = {
            r["method"]: r["median_s"]
            for r in rows
            if r["vary"] == what and r["value"] == value
        }
        lines.append(f"| {what} | {value} | {t['paper']:.3f} | {t['bayes']:.4f} |")
    lines.append("")
    lines.append("Defaults elsewhere: d=512, n=750 per class, k=2.")
    return "\n".join(lines)


if __name__ == "__main__":
    with threadpool_limits(None):
        main()
