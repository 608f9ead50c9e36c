"""Speed of distribution calibration per 5-way episode: reference recipe vs ours.

The reference recipe (Yang et al. 2021's public script, as FSCC uses it) is
written out below as a plain function: per support feature, numpy's
``multivariate_normal`` of the calibrated distribution, then
``LogisticRegression(max_iter=1000)`` on support + samples, with default
(multithreaded) BLAS. It is compared with
``CalibratedFewShotClassifier(method="paper")`` (same recipe, faster
implementation) and the default ``method="bayes"`` (no sampling).

Features: the cached Conv6 features of benchmarks/bench_calibration.py (paper
split, SNR 0.05; run that first), 128-d, and a 512-d version made by a fixed
random ReLU expansion of them (``relu(F @ W)``, W Gaussian), which keeps their
class structure and non-negativity.

Timing: 5-way 5-shot episodes at 512-d. Accuracy: the same episodes for every
method (``--episodes``, default 600, at 128-d where the reference is affordable,
and ``--episodes-512`` at 512-d). Growth of the episode time with n (samples
per class), d and k for method="paper" and "bayes".

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

from bench_calibration import (  # noqa: E402
    CACHE,
    RESULTS,
    SEED,
    episode_indices,
    features_path,
    machine_info,
    paired,
)

from fscc_sklearn import BaseStatistics, CalibratedFewShotClassifier  # noqa: E402


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


def reference_results(d, n_episodes, k_shot=5):
    """Accuracy and seconds of the reference recipe (one BLAS thread) per
    episode, cached and resumable: 600 episodes take about an hour."""
    path = reference_cache(d, n_episodes)
    acc = np.full(n_episodes, np.nan)
    sec = np.full(n_episodes, np.nan)
    if path.exists():
        with np.load(path) as f:
            acc, sec = f["accuracy"].copy(), f["seconds"].copy()
    todo = np.flatnonzero(np.isnan(acc))
    if len(todo):
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


def run_methods(d, n_episodes, k_shot=5, n_timed_reference=20, n_default_threads=0):
    """Accuracy and time of each method on the same episodes.

    The reference's accuracies come from :func:`reference_results` (cached);
    it is timed again in this run on the first ``n_timed_reference`` episodes,
    so speed-ups are ratios measured in one run. ``reference_default_threads``
    (the BLAS default, as a user would run it) is timed on the first
    ``n_default_threads`` episodes: on a loaded 2-core machine it can be a
    hundred times slower.
    """
    ref_acc, ref_sec = reference_results(d, n_episodes, k_shot)
    Fb, yb, Fn, yn = load(d)
    raw = BaseStatistics.from_features(Fb, yb)
    tuk = BaseStatistics.from_features(Fb, yb, tukey_lambda=0.5)
    episodes = episode_indices(yn, k_shot, n_episodes, SEED + 1)
    methods = {
        "paper_fast": (raw, {"method": "paper"}),
        "paper_lbfgs": (raw, {"method": "paper", "solver": "lbfgs"}),
        "bayes": (tuk, {}),
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
        for m, (stats, params) in methods.items():
            if m == "paper_lbfgs" and e >= n_lbfgs:
                continue
            t0 = time.perf_counter()
            clf = CalibratedFewShotClassifier(base=stats, random_state=s, **params)
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
            times = []
            for s, sup, _ in episodes:
                clf = CalibratedFewShotClassifier(
                    base=stats, method=method, random_state=s, **params
                )
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
    parser.add_argument("--episodes-512", type=int, default=30)
    parser.add_argument("--default-thread-episodes", type=int, default=2)
    parser.add_argument(
        "--reference-only",
        action="store_true",
        help="only compute (and cache) the reference recipe's episodes",
    )
    args = parser.parse_args(argv)
    if not features_path("paper", 0.05).exists():
        sys.exit("Run benchmarks/bench_calibration.py first (it caches the features).")
    if args.reference_only:
        reference_results(512, 3 if args.quick else args.episodes)
        return
    n128 = 20 if args.quick else args.episodes
    n512 = 3 if args.quick else args.episodes_512
    info = machine_info()
    out = {
        "machine": info,
        "quick": args.quick,
        "seed": SEED,
        "blas": threadpool_info(),
    }
    for d, n in ((512, n512), (128, n128)):
        acc, sec = run_methods(
            d, n, n_default_threads=args.default_thread_episodes if d == 512 else 0
        )
        out[f"d{d}"] = {
            "n_episodes": n,
            "mean_accuracy": {m: float(a.mean()) for m, a in acc.items()},
            "paper_fast_minus_reference": paired(acc["paper_fast"], acc["reference"]),
            "bayes_minus_reference": paired(acc["bayes"], acc["reference"]),
            "median_seconds": {
                m: float(np.median(t)) for m, t in sec.items() if len(t)
            },
            "mean_seconds": {m: float(np.mean(t)) for m, t in sec.items() if len(t)},
            "seconds": {m: t.round(4).tolist() for m, t in sec.items()},
        }
        print(d, json.dumps(out[f"d{d}"], indent=1), flush=True)
    out["scaling"] = scaling(args.quick)
    out["loadavg_end"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    name = "calibration_speed_quick" if args.quick else "calibration_speed"
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=1, default=str))
    write_md(out, RESULTS / f"{name}.md")


def write_md(out, path):
    m = out["machine"]
    lines = [
        "# Calibration speed: one 5-way 5-shot episode",
        "",
        f"{m['date_utc']} · {m['cpu_count']} cores (shared with other jobs) · numpy "
        f"{m['numpy']}, scikit-learn {m['scikit-learn']} · load average "
        f"{m['loadavg_start'][0]:.1f} at start, {out['loadavg_end'][0]:.1f} at end.",
        "",
        "`reference` = the public recipe written out in this script (numpy "
        "`multivariate_normal` per support feature, `LogisticRegression(max_iter="
        "1000)`), run with one BLAS thread; `reference_default_threads` = the "
        "same with the BLAS default threads (as users run it), timed on the first "
        "episodes only; `paper_fast` = "
        '`CalibratedFewShotClassifier(method="paper")` (same recipe: base '
        "statistics once, memoised Cholesky factors per neighbour set, one matmul "
        "per set, float32 draws, single-thread BLAS below 4e6 drawn values); "
        "`bayes` = the default (no sampling). Time = fit + predict of one episode "
        "(the first episode includes memoising the Cholesky factors). Speed-up = "
        "median reference (1 thread) / median method.",
        "",
        "| d | episodes | method | accuracy | median s | mean s | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in (512, 128):
        r = out[f"d{d}"]
        ref = r["median_seconds"]["reference"]
        if "reference_default_threads" in r["median_seconds"]:
            t = r["median_seconds"]["reference_default_threads"]
            lines.append(
                f"| {d} | {len(r['seconds']['reference_default_threads'])} | "
                f"reference_default_threads | (same) | {t:.3f} | "
                f"{r['mean_seconds']['reference_default_threads']:.3f} | "
                f"{ref / t:.2f}x |"
            )
        for meth in ("reference", "paper_fast", "bayes"):
            lines.append(
                f"| {d} | {r['n_episodes']} | {meth} | "
                f"{r['mean_accuracy'][meth]:.4f} | "
                f"{r['median_seconds'][meth]:.3f} | {r['mean_seconds'][meth]:.3f} | "
                f"{ref / r['median_seconds'][meth]:.1f}x |"
            )
        dp, cp = r["paper_fast_minus_reference"]
        db, cb = r["bayes_minus_reference"]
        lines.append(
            f"\nd={d}: paper_fast − reference = {dp:+.4f} ± {cp:.4f}; bayes − "
            f"reference = {db:+.4f} ± {cb:.4f} (paired, 95% CI).\n"
        )
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
    path.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    with threadpool_limits(None):
        main()
