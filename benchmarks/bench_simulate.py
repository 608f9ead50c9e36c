"""Benchmark of fscc_sklearn.datasets.simulate_subtomograms: speed and realism.

Measures subtomograms per second at 32^3 (1 and 2 threads) and compares the
simulated power spectra (radial fall-off, missing-wedge anisotropy) and the
measured SNR with the figures of a real SHREC'21 subtomogram. Writes
benchmarks/results/simulate.json and benchmarks/results/simulate.md.

Run: python benchmarks/bench_simulate.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from _machine import load_at_start, machine_info, write_result
from threadpoolctl import threadpool_limits

from fscc_sklearn.datasets import (
    SHREC21_CLASSES,
    SHREC21_REFERENCE_STATS,
    noise_spectrum_stats,
    simulate_subtomograms,
)

RESULTS = Path(__file__).parent / "results"
SEED = 0


def throughput(n_per_class: int, n_jobs: int, repeats: int) -> dict:
    kw = dict(box=32, snr=0.05, n_jobs=n_jobs)
    simulate_subtomograms(SHREC21_CLASSES, 2, random_state=SEED, **kw)  # warm-up
    rates, cpu_rates, shares = [], [], []
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        d = simulate_subtomograms(
            SHREC21_CLASSES, n_per_class, random_state=SEED + r, **kw
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rates.append(len(d.X) / wall)
        cpu_rates.append(len(d.X) / cpu)
        shares.append(cpu / (wall * n_jobs))
    return {
        "n_jobs": n_jobs,
        "n_subtomograms": len(SHREC21_CLASSES) * n_per_class,
        "repeats": repeats,
        "per_second_median": statistics.median(rates),
        "per_second_best": max(rates),
        "per_second_all": rates,
        # Less sensitive to other jobs on the machine than wall-clock rates.
        "per_cpu_second_median": statistics.median(cpu_rates),
        # CPU time obtained / (wall time x threads): below 1 when other jobs
        # compete for the cores (or threads wait on each other).
        "cpu_share_median": statistics.median(shares),
    }


def realism(snr: float, n_per_class: int) -> dict:
    kw = dict(box=32, random_state=SEED, n_jobs=2)
    clean = simulate_subtomograms(SHREC21_CLASSES, n_per_class, snr=None, **kw)
    full = simulate_subtomograms(SHREC21_CLASSES, n_per_class, snr=snr, **kw)
    noise = full.X - clean.X
    out = {"snr_requested": snr, "n": len(full.X)}
    out["snr_measured"] = float(clean.X.var(axis=(1, 2, 3)).mean() / noise.var())
    out["snr_per_class"] = {
        c: float(full.signal_var[full.y == c].mean() / full.noise_std**2)
        for c in SHREC21_CLASSES
    }
    for name, X in (("noise", noise), ("full", full.X), ("clean", clean.X)):
        hann = noise_spectrum_stats(X, window="hann")
        plain = noise_spectrum_stats(X, window=None)
        out[name] = {
            "nyquist_to_mid": hann["nyquist_to_mid"],
            "nyquist_to_mid_no_window": plain["nyquist_to_mid"],
            "shell_power_no_window": plain["shell_power"],
            "power_z": hann["power_z"],
            "power_y": hann["power_y"],
            "power_x": hann["power_x"],
            "x_over_z": hann["x_over_z"],
        }
    return out


def markdown(res: dict) -> str:
    ref = SHREC21_REFERENCE_STATS
    m = res["machine"]
    lines = [
        "# simulate_subtomograms benchmark",
        "",
        f"{m['date_utc']} · {m['cpu']} · {m['affinity']} usable cores · Python "
        f"{m['python']}, numpy {m['numpy']}, scipy {m['scipy']}, scikit-learn "
        f"{m['scikit-learn']}, fscc_sklearn {m['fscc_sklearn']} · seed {SEED} · "
        f"load average at start {load_at_start(m):.2f} (other jobs "
        "running on the same cores lower the throughput).",
        "",
        "## Throughput (13 SHREC'21 classes, 32^3, SNR 0.05, noise included)",
        "",
        "| threads | subtomograms | median /s | best /s | per CPU-second | CPU share |",
        "|---|---|---|---|---|---|",
    ]
    for t in res["throughput"]:
        lines.append(
            f"| {t['n_jobs']} | {t['n_subtomograms']} | {t['per_second_median']:.0f} "
            f"| {t['per_second_best']:.0f} | {t['per_cpu_second_median']:.0f} "
            f"| {t['cpu_share_median']:.2f} |"
        )
    lines += [
        "",
        "## Realism vs a real SHREC'21 subtomogram",
        "",
        "P(0.45-0.50)/P(0.20-0.25) in cycles/voxel; anisotropy = mean power within 37 "
        "degrees of x over that of z in the 0.15-0.30 shell; both with a 3D Hann "
        "window "
        "unless marked. `noise` = simulated noise alone, `full` = signal + noise.",
        "",
        "| quantity | real SHREC'21 | "
        + " | ".join(
            f"noise (SNR {r['snr_requested']}) | full (SNR {r['snr_requested']})"
            for r in res["realism"]
        )
        + " |",
        "|---|---|" + "---|---|" * len(res["realism"]),
    ]

    def row(label, real, key):
        vals = " | ".join(
            f"{r['noise'][key]:.3f} | {r['full'][key]:.3f}" for r in res["realism"]
        )
        lines.append(f"| {label} | {real} | {vals} |")

    row("P(Nyquist)/P(mid), Hann", f"{ref['nyquist_to_mid']:.3f}", "nyquist_to_mid")
    row(
        "P(Nyquist)/P(mid), no window",
        f"{ref['nyquist_to_mid_no_window']:.3f}",
        "nyquist_to_mid_no_window",
    )
    row("power x / power z", f"{ref['x_over_z']:.2f}", "x_over_z")
    lines += [
        "",
        "Radial power per 0.05-wide shell from 0.05 to 0.50 (no window, relative to "
        "0.20-0.25):",
        "",
        f"- real: {', '.join(f'{v:.2f}' for v in ref['shell_power_no_window'])}",
    ]
    for r in res["realism"]:
        for part in ("noise", "full"):
            vals = ", ".join(f"{v:.2f}" for v in r[part]["shell_power_no_window"])
            lines.append(f"- {part}, SNR {r['snr_requested']}: {vals}")
    lines += [
        "",
        "## SNR",
        "",
        "| requested | measured | per class (smallest .. largest) |",
        "|---|---|---|",
    ]
    for r in res["realism"]:
        pc = r["snr_per_class"]
        lo, hi = min(pc, key=pc.get), max(pc, key=pc.get)
        lines.append(
            f"| {r['snr_requested']} | {r['snr_measured']:.4f} | {lo} {pc[lo]:.4f} .. "
            f"{hi} {pc[hi]:.4f} |"
        )
    lines += [
        "",
        "SNR = mean over particles of var(noise-free subtomogram) / noise variance, "
        "one noise level for the whole set, so per-class SNR follows particle mass.",
        "",
        "Full-subtomogram P(Nyquist)/P(mid) (Hann) against SNR: "
        + ", ".join(f"SNR {s}: {v:.3f}" for s, v in res["full_ratio_vs_snr"].items())
        + f" (real: {ref['nyquist_to_mid']:.3f}).",
        "",
        "Reading: the simulated noise alone matches the real fall-off and wedge "
        "anisotropy. In a full subtomogram the signal adds low- and mid-frequency "
        "power, so the ratio drops as SNR grows; the real subtomogram's ratio is "
        "reached only at SNR around 0.005-0.01 here. Either SHREC'21's SNR (not "
        "published) is below the default 0.05, or its particles carry less "
        "mid-frequency signal; the real figure comes from a single subtomogram, so "
        "this is weak evidence.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer subtomograms")
    args = parser.parse_args()
    n_speed = 20 if args.quick else 100
    n_real = 10 if args.quick else 40
    with threadpool_limits(limits=2):
        res = {"machine": machine_info(), "seed": SEED}
        res["throughput"] = [throughput(n_speed, j, 5) for j in (1, 2)]
        res["realism"] = [realism(s, n_real) for s in (0.05, 0.02)]
        res["full_ratio_vs_snr"] = {}
        for snr in (0.005, 0.01, 0.02, 0.05, 0.1, 0.5):
            X = simulate_subtomograms(
                SHREC21_CLASSES, n_real, snr=snr, random_state=SEED, n_jobs=2
            ).X
            res["full_ratio_vs_snr"][str(snr)] = noise_spectrum_stats(X)[
                "nyquist_to_mid"
            ]
    res["reference"] = SHREC21_REFERENCE_STATS
    write_result(RESULTS / "simulate", res, markdown(res))


if __name__ == "__main__":
    main()
