"""The harness of benchmarks/bench_radius_heldout.py on tiny features."""

import json

import numpy as np
from _benchmarks import import_benchmark


def tiny_features(path, nested, n=20, d=10):
    """Eight base and eight novel classes in pairs along four axes, both ways
    (the base classes centre on the common point). ``nested``: the classes of
    a pair lie at radii 1 and 4 with little noise, so pooling must lose;
    otherwise all at 2.5."""
    rng = np.random.default_rng(0)
    axes = np.linalg.qr(rng.normal(size=(d, 4)))[0].T
    directions = np.concatenate([axes, -axes])[[0, 4, 1, 5, 2, 6, 3, 7]]
    radii = np.tile([1.0, 4.0], 8) if nested else np.full(16, 2.5)
    means = 6 + np.repeat(directions, 2, 0) * radii[:, None]
    X = np.repeat(means, n, 0) + rng.normal(scale=0.15, size=(16 * n, d))
    y = np.repeat(np.arange(16), n)
    base = y < 8
    np.savez(path, F_base=X[base], y_base=y[base], F_novel=X[~base], y_novel=y[~base])
    return path


def test_reports_auto_against_fixed_pooling(tmp_path):
    bench = import_benchmark("bench_radius_heldout")
    files = [
        tiny_features(tmp_path / "nested.npz", True),
        tiny_features(tmp_path / "even.npz", False),
    ]
    out = tmp_path / "radius"
    argv = ["--features", *map(str, files), "--episodes", "6", "--shots", "1"]
    assert bench.main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    rows = {row["features"]: row for row in result["rows"]}
    assert set(rows) == {"nested", "even"}
    assert rows["nested"]["pooling_gain"] < -2 and not rows["nested"]["auto_pools"]
    assert rows["even"]["auto_pools"]
    for row in rows.values():
        assert set(row["accuracies"]) == {*bench.VARIANTS, "prototype", "Tukey LR"}
        assert all(len(a) == 6 for a in row["accuracies"].values())
        auto = np.array(row["accuracies"][bench.AUTO])
        same = row["accuracies"][
            "pool_radius_shots=2" if row["auto_pools"] else "pool_radius_shots=0"
        ]
        np.testing.assert_array_equal(auto, same)
    text = out.with_suffix(".md").read_text()
    assert "| nested | 1 |" in text and "| no |" in text and "| yes |" in text
    rows["even"]["pooling_gain"] = None  # a base set too small to measure
    assert "| even | 1 | not measured | yes |" in bench.markdown(result)
