"""The pooled one-shot radius (``pool_radius_shots``) on held-out features.

``pool_radius_shots=2`` was chosen on the shipped model's features (the same
episodes it was measured on, docs/calibration.md). This checks it on features
it was not chosen on: those that ``bench_paper_scale.py`` cached for its
embedders (SHREC'21-like, 1,500 per class, width 64), 1 and 2 shots, paired
episodes, against ``pool_radius_shots=0``, the prototype rule and a
support-only Tukey logistic regression.

Run: python benchmarks/bench_radius_heldout.py --cache /path/to/paper_scale/cache
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
from _machine import machine_info  # noqa: E402

from fscc_sklearn import CalibratedFewShotClassifier, sample_episode  # noqa: E402
from fscc_sklearn.baselines import (  # noqa: E402
    PrototypeClassifier,
    TukeyLogisticRegression,
)
from fscc_sklearn.model_selection import few_shot_clone  # noqa: E402

RESULTS = Path(__file__).parent / "results"
VARIANTS = {
    "default (pool_radius_shots=2)": {},
    "pool_radius_shots=0": {"pool_radius_shots": 0},
}


def run(features: Path, shots: int, episodes: int) -> dict:
    """Accuracy per episode of every variant on one embedder's features."""
    data = np.load(features)
    F, y = data["F_novel"], data["y_novel"]
    fitted = {
        name: CalibratedFewShotClassifier(random_state=0, **params).fit(
            data["F_base"], data["y_base"]
        )
        for name, params in VARIANTS.items()
    }
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


def base_episode_gain(features: Path, shots: int, splits: int = 6, n: int = 25):
    """``pool_radius_shots=0`` minus the default on pseudo-novel episodes of the
    *base* classes (4 held out per split, statistics from the other 4): what a
    model could measure for itself before it sees a novel class."""
    data = np.load(features)
    Fb, yb = data["F_base"], data["y_base"]
    rng = np.random.RandomState(1)
    diffs = []
    for _ in range(splits):
        held = rng.permutation(np.unique(yb))[:4]
        rest = ~np.isin(yb, held)
        fitted = {
            p: CalibratedFewShotClassifier(
                random_state=0, pool_radius_shots=p, calibrate_proba=None
            ).fit(Fb[rest], yb[rest])
            for p in (2, 0)
        }
        Fn, yn = Fb[~rest], yb[~rest]
        for _ in range(n):
            support, query = sample_episode(
                yn, 4, shots, 15, random_state=rng.randint(2**31 - 1)
            )
            acc = {
                p: np.mean(
                    few_shot_clone(b).fit(Fn[support], yn[support]).predict(Fn[query])
                    == yn[query]
                )
                for p, b in fitted.items()
            }
            diffs.append(100 * (acc[0] - acc[2]))
    return [float(v) for v in diffs]


def markdown(result: dict) -> str:
    lines = [
        "# The pooled one-shot radius on held-out features\n",
        f"`{result['command']}` ({result['seconds']:.0f} s). 5-way, 15 queries per "
        f"class, {result['episodes']} paired episodes per row; accuracy % and the "
        "paired difference to the default (points, ± 95% CI).\n",
        "| features | shots | method | accuracy | minus default |",
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
    base_rows = [r for r in result["rows"] if "base_episode_gain" in r]
    if base_rows:
        lines += [
            "",
            "`--base-episodes`: `pool_radius_shots=0` minus the default on "
            "pseudo-novel 4-way episodes of the base classes (6 splits x 25), "
            "beside the same difference on the novel classes (points):",
            "",
            "| features | shots | base episodes | novel classes |",
            "|---|---|---|---|",
        ]
        for row in base_rows:
            b = np.array(row["base_episode_gain"])
            acc = row["accuracies"]
            d = 100 * (
                np.array(acc["pool_radius_shots=0"])
                - np.array(acc[next(iter(VARIANTS))])
            )
            lines.append(
                f"| {row['features']} | {row['shots']} | {b.mean():+.1f} ± "
                f"{1.96 * b.std(ddof=1) / np.sqrt(len(b)):.1f} | {d.mean():+.1f} ± "
                f"{1.96 * d.std(ddof=1) / np.sqrt(len(d)):.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--base-episodes",
        action="store_true",
        help="also compare the two on pseudo-novel episodes of the base classes",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "radius_heldout")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = []
    with threadpool_limits(1):  # small problems: one BLAS thread is faster
        for meta_path in sorted(args.cache.glob("features_*.json")):
            spec = json.loads(meta_path.read_text())["spec"]
            label = (
                f"{spec['recipe']} recipe, {spec['n_per_class']}/class, "
                f"seed {spec['seed']}"
            )
            for shots in args.shots:
                acc = run(meta_path.with_suffix(".npz"), shots, args.episodes)
                row = {"features": label, "shots": shots, "accuracies": acc}
                if args.base_episodes:
                    row["base_episode_gain"] = base_episode_gain(
                        meta_path.with_suffix(".npz"), shots
                    )
                rows.append(row)
                print(f"{label}, {shots} shots done", flush=True)
    result = {
        "command": "python benchmarks/bench_radius_heldout.py --cache CACHE "
        f"--episodes {args.episodes} --shots {' '.join(map(str, args.shots))}"
        + (" --base-episodes" if args.base_episodes else ""),
        "episodes": args.episodes,
        "seconds": time.perf_counter() - start,
        "environment": machine_info(),
        "rows": rows,
    }
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    text = markdown(result)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
