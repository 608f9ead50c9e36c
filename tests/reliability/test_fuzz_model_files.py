"""Mutated model files (metadata and tensors, content hash recomputed) load
into a working model or are refused with a one-line ValueError (issue 21);
benchmarks/fuzz_model_files.py runs the same harness on 10^5 files."""

import copy

import pytest
from _benchmarks import import_benchmark


@pytest.fixture(scope="module")
def harness():
    return import_benchmark("fuzz_model_files")


@pytest.fixture(scope="module")
def bases(harness, tmp_path_factory):
    return harness.base_models(tmp_path_factory.mktemp("bases"))


def test_fuzz_model_files_short(harness, bases):
    report = harness.fuzz(n_examples=30, random_seed=3, trace_every=0, bases=bases)
    outcomes = report["outcomes"]
    assert report["files"] == sum(outcomes.values()) == 30
    # every base model is mutated, and the files reach both sides of the loader
    assert set(report["per_base"]) == {
        "novel_reject_auto", "paper_recipe", "pipeline_width4",
        "v1_bayes_adapted", "v1_paper_adapted",
    }  # fmt: skip
    assert outcomes.get("clean_error", 0) >= 15 and outcomes.get("ok", 0) >= 2
    # loading itself never fails with anything but the one-line ValueError
    at_load = [f for f in report["unexpected"] if not f["detail"].startswith("predict")]
    assert at_load == []


def test_the_harness_tells_the_outcomes_apart(harness, bases, tmp_path):
    tensors, info, X = bases["novel_reject_auto"]
    info = copy.deepcopy(info)  # the module's bases stay as built
    good = tmp_path / "good.safetensors"
    harness.save_file(tensors, str(good), metadata={"fscc_sklearn": _dump(info)})
    assert harness.classify(good, X) == ("ok", None)

    info["model"]["steps"][0]["params"]["k"] = -1
    bad = tmp_path / "bad.safetensors"
    _write(harness, tensors, info, bad)
    assert harness.classify(bad, X)[0] == "clean_error"

    # a model that loads must also predict well-formed answers
    info["model"]["steps"][0]["params"]["k"] = 1
    info["model"]["steps"][0]["params"]["unknown_label"] = "x"
    _write(harness, tensors, info, bad)
    outcome, detail = harness.classify(bad, X)
    assert outcome != "ok", detail


def _dump(info):
    import json

    return json.dumps(info)


def _write(harness, tensors, info, path):
    info["content_sha256"] = harness.content_hash(tensors, info)
    harness.save_file(tensors, str(path), metadata={"fscc_sklearn": _dump(info)})


def test_replay_crafts_the_recorded_findings_again(harness, bases, tmp_path):
    # seed 3's two findings (a reject='auto' model with temperature 1e-308:
    # NaN probabilities) replayed from a result file as the benchmark wrote it
    import json

    recorded = {
        "parameters": {"seed": 3},
        "result": {
            "unexpected": [
                {"case": 40375, "mutations": ["meta replace"], "detail": "then"},
                {"case": 92341, "mutations": [], "detail": "not written: x"},
            ]
        },
    }
    path = tmp_path / "fuzz_model_files_seed3.json"
    path.write_text(json.dumps(recorded))
    rows = harness.replay([path], bases=bases)
    assert len(rows) == 1  # the case the harness could not write is skipped
    (row,) = rows
    assert (row["seed"], row["case"], row["mutations"]) == (3, 40375, ["meta replace"])
    assert (row["now"], row["detail"]) == ("ok", None)
