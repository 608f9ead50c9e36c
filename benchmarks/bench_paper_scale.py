"""The paper's Table 2 at the paper's scale, and the learning curve up to it.

SHREC'21-like data (the paper's split, SNR 0.05, 32^3; ``--dataset shrec19``
for SHREC'19-like at SNR 0.02): 1,500 simulated
subtomograms per base class, as many as the paper's base classes hold. Conv-6
at width 64 is pre-trained with the paper's settings
(``pretraining_recipe("paper")``) and with the library's default recipe on the
same data; then Table 2's rows run on the same 5-way episodes. Smaller base
sets (the first 100, 300, 700 per class of the same data) give the learning
curve; a second pre-training seed at 1,500 shows how much is seed noise.

Every stage is cached under ``--cache`` and the run resumes where it stopped:
simulated data, each pre-training (an :class:`AtomicCheckpoint` after every
epoch), features, and evaluations in chunks of 50 episodes. Progress lines
carry an estimate of the time left. Run (hours on 2 cores)::

    nice -n 5 python benchmarks/bench_paper_scale.py --cache /path/to/cache
    python benchmarks/bench_paper_scale.py --report-only

Results: ``benchmarks/results/paper_scale.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import machine_info, write_result  # noqa: E402
from _paper_report import PAPER_SNR  # noqa: E402
from _paper_scale_report import render_markdown, save_plot  # noqa: E402
from bench_paper import ALL_METHODS, _key, fit_base_fscc, make_classifier  # noqa: E402

TABLE_METHODS = list(ALL_METHODS)
CURVE_METHODS = [
    "FSCC (paper recipe)",
    "FSCC (library default)",
    "Baseline",
    "Prototype",
]
CHUNK = 50


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=sorted(PAPER_SNR), default="shrec21")
    p.add_argument("--cache", type=Path, default=HERE / ".cache" / "paper_scale")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--scales", type=int, nargs="+", default=[100, 300, 700, 1500])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--recipes", nargs="+", default=["paper", "default"])
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--box", type=int, default=32)
    p.add_argument("--snr", type=float, help="default: the paper's, per dataset")
    p.add_argument("--episodes", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--stem", help="default: paper_scale, paper_scale_shrec19")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    if args.snr is None:
        args.snr = PAPER_SNR[args.dataset]
    if args.stem is None:
        args.stem = "paper_scale" + (
            "" if args.dataset == "shrec21" else f"_{args.dataset}"
        )
    return args


def dataset_tag(args):
    """Cache-key entries naming the dataset (none for SHREC'21, the first one run)."""
    return {} if args.dataset == "shrec21" else {"dataset": args.dataset}


def jobs(args):
    """Pre-trainings, most informative first: the paper's scale, then the curve."""
    top = max(args.scales)
    first, *more = args.seeds
    order = [(r, top, first) for r in args.recipes]
    order += [
        (r, n, first) for n in sorted(args.scales) if n != top for r in args.recipes
    ]
    order += [(r, top, s) for s in more for r in args.recipes]
    return [{"recipe": r, "n_per_class": n, "seed": s} for r, n, s in order]


def load_data(args, log):
    """Base and novel subtomograms as read-only memory maps, labels in memory.

    Simulated once (cached by :func:`load_shrec21_like`), then kept as ``.npy``
    files: pre-training at batch 128 and width 64 needs ~8 GB of its own, so
    the 2.5 GB of data should not also stay resident.
    """
    from fscc_sklearn import datasets

    spec = [max(args.scales), args.snr, args.box, *dataset_tag(args).values()]
    folder = args.cache / f"arrays_{_key(spec)}"
    if not (folder / "y_novel.npy").exists():
        t0 = time.perf_counter()
        ds = getattr(datasets, f"load_{args.dataset}_like")(
            n_per_class=max(args.scales),
            snr=args.snr,
            box=args.box,
            data_home=args.cache / "data",
            random_state=0,
            progress=False,
            n_jobs=args.threads,
        )
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("X_base", "X_novel", "y_base", "y_novel"):
            np.save(folder / f"{name}.tmp.npy", np.asarray(ds[name]))
        for name in ("X_base", "X_novel", "y_base", "y_novel"):
            os.replace(folder / f"{name}.tmp.npy", folder / f"{name}.npy")
        del ds
        log(f"data simulated in {time.perf_counter() - t0:.0f} s")
    data = {
        name: np.load(folder / f"{name}.npy", mmap_mode="r" if name[0] == "X" else None)
        for name in ("X_base", "X_novel", "y_base", "y_novel")
    }
    log(f"data: {len(data['y_base'])} base, {len(data['y_novel'])} novel")
    return data


def first_per_class(y, n):
    """Indices of the first ``n`` samples of every class (nested across ``n``)."""
    return np.concatenate([np.flatnonzero(y == c)[:n] for c in np.unique(y)])


def pretrain(job, ds, args, log):
    """Pre-train and embed for ``job`` (cached; resumes a stopped training)."""
    import torch

    from fscc_sklearn import AtomicCheckpoint, Conv6Embedder, pretraining_recipe

    spec = {
        **job,
        **dataset_tag(args),
        "width": args.width,
        "box": args.box,
        "snr": args.snr,
        "v": 1,
    }
    key = _key(spec)
    path = args.cache / f"features_{key}.npz"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        return dict(np.load(path, allow_pickle=False)), json.loads(
            meta_path.read_text()
        )
    idx = first_per_class(ds["y_base"], job["n_per_class"])
    X, y = np.ascontiguousarray(ds["X_base"][idx]), ds["y_base"][idx]
    params = pretraining_recipe("paper") if job["recipe"] == "paper" else {}
    torch.set_num_threads(args.threads)
    checkpoint = AtomicCheckpoint(args.cache / f"checkpoint_{key}")
    emb = Conv6Embedder(
        **params,
        module__width=args.width,
        device="cpu",
        random_state=job["seed"],
        callbacks=[("checkpoint", checkpoint)],
        verbose=1,
    )
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    emb.fit(X, y)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = {
        "F_base": emb.transform(X),
        "y_base": np.asarray(y).astype(str),
        "F_novel": emb.transform(ds["X_novel"]),
        "y_novel": np.asarray(ds["y_novel"]).astype(str),
    }
    t_embed = time.perf_counter() - t0
    epochs = emb.max_epochs - checkpoint.resumed_from_
    meta = {
        "job": job,
        "spec": spec,
        "key": key,
        "params": {
            k: v for k, v in emb.get_params(deep=False).items() if k != "callbacks"
        },
        "n_base": len(y),
        "n_novel": len(ds["y_novel"]),
        "n_features": int(data["F_base"].shape[1]),
        "resumed_from_epoch": int(checkpoint.resumed_from_),
        "seconds": {"train_this_process": t_train, "embed": t_embed},
        "train_per_s": len(y) * epochs / t_train if epochs else None,
        "history": [
            {k: row[k] for k in ("epoch", "train_loss", "train_acc", "dur") if k in row}
            for row in emb.history
        ],
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
    }
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **data)
    os.replace(tmp, path)
    meta_path.write_text(json.dumps(meta, indent=1, default=str))
    log(
        f"  trained {epochs} epochs in {t_train:.0f} s "
        f"({meta['train_per_s'] or 0:.1f} subtomograms/s), embedded in {t_embed:.0f} s"
    )
    return data, meta


def evaluate(data, meta, methods, args, log):
    """Accuracy per episode of every method, both shots, cached per chunk."""
    base_fscc = fit_base_fscc(data, {ALL_METHODS[m][0] for m in methods})
    F, y = data["F_novel"], data["y_novel"]
    out = {}
    for k in (1, 5):
        # the same episodes for every embedder: paired across scales and seeds
        seeds = np.random.RandomState(1000 + k).randint(0, 2**31 - 1, args.episodes)
        acc = {m: [] for m in methods}
        for start in range(0, args.episodes, CHUNK):
            chunk = seeds[start : start + CHUNK]
            ckey = _key(
                {"f": meta["key"], "k": k, "seeds": chunk.tolist(), "m": methods}
            )
            cpath = args.cache / f"eval_{ckey}.json"
            if cpath.exists():
                part = json.loads(cpath.read_text())
            else:
                t0 = time.perf_counter()
                part = episodes(F, y, methods, base_fscc, k, chunk)
                cpath.write_text(json.dumps(part))
                seconds = time.perf_counter() - t0
                log(f"    5w{k}s episodes {start}+{len(chunk)}: {seconds:.0f} s")
            for m in methods:
                acc[m] += part[m]
        out[str(k)] = {"episode_seeds": seeds.tolist(), "accuracies": acc}
    return out


def episodes(F, y, methods, base_fscc, k_shot, seeds, n_way=5, n_query=15):
    from fscc_sklearn import sample_episode

    acc = {m: [] for m in methods}
    big = 10 * k_shot
    for s in seeds:
        support, query = sample_episode(y, n_way, big, n_query, random_state=s)
        small = support.reshape(n_way, big)[:, :k_shot].ravel()
        for m in methods:
            kind, which = ALL_METHODS[m]
            idx = small if which == "k" else support
            clf = make_classifier(kind, base_fscc)
            if "random_state" in clf.get_params():
                clf.set_params(random_state=int(s))
            pred = clf.fit(F[idx], y[idx]).predict(F[query])
            acc[m].append(round(float(np.mean(pred == y[query])), 4))
    return acc


def estimate_left(todo, rates, n_classes):
    """Seconds of pre-training left, from the subtomograms/s measured so far."""
    from fscc_sklearn import Conv6Embedder, pretraining_recipe

    rate = np.median(rates) if rates else 20.0
    total = 0.0
    for job in todo:
        params = pretraining_recipe("paper") if job["recipe"] == "paper" else {}
        epochs = Conv6Embedder(**params).max_epochs
        total += job["n_per_class"] * n_classes * epochs / rate
    return total


def main(argv=None):
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        report = json.loads((args.out / f"{args.stem}.json").read_text())
        (args.out / f"{args.stem}.md").write_text(render_markdown(report))
        save_plot(report, args.out / f"{args.stem}.png")
        return report
    from threadpoolctl import threadpool_limits

    from fscc_sklearn.embedding._runtime import tune_malloc

    threadpool_limits(1)  # small episodic problems: one BLAS thread is fastest
    tune_malloc()  # what the CLI does: pre-training 2.5x faster (pretraining_malloc.md)
    args.cache.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:7.0f} s] {msg}", flush=True)

    info = machine_info(threads=args.threads, packages=("torch",))
    report = {
        "benchmark": "bench_paper_scale",
        "config": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
        },
        "environment": info,
        "loadavg_start": list(os.getloadavg()),
        "runs": [],
        "complete": False,
    }
    ds = load_data(args, log)
    report["classes"] = {
        "base": len(np.unique(ds["y_base"])),
        "novel": len(np.unique(ds["y_novel"])),
    }
    todo = jobs(args)
    rates = []
    for i, job in enumerate(todo):
        left = estimate_left(todo[i:], rates, len(np.unique(ds["y_base"])))
        log(f"job {i + 1}/{len(todo)} {job}; pre-training left ~{left / 3600:.1f} h")
        data, meta = pretrain(job, ds, args, log)
        if meta["train_per_s"] and not meta["resumed_from_epoch"]:
            rates.append(meta["train_per_s"])
        top = job["n_per_class"] == max(args.scales)
        methods = TABLE_METHODS if top else CURVE_METHODS
        results = evaluate(data, meta, methods, args, log)
        report["runs"].append({"job": job, "embedder": meta, "results": results})
        report["complete"] = i == len(todo) - 1
        report["wall_seconds_this_process"] = time.perf_counter() - t_start
        report["loadavg_end"] = list(os.getloadavg())
        write_result(args.out / args.stem, report, render_markdown(report), echo=False)
        save_plot(report, args.out / f"{args.stem}.png")
    log("done")
    return report


if __name__ == "__main__":
    main()
