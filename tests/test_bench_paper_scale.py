"""The paper-scale benchmark's harness: datasets, cache keys, resumption, report."""

import json
from pathlib import Path

import pytest
from _benchmarks import import_benchmark

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
TINY = ["--scales", "65", "--seeds", "0", "--recipes", "paper", "--width", "4"]
TINY += ["--box", "16", "--episodes", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def shrec19_run(tmp_path_factory):
    bench = import_benchmark("bench_paper_scale")
    root = tmp_path_factory.mktemp("paper_scale")
    argv = ["--dataset", "shrec19", "--cache", str(root / "cache"), *TINY]
    report = bench.main([*argv, "--out", str(root / "out")])
    return bench, root, argv, report


def test_shrec19_run_uses_its_data_and_the_papers_snr(shrec19_run):
    bench, root, argv, report = shrec19_run
    saved = json.loads((root / "out" / "paper_scale_shrec19.json").read_text())
    assert saved["complete"] is True
    assert saved["config"]["dataset"] == "shrec19"
    assert saved["config"]["snr"] == 0.02
    assert saved["classes"] == {"base": 7, "novel": 5}
    (run,) = saved["runs"]
    assert run["embedder"]["spec"]["dataset"] == "shrec19"
    assert run["embedder"]["n_base"] == 7 * 65
    for k in ("1", "5"):
        accuracies = run["results"][k]["accuracies"]
        assert set(accuracies) == set(bench.TABLE_METHODS)
        assert all(
            len(a) == 2 and all(0 <= x <= 1 for x in a) for a in accuracies.values()
        )
    md = (root / "out" / "paper_scale_shrec19.md").read_text()
    assert md.startswith("# The paper's Table 2 at the paper's scale (SHREC'19-like")
    assert "(7 base, 5 novel classes)" in md
    assert "| paper: FSCC | 77.03 | 70.56 |" in md  # SHREC'19's row, not SHREC'21's


def test_rerun_reuses_every_cached_stage(shrec19_run):
    bench, root, argv, report = shrec19_run
    again = bench.main([*argv, "--out", str(root / "again")])
    first, second = report["runs"][0], again["runs"][0]
    assert second["results"] == first["results"]
    assert (
        second["embedder"]["seconds"] == first["embedder"]["seconds"]
    )  # not retrained


def test_shrec21_keys_are_those_of_the_runs_already_cached():
    bench = import_benchmark("bench_paper_scale")
    args = bench.parse_args([])
    assert (args.dataset, args.snr, args.stem) == ("shrec21", 0.05, "paper_scale")
    assert bench.dataset_tag(args) == {}
    assert bench.dataset_tag(bench.parse_args(["--dataset", "shrec19"])) == {
        "dataset": "shrec19"
    }


def test_report_of_the_committed_shrec21_run_names_its_dataset(tmp_path):
    bench = import_benchmark("bench_paper_scale")
    (tmp_path / "paper_scale.json").write_text(
        (RESULTS / "paper_scale.json").read_text()
    )
    bench.main(["--out", str(tmp_path), "--report-only"])
    md = (tmp_path / "paper_scale.md").read_text()
    assert "(SHREC'21-like, SNR 0.05)" in md and "(8 base, 5 novel classes)" in md
    assert "| paper: FSCC | 76.07 | 68.24 |" in md
    assert (tmp_path / "paper_scale.png").stat().st_size > 0


def test_write_result_replaces_both_files_whole(tmp_path, capsys):
    machine = import_benchmark("_machine")
    prefix = tmp_path / "out" / "run.v2"  # a dot in the name is not a suffix
    machine.write_result(prefix, {"a": 1, "p": Path("x")}, "# one\n")
    machine.write_result(prefix, {"a": 2}, "# two\n", echo=False)
    assert json.loads((tmp_path / "out" / "run.v2.json").read_text()) == {"a": 2}
    assert (tmp_path / "out" / "run.v2.md").read_text() == "# two\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "run.v2.json",
        "run.v2.md",
    ]
    assert capsys.readouterr().out == "# one\n\n"  # printed once, echo=False is quiet
