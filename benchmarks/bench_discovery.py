"""Do the clusters of `cluster_embeddings` recover the species in a mixed set of picks?

Data: 8 classes x 50 picks (32^3, 10 A), simulated at SNR 0.05 and 0.02 with 5
seeds (one simulation per seed), embedded once with the shipped general model
(benchmarks/_discovery_data.py, cached). 5 classes are the SHREC'21 novel ones
(never seen by the model), 3 are among its training maps.

For each setting of the reduction (PCA, UMAP when umap-learn is installed),
HDBSCAN's cluster selection (eom, leaf) and min_cluster_size, the adjusted Rand
index (ARI) against the true classes: over all picks (noise counted as one more
group), over the clustered picks only, and over the picks of the 5 unseen
classes; with the fraction of noise, the number of clusters and their purity.
Reference (not a method of the library): k-means told the true number of
classes (8) on the same PCA features.

Run: python benchmarks/bench_discovery.py [--seeds 5]
Writes benchmarks/results/discovery.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

# one thread per BLAS/OpenMP/numba pool: on a busy 2-core machine more threads
# only oversubscribe (k-means: 1.5 s instead of 0.13 s)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import _discovery_data as data  # noqa: E402
import numpy as np  # noqa: E402
from _machine import machine_info, write_result  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from fscc_sklearn import cluster_embeddings, tukey_transform  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SNRS = (0.05, 0.02)
N_PER_CLASS = 50
SETTINGS = [
    {"reduce": r, "n_components": c, "selection": s, "min_cluster_size": m}
    for r, c in (("pca", 10), ("umap", 5))
    for s in ("eom", "leaf")
    for m in (10, 20)
]


def purity(y, labels):
    """Fraction of clustered picks in their cluster's majority class."""
    inside = labels >= 0
    if not inside.any():
        return float("nan")
    hits = 0
    for c in np.unique(labels[inside]):
        _, counts = np.unique(y[labels == c], return_counts=True)
        hits += counts.max()
    return float(hits / inside.sum())


def scores(y, labels) -> dict:
    inside = labels >= 0
    unseen = np.isin(y, data.UNSEEN)
    return {
        "ari": float(adjusted_rand_score(y, labels)),
        "ari_clustered": float(adjusted_rand_score(y[inside], labels[inside]))
        if inside.sum() > 1
        else float("nan"),
        "ari_unseen": float(adjusted_rand_score(y[unseen], labels[unseen])),
        "noise": float(np.mean(~inside)),
        "n_clusters": int(labels.max() + 1),
        "purity": purity(y, labels),
    }


def run(seeds) -> list[dict]:
    rows = []
    for snr in SNRS:
        for seed in seeds:
            f = data.features(data.CLASSES, N_PER_CLASS, snr, seed)
            F, y = f["F"], f["y"]
            for s in SETTINGS:
                t0 = time.perf_counter()
                res = cluster_embeddings(
                    F,
                    reduce=s["reduce"],
                    n_components=s["n_components"],
                    min_cluster_size=s["min_cluster_size"],
                    hdbscan_params={"cluster_selection_method": s["selection"]},
                    random_state=seed,
                )
                row = {"snr": snr, "seed": seed, **s, **scores(y, res.labels)}
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
            Z = PCA(10, random_state=seed).fit_transform(tukey_transform(F))
            km = KMeans(8, n_init=10, random_state=seed).fit_predict(Z)
            rows.append(
                {
                    "snr": snr,
                    "seed": seed,
                    "reduce": "pca",
                    "n_components": 10,
                    "selection": "k-means, k=8 (reference)",
                    "min_cluster_size": None,
                    **scores(y, km),
                    "seconds": None,
                }
            )
            print(f"SNR {snr} seed {seed} done", flush=True)
    return rows


def summarise(rows) -> list[dict]:
    keys = ("snr", "reduce", "n_components", "selection", "min_cluster_size")
    groups: dict = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, rs in groups.items():
        cell = dict(zip(keys, key, strict=True), n_seeds=len(rs))
        for m in (
            "ari",
            "ari_clustered",
            "ari_unseen",
            "noise",
            "n_clusters",
            "purity",
        ):
            v = np.array([r[m] for r in rs], dtype=float)
            half = (
                1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
            )
            cell[m] = [float(np.nanmean(v)), float(half)]
        out.append(cell)
    return out


def notes(summary) -> list[str]:
    """The best HDBSCAN setting per SNR against the k-means reference."""
    out = []
    for snr in SNRS:
        cells = [c for c in summary if c["snr"] == snr]
        ref = next(c for c in cells if c["min_cluster_size"] is None)
        best = max((c for c in cells if c is not ref), key=lambda c: c["ari"][0])
        out.append(
            f"- SNR {snr}: best ARI {best['ari'][0]:.3f} with {best['reduce']} "
            f"{best['n_components']}, {best['selection']}, min size "
            f"{best['min_cluster_size']} ({100 * best['noise'][0]:.0f}% noise); "
            f"k-means told k=8: {ref['ari'][0]:.3f}."
        )
    return out


def report(record) -> str:
    lines = [
        "# Discovery: clusters of unlabelled picks against the true species",
        "",
        f"`python benchmarks/bench_discovery.py --seeds {len(record['seeds'])}`, "
        f"{record['machine']['date_utc']}, {record['machine']['cpu']}, load "
        f"{record['machine']['loadavg_start'][0]:.1f} at start, "
        f"{record['wall_s']:.0f} s.",
        "",
        f"Picks: {N_PER_CLASS} of each of 8 classes ({', '.join(data.UNSEEN)} never "
        f"seen by the shipped model; {', '.join(data.SEEN)} among its training maps), "
        "simulated 32^3 at 10 A with seeds "
        f"{record['seeds']}, embedded with `pretrained_embedder()`. "
        "Features: Tukey power 0.5, then the reduction. Mean over seeds "
        "+- 95% CI (normal, over seeds). ARI: all picks with noise as one more "
        "group; 'clustered': picks not called noise; 'unseen': the 5 novel classes' "
        "picks. Purity: clustered picks in their cluster's majority class.",
        "",
        "| SNR | reduce | selection | min size | ARI | ARI clustered | ARI unseen | "
        "noise | clusters | purity |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(v, d=3):
        return f"{v[0]:.{d}f} +- {v[1]:.{d}f}"

    for c in record["summary"]:
        lines.append(
            f"| {c['snr']} | {c['reduce']} {c['n_components']} | {c['selection']} | "
            f"{c['min_cluster_size'] or '-'} | {f(c['ari'])} | "
            f"{f(c['ari_clustered'])} | "
            f"{f(c['ari_unseen'])} | {f(c['noise'], 2)} | {f(c['n_clusters'], 1)} | "
            f"{f(c['purity'], 2)} |"
        )
    lines += ["", *notes(record["summary"]), ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--render", action="store_true", help="rewrite discovery.md from the JSON"
    )
    args = parser.parse_args(argv)
    if args.render:
        record = json.loads((RESULTS / "discovery.json").read_text())
        (RESULTS / "discovery.md").write_text(report(record))
        return
    warnings.filterwarnings("ignore", category=FutureWarning)
    info = machine_info(packages=("umap",))
    seeds = list(range(args.seeds))
    t0 = time.perf_counter()
    rows = run(seeds)
    record = {
        "machine": info,
        "seeds": seeds,
        "n_per_class": N_PER_CLASS,
        "classes": list(data.CLASSES),
        "unseen": list(data.UNSEEN),
        "wall_s": time.perf_counter() - t0,
        "rows": rows,
        "summary": summarise(rows),
    }
    write_result(RESULTS / "discovery", record, report(record))


if __name__ == "__main__":
    main()
