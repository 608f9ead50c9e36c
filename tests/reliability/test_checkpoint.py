"""Checkpoints survive kills and resume to the bit-identical model."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fscc_sklearn import Conv6Embedder
from fscc_sklearn.datasets._toy import make_toy_volumes
from fscc_sklearn.embedding._checkpoint import AtomicCheckpoint, load_checkpoint

WORKER = Path(__file__).with_name("_train_worker.py")


def _run(*args):
    return subprocess.run(
        [sys.executable, str(WORKER), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the worker: same reduction order
    yield
    torch.set_num_threads(before)


def _import_worker():
    sys.path.insert(0, str(WORKER.parent))
    try:
        import _train_worker
    finally:
        sys.path.pop(0)
    return _train_worker


def test_sigkill_then_resume_gives_identical_model(tmp_path):
    worker = _import_worker()
    X, y = worker.make_data()
    uninterrupted = worker.make_embedder().fit(X, y)
    resumed, ckpt = tmp_path / "resumed", tmp_path / "ckpt"
    resumed.mkdir()

    stages = [
        [resumed, "--checkpoint", ckpt, "--kill-after", 2],
        # resumes from epoch 2, then dies half-way through writing epoch 3
        [resumed, "--checkpoint", ckpt, "--kill-in-write", 1],
        [resumed, "--checkpoint", ckpt],
    ]
    argv = json.dumps([[str(a) for a in stage] for stage in stages])
    done = _run("--stages", ckpt, argv)
    assert done.returncode == 0, done.stderr
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    assert reports == [
        {"signal": 9, "exit": None, "epoch": 2, "temporaries": 0},
        # torn write of epoch 3: a temporary is left, the epoch-2 checkpoint loads
        {"signal": 9, "exit": None, "epoch": 2, "temporaries": 1},
        {"signal": 0, "exit": 0, "epoch": 4, "temporaries": 0},
    ], done.stderr
    assert (resumed / "resumed_from.txt").read_text() == "2"
    assert not list(ckpt.glob(".*.tmp"))
    assert load_checkpoint(ckpt)["epoch"] == 4

    a, b = uninterrupted.transform(X), np.load(resumed / "features.npy")
    assert a.std() > 0
    np.testing.assert_array_equal(a, b)
    loss = json.loads((resumed / "loss.json").read_text())
    assert loss == uninterrupted.history[:, "train_loss"]


@pytest.mark.slow
def test_soak_random_kills_then_resume(tmp_path):
    """Kill training 30 times at random batches and random checkpoint writes."""
    worker = _import_worker()
    X, y = worker.make_data()
    uninterrupted = worker.make_embedder(max_epochs=16).fit(X, y)
    resumed, ckpt = tmp_path / "resumed", tmp_path / "ckpt"
    resumed.mkdir()
    rng = np.random.default_rng(0)
    common = [str(resumed), "--checkpoint", str(ckpt), "--max-epochs", "16"]
    stages = [  # 2 batches per epoch: batch kills land mid-epoch or at its end
        [*common, "--kill-at-batch", str(rng.integers(1, 5))]
        if rng.random() < 0.7
        else [*common, "--kill-in-write", str(rng.integers(1, 3))]
        for _ in range(30)
    ]
    done = _run("--stages", ckpt, json.dumps([*stages, common]))
    assert done.returncode == 0, done.stderr
    reports = [json.loads(line) for line in done.stdout.splitlines()]
    kills = sum(r["signal"] == 9 for r in reports)
    torn = sum(r["temporaries"] > 0 for r in reports)
    epochs = [r["epoch"] for r in reports]
    print(f"{kills} kills ({torn} in mid-write); epochs on disk: {epochs}")
    assert kills >= 20 and torn >= 3
    assert epochs == sorted(epochs)  # a kill never loses a saved epoch
    assert reports[-1] == {"signal": 0, "exit": 0, "epoch": 16, "temporaries": 0}
    np.testing.assert_array_equal(
        uninterrupted.transform(X), np.load(resumed / "features.npy")
    )


@pytest.fixture(scope="module")
def data():
    return make_toy_volumes(n_classes=3, n_per_class=8, box=8, random_state=1)


def _embedder(ckpt, **params):
    defaults = dict(
        module__width=4,
        max_epochs=2,
        batch_size=12,
        lr=0.01,
        lr_schedule=None,  # a cosine curve depends on max_epochs; extended runs too
        random_state=0,
        device="cpu",
    )
    callbacks = [AtomicCheckpoint(ckpt)] if ckpt is not None else []
    return Conv6Embedder(callbacks=callbacks, **{**defaults, **params})


def test_extending_max_epochs_matches_a_longer_run(tmp_path, data):
    X, y = data
    longer = _embedder(None, max_epochs=2).fit(X, y)
    short = _embedder(tmp_path, max_epochs=1).fit(X, y)
    assert not np.array_equal(short.transform(X), longer.transform(X))
    extended = _embedder(tmp_path, max_epochs=2).fit(X, y)
    assert extended.callbacks[0].resumed_from_ == 1
    assert len(extended.history) == 2
    np.testing.assert_array_equal(extended.transform(X), longer.transform(X))


def test_refit_of_a_finished_run_trains_no_more(tmp_path, data):
    X, y = data
    first = _embedder(tmp_path).fit(X, y)
    again = _embedder(tmp_path).fit(X, y)
    assert again.callbacks[0].resumed_from_ == 2
    assert len(again.history) == 2
    np.testing.assert_array_equal(first.transform(X), again.transform(X))
    assert "get_iterator" not in again.__dict__  # the replay hook is gone


def test_resume_false_starts_over(tmp_path, data):
    X, y = data
    _embedder(tmp_path, max_epochs=1).fit(X, y)
    emb = _embedder(None, max_epochs=2)
    emb.set_params(callbacks=[AtomicCheckpoint(tmp_path, resume=False)])
    emb.fit(X, y)
    assert emb.callbacks[0].resumed_from_ == 0
    assert load_checkpoint(tmp_path)["epoch"] == 2


def test_other_data_or_params_refuse_to_resume(tmp_path, data):
    X, y = data
    _embedder(tmp_path, max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="other data"):
        _embedder(tmp_path).fit(X[::-1].copy(), y)
    with pytest.raises(ValueError, match=r"other parameters \(\['lr'\]"):
        _embedder(tmp_path, lr=0.02).fit(X, y)


def test_damaged_checkpoint_gives_a_clear_error(tmp_path, data):
    X, y = data
    _embedder(tmp_path, max_epochs=1).fit(X, y)
    path = tmp_path / "fscc_checkpoint.pt"
    raw = path.read_bytes()
    for damaged in (raw[: len(raw) // 3], b"\x00junk" * 50, b"", raw[:-1]):
        path.write_bytes(damaged)
        with pytest.raises(ValueError, match="not a readable fscc checkpoint"):
            load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="not a readable fscc checkpoint"):
        _embedder(tmp_path).fit(X, y)


class _Payload:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').close()",))


def test_checkpoint_loading_never_runs_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"meta": _Payload()}, tmp_path / "fscc_checkpoint.pt")
    with pytest.raises(ValueError, match="not a readable fscc checkpoint"):
        load_checkpoint(tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_missing_checkpoint_and_bad_filename(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="plain file name"):
        AtomicCheckpoint(tmp_path, filename="../x.pt").initialize()


def test_other_nets_are_refused(tmp_path):
    from skorch import NeuralNet

    net = NeuralNet(
        torch.nn.Linear(3, 2),
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=1,
        train_split=None,
        callbacks=[AtomicCheckpoint(tmp_path)],
    )
    X, y = np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1])
    with pytest.raises(TypeError, match="resumes a Conv6Embedder"):
        net.fit(X, y)


def test_resume_restores_the_batch_samplers_own_state(tmp_path, data):
    from fscc_sklearn.nn import ClassBalancedBatchSampler

    X, y = data
    whole = _embedder(tmp_path, max_epochs=2).fit(X, y)
    saved = load_checkpoint(tmp_path)["sampler_state"]
    assert saved == whole._sampler_state_ and set(saved) == {"rng"}
    # a sampler given that (JSON round-tripped) state draws what the first would
    first = ClassBalancedBatchSampler(y, 12, seed=3)
    list(first)
    other = ClassBalancedBatchSampler(y, 12, seed=99)
    other.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert list(other) == list(first)


def test_a_checkpoint_of_the_old_format_is_named(tmp_path, data):
    X, y = data
    _embedder(tmp_path, max_epochs=1).fit(X, y)
    path = tmp_path / "fscc_checkpoint.pt"
    payload = torch.load(path, weights_only=True)
    meta = json.loads(payload["meta"])
    meta["format"] = 1
    torch.save({**payload, "meta": json.dumps(meta)}, path)
    with pytest.raises(ValueError, match="format 1, written by another version"):
        load_checkpoint(tmp_path)
    emb = _embedder(tmp_path, max_epochs=2)
    emb.set_params(callbacks=[AtomicCheckpoint(tmp_path, resume=False)])
    assert len(emb.fit(X, y).history) == 2  # resume=False starts over
