"""Open-set prediction: can a few-shot classifier say "none of these"?

Data (simulated, 32^3 boxes at 10 Å, one SNR per run, embedded once by the
shipped general model and cached):

- known: the 5 SHREC'21 novel maps (1u6g 3cf3 3gl1 3qm1 4v94, never seen by
  the shipped model), 60 particles each; every episode takes 1 or 5 of them
  per class as support and 15 others per class as queries;
- unknown queries, 15 of each kind per episode:
  ``other_maps``: 5 other packaged maps (3h84 3j9i 4cr2 4v4r 5mrc; seen in the
  shipped model's training, absent from the support);
  ``procedural``: 5 unseen procedural maps (make_procedural_maps, seed 2026);
  ``noise``: pure noise boxes (the simulator's noise alone);
  ``off_centre``: known particles picked 9-12 voxels off their centre;
  ``edge``: known particles at a tomogram edge (a slab of 8-14 voxels on one
  face missing, filled with the mean of the rest, as ``border="pad"`` does).

Classifiers, each fitted with ``reject="auto"`` (its closed-set predictions,
``reject=None``, are checked against a fit without reject on the first 20
episodes): the default ``CalibratedFewShotClassifier`` on the statistics
shipped with the model, and the paper's ``DistributionCalibrationClassifier``
on raw-feature statistics of 5 other packaged maps (1bxn 1qvr 1s3x 2cg9 3d2f,
40 particles each; the shipped file holds Tukey-space statistics only).
Novelty scores compared per classifier (AUROC of known vs unknown queries):
``mahalanobis`` (``novelty_score``), ``max_softmax`` (1 - max of
``predict_proba``), ``energy`` (of the scores, at the classifier's
temperature); ``prototype`` (Euclidean distance to the nearest support mean,
Tukey features) for reference. Operating point of ``reject="auto"``
(false_rejection 0.05): share of known queries rejected, share of unknown
queries rejected (per kind), accuracy on the accepted known queries.
Mean and 95 % CI (1.96 SE) over episodes.

Run: nice -n 5 python benchmarks/bench_open_set.py [--episodes 300] [--snr 0.05]
Writes benchmarks/results/open_set.{json,md,png} (suffix _snr<snr> for other SNRs).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _machine import machine_info, write_result

RESULTS = Path(__file__).parent / "results"
KNOWN = ("1u6g", "3cf3", "3gl1", "3qm1", "4v94")
PAPER_BASE = ("1bxn", "1qvr", "1s3x", "2cg9", "3d2f")
OTHER = ("3h84", "3j9i", "4cr2", "4v4r", "5mrc")
KINDS = ("other_maps", "procedural", "noise", "off_centre", "edge")
SHOTS = (1, 5)
SCORES = ("mahalanobis", "max_softmax", "energy")
SEED = 0
N_KNOWN, N_BASE, N_UNKNOWN = 60, 40, 80
N_QUERY = 15
BOX = 32


def simulate(snr: float) -> dict:
    """Subtomograms of every group (``X_<group>``), labels of the known and base."""
    from fscc_sklearn.datasets import make_procedural_maps, simulate_subtomograms

    def sim(maps, n, seed, box=BOX, snr=snr, **kw):
        return simulate_subtomograms(maps, n, box=box, snr=snr, random_state=seed, **kw)

    rng = np.random.default_rng(SEED)
    out = {}
    known = sim(list(KNOWN), N_KNOWN, SEED)
    out["X_known"], out["y_known"] = known.X, known.y.astype(str)
    base = sim(list(PAPER_BASE), N_BASE, SEED + 1)
    out["X_base"], out["y_base"] = base.X, base.y.astype(str)
    per_map = N_UNKNOWN // 5
    out["X_other_maps"] = sim(list(OTHER), per_map, SEED + 2).X
    proc = make_procedural_maps(5, random_state=2026)
    out["X_procedural"] = sim(
        proc.maps, per_map, SEED + 3, map_voxel_size=proc.voxel_size
    ).X
    # the simulator's noise alone: the same draws with and without noise
    noisy = sim(list(KNOWN), per_map, SEED + 4)
    clean = sim(list(KNOWN), per_map, SEED + 4, snr=None)
    noise = noisy.X - clean.X
    out["X_noise"] = noise
    # off-centre picks: clean particles in a 2x box, cropped 9-12 voxels off
    # their centre, plus noise of the 32^3 set's level
    big = sim(list(KNOWN), per_map, SEED + 5, box=2 * BOX, snr=None).X
    crops = np.empty((len(big), BOX, BOX, BOX), dtype=np.float32)
    for i, vol in enumerate(big):
        direction = rng.normal(size=3)
        offset = np.rint(direction / np.linalg.norm(direction) * rng.uniform(9, 12))
        lo = (BOX // 2 + offset).astype(int)
        crops[i] = vol[lo[0] : lo[0] + BOX, lo[1] : lo[1] + BOX, lo[2] : lo[2] + BOX]
    out["X_off_centre"] = crops + noise[rng.permutation(len(noise))]
    # particles at a tomogram edge: one face's slab missing, padded with the mean
    edge = sim(list(KNOWN), per_map, SEED + 6).X.copy()
    for vol in edge:
        axis, depth = rng.integers(3), int(rng.integers(8, 15))
        index = [slice(None)] * 3
        index[axis] = (
            slice(0, depth) if rng.random() < 0.5 else slice(BOX - depth, None)
        )
        keep = np.ones(vol.shape, bool)
        keep[tuple(index)] = False
        vol[~keep] = vol[keep].mean()
    out["X_edge"] = edge
    return out


def features(snr: float, cache: Path) -> dict:
    """Features of every group by the shipped embedder (cached per SNR)."""
    path = cache / f"open_set_features_snr{snr}.npz"
    if path.exists():
        with np.load(path) as f:
            return dict(f)
    import fscc_sklearn as fs

    t0 = time.perf_counter()
    data = simulate(snr)
    t_sim = time.perf_counter() - t0
    emb = fs.pretrained_embedder("general")
    out = {k: v for k, v in data.items() if k.startswith("y_")}
    for key, X in data.items():
        if key.startswith("X_"):
            out["F_" + key[2:]] = emb.transform(X)
    out["simulate_seconds"] = np.asarray(t_sim)
    out["embed_seconds"] = np.asarray(time.perf_counter() - t0 - t_sim)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def auroc(known_scores, unknown_scores):
    """P(score of an unknown > score of a known), ties counted half."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([known_scores, unknown_scores]))
    n0, n1 = len(known_scores), len(unknown_scores)
    return float((ranks[n0:].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


def open_set_scores(clf, F):
    from fscc_sklearn.calibration._novelty import energy_score, max_softmax_score

    return {
        "mahalanobis": clf.novelty_score(F),
        "max_softmax": max_softmax_score(clf.predict_proba(F)),
        "energy": energy_score(clf._logits(F), clf.temperature_),
    }


def run(F: dict, n_episodes: int) -> dict:
    from fscc_sklearn import (
        CalibratedFewShotClassifier,
        DistributionCalibrationClassifier,
        PrototypeClassifier,
        pretrained_model,
    )

    bayes_base = pretrained_model("general").steps[-1][1]
    paper_base = DistributionCalibrationClassifier(random_state=SEED).fit(
        F["F_base"], F["y_base"]
    )
    makers = {
        "default": lambda seed, **kw: CalibratedFewShotClassifier(
            base=bayes_base, random_state=seed, **kw
        ),
        "paper": lambda seed, **kw: DistributionCalibrationClassifier(
            base=paper_base, random_state=seed, **kw
        ),
    }
    y = F["y_known"]
    classes = np.unique(y)
    rng = np.random.RandomState(SEED)
    rows = {k: [] for k in SHOTS}
    for k_shot in SHOTS:
        for ep in range(n_episodes):
            support, query = [], []
            for c in classes:
                idx = rng.permutation(np.flatnonzero(y == c))
                support.append(idx[:k_shot])
                query.append(idx[k_shot : k_shot + N_QUERY])
            support, query = np.concatenate(support), np.concatenate(query)
            Fq = F["F_known"][query]
            unknown = {
                kind: F["F_" + kind][
                    rng.choice(len(F["F_" + kind]), N_QUERY, replace=False)
                ]
                for kind in KINDS
            }
            Fu = np.concatenate([unknown[k] for k in KINDS])
            kind_of = np.repeat(np.arange(len(KINDS)), N_QUERY)
            seed = int(rng.randint(2**31 - 1))
            row = {}
            proto = PrototypeClassifier(tukey_lambda=0.5).fit(
                F["F_known"][support], y[support]
            )
            row["prototype"] = {
                "auroc": auroc(proto.novelty_score(Fq), proto.novelty_score(Fu)),
                "accuracy": float(np.mean(proto.predict(Fq) == y[query])),
            }
            for name, make in makers.items():
                clf = make(seed, reject="auto").fit(F["F_known"][support], y[support])
                r = {}
                closed = clf.set_params(reject=None).predict(Fq)
                r["accuracy"] = float(np.mean(closed == y[query]))
                if ep < 20:  # today's fit (no reject) predicts the same
                    today = make(seed).fit(F["F_known"][support], y[support])
                    r["same_as_today"] = bool(np.array_equal(today.predict(Fq), closed))
                    r["accuracy_today"] = float(np.mean(today.predict(Fq) == y[query]))
                    r["accuracy_first20"] = r["accuracy"]
                sk, su = open_set_scores(clf, Fq), open_set_scores(clf, Fu)
                for s in SCORES:
                    r["auroc_" + s] = auroc(sk[s], su[s])
                    for i, kind in enumerate(KINDS):
                        r[f"auroc_{s}_{kind}"] = auroc(sk[s], su[s][kind_of == i])
                clf.set_params(reject="auto")
                pk, pu = clf.predict(Fq), clf.predict(Fu)
                accepted = pk != "unknown"
                r["threshold"] = float(clf.novelty_threshold_)
                r["known_rejected"] = float(np.mean(~accepted))
                r["unknown_rejected"] = float(np.mean(pu == "unknown"))
                for i, kind in enumerate(KINDS):
                    r["rejected_" + kind] = float(
                        np.mean(pu[kind_of == i] == "unknown")
                    )
                r["accuracy_accepted"] = (
                    float(np.mean(pk[accepted] == y[query][accepted]))
                    if accepted.any()
                    else float("nan")
                )
                # of all accepted queries (known and unknown), the share right
                n_right = np.sum(pk[accepted] == y[query][accepted])
                n_accepted = accepted.sum() + np.sum(pu != "unknown")
                r["precision_accepted"] = (
                    float(n_right / n_accepted) if n_accepted else float("nan")
                )
                row[name] = r
            rows[k_shot].append(row)
    return rows


def summarise(rows: dict) -> dict:
    out = {}
    for k_shot, eps in rows.items():
        cell = {}
        for name in eps[0]:
            keys = set().union(*(e[name].keys() for e in eps))
            stats = {}
            for key in sorted(keys):
                v = np.array([e[name][key] for e in eps if key in e[name]], float)
                v = v[~np.isnan(v)]
                stats[key] = {
                    "mean": float(v.mean()),
                    "ci95": float(1.96 * v.std(ddof=1) / np.sqrt(len(v)))
                    if len(v) > 1
                    else 0.0,
                    "n": len(v),
                }
            cell[name] = stats
        out[str(k_shot)] = cell
    return out


def fmt(s, scale=1.0, digits=3):
    return f"{s['mean'] * scale:.{digits}f} ± {s['ci95'] * scale:.{digits}f}"


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = [
        "# Open-set prediction: known novel classes vs picks of nothing labelled",
        "",
        f"SNR {result['snr']}, {result['n_episodes']} episodes per shot count, 5 known "
        f"classes ({', '.join(KNOWN)}), {N_QUERY} known queries per class and "
        f"{N_QUERY} unknown queries of each kind per episode; features of the "
        "shipped general model. Mean ± 95 % CI over episodes. "
        "Script: benchmarks/bench_open_set.py (docstring: how each kind is made).",
        "",
        "## AUROC of the novelty scores (known vs all unknown queries)",
        "",
        "| classifier | shots | mahalanobis (novelty_score) | max_softmax | energy |",
        "|---|---|---|---|---|",
    ]
    for k in SHOTS:
        for name in ("default", "paper"):
            c = s[str(k)][name]
            lines.append(
                f"| {name} | {k} | "
                + " | ".join(fmt(c["auroc_" + sc]) for sc in SCORES)
                + " |"
            )
        lines.append(
            f"| prototype (distance) | {k} | {fmt(s[str(k)]['prototype']['auroc'])}"
            " | | |"
        )
    lines += [
        "",
        "## AUROC per kind of unknown (mahalanobis / max_softmax / energy)",
        "",
        "| classifier | shots | " + " | ".join(KINDS) + " |",
        "|---|---|" + "---|" * len(KINDS),
    ]
    for k in SHOTS:
        for name in ("default", "paper"):
            c = s[str(k)][name]
            cells = [
                " / ".join(f"{c[f'auroc_{sc}_{kind}']['mean']:.2f}" for sc in SCORES)
                for kind in KINDS
            ]
            lines.append(f"| {name} | {k} | " + " | ".join(cells) + " |")
    lines += [
        "",
        '## Operating point of reject="auto" (false_rejection=0.05)',
        "",
        "| classifier | shots | closed-set accuracy | accuracy on accepted known | "
        "known rejected | unknown rejected | "
        + " | ".join(f"rejected: {k}" for k in KINDS)
        + " | right among all accepted |",
        "|---|---|---|---|---|---|" + "---|" * len(KINDS) + "---|",
    ]
    for k in SHOTS:
        for name in ("default", "paper"):
            c = s[str(k)][name]
            lines.append(
                f"| {name} | {k} | {fmt(c['accuracy'])} | {fmt(c['accuracy_accepted'])}"
                f" | {fmt(c['known_rejected'])} | {fmt(c['unknown_rejected'])} | "
                + " | ".join(f"{c['rejected_' + kind]['mean']:.2f}" for kind in KINDS)
                + f" | {fmt(c['precision_accepted'])} |"
            )
    lines += [
        "",
        "Closed-set accuracy is of the same fits with `reject=None`; on the first 20 "
        "episodes of each cell a fit without `reject` (today's) was also run: "
        + "; ".join(
            f"{name} {k}-shot: same predictions in "
            f"{s[str(k)][name]['same_as_today']['mean'] * 100:.0f} % of episodes, "
            f"accuracy {s[str(k)][name]['accuracy_today']['mean']:.3f} vs "
            f"{s[str(k)][name]['accuracy_first20']['mean']:.3f}"
            for k in SHOTS
            for name in ("default", "paper")
        )
        + ".",
        "",
        f"Wall time {result['wall_seconds']:.0f} s (simulation "
        f"{result['simulate_seconds']:.0f} s, embedding {result['embed_seconds']:.0f} s"
        f" when not cached), load average at start "
        f"{result['machine']['loadavg_start'][0]:.1f}, {result['machine']['cpu']}.",
    ]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["summary"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, k in zip(axes, SHOTS, strict=True):
        labels, means, cis = [], [], []
        for name in ("default", "paper"):
            for sc in SCORES:
                labels.append(f"{name}\n{sc}")
                means.append(s[str(k)][name]["auroc_" + sc]["mean"])
                cis.append(s[str(k)][name]["auroc_" + sc]["ci95"])
        labels.append("prototype\ndistance")
        means.append(s[str(k)]["prototype"]["auroc"]["mean"])
        cis.append(s[str(k)]["prototype"]["auroc"]["ci95"])
        ax.bar(range(len(means)), means, yerr=cis, color="tab:blue")
        ax.set_xticks(range(len(means)), labels, fontsize=7)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_ylim(0.4, 1.0)
        ax.set_title(f"{k}-shot, SNR {result['snr']}")
    axes[0].set_ylabel("AUROC known vs unknown")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--snr", type=float, default=0.05)
    parser.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args()
    from fscc_sklearn.datasets import get_data_home

    t0 = time.perf_counter()
    info = machine_info()
    cache = args.cache or get_data_home() / "bench_open_set"
    F = features(args.snr, cache)
    rows = run(F, args.episodes)
    result = {
        "snr": args.snr,
        "n_episodes": args.episodes,
        "seed": SEED,
        "known": KNOWN,
        "paper_base": PAPER_BASE,
        "kinds": KINDS,
        "n_query": N_QUERY,
        "simulate_seconds": float(F["simulate_seconds"]),
        "embed_seconds": float(F["embed_seconds"]),
        "machine": info,
        "summary": summarise(rows),
        "wall_seconds": time.perf_counter() - t0,
    }
    stem = "open_set" if args.snr == 0.05 else f"open_set_snr{args.snr}"
    write_result(RESULTS / stem, result, markdown(result))
    plot(result, RESULTS / f"{stem}.png")


if __name__ == "__main__":
    main()
