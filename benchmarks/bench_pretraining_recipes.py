"""Which pre-training recipe makes Conv-6 features transfer to unseen particles?

Pre-trains Conv-6 on the 8 base classes of the SHREC'21-like data
(``load_shrec21_like``, paper split) with each candidate recipe, embeds base and
novel classes once (features cached under ``benchmarks/.cache/recipes``) and
scores 5-way 1/5-shot episodes on the 5 novel classes with the default
classifier (``CalibratedFewShotClassifier``) and a prototype classifier. All
recipes share the same episodes, so differences are paired: the paired 95% CI
of ``recipe - paper`` is reported.

Run (background, niced)::

    nohup nice -n 10 python benchmarks/bench_pretraining_recipes.py > \
        benchmarks/.cache/recipes.log 2>&1 &

Results: ``benchmarks/results/recipes.json`` and ``recipes.md``.
"""

import argparse
import hashlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import scipy.stats
import sklearn
import torch
from _machine import write_result
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import fscc_sklearn
from fscc_sklearn import (
    CalibratedFewShotClassifier,
    Conv6Embedder,
    PrototypeClassifier,
    evaluate_episodes,
)
from fscc_sklearn.datasets import load_shrec21_like
from fscc_sklearn.embedding._recipes import pretraining_recipe

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "recipes"
RESULTS = HERE / "results"

# name -> Conv6Embedder params (on top of random_state/device/channels_last)
RECIPES = {
    "paper": pretraining_recipe("paper"),
    "lib_v0": {"lr": 1e-3, "max_epochs": 5, "batch_size": 128},
    "transfer": pretraining_recipe("transfer"),
    "transfer_supcon_head": {
        **pretraining_recipe("transfer"),
        "sup_con_weight": 0.5,
        "temperature": 0.1,
        "module__proj_dim": 128,
    },
}
# run order: the decisive comparison first, extras after
JOBS = [
    ("paper", 0.05),
    ("transfer", 0.05),
    ("paper", 0.02),
    ("transfer", 0.02),
    ("lib_v0", 0.05),
    ("transfer_supcon_head", 0.05),
]


def _key(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def pretrain(recipe, snr, cfg, log):
    params = RECIPES[recipe]
    spec = {"recipe": params, "snr": snr, **cfg, "v": fscc_sklearn.__version__}
    path = CACHE / f"{recipe}_{snr}_{_key(spec)}.npz"
    if path.exists():
        log(f"cached {path.name}")
        z = np.load(path, allow_pickle=False)
        return {k: z[k] for k in z.files}, json.loads(str(z["meta"]))
    data = load_shrec21_like(
        n_per_class=cfg["n_per_class"],
        snr=snr,
        random_state=cfg["data_seed"],
        progress=False,
    )
    emb = Conv6Embedder(
        random_state=cfg["seed"], device="cpu", module__width=cfg["width"], **params
    )
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    emb.fit(data.X_base, data.y_base)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    f_base = emb.transform(data.X_base)
    f_novel = emb.transform(data.X_novel)
    embed_s = time.perf_counter() - t0
    hist = {
        k: [float(h.get(k, np.nan)) for h in emb.history]
        for k in ("train_loss", "train_acc", "dur")
    }
    meta = {
        "train_s": train_s,
        "embed_s": embed_s,
        "n_embedded": len(f_base) + len(f_novel),
        "loadavg_before": load0,
        "loadavg_after": os.getloadavg(),
        "history": hist,
        "dead_dims": int((f_base.max(0) == 0).sum()),
        "num_features": int(f_base.shape[1]),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        f_base=f_base,
        y_base=data.y_base,
        f_novel=f_novel,
        y_novel=data.y_novel,
        meta=json.dumps(meta),
    )
    os.replace(tmp, path)
    log(
        f"{recipe} snr={snr}: trained {train_s:.0f}s, final loss "
        f"{hist['train_loss'][-1]:.3f} acc {hist['train_acc'][-1]:.3f}, "
        f"dead dims {meta['dead_dims']}"
    )
    return {
        "f_base": f_base,
        "y_base": data.y_base,
        "f_novel": f_novel,
        "y_novel": data.y_novel,
    }, meta


def episodes(feats, k_shot, cfg):
    """Per-episode accuracies of both classifiers (same seeds for every recipe)."""
    ident = FunctionTransformer()
    out = {}
    clfs = {
        "calibrated": CalibratedFewShotClassifier(random_state=0).fit(
            feats["f_base"], feats["y_base"]
        ),
        "prototype": PrototypeClassifier(),
    }
    for name, clf in clfs.items():
        n_ep = cfg["episodes"] if name == "prototype" else cfg["episodes_calibrated"]
        pipe = Pipeline([("features", ident.fit(feats["f_novel"])), ("clf", clf)])
        res = evaluate_episodes(
            pipe,
            feats["f_novel"],
            feats["y_novel"],
            n_way=5,
            k_shot=k_shot,
            n_query=15,
            n_episodes=n_ep,
            random_state=cfg["episode_seed"],
            n_jobs=1,
        )
        out[name] = np.asarray(res.accuracies, dtype=float)
    return out


def ci95(values):
    values = np.asarray(values, dtype=float)
    half = scipy.stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1)
    return float(values.mean()), float(half / np.sqrt(len(values)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-per-class", type=int, default=80)
    p.add_argument("--width", type=int, default=32, help="Conv-6 channels")
    p.add_argument("--episodes", type=int, default=600)
    p.add_argument("--episodes-calibrated", type=int, default=300)
    p.add_argument("--jobs", type=int, default=len(JOBS), help="first N jobs only")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="recipes")
    p.add_argument(
        "--report-only", action="store_true", help="rewrite .md/.png from the .json"
    )
    args = p.parse_args()
    if args.report_only:
        doc = json.loads((RESULTS / f"{args.out}.json").read_text())
        args.threads = doc["info"]["torch_threads"]
        write(doc["results"], doc["config"], args)
        return
    torch.set_num_threads(args.threads)
    cfg = {
        "n_per_class": args.n_per_class,
        "width": args.width,
        "episodes": args.episodes,
        "episodes_calibrated": args.episodes_calibrated,
        "seed": 0,
        "data_seed": 0,
        "episode_seed": 12345,
    }
    t_start = time.time()

    def log(msg):
        print(
            f"[{time.time() - t_start:7.1f}s load {os.getloadavg()[0]:.1f}] {msg}",
            flush=True,
        )

    results = {}
    for recipe, snr in JOBS[: args.jobs]:
        feats, meta = pretrain(recipe, snr, cfg, log)
        entry = {"meta": meta, "acc": {}}
        for k_shot in (1, 5):
            accs = episodes(feats, k_shot, cfg)
            for clf, a in accs.items():
                entry["acc"][f"{clf}_{k_shot}shot"] = a.tolist()
        results[f"{recipe}@{snr}"] = entry
        log(
            f"{recipe}@{snr}: "
            + ", ".join(f"{k} {np.mean(v):.3f}" for k, v in entry["acc"].items())
        )
        write(results, cfg, args)
    log("done")


def write(results, cfg, args):
    summary = {}
    for name, entry in results.items():
        recipe, snr = name.split("@")
        ref = results.get(f"paper@{snr}")
        s = {
            "recipe": recipe,
            "snr": float(snr),
            "train_s": entry["meta"]["train_s"],
            "embed_per_s": entry["meta"]["n_embedded"] / entry["meta"]["embed_s"],
            "dead_dims": entry["meta"]["dead_dims"],
            "loadavg": entry["meta"]["loadavg_after"],
        }
        for col, acc in entry["acc"].items():
            s[col] = ci95(acc)
            if ref is not None and recipe != "paper":
                s[f"{col}_minus_paper"] = ci95(np.asarray(acc) - ref["acc"][col])
        summary[name] = s
    info = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "fscc_sklearn": fscc_sklearn.__version__,
        "torch_threads": args.threads,
    }
    doc = {
        "config": cfg,
        "recipes": RECIPES,
        "info": info,
        "summary": summary,
        "results": results,
    }
    cols = [
        "calibrated_1shot",
        "calibrated_5shot",
        "prototype_1shot",
        "prototype_5shot",
    ]

    def fmt(v):
        return f"{100 * v[0]:.1f} ± {100 * v[1]:.1f}"

    lines = [
        "# Pre-training recipes: novel-class accuracy (SHREC'21-like, paper split)",
        "",
        f"{cfg['n_per_class']} subtomograms per class (32^3), Conv-6 width "
        f"{cfg['width']}, 8 base / 5 novel classes; "
        f"5-way episodes, 15 queries; {cfg['episodes_calibrated']} episodes for the "
        f"calibrated classifier, {cfg['episodes']} for the prototype classifier "
        "(same episodes for every recipe). Mean ± 95% CI in %; Δ = paired "
        "difference to the paper recipe at the same SNR. Training wall time on "
        f"{os.cpu_count()} shared CPU cores (load average in the last column).",
        "",
        "| recipe | SNR | " + " | ".join(cols) + " | train s | embed/s | dead dims "
        "| load |",
        "|" + "---|" * (len(cols) + 6),
    ]
    for s in summary.values():
        cells = []
        for c in cols:
            cell = fmt(s[c])
            if f"{c}_minus_paper" in s:
                cell += f" (Δ {100 * s[c + '_minus_paper'][0]:+.1f} ± "
                cell += f"{100 * s[c + '_minus_paper'][1]:.1f})"
            cells.append(cell)
        lines.append(
            f"| {s['recipe']} | {s['snr']} | "
            + " | ".join(cells)
            + f" | {s['train_s']:.0f} | {s['embed_per_s']:.0f} | {s['dead_dims']} "
            f"| {s['loadavg'][0]:.1f} |"
        )
    lines += ["", "Recipes:", ""]
    lines += [f"- `{k}`: `{v}`" for k, v in RECIPES.items()]
    write_result(RESULTS / args.out, doc, "\n".join(lines) + "\n", echo=False)
    plot(summary, RESULTS / f"{args.out}.png")


def plot(summary, path):
    """Bar chart of novel-class accuracy per recipe, SNR and classifier."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    cols = [
        "calibrated_1shot",
        "prototype_1shot",
        "calibrated_5shot",
        "prototype_5shot",
    ]
    names = list(summary)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        means = [100 * summary[name][c][0] for c in cols]
        errs = [100 * summary[name][c][1] for c in cols]
        xs = np.arange(len(cols)) + i * width
        ax.bar(xs, means, width, yerr=errs, label=name, capsize=2)
    ax.set_xticks(np.arange(len(cols)) + 0.4 - width / 2, cols)
    ax.set_ylabel("5-way accuracy on novel classes (%)")
    lo = min(100 * summary[n][c][0] for n in names for c in cols)
    ax.set_ylim(max(0, lo - 10), None)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
