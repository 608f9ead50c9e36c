"""The shipped general model: present, safe to load, usable without pre-training."""

import hashlib

import numpy as np
import pytest
import torch
from sklearn.frozen import FrozenEstimator

from fscc_sklearn import (
    Conv6Embedder,
    adapt,
    load_model,
    pretrained_embedder,
    pretrained_model,
    save_model,
)
from fscc_sklearn.datasets import simulate_subtomograms
from fscc_sklearn.embedding._pretrained import pretrained_path


@pytest.fixture(scope="module")
def novel():
    # two of the SHREC'21 novel classes, never seen by the shipped model
    return simulate_subtomograms(
        ["3gl1", "4v94"], n_per_class=6, snr=0.05, random_state=0
    )


def test_shipped_file_is_small_and_in_the_package():
    path = pretrained_path("general")
    assert path.suffix == ".safetensors"
    assert path.stat().st_size < 12 * 2**20  # "a few MB"
    assert (path.parent / "MODEL_CARD.md").is_file()


def test_loading_runs_no_code(monkeypatch):
    # safetensors + JSON only: unpickling is never reached
    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr("pickle.loads", refuse)
    monkeypatch.setattr("pickle.load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    model = pretrained_model()
    assert isinstance(model.steps[0][1], FrozenEstimator)
    assert isinstance(model.steps[0][1].estimator, Conv6Embedder)


def test_features_equal_a_saved_copy(novel, tmp_path):
    model = pretrained_model()
    F = model[:-1].transform(novel.X)
    assert F.shape == (12, pretrained_embedder().estimator.module_.num_features)
    assert (F >= 0).all() and np.isfinite(F).all()
    copy = save_model(model, tmp_path / "copy.safetensors")
    again, meta = load_model(copy, return_metadata=True)
    np.testing.assert_array_equal(F, again[:-1].transform(novel.X))
    # the shipped file is of format version 1; its copy is of the current one
    _, shipped = load_model(pretrained_path("general"), return_metadata=True)
    assert (shipped["format_version"], meta["format_version"]) == (1, 2)
    assert meta["base_classes"] == shipped["base_classes"]
    np.testing.assert_array_equal(
        again.predict_proba(novel.X), model.predict_proba(novel.X)
    )


def test_few_shot_from_the_shipped_model(novel):
    support = np.r_[0:3, 6:9]
    query = np.r_[3:6, 9:12]
    model = adapt(pretrained_model(), novel.X[support], novel.y[support])
    pred = model.predict(novel.X[query])
    assert set(pred) <= {"3gl1", "4v94"}
    # 4v94 (a large complex) and 3gl1 (a small one) are far apart even at 3 shots
    assert np.mean(pred == novel.y[query]) >= 5 / 6


def test_fine_tuning_starts_from_the_shipped_weights():
    X = np.random.default_rng(0).normal(size=(8, 32, 32, 32)).astype(np.float32)
    emb = Conv6Embedder(
        initial_weights="general",
        module__width=32,
        max_epochs=1,
        lr=0.0,
        random_state=0,
        callbacks__precise_bn=None,
    ).fit(X, np.repeat(["a", "b"], 4))
    shipped = pretrained_embedder().estimator.module_.state_dict()
    for key, value in emb.module_.state_dict().items():
        trained = "running" not in key  # BatchNorm statistics follow the data
        if key.startswith("blocks.") and value.is_floating_point() and trained:
            torch.testing.assert_close(value, shipped[key], msg=key)


def test_shipped_weights_are_the_documented_ones():
    # the model card names the file's SHA-256; a silently changed file fails here
    path = pretrained_path("general")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    card = (path.parent / "MODEL_CARD.md").read_text()
    assert digest in card


# the command line on the shipped model -------------------------------------


def _fscc(capsys, *argv):
    from fscc_sklearn.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_demo_uses_the_shipped_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FSCC_SKLEARN_DATA", str(tmp_path / "cache"))
    out_dir = tmp_path / "demo"
    code, out, err = _fscc(
        capsys,
        "demo",
        "--n-per-class",
        8,
        "--episodes",
        4,
        "--queries",
        2,
        "--out-dir",
        out_dir,
    )
    assert code == 0, err
    assert "using the shipped general model" in out
    assert "pre-trained in" not in out
    assert "5-way 5-shot accuracy:" in out
    assert (out_dir / "predictions.csv").exists()
    assert "none: the shipped general model" in (out_dir / "report.md").read_text()
    code, _, err = _fscc(capsys, "demo", "--box", 16, "--out-dir", tmp_path / "d2")
    assert code == 1 and "add --pretrain" in err


def test_cli_adapt_from_the_shipped_model(tmp_path, novel, capsys):
    data = tmp_path / "novel"
    code, _, err = _fscc(
        capsys,
        "simulate",
        data,
        "--n-per-class",
        4,
        "--novel",
        "3gl1,4v94",
        "--seed",
        0,
    )
    assert code == 0, err
    out_model = tmp_path / "novel.safetensors"
    code, out, err = _fscc(
        capsys,
        "adapt",
        "--pretrained",
        "general",
        data / "novel",
        "--shots",
        2,
        "-o",
        out_model,
    )
    assert code == 0, err
    model = load_model(out_model)
    assert sorted(model.classes_) == ["3gl1", "4v94"]
    code, _, err = _fscc(
        capsys, "adapt", data / "novel", "-o", tmp_path / "x.safetensors"
    )
    assert code == 1 and "--pretrained general" in err


def test_adapt_does_not_freeze_twice(novel, tmp_path):
    # pretrained_model() already freezes its embedder; the adapted model saves
    model = adapt(pretrained_model(), novel.X[:12:3], novel.y[:12:3])
    assert not isinstance(model.steps[0][1].estimator, FrozenEstimator)
    save_model(model, tmp_path / "adapted.safetensors")
