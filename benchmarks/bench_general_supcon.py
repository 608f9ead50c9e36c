"""Does SupCon matter when the general model trains on many classes?

Issue 18 asks whether the contrastive term (its weight lambda, its temperature,
a projection head) still helps when the classes number in the hundreds or
thousands. Each variant trains the procedural stage of train_general.py (same
stream, seed and width, fewer epochs) and changes one setting:

- ``lam0.05``: the shipped recipe (lambda 0.05, temperature 0.07, no head);
- ``lam0``: cross-entropy only;
- ``lam0.5``: ten times the weight;
- ``lam0.5_T0.2``: ten times the weight at temperature 0.2;
- ``lam0.5_proj128``: ten times the weight through a projection head to 128-d;
- ``c2000_*``: the same on 2,000 procedural classes instead of 200.

Every variant is scored with a nearest prototype (Tukey features, so the
features alone are compared) on the same 300 5-way episodes of the 15 packaged
maps (none seen in training; bench_calibration's simulation, 150 per class) and
of the SHREC'21 novel classes, at SNR 0.05 and 0.02, 1 and 5 shots; paired
differences to ``lam0.05``.

Run: python benchmarks/bench_general_supcon.py [--epochs 4] [--only NAME ...]
Resumable: each finished variant's features are cached in
benchmarks/.cache/general/supcon/; a running variant checkpoints every epoch.
Writes benchmarks/results/general_supcon.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import bench_calibration as bc
import numpy as np
import train_general as tg
from _machine import machine_line, write_result

RESULTS = Path(__file__).parent / "results"
CACHE = tg.CACHE / "supcon"
REFERENCE = "lam0.05"
VARIANTS = {
    "lam0.05": dict(n_classes=200),
    "lam0": dict(n_classes=200, sup_con_weight=0.0),
    "lam0.5": dict(n_classes=200, sup_con_weight=0.5),
    "c2000_lam0.05": dict(n_classes=2000),
    "c2000_lam0": dict(n_classes=2000, sup_con_weight=0.0),
    "c2000_lam0.5": dict(n_classes=2000, sup_con_weight=0.5),
    "lam0.5_T0.2": dict(n_classes=200, sup_con_weight=0.5, temperature=0.2),
    "lam0.5_proj128": dict(n_classes=200, sup_con_weight=0.5, module__proj_dim=128),
}
SHOTS = (1, 5)
EVAL_SETS = ("all15", "shrec21_novel")


def procedural(n_classes: int) -> dict:
    path = tg.CACHE / f"procedural_maps_{n_classes}_seed{tg.SEED}.npz"
    if path.exists():
        with np.load(path) as f:
            return {name: f[name] for name in f.files}
    from fscc_sklearn.datasets import make_procedural_maps

    maps = make_procedural_maps(n_classes, random_state=tg.SEED).maps
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **maps)
    return maps


def train(name: str, epochs: int):
    """Train one variant (resuming its checkpoint) and return (embedder, info)."""
    from fscc_sklearn import AtomicCheckpoint, Conv6Embedder, tune_malloc
    from fscc_sklearn.datasets import SubtomogramStream

    tune_malloc()
    settings = dict(VARIANTS[name])
    n_classes = settings.pop("n_classes")
    stream = SubtomogramStream(procedural(n_classes), **tg.STREAM)
    stage = tg.STAGES["procedural"]
    emb = Conv6Embedder(
        module__width=tg.WIDTH,
        max_epochs=epochs,
        lr=stage["lr"],
        warmup_epochs=stage["warmup_epochs"],
        random_state=tg.SEED,
        verbose=1,
        callbacks=[("checkpoint", AtomicCheckpoint(CACHE / name))],
        **settings,
    )
    t0 = time.time()
    emb.fit(stream)
    info = dict(
        settings=VARIANTS[name],
        epochs=epochs,
        samples_seen=epochs * stream.batches_per_epoch * stream.batch_size,
        fit_seconds_this_run=round(time.time() - t0, 1),
        train_acc=[float(a) for a in emb.history[:, "train_acc"]],
        loadavg_end=os.getloadavg()[0],
    )
    return emb, info


def variant_features(name: str, epochs: int) -> dict:
    path = CACHE / f"{name}_features.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as f:
            out = dict(f)
        out["info"] = json.loads(str(out["info"]))
        return out
    emb, info = train(name, epochs)
    out = {}
    for snr in bc.SNRS:
        X, y, _ = bc.simulate(snr)
        out[f"F_{snr}"] = emb.transform(X)
        out["y"] = y
    np.savez(path, info=json.dumps(info), **out)
    out["info"] = info
    return out


def accuracies(F, y, eval_set, k_shot, n_episodes):
    from fscc_sklearn import PrototypeClassifier, evaluate_episodes

    if eval_set == "shrec21_novel":
        keep = np.isin(y, bc.SHREC21_NOVEL)
        F, y = F[keep], y[keep]
    res = evaluate_episodes(
        PrototypeClassifier(tukey_lambda=0.5),
        F,
        y,
        n_way=5,
        k_shot=k_shot,
        n_episodes=n_episodes,
        random_state=bc.SEED,
    )
    return np.asarray(res.accuracies)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    t0 = time.time()
    record = dict(
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        seed=tg.SEED,
        width=tg.WIDTH,
        stream=tg.STREAM,
        episodes=args.episodes,
        machine=machine_line(),
        variants={},
    )
    names = [REFERENCE] + [n for n in (args.only or VARIANTS) if n != REFERENCE]
    acc = {}
    for name in names:
        feats = variant_features(name, args.epochs)
        cells = {}
        for snr in bc.SNRS:
            for eval_set in EVAL_SETS:
                for k in SHOTS:
                    a = accuracies(
                        feats[f"F_{snr}"], feats["y"], eval_set, k, args.episodes
                    )
                    acc[name, snr, eval_set, k] = a
                    ref = acc[REFERENCE, snr, eval_set, k]
                    d = 100 * (a - ref)
                    cells[f"{snr}/{eval_set}/{k}"] = dict(
                        accuracy=float(a.mean()),
                        ci=float(1.96 * a.std(ddof=1) / np.sqrt(len(a))),
                        delta=float(d.mean()),
                        delta_ci=float(1.96 * d.std(ddof=1) / np.sqrt(len(d))),
                    )
        record["variants"][name] = dict(info=feats["info"], cells=cells)
        record["seconds"] = round(time.time() - t0)
        record["loadavg"] = os.getloadavg()[0]
        write_result(RESULTS / "general_supcon", record, report(record), echo=False)
        print(f"{name}: done", flush=True)


def report(record) -> str:
    lines = [
        "# SupCon at many classes (issue 18)",
        "",
        f"{record['started']} · {record['machine']} · seed {record['seed']} · width "
        f"{record['width']} · {record['episodes']} episodes per cell (the same for "
        f"every variant) · {record['seconds']} s · load {record['loadavg']:.1f}",
        "",
        "Procedural-only training (train_general.py's procedural stage, shortened), "
        "nearest prototype on Tukey features. all15: 5-way subsets of the 15 packaged "
        "maps; shrec21_novel: the five SHREC'21 novel classes. Accuracy, and the "
        f"paired difference to `{REFERENCE}` (the shipped recipe) in points, 95% CIs.",
        "",
        "| variant | samples seen | SNR | eval | shots | accuracy | Δ vs "
        + REFERENCE
        + " |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in record["variants"].items():
        for key, c in v["cells"].items():
            snr, eval_set, k = key.split("/")
            lines.append(
                f"| {name} | {v['info']['samples_seen']:,} | {snr} | {eval_set} "
                f"| {k} | "
                f"{c['accuracy']:.3f} ± {c['ci']:.3f} | "
                f"{c['delta']:+.1f} ± {c['delta_ci']:.1f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
