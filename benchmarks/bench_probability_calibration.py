"""Do few-shot probabilities mean what they say? ECE and NLL before/after a temperature.

Features come from the cached stage of bench_calibration.py (one
Conv6Embedder(max_epochs=5) per class-disjoint split and SNR). Per setting and
method (the default rule and the paper's recipe), the base classifier is fitted
on the base features, which fits the temperatures on pseudo-novel episodes of
the base classes; then the same 5-way K-shot episodes of the novel classes are
classified by a few-shot fit with ``calibrate_proba="base_episodes"`` and one
with ``None`` (accuracies compared per episode, they must be equal).

Variants of the temperature, all on the same scores:
- ``none``: the scores' own softmax (``calibrate_proba=None``);
- ``base``: the library's temperature from base-class episodes;
- ``base_x_c``: ``base`` times one factor ``c``, fitted on the selection
  setting (paper split, SNR 0.05) to correct a transfer gap (base features were
  seen in training, so base episodes may look easier than novel ones);
- ``oracle``: the temperature fitted on the evaluated novel episodes themselves
  (in-sample, a lower bound on what any temperature can reach).
The variant chosen for the library is decided on the selection setting only;
the other settings are reported as held out.

Run: python benchmarks/bench_probability_calibration.py [--quick] [--splits paper ...]
Writes benchmarks/results/probability_calibration.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import bench_calibration as bc  # noqa: E402
from _machine import write_result  # noqa: E402

RESULTS = HERE / "results"
SELECTION = ("paper", 0.05)
# name -> calibration class (imported when used)
METHODS = {
    "default": "CalibratedFewShotClassifier",
    "paper": "DistributionCalibrationClassifier",
}
SHOTS = (1, 5)
N_BINS = 15
N_BOOT = 200
MIN_DRAWN = 30  # reliability bins with fewer queries are not drawn (still in ECE)


def ece(confidence, correct, n_bins=N_BINS):
    """Expected calibration error of the top-class probability (equal-width bins)."""
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        inside = which == b
        if inside.any():
            gap = abs(confidence[inside].mean() - correct[inside].mean())
            total += inside.mean() * gap
    return float(total)


def reliability(confidence, correct, n_bins=N_BINS):
    """Per-bin (mean confidence, accuracy, count) for a reliability diagram."""
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = which == b
        n = int(inside.sum())
        rows.append(
            [
                float(confidence[inside].mean()) if n else None,
                float(correct[inside].mean()) if n else None,
                n,
            ]
        )
    return rows


def episode_scores(feats, method, k_shot, n_episodes):
    """Scores, targets and per-episode accuracies of both settings of
    ``calibrate_proba`` on the same episodes, and the fitted temperatures."""
    from threadpoolctl import threadpool_limits

    import fscc_sklearn
    from fscc_sklearn.model_selection import few_shot_clone

    Fb, yb = feats["F_base"].astype(np.float64), feats["y_base"]
    Fn, yn = feats["F_novel"].astype(np.float64), feats["y_novel"]
    t0 = time.perf_counter()
    base = getattr(fscc_sklearn, method)(random_state=bc.SEED)
    base.fit(Fb, yb)
    fit_seconds = time.perf_counter() - t0
    scores, targets, episode_of = [], [], []
    acc_on, acc_off, temperature = [], [], None
    with threadpool_limits(1):
        for e, (seed, sup, qry) in enumerate(
            bc.episode_indices(yn, k_shot, n_episodes, bc.SEED)
        ):
            on = few_shot_clone(base).set_params(random_state=seed)
            off = few_shot_clone(base).set_params(
                random_state=seed, calibrate_proba=None
            )
            on.fit(Fn[sup], yn[sup])
            off.fit(Fn[sup], yn[sup])
            pred_on, pred_off = on.predict(Fn[qry]), off.predict(Fn[qry])
            if not np.array_equal(pred_on, pred_off):
                raise AssertionError(f"calibration changed predictions (episode {e})")
            acc_on.append(np.mean(pred_on == yn[qry]))
            acc_off.append(np.mean(pred_off == yn[qry]))
            scores.append(on._logits(Fn[qry]))
            targets.append(np.searchsorted(on.classes_, yn[qry]))
            episode_of.append(np.full(len(qry), e))
            temperature = on.temperature_
    return {
        "scores": np.vstack(scores),
        "targets": np.concatenate(targets),
        "episode": np.concatenate(episode_of),
        "acc_on": np.asarray(acc_on),
        "acc_off": np.asarray(acc_off),
        "temperature": float(temperature),
        "table": [list(p) for p in base.base_statistics_.proba_temperatures],
        "base_fit_seconds": fit_seconds,
    }


def metrics(scores, targets, episode, temperature, rng):
    """NLL (per-episode means), ECE with a bootstrap CI over episodes, and the
    issue's over-confidence counts, of ``softmax(scores / temperature)``."""
    from scipy.special import log_softmax

    logp = log_softmax(scores / temperature, axis=1)
    nll_rows = -logp[np.arange(len(targets)), targets]
    n_ep = episode.max() + 1
    per_episode = np.bincount(episode, None, n_ep)
    nll_episode = np.bincount(episode, nll_rows, n_ep) / per_episode
    p = np.exp(logp)
    conf = p.max(1)
    correct = (p.argmax(1) == targets).astype(float)
    members = [np.flatnonzero(episode == e) for e in range(n_ep)]
    boot = []
    for _ in range(N_BOOT):
        rows = np.concatenate([members[e] for e in rng.integers(0, n_ep, n_ep)])
        boot.append(ece(conf[rows], correct[rows]))
    sure = conf >= 0.95
    return {
        "nll": float(nll_rows.mean()),
        "nll_episode": nll_episode,
        "ece": ece(conf, correct),
        "ece_ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "mean_top_probability": float(conf.mean()),
        "accuracy": float(correct.mean()),
        "n_sure": int(sure.sum()),
        "n_queries": len(conf),
        "accuracy_when_sure": float(correct[sure].mean()) if sure.any() else None,
        "reliability": reliability(conf, correct),
    }


def best_factor(rows):
    """Factor ``c`` on the base temperature minimising the summed NLL of ``rows``."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    def nll(log_c):
        total = 0.0
        for r in rows:
            logp = log_softmax(r["scores"] / (r["temperature"] * np.exp(log_c)), axis=1)
            total -= logp[np.arange(len(r["targets"])), r["targets"]].mean()
        return total

    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def run(settings, n_episodes):
    from fscc_sklearn.calibration._temperature import fit_temperature

    splits = bc.make_splits(bc.class_sizes())
    raw = {}
    for split, snr in settings:
        feats = bc.make_features(split, snr, *splits[split])
        for name, params in METHODS.items():
            for k_shot in SHOTS:
                t0 = time.perf_counter()
                r = episode_scores(feats, params, k_shot, n_episodes)
                raw[(split, snr, name, k_shot)] = r
                print(
                    f"{split} snr={snr} {name} {k_shot}-shot: T={r['temperature']:.3g} "
                    f"acc {r['acc_on'].mean():.3f} [{time.perf_counter() - t0:.0f} s]",
                    flush=True,
                )
    selection = [r for key, r in raw.items() if key[:2] == SELECTION]
    if selection:
        factor = best_factor(selection)
    else:  # held-out settings only: the factor of the main run's selection
        factor = json.loads((RESULTS / "probability_calibration.json").read_text())[
            "factor_c"
        ]
    rows = []
    for (split, snr, name, k_shot), r in raw.items():
        rng = np.random.default_rng(bc.SEED)
        temps = {
            "none": 1.0,
            "base": r["temperature"],
            "base_x_c": r["temperature"] * factor,
            "oracle": fit_temperature(r["scores"], r["targets"]),
        }
        variants = {
            v: metrics(r["scores"], r["targets"], r["episode"], t, rng)
            for v, t in temps.items()
        }
        d_base = variants["base"]["nll_episode"] - variants["none"]["nll_episode"]
        d_c = variants["base_x_c"]["nll_episode"] - variants["base"]["nll_episode"]
        for m in variants.values():
            del m["nll_episode"]
        rows.append(
            {
                "split": split,
                "snr": snr,
                "held_out": (split, snr) != SELECTION,
                "method": name,
                "k_shot": k_shot,
                "n_episodes": n_episodes,
                "temperatures": temps,
                "base_table": r["table"],
                "base_fit_seconds": r["base_fit_seconds"],
                "accuracy_on": float(r["acc_on"].mean()),
                "accuracy_off": float(r["acc_off"].mean()),
                "accuracy_equal_every_episode": bool(
                    np.array_equal(r["acc_on"], r["acc_off"])
                ),
                "nll_base_minus_none": bc.paired(d_base, np.zeros_like(d_base)),
                "nll_base_x_c_minus_base": bc.paired(d_c, np.zeros_like(d_c)),
                "variants": variants,
            }
        )
    return {
        "machine": bc.machine_info(),
        "selection_setting": list(SELECTION),
        "factor_c": factor,
        "n_bins": N_BINS,
        "n_episodes": n_episodes,
        "n_way": 5,
        "n_query": 15,
        "rows": rows,
    }


def markdown(out) -> str:
    lines = [
        "# Few-shot probabilities: temperature from base-class episodes",
        "",
        f"Generated by `{out['command']}`; "
        f"{out['n_episodes']} episodes per row (5-way, 15 queries per class), the "
        "same episodes before and after. ECE: top-class probability, "
        f"{out['n_bins']} equal-width bins, 95% bootstrap interval over episodes. "
        "NLL: mean negative log-likelihood of the true class. 'sure': queries with "
        "top probability >= 0.95. Features: bench_calibration.py's cached stage "
        "(Conv6Embedder(max_epochs=5), width 64, 512-d). Selection setting "
        f"(where variants were compared): split {out['selection_setting'][0]}, SNR "
        f"{out['selection_setting'][1]}; other rows are held out. Factor c fitted "
        f"there: {out['factor_c']:.3f}.",
        "",
        "| split | SNR | method | K | held out | T (base) "
        "| accuracy (same with/without) "
        "| ECE before | ECE after | NLL before | NLL after | mean top p before / after "
        "| sure before (right) | sure after (right) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def sure(m):
        if not m["n_sure"]:
            return f"0 / {m['n_queries']}"
        return f"{m['n_sure']} / {m['n_queries']} ({m['accuracy_when_sure']:.3f})"

    for r in out["rows"]:
        b, a = r["variants"]["none"], r["variants"]["base"]
        same = "yes" if r["accuracy_equal_every_episode"] else "**NO**"
        lines.append(
            f"| {r['split']} | {r['snr']} | {r['method']} | {r['k_shot']} | "
            f"{'yes' if r['held_out'] else 'no'} | {r['temperatures']['base']:.3g} | "
            f"{r['accuracy_on']:.3f} ({same}) | {b['ece']:.3f} | "
            f"{a['ece']:.3f} [{a['ece_ci95'][0]:.3f}, {a['ece_ci95'][1]:.3f}] | "
            f"{b['nll']:.3f} | {a['nll']:.3f} | {b['mean_top_probability']:.3f} / "
            f"{a['mean_top_probability']:.3f} | {sure(b)} | {sure(a)} |"
        )
    lines += [
        "",
        "## Variants of the temperature (ECE / NLL)",
        "",
        "`base`: the library's; `base_x_c`: times the factor c fitted on the "
        "selection setting; `oracle`: fitted on these very episodes (in-sample "
        "lower bound). NLL differences are paired over episodes (95% CI).",
        "",
        "| split | SNR | method | K | held out | none | base | base_x_c | oracle "
        "| T base / oracle | NLL base_x_c - base |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out["rows"]:
        v = r["variants"]
        cells = [f"{v[n]['ece']:.3f} / {v[n]['nll']:.3f}" for n in v]
        d, c = r["nll_base_x_c_minus_base"]
        lines.append(
            f"| {r['split']} | {r['snr']} | {r['method']} | {r['k_shot']} | "
            f"{'yes' if r['held_out'] else 'no'} | {' | '.join(cells)} | "
            f"{r['temperatures']['base']:.3g} / {r['temperatures']['oracle']:.3g} | "
            f"{d:+.4f} ± {c:.4f} |"
        )
    lines += [
        "",
        "Base fit with the temperature episodes (seconds): "
        + ", ".join(
            f"{r['split']}/{r['snr']}/{r['method']}: {r['base_fit_seconds']:.1f}"
            for r in out["rows"]
            if r["k_shot"] == SHOTS[0]
        )
        + f". Load average at start: {out['machine']['loadavg_start'][0]:.1f}.",
        "",
        f"Reliability diagrams (bins of >= {MIN_DRAWN} queries drawn):",
        "",
        "![reliability diagrams](probability_calibration{}.png)".format(
            out.get("stem_suffix", "")
        ),
        "",
    ]
    return "\n".join(lines)


def plot(out, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = out["rows"]
    fig, axes = plt.subplots(
        2, len(rows) // 2, figsize=(2.6 * len(rows) // 2, 5.6), squeeze=False
    )
    for ax, r in zip(axes.T.ravel(), rows, strict=True):
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
        for variant, colour in (("none", "tab:red"), ("base", "tab:blue")):
            pts = [
                (c, a)
                for c, a, n in r["variants"][variant]["reliability"]
                if n >= MIN_DRAWN
            ]
            c, a = np.array(pts).T
            e = r["variants"][variant]["ece"]
            ax.plot(c, a, "o-", ms=3, color=colour, label=f"{variant} ECE {e:.2f}")
        ax.set_title(
            f"{r['split']} {r['snr']} {r['method']} {r['k_shot']}-shot", fontsize=8
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper left")
    fig.supxlabel("top-class probability")
    fig.supylabel("accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 episodes per row")
    parser.add_argument("--splits", nargs="+", default=["paper"])
    parser.add_argument("--snrs", nargs="+", type=float, default=list(bc.SNRS))
    parser.add_argument(
        "--tag", default="", help="suffix of the result files (e.g. other splits)"
    )
    parser.add_argument(
        "--render", action="store_true", help="only redraw .md/.png from the .json"
    )
    args = parser.parse_args()
    stem = "probability_calibration" + ("_quick" if args.quick else "")
    stem += f"_{args.tag}" if args.tag else ""
    if args.render:
        out = json.loads((RESULTS / f"{stem}.json").read_text())
        out["command"] = out["command"].rstrip()
        save(out, stem)
        return
    settings = [(s, snr) for snr in args.snrs for s in args.splits]
    out = run(settings, 60 if args.quick else 300)
    out["command"] = " ".join(
        ["python benchmarks/bench_probability_calibration.py", *sys.argv[1:]]
    )
    out["stem_suffix"] = stem[len("probability_calibration") :]
    save(out, stem)


def save(out, stem):
    write_result(RESULTS / stem, out, markdown(out))
    plot(out, RESULTS / f"{stem}.png")


if __name__ == "__main__":
    main()
