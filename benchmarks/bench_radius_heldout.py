"""The pooled one-shot radius (``pool_radius_shots``) on held-out features.

``pool_radius_shots=2`` was chosen on bench_calibration.py's features, on the
same episodes it was measured on (docs/calibration.md). This checks it on
features it was not chosen on: those that ``bench_paper_scale.py`` cached for
its embedders (SHREC'21-like, 100-1,500 per class, width 64) and any other
``--features`` files, 1 and 2 shots, paired episodes, against
``pool_radius_shots=0``, ``pool_radius_shots="auto"`` (the base fit chooses),
the prototype rule and a support-only Tukey logistic regression.

Run: python benchmarks/bench_radius_heldout.py --cache /path/to/paper_scale/cache
     [--features benchmarks/.cache/calibration/feat_*.npz]
Writes benchmarks/results/radius_heldout.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_info, write_result  # noqa: E402

from fscc_sklearn import CalibratedFewShotClassifier, sample_episode  # noqa: E402
from fscc_sklearn.baselines import (  # noqa: E402
    PrototypeClassifier,
    TukeyLogisticRegression,
)
from fscc_sklearn.model_selection import few_shot_clone  # noqa: E402

RESULTS = Path(__file__).parent / "results"
# the first is the reference of the paired differences (the default until
# "auto" replaced it)
VARIANTS = {
    "pool_radius_shots=2": {"pool_radius_shots": 2},
    "pool_radius_shots=0": {"pool_radius_shots": 0},
    'pool_radius_shots="auto" (default)': {"pool_radius_shots": "auto"},
}
AUTO = 'pool_radius_shots="auto" (default)'


def fit_bases(data) -> dict:
    """Base-mode classifier of every variant on one embedder's base features."""
    return {
        name: CalibratedFewShotClassifier(random_state=0, **params).fit(
            data["F_base"], data["y_base"]
        )
        for name, params in VARIANTS.items()
    }


def run(data, shots: int, episodes: int, fitted: dict) -> dict:
    """Accuracy per episode of every variant on one embedder's features."""
    F, y = data["F_novel"], data["y_novel"]
    seeds = np.random.RandomState(1000 + shots).randint(0, 2**31 - 1, episodes)
    acc = {name: [] for name in [*fitted, "prototype", "Tukey LR"]}
    for seed in seeds:
        support, query = sample_episode(y, 5, shots, 15, random_state=seed)
        models = {name: few_shot_clone(base) for name, base in fitted.items()}
        models |= {
            "prototype": PrototypeClassifier(),
            "Tukey LR": TukeyLogisticRegression(),
        }
        for name, model in models.items():
            pred = model.fit(F[support], y[support]).predict(F[query])
            acc[name].append(float(np.mean(pred == y[query])))
    return acc


def _mean_ci(d) -> str:
    ci = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
    return f"{d.mean():+.1f} ± {ci:.1f}"


def _gain(gain) -> str:
    """The base fit's measurement; none with fewer than 3 base classes."""
    return "not measured" if gain is None else f"{gain:+.1f}"


def markdown(result: dict) -> str:
    lines = [
        "# The pooled one-shot radius on held-out features\n",
        f"`{result['command']}` ({result['seconds']:.0f} s). 5-way, 15 queries per "
        f"class, {result['episodes']} paired episodes per row; accuracy % and the "
        "paired difference to `pool_radius_shots=2` (the default before "
        '"auto"; points, ± 95% CI).\n',
        "| features | shots | method | accuracy | minus pool_radius_shots=2 |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        ref = np.array(row["accuracies"][next(iter(VARIANTS))])
        for name, acc in row["accuracies"].items():
            a = np.array(acc)
            d = 100 * (a - ref)
            ci = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
            lines.append(
                f"| {row['features']} | {row['shots']} | {name} | "
                f"{100 * a.mean():.1f} | {d.mean():+.1f} ± {ci:.1f} |"
            )
    lines += [
        "",
        '`pool_radius_shots="auto"`: the base fit measures pooling on one-shot '
        "pseudo-novel episodes of half its classes (`pooling_gain`, pooled minus "
        "own radius, points; 6 splits x 25 episodes) and few-shot fits pool one- "
        "and two-shot classes unless it is below -2. Beside it, the same "
        "difference on the novel classes and what auto gained over "
        "`pool_radius_shots=2` (points, ± 95% CI):",
        "",
        "| features | shots | pooling_gain (base) | auto pools | pooled minus own "
        "(novel) | auto minus pool_radius_shots=2 (novel) |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        acc = {k: 100 * np.array(v) for k, v in row["accuracies"].items()}
        pooled = acc["pool_radius_shots=2"]
        gained = _mean_ci(acc[AUTO] - pooled)
        pooled = _mean_ci(pooled - acc["pool_radius_shots=0"])
        lines.append(
            f"| {row['features']} | {row['shots']} | {_gain(row['pooling_gain'])} | "
            f"{'yes' if row['auto_pools'] else 'no'} | {pooled} | {gained} |"
        )
    return "\n".join(lines) + "\n"


def _label(spec: dict) -> str:
    return f"{spec['recipe']} recipe, {spec['n_per_class']}/class, seed {spec['seed']}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cache", type=Path, help="bench_paper_scale.py's cache (features_*.npz)"
    )
    parser.add_argument(
        "--features",
        type=Path,
        nargs="*",
        default=[],
        help="more .npz files with F_base, y_base, F_novel, y_novel "
        "(e.g. bench_calibration.py's cache)",
    )
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS / "radius_heldout")
    args = parser.parse_args(argv)
    sources = [
        (path.with_suffix(".npz"), _label(json.loads(path.read_text())["spec"]))
        for path in (sorted(args.cache.glob("features_*.json")) if args.cache else [])
    ] + [(path, path.stem) for path in args.features]
    start = time.perf_counter()
    rows = []
    with threadpool_limits(1):  # small problems: one BLAS thread is faster
        for features, label in sources:
            data = dict(np.load(features))
            fitted = fit_bases(data)
            auto = fitted[AUTO]
            for shots in args.shots:
                rows.append(
                    {
                        "features": label,
                        "shots": shots,
                        "accuracies": run(data, shots, args.episodes, fitted),
                        "pooling_gain": auto.base_statistics_.pooling_gain,
                        "auto_pools": shots <= auto.pool_radius_shots_,
                    }
                )
                print(f"{label}, {shots} shots done", flush=True)
    result = {
        "command": "python benchmarks/bench_radius_heldout.py"
        + (" --cache CACHE" if args.cache else "")
        + (
            " --features " + " ".join(p.name for p in args.features)
            if args.features
            else ""
        )
        + f" --episodes {args.episodes} --shots {' '.join(map(str, args.shots))}",
        "episodes": args.episodes,
        "seconds": time.perf_counter() - start,
        "environment": machine_info(),
        "rows": rows,
    }
    write_result(args.out, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
