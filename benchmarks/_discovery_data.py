"""Cached features of simulated picks for bench_discovery.py and bench_suggest.py.

Subtomograms are simulated (``simulate_subtomograms``, 32^3 at 10 A) and embedded
once with the shipped general model (``pretrained_embedder()``); the features go
to benchmarks/.cache/discovery/ (git-ignored).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache" / "discovery"

# the 5 SHREC'21 novel classes (never seen by the shipped model) and 3 of its
# training classes, for a mixed set of 8 species
UNSEEN = ("1u6g", "3cf3", "3gl1", "3qm1", "4v94")
SEEN = ("1bxn", "3d2f", "5mrc")
CLASSES = UNSEEN + SEEN


def features(classes, n_per_class: int, snr: float, seed: int) -> dict:
    """Features (n, 256) and labels of ``n_per_class`` picks of each class."""
    name = f"{'-'.join(classes)}_n{n_per_class}_snr{snr}_seed{seed}.npz"
    path = CACHE / name
    if path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    from fscc_sklearn import pretrained_embedder
    from fscc_sklearn.datasets import simulate_subtomograms

    t0 = time.perf_counter()
    data = simulate_subtomograms(
        list(classes), n_per_class, snr=snr, random_state=seed, n_jobs=2
    )
    t1 = time.perf_counter()
    F = pretrained_embedder().transform(data.X).astype(np.float32)
    t2 = time.perf_counter()
    out = {
        "F": F,
        "y": np.asarray(data.y).astype(str),
        "simulate_s": np.float64(t1 - t0),
        "embed_s": np.float64(t2 - t1),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out
