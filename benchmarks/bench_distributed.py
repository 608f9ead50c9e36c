"""Benchmark of fscc_sklearn.distributed: embedding throughput on 1 and 2 Dask workers.

Cuts particles out of a synthetic MRC tomogram and embeds them with a Conv-6
(width 64, 32^3 boxes, as in the paper) through
``embed_particles_distributed``: in this process without Dask (torch with 1
and 2 threads), and on a LocalCluster of 1 and 2 worker processes with one
thread and one torch thread each. A second measurement runs a model that does
no work with one particle per chunk, so its time per chunk is the scheduling
and transfer overhead of a task. Writes benchmarks/results/distributed.json
and benchmarks/results/distributed.md.

Run: nice -n 10 python benchmarks/bench_distributed.py [--quick]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import mrcfile
import numpy as np
import torch
from _machine import machine_info, write_result
from distributed import Client, LocalCluster
from sklearn.base import BaseEstimator

from fscc_sklearn import Conv6Embedder
from fscc_sklearn.datasets._toy import make_toy_volumes
from fscc_sklearn.distributed import (
    ParticleJob,
    embed_particles_distributed,
    set_worker_threads,
)

RESULTS = Path(__file__).parent / "results"
SEED = 0


class NoWork(BaseEstimator):
    """A fitted transformer returning one zero feature per box: pure overhead."""

    def fit(self, X=None, y=None):
        self.fitted_ = True
        return self

    def transform(self, X):
        return np.zeros((len(X), 1), dtype=np.float32)


def make_job(root: Path, n_particles: int, box: int, rng) -> ParticleJob:
    shape = (96, 128, 128)
    tomo = rng.standard_normal(shape).astype(np.float32)
    path = root / "tomogram.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(tomo)
    zyx = rng.integers(box // 2, np.array(shape) - box // 2, size=(n_particles, 3))
    return ParticleJob(path, zyx[:, ::-1].astype(float), name="synthetic")


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer particles")
    args = parser.parse_args()
    n_particles = 96 if args.quick else 384
    n_overhead = 60 if args.quick else 200
    chunk_size, box, width, repeats = 32, 32, 64, 2
    rng = np.random.default_rng(SEED)
    load_before = os.getloadavg()

    X, y = make_toy_volumes(n_classes=2, n_per_class=8, box=box, random_state=SEED)
    embedder = Conv6Embedder(
        module__width=width, max_epochs=1, batch_size=16, random_state=SEED
    ).fit(X, y)  # weights do not matter for speed
    n_features = embedder.module_.num_features
    results = {"runs": []}

    with tempfile.TemporaryDirectory() as tmp:
        job = make_job(Path(tmp), n_particles, box, rng)
        small = ParticleJob(job.tomogram, job.particles[:n_overhead], name="overhead")
        reference = None
        for threads in (1, 2):
            torch.set_num_threads(threads)
            best, times, res = timed(
                lambda: embed_particles_distributed(
                    embedder, [job], chunk_size=chunk_size
                ),
                repeats,
            )
            reference = res.features if reference is None else reference
            results["runs"].append(
                dict(
                    mode="local (no Dask)",
                    workers=0,
                    torch_threads=threads,
                    seconds=best,
                    all_seconds=times,
                    particles_per_s=n_particles / best,
                )
            )
            print(
                f"local, torch threads {threads}: {n_particles / best:7.1f} particles/s"
            )
        t_local_nowork, _, _ = timed(
            lambda: embed_particles_distributed(
                NoWork().fit(), [small], chunk_size=1, box=box
            ),
            repeats,
        )
        torch.set_num_threads(1)

        for n_workers in (1, 2):
            t0 = time.perf_counter()
            with (
                LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                ) as cluster,
                Client(cluster) as client,
            ):
                set_worker_threads(client, 1)
                startup = time.perf_counter() - t0
                # warm-up: workers import torch and fscc_sklearn on their first task
                embed_particles_distributed(
                    embedder, [job], scheduler=client, chunk_size=n_particles
                )
                best, times, res = timed(
                    lambda client=client: embed_particles_distributed(
                        embedder, [job], scheduler=client, chunk_size=chunk_size
                    ),
                    repeats,
                )
                same = bool(np.allclose(res.features, reference, rtol=1e-4, atol=1e-5))
                t_nowork, _, ow = timed(
                    lambda client=client: embed_particles_distributed(
                        NoWork().fit(), [small], scheduler=client, chunk_size=1, box=box
                    ),
                    repeats,
                )
            per_chunk = (t_nowork - t_local_nowork) / ow.n_chunks
            results["runs"].append(
                dict(
                    mode="LocalCluster",
                    workers=n_workers,
                    torch_threads=1,
                    seconds=best,
                    all_seconds=times,
                    particles_per_s=n_particles / best,
                    cluster_startup_s=startup,
                    features_match_local=same,
                    overhead_chunks=ow.n_chunks,
                    overhead_total_s=t_nowork,
                    overhead_per_chunk_ms=1000 * per_chunk,
                )
            )
            print(
                f"{n_workers} worker(s): {n_particles / best:7.1f} particles/s, "
                f"overhead {1000 * per_chunk:.1f} ms/chunk, same features: {same}"
            )

    results.update(
        machine=machine_info(packages=("dask", "distributed")),
        load_average_before=load_before,
        load_average_after=os.getloadavg(),
        parameters=dict(
            n_particles=n_particles,
            box=box,
            width=width,
            n_features=n_features,
            chunk_size=chunk_size,
            repeats=repeats,
            overhead_particles=n_overhead,
            seed=SEED,
            quick=args.quick,
            threads_per_worker=1,
            local_nowork_seconds=t_local_nowork,
        ),
    )
    name = "distributed_quick" if args.quick else "distributed"
    write_result(RESULTS / name, results, markdown(results))


def markdown(r) -> str:
    p, m = r["parameters"], r["machine"]
    lines = [
        "# Distributed embedding benchmark",
        "",
        f"`benchmarks/bench_distributed.py`{' --quick' if p['quick'] else ''}, "
        f"{m['date_utc']}, {m['cpu']} ({m['cpu_count']} cores, shared with other "
        f"jobs), load average {r['load_average_before'][0]:.1f} before and "
        f"{r['load_average_after'][0]:.1f} after. torch {m['torch']}, dask "
        f"{m['dask']}.",
        "",
        f"{p['n_particles']} particles, {p['box']}^3 boxes cut from a memory-mapped "
        f"MRC tomogram, Conv-6 width {p['width']} ({p['n_features']} features), "
        f"chunks of {p['chunk_size']} particles, best of {p['repeats']} runs. "
        "Workers are processes with 1 thread and 1 torch thread each.",
        "",
        "| mode | workers | torch threads | particles/s | overhead per chunk |",
        "| --- | --- | --- | --- | --- |",
    ]
    for run in r["runs"]:
        ov = run.get("overhead_per_chunk_ms")
        lines.append(
            f"| {run['mode']} | {run['workers']} | {run['torch_threads']} | "
            f"{run['particles_per_s']:.1f} | "
            f"{'-' if ov is None else f'{ov:.1f} ms'} |"
        )
    cl = [x for x in r["runs"] if x["workers"]]
    speed = {x["workers"]: x["particles_per_s"] for x in cl}
    speed["local1"] = next(
        x["particles_per_s"]
        for x in r["runs"]
        if not x["workers"] and x["torch_threads"] == 1
    )
    lines += [
        "",
        "Overhead per chunk: time per chunk of a model that does no work, one "
        f"particle per chunk ({p['overhead_particles']} chunks), minus the same "
        "run without Dask. Cluster start-up (not in the throughput): "
        + ", ".join(
            f"{x['workers']} worker(s) {x['cluster_startup_s']:.1f} s" for x in cl
        )
        + ". Features on the cluster equal the local ones: "
        + ", ".join(str(x["features_match_local"]) for x in cl)
        + ".",
        "",
        f"2 workers vs 1: {speed[2] / speed[1]:.2f}x; 2 workers vs this process with "
        f"1 torch thread: {speed[2] / speed['local1']:.2f}x. With "
        f"{m['cpu_count']} cores and a load average of "
        f"{r['load_average_before'][0]:.0f}, the cores are already busy, so a "
        "second worker process cannot add speed here. The scaling on free "
        "cores was not measured on this machine.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
