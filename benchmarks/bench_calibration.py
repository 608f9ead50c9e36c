"""Few-shot calibration methods on class-disjoint splits of simulated subtomograms.

Stage 1 (cached): for each SNR, simulate all packaged maps once; for each split,
pre-train a Conv6Embedder on the base classes and embed base and novel
subtomograms; features go to benchmarks/.cache/calibration/ (git-ignored).
Stage 2: every method classifies the same N-way K-shot episodes of every
(split, SNR, K); paired differences with 95% CIs are written to
benchmarks/results/calibration.{json,md,png}.

Run: python benchmarks/bench_calibration.py [--quick] [--features-only]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from _machine import machine_info  # noqa: F401 (used by the other scripts)
from joblib import Parallel, delayed

HERE = Path(__file__).parent
CACHE = HERE / ".cache" / "calibration"
RESULTS = HERE / "results"
SEED = 0
SNRS = (0.05, 0.02)
N_PER_CLASS = 150
# the library's default Conv6Embedder (width 64: 512-d features, as in the
# paper) with the 5 epochs of pre-training
EMBEDDER = {"max_epochs": 5}
SHREC21_BASE = ("1bxn", "1qvr", "1s3x", "2cg9", "3d2f", "3h84", "4cr2", "5mrc")
SHREC21_NOVEL = ("1u6g", "3cf3", "3gl1", "3qm1", "4v94")


def make_splits(sizes: dict[str, float]) -> dict[str, tuple[list, list]]:
    """Class-disjoint (base, novel) splits of the packaged maps."""
    names = sorted(sizes)
    by_size = sorted(names, key=sizes.get)
    splits = {
        "paper": (list(SHREC21_BASE), list(SHREC21_NOVEL)),
        "small_novel": (by_size[5:], by_size[:5]),
        "large_novel": (by_size[:-5], by_size[-5:]),
    }
    for seed in (0, 1):
        novel = sorted(np.random.RandomState(seed).choice(names, 5, replace=False))
        splits[f"random{seed}"] = ([c for c in names if c not in novel], novel)
    return splits


def simulate(snr: float):
    from fscc_sklearn.datasets import available_maps, simulate_subtomograms

    path = CACHE / f"sim_snr{snr}_n{N_PER_CLASS}.npz"
    if path.exists():
        with np.load(path) as f:
            return f["X"], f["y"], f["signal_var"]
    data = simulate_subtomograms(
        available_maps(), N_PER_CLASS, snr=snr, random_state=SEED, n_jobs=2
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, X=data.X, y=data.y, signal_var=data.signal_var)
    return data.X, data.y, data.signal_var


def class_sizes() -> dict[str, float]:
    """Mean noise-free signal variance per class (a proxy for particle mass)."""
    _, y, var = simulate(SNRS[0])
    return {c: float(var[y == c].mean()) for c in np.unique(y)}


def features_path(split: str, snr: float) -> Path:
    return CACHE / f"feat_{split}_snr{snr}.npz"


def make_features(split: str, snr: float, base: list, novel: list) -> dict:
    path = features_path(split, snr)
    if path.exists():
        with np.load(path) as f:
            return dict(f)
    import torch

    from fscc_sklearn import Conv6Embedder

    torch.set_num_threads(2)
    X, y, _ = simulate(snr)
    is_base, is_novel = np.isin(y, base), np.isin(y, novel)
    t0 = time.perf_counter()
    emb = Conv6Embedder(random_state=SEED, **EMBEDDER).fit(X[is_base], y[is_base])
    t_fit = time.perf_counter() - t0
    out = {
        "F_base": emb.transform(X[is_base]),
        "y_base": y[is_base],
        "F_novel": emb.transform(X[is_novel]),
        "y_novel": y[is_novel],
        "train_acc": np.asarray(emb.history[:, "train_acc"]),
        "fit_seconds": np.asarray(t_fit),
        "loadavg": np.asarray(os.getloadavg()[0]),
    }
    np.savez(path, **out)
    print(
        f"features {split} snr={snr}: fit {t_fit:.0f} s, train acc "
        f"{out['train_acc'][-1]:.3f}, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return out


def all_features(splits: dict, snrs=SNRS) -> dict:
    order = [(s, snr) for snr in snrs for s in splits]
    order.sort(
        key=lambda t: (t[0] not in ("paper",), t[0].startswith("random1"), -t[1])
    )
    return {(s, snr): make_features(s, snr, *splits[s]) for s, snr in order}


# --------------------------------------------------------------------------
# Stage 2: episodes


def tukey(F):
    return np.sqrt(np.asarray(F, dtype=np.float64))


def proto_predict(Zs, ys, Zq):
    classes, idx = np.unique(ys, return_inverse=True)
    protos = np.stack([Zs[idx == c].mean(0) for c in range(len(classes))])
    d2 = (Zq**2).sum(1)[:, None] - 2 * Zq @ protos.T + (protos**2).sum(1)[None]
    return classes[d2.argmin(1)]


def lr_predict(Zs, ys, Zq):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000).fit(Zs, ys).predict(Zq)


def make_methods(quick: bool) -> dict:
    """name -> (kind, params); kinds "paper"/"bayes": the two calibration classes."""
    return {
        "paper": ("paper", {}),
        "default": ("bayes", {}),
        "cv": ("cv", {}),
        "proto": ("proto", {}),
        "support_lr": ("lr", {}),
        # variants of method="bayes"
        "kappa1": ("bayes", {"kappa": 1.0}),
        "kappa4": ("bayes", {"kappa": 4.0}),
        "kappa_inf": ("bayes", {"kappa": np.inf}),
        "auto_k1": ("bayes", {"k": 1}),
        "auto_k4": ("bayes", {"k": 4}),
        "auto_cov_s0.5": ("bayes", {"shrinkage": 0.5}),
        "auto_cov_s0.8": ("bayes", {"shrinkage": 0.8}),
        "kappa0_cov_s0.5": ("bayes", {"kappa": 0.0, "shrinkage": 0.5}),
        # the default before support_scatter (prior covariance only)
        "scatter_off": ("bayes", {"support_scatter": "off"}),
        # the default before pool_radius_shots (every mean at its own radius)
        "radius_own": ("bayes", {"pool_radius_shots": 0}),
        # directions measured before putting them in the library
        "pca32": ("pca", {"n_components": 32}),
        "pca128": ("pca", {"n_components": 128}),
        "transductive": ("transductive", {"n_iter": 10}),
    }


def pca_space(Zb, n_components):
    """Mean and top principal axes of Tukey-space base features."""
    mean = Zb.mean(0)
    _, _, vt = np.linalg.svd(Zb - mean, full_matrices=False)
    return mean, vt[:n_components]


def bayes_means_cov(Zs, ys, stats, **params):
    """Calibrated class means and shared covariance of the default method."""
    from fscc_sklearn.calibration._bayes import bayes_gaussian_parameters

    classes, idx = np.unique(ys, return_inverse=True)
    kw = {"k": 2, "kappa": "auto", "shrinkage": 1.0, **params}
    means, cov = bayes_gaussian_parameters(Zs, idx, len(classes), stats, **kw)
    return classes, idx, means, cov


def pca_predict(Zs, ys, Zq, space, stats):
    """The default rule in the PCA space of the base features."""
    from fscc_sklearn.calibration._bayes import _linear_gaussian

    mean, axes = space
    Ps, Pq = (Zs - mean) @ axes.T, (Zq - mean) @ axes.T
    classes, _, means, cov = bayes_means_cov(Ps, ys, stats)
    coef, b = _linear_gaussian(means, cov)
    return classes[np.argmax(Pq @ coef.T + b, axis=1)]


def transductive_predict(Zs, ys, Zq, stats, n_iter):
    """Soft k-means over the queries, started from (and anchored to) the
    calibrated means, each weighted as its support count."""
    from sklearn.utils.extmath import softmax

    from fscc_sklearn.calibration._bayes import _linear_gaussian

    classes, idx, means0, cov = bayes_means_cov(Zs, ys, stats)
    counts = np.bincount(idx, minlength=len(classes)).astype(float)
    coef, b = _linear_gaussian(means0, cov)
    for _ in range(n_iter):
        r = softmax(Zq @ coef.T + b)
        means = (counts[:, None] * means0 + r.T @ Zq) / (counts + r.sum(0))[:, None]
        coef, b = _linear_gaussian(means, cov)
    return classes[np.argmax(Zq @ coef.T + b, axis=1)]


def episode_indices(y, k_shot, n_episodes, seed, n_way=5, n_query=15):
    from fscc_sklearn import sample_episode

    seeds = np.random.SeedSequence(seed).generate_state(n_episodes)
    return [
        (int(s), *sample_episode(y, n_way, k_shot, n_query, random_state=int(s)))
        for s in seeds
    ]


def evaluate_combo(feats: dict, methods: dict, k_shot: int, n_episodes: int, seed):
    """Accuracies (per episode) and mean seconds per episode of every method."""
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    from fscc_sklearn import (
        BaseStatistics,
        CalibratedFewShotClassifier,
        DistributionCalibrationClassifier,
    )

    Fb, yb = feats["F_base"].astype(np.float64), feats["y_base"]
    Fn, yn = feats["F_novel"].astype(np.float64), feats["y_novel"]
    stats = {
        "paper": BaseStatistics.from_features(Fb, yb),
        "bayes": BaseStatistics.from_features(Fb, yb, tukey_lambda=0.5),
    }
    pca = {}
    for name, (kind, params) in methods.items():
        if kind == "pca":
            n = params["n_components"]
            Zb = tukey(Fb)
            mean, axes = pca_space(Zb, n)
            pstats = BaseStatistics.from_features((Zb - mean) @ axes.T, yb)
            pca[name] = ((mean, axes), pstats)
    chosen = {}
    for name, (kind, _) in methods.items():
        if kind == "cv":
            # hyper-parameters from episodes on the base classes alone
            from fscc_sklearn import CalibratedFewShotClassifierCV
            from fscc_sklearn.model_selection import few_shot_clone

            t0 = time.perf_counter()
            cv = CalibratedFewShotClassifierCV(n_shot=k_shot, random_state=seed)
            cv.fit(Fb, yb)
            chosen[name] = (few_shot_clone(cv), time.perf_counter() - t0)
    episodes = episode_indices(yn, k_shot, n_episodes, seed)
    acc = {m: np.empty(n_episodes) for m in methods}
    seconds = dict.fromkeys(methods, 0.0)
    with threadpool_limits(1):
        for e, (s, sup, qry) in enumerate(episodes):
            Xs, ys, Xq, yq = Fn[sup], yn[sup], Fn[qry], yn[qry]
            Zs, Zq = tukey(Xs), tukey(Xq)
            for name, (kind, params) in methods.items():
                t0 = time.perf_counter()
                if kind == "proto":
                    pred = proto_predict(Zs, ys, Zq)
                elif kind == "lr":
                    pred = lr_predict(Zs, ys, Zq)
                elif kind == "cv":
                    clf = clone(chosen[name][0]).set_params(random_state=s)
                    pred = clf.fit(Xs, ys).predict(Xq)
                elif kind == "pca":
                    pred = pca_predict(Zs, ys, Zq, *pca[name])
                elif kind == "transductive":
                    pred = transductive_predict(Zs, ys, Zq, stats["bayes"], **params)
                else:
                    recipe = {
                        "bayes": CalibratedFewShotClassifier,
                        "paper": DistributionCalibrationClassifier,
                    }[kind]
                    clf = recipe(base=stats[kind], random_state=s, **params)
                    pred = clf.fit(Xs, ys).predict(Xq)
                seconds[name] += time.perf_counter() - t0
                acc[name][e] = np.mean(pred == yq)
    tuned = ("k", "kappa", "shrinkage", "tukey_lambda")
    cv_info = {
        m: {"best_params": {p: clf.get_params()[p] for p in tuned}, "fit_seconds": t}
        for m, (clf, t) in chosen.items()
    }
    return acc, {m: t / n_episodes for m, t in seconds.items()}, cv_info


def paired(a, b):
    d = a - b
    return float(d.mean()), float(1.96 * d.std(ddof=1) / np.sqrt(len(d)))


def paired_cell(a, b) -> str:
    """Table cell of the paired difference ``a - b`` with its 95% CI, flagged
    when ``a`` is significantly worse."""
    d, c = paired(a, b)
    flag = " **(worse)**" if d + c < 0 else ""
    return f"{d:+.3f} ± {c:.3f}{flag}"


PRIORITY = ("paper", "large_novel", "random0", "small_novel", "random1")


def run(
    splits: dict,
    feats: dict,
    quick=False,
    save=None,
    done=None,
    workers=1,
    recompute=(),
) -> dict:
    """Evaluate every method on every (split, SNR, K); ``save(out)`` after each row.

    Methods of the rows of ``done`` (an earlier run with the same episode
    count) are kept, not recomputed, unless named in ``recompute``: features
    arrive one (split, SNR) at a time, and a changed or added method needs
    only its own episodes (the episodes are the same, seeded per row).
    """
    methods = make_methods(quick)
    n_episodes = 60 if quick else 300
    info = machine_info()
    results = {}
    order = sorted(feats, key=lambda t: (-t[1], PRIORITY.index(t[0])))
    todo = []
    for split, snr in order:
        for k_shot in (1, 5):
            key = f"{split}|{snr}|{k_shot}"
            old = (done or {}).get(key, {}).get("accuracies", {})
            kept = {m: np.asarray(a) for m, a in old.items() if m in methods}
            for m in recompute:
                kept.pop(m, None)
            need = {m: v for m, v in methods.items() if m not in kept}
            if need:
                todo.append((split, snr, k_shot, kept, need))
            else:
                results[key] = done[key]

    def timed(f, k_shot, need):
        t0 = time.perf_counter()
        return *evaluate_combo(f, need, k_shot, n_episodes, SEED), t0

    rows = Parallel(n_jobs=workers, return_as="generator")(
        delayed(timed)(feats[(split, snr)], k_shot, need)
        for split, snr, k_shot, _, need in todo
    )
    for (split, snr, k_shot, kept, _), (new, sec, cv_info, t0) in zip(
        todo, rows, strict=True
    ):
        key = f"{split}|{snr}|{k_shot}"
        before = (done or {}).get(key, {})
        acc = {m: new[m] if m in new else kept[m] for m in methods}
        results[key] = {
            "split": split,
            "snr": snr,
            "k_shot": k_shot,
            "base": splits[split][0],
            "novel": splits[split][1],
            "mean": {m: float(a.mean()) for m, a in acc.items()},
            "ci95": {
                m: float(1.96 * a.std(ddof=1) / np.sqrt(len(a))) for m, a in acc.items()
            },
            "seconds_per_episode": {
                m: sec.get(m, before.get("seconds_per_episode", {}).get(m))
                for m in methods
            },
            "accuracies": {m: np.round(a, 4).tolist() for m, a in acc.items()},
            "cv": cv_info or before.get("cv", {}),
        }
        r = results[key]
        best = max(r["mean"]["proto"], r["mean"]["support_lr"])
        print(
            f"{key}: default {r['mean']['default']:.3f} cv {r['mean']['cv']:.3f} "
            f"paper {r['mean']['paper']:.3f} proto {r['mean']['proto']:.3f} lr "
            f"{r['mean']['support_lr']:.3f} (best simple {best:.3f}) "
            f"[{time.perf_counter() - t0:.0f} s]",
            flush=True,
        )
        if save is not None:
            save(summary(info, results, splits, feats, methods, n_episodes, quick))
    return summary(info, results, splits, feats, methods, n_episodes, quick)


def reusable_rows(path: Path, quick: bool) -> dict:
    """Rows of an earlier run with the same episode count (methods may differ)."""
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    if old.get("n_episodes") != (60 if quick else 300):
        return {}
    return old["results"]


def summary(info, results, splits, feats, methods, n_episodes, quick) -> dict:
    return {
        "machine": info,
        "quick": quick,
        "seed": SEED,
        "n_episodes": n_episodes,
        "n_way": 5,
        "n_query": 15,
        "n_per_class": N_PER_CLASS,
        "embedder": EMBEDDER,
        "snrs": list(SNRS),
        "splits": {k: {"base": b, "novel": n} for k, (b, n) in splits.items()},
        "train_acc": {
            f"{s}|{snr}": f["train_acc"].tolist() for (s, snr), f in feats.items()
        },
        "methods": {
            m: {"kind": k, **{p: _jsonable(v) for p, v in ps.items()}}
            for m, (k, ps) in methods.items()
        },
        "results": results,
        "loadavg_end": os.getloadavg(),
    }


def _jsonable(value):
    return value if isinstance(value, str) else float(value)


def _fmt(value):
    return repr(value) if isinstance(value, str) else f"{value:g}"


COMPARED = ("paper", "proto", "support_lr")


def report(out: dict, md_path: Path, png_path: Path) -> None:
    res = out["results"]
    keys = sorted(res, key=lambda k: (res[k]["snr"] * -1, res[k]["k_shot"], k))
    lines = [
        "# Calibration methods on class-disjoint splits of simulated subtomograms",
        "",
        f"{out['machine']['date_utc']} · numpy {out['machine']['numpy']}, "
        f"scikit-learn {out['machine']['scikit-learn']}, torch "
        f"{out['machine']['torch']} · seed {out['seed']} · load average "
        f"{out['machine']['loadavg_start'][0]:.1f} at start, "
        f"{out['loadavg_end'][0]:.1f} at end (shared CPU).",
        "",
        f"Data: `simulate_subtomograms` of {len(available_names(out))} packaged maps, "
        f"32^3, {out['n_per_class']} subtomograms per class, SNR "
        f"{' and '.join(map(str, out['snrs']))}. Features: `Conv6Embedder("
        + ", ".join(f"{k}={v}" for k, v in out["embedder"].items())
        + ")` pre-trained on the base classes of each split (other settings "
        "default). Episodes: 5-way, 15 queries per class, "
        f"{out['n_episodes']} per row, the same episodes for every method. "
        "Differences are paired (same episodes), ± the 95% CI half-width.",
        "",
        'Methods: `paper` = `method="paper"` (FSCC / Yang et al. recipe, '
        "closed-form Newton-step logistic regression); `default` = "
        '`CalibratedFewShotClassifier()` (`method="bayes"`); `cv` = '
        "`CalibratedFewShotClassifierCV(n_shot=K)` fitted on the base features "
        "(hyper-parameters chosen by episodes on the base classes alone); "
        "`proto` = Tukey + nearest prototype; `support_lr` = Tukey + "
        "LogisticRegression on the support set only.",
        "",
        "## Accuracy (mean ± 95% CI)",
        "",
        "| split | SNR | K | paper | default | cv | proto | support_lr | "
        "default − paper | default − best(proto, lr) | cv − best(proto, lr) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in keys:
        r = res[key]
        acc = {m: np.asarray(a) for m, a in r["accuracies"].items()}
        best = (
            "proto" if r["mean"]["proto"] >= r["mean"]["support_lr"] else "support_lr"
        )

        def diff(a, b, acc=acc):
            if a not in acc or b not in acc:
                return "n/a"
            return paired_cell(acc[a], acc[b])

        cells = [
            f"{r['mean'][m]:.3f} ± {r['ci95'][m]:.3f}" if m in acc else "n/a"
            for m in ("paper", "default", "cv", "proto", "support_lr")
        ]
        lines.append(
            f"| {r['split']} | {r['snr']} | {r['k_shot']} | "
            + " | ".join(cells)
            + f" | {diff('default', 'paper')} | {diff('default', best)} ({best}) "
            f"| {diff('cv', best)} |"
        )
    lines += ["", "Hyper-parameters chosen by `cv` per row:", ""]
    for key in keys:
        for info in res[key].get("cv", {}).values():
            lines.append(
                f"- {key}: {info['best_params']} "
                f"({info['fit_seconds']:.0f} s to choose)"
            )
    lines += [
        "",
        'Variants are `CalibratedFewShotClassifier` (`method="bayes"`) with the '
        'default settings (k=2, kappa="auto", shrinkage=1, support_scatter="auto", '
        "pool_radius_shots=2) "
        "except: "
        + "; ".join(
            f"`{m}`: "
            + ", ".join(f"{p}={_fmt(v)}" for p, v in spec.items() if p != "kind")
            for m, spec in out["methods"].items()
            if spec["kind"] == "bayes" and m != "default"
        )
        + ". `pcaN`: the default rule on the top N principal axes of the "
        "Tukey-space base features (statistics recomputed there); "
        "`transductive`: soft k-means over the episode's queries, started from "
        "the default's calibrated means, each mean weighted as its support count "
        "(10 iterations).",
        "",
        "## Variants (mean accuracy over all rows; paired difference to "
        "`default`, averaged over rows, with the rows where it is significantly "
        "better / worse)",
        "",
        "| method | rows | mean acc | mean diff vs default | better | worse |",
        "|---|---|---|---|---|---|",
    ]
    for m in out["methods"]:
        accs, diffs, better, worse = [], [], 0, 0
        for key in keys:
            if m not in res[key]["accuracies"]:
                continue
            a = np.asarray(res[key]["accuracies"][m])
            b = np.asarray(res[key]["accuracies"]["default"])
            d, c = paired(a, b)
            accs.append(a.mean())
            diffs.append(d)
            better += d - c > 0
            worse += d + c < 0
        lines.append(
            f"| {m} | {len(accs)} | {np.mean(accs):.3f} | {np.mean(diffs):+.4f} | "
            f"{better} | {worse} |"
        )
    lines += ["", "## Time per episode (ms, mean over all rows)", ""]
    for m in ("paper", "default", "cv", "proto", "support_lr", "transductive"):
        t = [res[k]["seconds_per_episode"][m] for k in keys if m in res[k]["mean"]]
        t = np.mean(t) * 1e3
        lines.append(f"- {m}: {t:.1f}")
    lines += ["", "## Splits", ""]
    for name, sp in out["splits"].items():
        lines.append(
            f"- {name}: novel {', '.join(sp['novel'])}; base {', '.join(sp['base'])}"
        )
    lines += [
        "",
        "Pre-training accuracy (last epoch) per split and SNR: "
        + ", ".join(f"{k} {v[-1]:.2f}" for k, v in out["train_acc"].items()),
        "",
    ]
    md_path.write_text("\n".join(lines))
    print("\n".join(lines))
    plot(out, keys, png_path)


def available_names(out):
    names = set()
    for sp in out["splits"].values():
        names |= set(sp["base"]) | set(sp["novel"])
    return names


def plot(out, keys, png_path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    res = out["results"]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(keys) + 2), 4))
    x = np.arange(len(keys))
    for j, m in enumerate(COMPARED):
        dc = [
            paired(
                np.asarray(res[k]["accuracies"]["default"]),
                np.asarray(res[k]["accuracies"][m]),
            )
            if m in res[k]["accuracies"]
            else (np.nan, np.nan)
            for k in keys
        ]
        ax.errorbar(
            x + (j - 1) * 0.2,
            [d for d, _ in dc],
            yerr=[c for _, c in dc],
            fmt="o",
            capsize=3,
            label=f"default − {m}",
        )
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(
        x,
        [f"{res[k]['split']}\nSNR {res[k]['snr']} K={res[k]['k_shot']}" for k in keys],
        rotation=90,
        fontsize=7,
    )
    ax.set_ylabel("paired accuracy difference (95% CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="60 episodes, paper split, SNR 0.05"
    )
    parser.add_argument("--features-only", action="store_true")
    parser.add_argument(
        "--cached-only", action="store_true", help="skip (split, SNR) not yet cached"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="rows evaluated in parallel"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the methods already evaluated in an earlier run",
    )
    parser.add_argument(
        "--recompute",
        default="",
        help="with --resume: comma-separated methods to evaluate again",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="re-write .md/.png from the .json"
    )
    args = parser.parse_args(argv)
    if args.report_only:
        name = "calibration_quick" if args.quick else "calibration"
        out = json.loads((RESULTS / f"{name}.json").read_text())
        out.setdefault("loadavg_end", os.getloadavg())
        report(out, RESULTS / f"{name}.md", RESULTS / f"{name}.png")
        return
    splits = make_splits(class_sizes())
    if args.quick:  # one (split, SNR): the paper split at SNR 0.05
        feats = {("paper", SNRS[0]): make_features("paper", SNRS[0], *splits["paper"])}
    elif args.cached_only:
        feats = {
            (s, snr): dict(np.load(features_path(s, snr)))
            for s in splits
            for snr in SNRS
            if features_path(s, snr).exists()
        }
    else:
        feats = all_features(splits)
    if args.features_only:
        return
    RESULTS.mkdir(exist_ok=True)
    name = "calibration_quick" if args.quick else "calibration"

    def save(out):
        (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=1))

    done = reusable_rows(RESULTS / f"{name}.json", args.quick) if args.resume else None
    out = run(
        splits,
        feats,
        quick=args.quick,
        save=save,
        done=done,
        workers=args.workers,
        recompute=[m for m in args.recompute.split(",") if m],
    )
    save(out)
    report(out, RESULTS / f"{name}.md", RESULTS / f"{name}.png")


if __name__ == "__main__":
    main()
