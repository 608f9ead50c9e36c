"""The paper benchmark: its quick run, its report and the episodes it relies on."""

import copy
import json

import numpy as np
import pytest
from _benchmarks import import_benchmark

from fscc_sklearn import sample_episode


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    bench = import_benchmark("bench_paper")
    root = tmp_path_factory.mktemp("bench")
    argv = ["--quick", "--episodes", "3", "--max-embedders", "1", "--threads", "1"]
    argv += ["--out", str(root / "out"), "--cache", str(root / "cache"), "--no-plot"]
    report = bench.main(argv)
    return bench, root, report


def test_quick_run_writes_well_formed_json_and_markdown(quick_run):
    bench, root, report = quick_run
    saved = json.loads((root / "out" / "paper_quick.json").read_text())
    assert saved["complete"] is True
    for key in ("config", "seed", "environment", "fscc_params", "paper", "runs"):
        assert key in saved
    env = saved["environment"]
    assert {"numpy", "scikit-learn", "torch", "fscc_sklearn"} <= env["versions"].keys()
    assert len(env["loadavg_start"]) == 3 and env["torch_threads"] == 1
    assert saved["fscc_params"]["fscc_paper"].get("method", "paper") == "paper"
    assert [r["job"]["lam"] for r in saved["runs"]] == [0.05]
    main = saved["runs"][0]
    assert main["embedder"]["seconds"]["train"] > 0
    assert len(main["embedder"]["history"]["train_loss"]) == saved["config"]["epochs"]
    for k in ("1", "5"):
        assert len(main["episode_seeds"][k]) == 3
        assert set(main["results"][k]) == set(bench.MAIN_METHODS)
        for method, r in main["results"][k].items():
            assert len(r["accuracies"]) == 3
            assert 0 <= r["mean"] <= 1 and r["ci95"] >= 0
            assert np.isclose(r["mean"], np.mean(r["accuracies"]), atol=1e-3)
            assert len(r["f1_per_class"]) == 5
            expected = int(k) * (10 if "10K" in method else 1)
            assert r["labelled_per_class"] == expected
    md = (root / "out" / "paper_quick.md").read_text()
    assert "## Table 2" in md and "## Table 3 form" in md and "## Timings" in md
    header = next(line for line in md.splitlines() if line.startswith("| method |"))
    assert "SHREC'19-like 5w5s" in header
    assert "| paper: FSCC | 5, 1 | 77.03 | 70.56 |" in md


def test_quick_run_reuses_its_cache(quick_run):
    bench, root, report = quick_run
    argv = ["--quick", "--episodes", "3", "--max-embedders", "1", "--threads", "1"]
    argv += ["--out", str(root / "again"), "--cache", str(root / "cache"), "--no-plot"]
    again = bench.main(argv)
    a, b = report["runs"][0], again["runs"][0]
    assert a["results"] == b["results"]  # cached features and evaluation
    assert a["embedder"]["key"] == b["embedder"]["key"]


def test_report_renders_ablation_sweeps_and_plot(quick_run, tmp_path):
    pytest.importorskip("matplotlib")  # the plot is optional (extra "plot")
    _, _, report = quick_run
    report_mod = import_benchmark("_paper_report")
    fake = copy.deepcopy(report)  # the real run as lambda 0 and SNR 0.005 too
    for field, value in (("lam", 0.0), ("snr", 0.005)):
        run = copy.deepcopy(fake["runs"][0])
        run["job"][field] = value
        fake["runs"].append(run)
    md = report_mod.render_markdown(fake)
    snr_table = md.split("## SNR sweep")[1].split("##")[0]
    assert "| 0.005 |" in snr_table and "| 0.02 |" in snr_table
    lam_rows = md.split("## Lambda sweep")[1].split("##")[0].splitlines()
    assert [r.split(" |")[0] for r in lam_rows if r[:3] in ("| 0", "| 1")] == [
        "| 0.0",
        "| 0.05",
    ]
    ablation = md.split("## Table 4")[1].split("##")[0]
    assert "| yes | yes | FSCC (paper recipe) |" in ablation
    assert "| 77.12 / 70.59 |" in ablation
    report_mod.save_plot(fake, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_episodes_keep_k_shot_support_out_of_the_queries():
    """The benchmark nests the K-shot support in a 10K-shot draw; both avoid queries."""
    y = np.repeat(np.array(["a", "b", "c", "d", "e", "f"]), 70)
    for seed in range(50):
        support, query = sample_episode(y, 5, 50, 15, random_state=seed)
        small = support.reshape(5, 50)[:, :5].ravel()
        assert not set(support) & set(query)
        assert set(small) <= set(support)
        # every class of the small support has exactly 5 samples and 15 queries
        labels, counts = np.unique(y[small], return_counts=True)
        assert counts.tolist() == [5] * 5
        assert set(labels) == set(y[query])


def test_episode_queries_are_uniform_within_a_class_and_skip_small_classes():
    y = np.repeat([0, 1, 2, 3], [10, 10, 10, 3])  # class 3 too small for 1 + 4
    query_hits = np.zeros(len(y))
    support_hits = np.zeros(len(y))
    n = 3000
    for seed in range(n):
        support, query = sample_episode(y, 2, 1, 4, random_state=seed)
        query_hits[query] += 1
        support_hits[support] += 1
    assert query_hits[30:].sum() == 0 and support_hits[30:].sum() == 0
    # each eligible class is in 2/3 of the episodes; within it a sample is a
    # query with probability 4/10 and the support with probability 1/10
    np.testing.assert_allclose(query_hits[:30] / n, 2 / 3 * 0.4, atol=0.04)
    np.testing.assert_allclose(support_hits[:30] / n, 2 / 3 * 0.1, atol=0.025)


def test_episode_seeds_give_different_episodes():
    y = np.repeat(np.arange(10), 30)
    episodes = {
        tuple(sample_episode(y, 5, 1, 15, random_state=s)[0]) for s in range(20)
    }
    assert len(episodes) == 20
