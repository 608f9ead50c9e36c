"""Reproduce the FSCC paper's tables on simulated SHREC-like data.

FSCC against Baseline and Baseline++ (Table 2), per-class F1 (Table 3), the
ablation (Table 4), the lambda sweep (Figure 6), plus an SNR sweep and a
learning-rate check. One Conv-6 is pre-trained per (dataset, SNR, lambda, lr);
its base and novel features are cached under ``benchmarks/.cache`` and every
classifier is evaluated on the same episodes from those features.

Run everything (see docs/reproduction.md for wall times)::

    nice -n 10 python benchmarks/bench_paper.py
    python benchmarks/bench_paper.py --quick          # first look, a minute

Results: ``benchmarks/results/paper.json``, ``paper.md`` and ``paper.png``
(``paper_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine_info, write_result  # noqa: E402
from _paper_report import (  # noqa: E402
    PAPER_SNR,
    PAPER_TABLE2,
    render_markdown,
    save_plot,
)

# Paper numbers (Gao et al. 2022, Table 4), accuracy in %.
PAPER_ABLATION = {  # (calibration, contrastive): (5w5s, 5w1s)
    (False, False): (73.14, 65.12),
    (True, False): (75.97, 70.77),
    (False, True): (74.32, 68.44),
    (True, True): (77.12, 70.59),
}

# Methods: name -> (factory key, support): "k" = the K-shot support set,
# "10k" = the paper's Baseline protocol (10 x K labelled samples per class).
ALL_METHODS = {
    "FSCC (paper recipe)": ("fscc_paper", "k"),
    "FSCC (library default)": ("fscc_default", "k"),
    "Baseline": ("baseline", "k"),
    "Baseline++": ("baseline_pp", "k"),
    "Baseline, 10K labelled": ("baseline", "10k"),
    "Baseline++, 10K labelled": ("baseline_pp", "10k"),
    "Prototype": ("prototype", "k"),
    "Tukey LR": ("tukey_lr", "k"),
}
MAIN_METHODS = list(ALL_METHODS)
SWEEP_METHODS = ["FSCC (paper recipe)", "Baseline", "Baseline++", "Prototype"]
ABLATION_METHODS = [
    "FSCC (paper recipe)",
    "Baseline",
    "Baseline, 10K labelled",
    "Tukey LR",
]

PROFILES = {
    "full": {
        "n_per_class": 100,
        "box": 32,
        "width": 32,
        "epochs": 5,
        "batch_size": 32,
        "lr": 1e-3,
        "lr_check": 0.05,
        "episodes": 100,
        "lambdas": [0.0, 0.01, 0.05, 0.07, 0.1],
        "snrs": [0.005, 0.02, 0.1],
        "datasets": ["shrec19", "shrec21"],
    },
    "quick": {
        "n_per_class": 70,
        "box": 16,
        "width": 8,
        "epochs": 1,
        "batch_size": 70,
        "lr": 1e-3,
        "lr_check": None,
        "episodes": 10,
        "lambdas": [0.0, 0.05],
        "snrs": [0.02, 0.1],
        "datasets": ["shrec19"],
    },
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny settings, ~1 minute")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--cache", type=Path, default=HERE / ".cache")
    p.add_argument("--n-per-class", type=int, help="subtomograms per class")
    p.add_argument("--box", type=int)
    p.add_argument("--width", type=int, help="Conv-6 channels (paper: 64)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--episodes", type=int)
    p.add_argument("--lr", type=float, help="Adam learning rate of pre-training")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--budget-min",
        type=float,
        default=None,
        help="skip embedders not started within this many minutes",
    )
    p.add_argument(
        "--max-embedders", type=int, help="pre-train at most this many (by priority)"
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="re-render Markdown and plot from the existing JSON",
    )
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    cfg = dict(PROFILES["quick" if args.quick else "full"])
    for name in ("n_per_class", "box", "width", "epochs", "episodes", "lr"):
        value = getattr(args, name)
        if value is not None:
            cfg[name] = value
    return args, cfg


def embedder_jobs(cfg):
    """Pre-training runs, most important first (a time budget cuts the tail)."""
    lam0 = 0.05
    s19 = PAPER_SNR["shrec19"]
    jobs = [("shrec19", s19, lam0, cfg["lr"]), ("shrec19", s19, 0.0, cfg["lr"])]
    if "shrec21" in cfg["datasets"]:
        jobs.append(("shrec21", PAPER_SNR["shrec21"], lam0, cfg["lr"]))
    jobs += [("shrec19", snr, lam0, cfg["lr"]) for snr in cfg["snrs"] if snr != s19]
    jobs += [
        ("shrec19", s19, lam, cfg["lr"])
        for lam in sorted(cfg["lambdas"], key=lambda v: abs(v - lam0), reverse=True)
        if lam not in (0.0, lam0)
    ]
    if cfg["lr_check"] is not None:
        jobs.append(("shrec19", s19, lam0, cfg["lr_check"]))
    return [dict(zip(("dataset", "snr", "lam", "lr"), j, strict=True)) for j in jobs]


def _key(obj):
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def features(job, cfg, args, log):
    """Pre-train Conv-6 for ``job`` and embed base and novel sets (cached)."""
    import torch

    from fscc_sklearn import Conv6Embedder
    from fscc_sklearn.datasets import load_shrec19_like, load_shrec21_like

    spec = {
        **job,
        **{k: cfg[k] for k in ("n_per_class", "box", "width", "epochs", "batch_size")},
        "seed": args.seed,
    }
    key = _key(spec)
    path = args.cache / f"features_{key}.npz"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        data = dict(np.load(path, allow_pickle=False))
        meta = json.loads(meta_path.read_text())
        log(f"  cached features {path.name}")
        return data, meta
    loader = {"shrec19": load_shrec19_like, "shrec21": load_shrec21_like}
    t0 = time.perf_counter()
    ds = loader[job["dataset"]](
        n_per_class=cfg["n_per_class"],
        snr=job["snr"],
        box=cfg["box"],
        data_home=args.cache / "data",
        random_state=args.seed,
        progress=False,
        n_jobs=args.threads,
    )
    t_data = time.perf_counter() - t0
    torch.set_num_threads(args.threads)
    emb = Conv6Embedder(
        max_epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        lr=job["lr"],
        sup_con_weight=job["lam"],
        augment=None,  # the paper describes no augmentation
        lr_schedule=None,
        module__width=cfg["width"],
        device="cpu",
        random_state=args.seed,
        verbose=0,
    )
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    emb.fit(ds.X_base, ds.y_base)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    F_base = emb.transform(ds.X_base)
    F_novel = emb.transform(ds.X_novel)
    t_embed = time.perf_counter() - t0
    data = {
        "F_base": F_base,
        "y_base": np.asarray(ds.y_base).astype(str),
        "F_novel": F_novel,
        "y_novel": np.asarray(ds.y_novel).astype(str),
    }
    meta = {
        "spec": spec,
        "key": key,
        "n_base": int(len(ds.y_base)),
        "n_novel": int(len(ds.y_novel)),
        "base_classes": list(ds.base_classes),
        "novel_classes": list(ds.novel_classes),
        "n_features": int(F_base.shape[1]),
        "seconds": {"data": t_data, "train": t_train, "embed": t_embed},
        "train_per_s": len(ds.y_base) * cfg["epochs"] / t_train,
        "history": {
            name: [float(v) for v in emb.history[:, name]]
            for name in ("train_loss", "train_acc")
            if name in emb.history[-1]
        },
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
    }
    args.cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **data)
    os.replace(tmp, path)
    meta_path.write_text(json.dumps(meta, indent=1))
    log(
        f"  trained in {t_train:.0f} s ({meta['train_per_s']:.1f} subtomograms/s), "
        f"embedded in {t_embed:.0f} s, load {load_before[0]:.1f}"
    )
    return data, meta


def make_classifier(kind, base_fscc):
    from fscc_sklearn.baselines import (
        BaselineClassifier,
        BaselinePlusPlusClassifier,
        PrototypeClassifier,
        TukeyLogisticRegression,
    )
    from fscc_sklearn.model_selection import few_shot_clone

    if kind in ("fscc_paper", "fscc_default"):
        return few_shot_clone(base_fscc[kind])
    return {
        "baseline": BaselineClassifier,
        "baseline_pp": BaselinePlusPlusClassifier,
        "prototype": PrototypeClassifier,
        "tukey_lr": TukeyLogisticRegression,
    }[kind]()


def fit_base_fscc(data, kinds):
    """Base-class statistics for the FSCC variants, fitted once per embedder."""
    out = {}
    for kind in kinds:
        if kind in ("fscc_paper", "fscc_default"):
            clf = _fscc_class(kind)(random_state=0)
            out[kind] = clf.fit(data["F_base"], data["y_base"])
    return out


def _fscc_class(kind):
    """The paper's recipe or the library's default calibration."""
    from fscc_sklearn import (
        CalibratedFewShotClassifier,
        DistributionCalibrationClassifier,
    )

    if kind == "fscc_paper":
        return DistributionCalibrationClassifier
    return CalibratedFewShotClassifier


def fscc_params(kind):
    clf = _fscc_class(kind)()
    return {k: v for k, v in clf.get_params().items() if k != "base"}


def run_episodes(data, methods, k_shot, n_episodes, seed, n_way=5, n_query=15):
    """Accuracy and per-class F1 of every method on the same episodes.

    Each episode draws ``10 * k_shot`` labelled samples per class plus
    ``n_query`` queries; K-shot methods see the first ``k_shot`` of them, the
    paper's Baseline protocol all ``10 * k_shot``. Queries are shared.
    """
    from sklearn.metrics import f1_score

    from fscc_sklearn import sample_episode

    y = data["y_novel"]
    F = data["F_novel"]
    kinds = {ALL_METHODS[m][0] for m in methods}
    base_fscc = fit_base_fscc(data, kinds)
    seeds = np.random.RandomState(seed).randint(0, 2**31 - 1, size=n_episodes)
    big = 10 * k_shot
    acc = {m: np.empty(n_episodes) for m in methods}
    f1 = {m: [] for m in methods}
    secs = dict.fromkeys(methods, 0.0)
    labels = np.unique(y)
    for e, s in enumerate(seeds):
        support, query = sample_episode(y, n_way, big, n_query, random_state=s)
        small = support.reshape(n_way, big)[:, :k_shot].ravel()
        for m in methods:
            kind, which = ALL_METHODS[m]
            idx = small if which == "k" else support
            clf = make_classifier(kind, base_fscc)
            if "random_state" in clf.get_params():
                clf.set_params(random_state=int(s))
            t0 = time.perf_counter()
            pred = clf.fit(F[idx], y[idx]).predict(F[query])
            secs[m] += time.perf_counter() - t0
            acc[m][e] = np.mean(pred == y[query])
            present = np.unique(y[query])
            scores = f1_score(y[query], pred, labels=present, average=None)
            f1[m].append(dict(zip(present.tolist(), scores.tolist(), strict=True)))
    out = {}
    for m in methods:
        a = acc[m]
        per_class = {
            c: float(np.mean([d[c] for d in f1[m] if c in d]))
            for c in labels.tolist()
            if any(c in d for d in f1[m])
        }
        out[m] = {
            "mean": float(a.mean()),
            "ci95": float(1.96 * a.std(ddof=1) / np.sqrt(len(a))),
            "accuracies": [round(float(v), 4) for v in a],
            "f1_per_class": per_class,
            "seconds_per_episode": secs[m] / n_episodes,
            "labelled_per_class": k_shot if ALL_METHODS[m][1] == "k" else big,
        }
    return out, seeds


def methods_for(job, cfg):
    """Which methods each embedder serves (its tables)."""
    s19 = PAPER_SNR["shrec19"]
    main = job["snr"] == PAPER_SNR[job["dataset"]] and job["lam"] == 0.05
    if job["lr"] != cfg["lr"]:
        return ["FSCC (paper recipe)", "Baseline", "Prototype"]
    if main:
        return MAIN_METHODS
    if job["dataset"] == "shrec19" and job["snr"] == s19 and job["lam"] == 0.0:
        both = set(SWEEP_METHODS) | set(ABLATION_METHODS)
        return sorted(both, key=MAIN_METHODS.index)
    return SWEEP_METHODS


def evaluate_job(job, data, meta, cfg, args, log):
    spec_key = _key({"features": meta["key"], "episodes": cfg["episodes"], "v": 1})
    path = args.cache / f"eval_{spec_key}.json"
    methods = methods_for(job, cfg)
    if path.exists():
        cached = json.loads(path.read_text())
        if set(methods) <= set(cached["results"]["5"]):
            log("  cached evaluation")
            return cached
    t0 = time.perf_counter()
    results, seeds = {}, {}
    for k in (1, 5):
        res, s = run_episodes(data, methods, k, cfg["episodes"], args.seed + k)
        results[str(k)] = res
        seeds[str(k)] = s.tolist()
        for m in methods:
            r = res[m]
            log(f"    5w{k}s {m:26s} {100 * r['mean']:6.2f} +- {100 * r['ci95']:.2f}")
    out = {"results": results, "episode_seeds": seeds}
    out["seconds"] = time.perf_counter() - t0
    path.write_text(json.dumps(out))
    return out


def environment(args):
    info = machine_info(threads=args.threads, packages=("torch",))
    versions = ("numpy", "scipy", "scikit-learn", "torch", "fscc_sklearn")
    versions = {k: info.pop(k) for k in versions}
    return {"date": info.pop("date_utc"), **info, "versions": versions}


def main(argv=None):
    args, cfg = parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    stem = "paper_quick" if args.quick else "paper"
    t_start = time.perf_counter()
    if args.report_only:
        report = json.loads((args.out / f"{stem}.json").read_text())
        (args.out / f"{stem}.md").write_text(render_markdown(report))
        if not args.no_plot:
            save_plot(report, args.out / f"{stem}.png")
        return report

    def log(msg):
        print(f"[{time.perf_counter() - t_start:7.0f} s] {msg}", flush=True)

    report = {
        "benchmark": "bench_paper",
        "profile": "quick" if args.quick else "full",
        "config": cfg,
        "seed": args.seed,
        "environment": environment(args),
        "fscc_params": {k: fscc_params(k) for k in ("fscc_paper", "fscc_default")},
        "paper": {
            "table2": {f"{d}/{m}": v for (d, m), v in PAPER_TABLE2.items()},
            "ablation": {
                f"calibration={c},contrastive={s}": v
                for (c, s), v in PAPER_ABLATION.items()
            },
        },
        "runs": [],
        "skipped": [],
    }
    for job in embedder_jobs(cfg)[: args.max_embedders]:
        minutes = (time.perf_counter() - t_start) / 60
        if args.budget_min is not None and minutes > args.budget_min:
            log(f"skip {job}: {minutes:.0f} min > budget {args.budget_min} min")
            report["skipped"].append(job)
            continue
        log(f"embedder {job}")
        data, meta = features(job, cfg, args, log)
        ev = evaluate_job(job, data, meta, cfg, args, log)
        report["runs"].append({"job": job, "embedder": meta, **ev})
        _save(report, args, stem, t_start, log, final=False)
    _save(report, args, stem, t_start, log, final=True)
    return report


def _save(report, args, stem, t_start, log, final):
    report["wall_seconds"] = time.perf_counter() - t_start
    report["environment"]["loadavg_end"] = list(os.getloadavg())
    report["complete"] = final
    write_result(args.out / stem, report, render_markdown(report), echo=False)
    if final and not args.no_plot:
        try:
            save_plot(report, args.out / f"{stem}.png")
        except ImportError:
            log("matplotlib not installed: no plot")
    if final:
        log(f"wrote {args.out / stem}.json and .md")


if __name__ == "__main__":
    main()
