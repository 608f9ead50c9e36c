"""Train a tiny Conv6Embedder in a child process; used by the resume tests.

``python _train_worker.py OUT_DIR [--checkpoint DIR] [--kill-after N]
[--kill-in-write N]`` writes OUT_DIR/features.npy and OUT_DIR/loss.json when
training finishes; ``--kill-after N`` sends SIGKILL to itself right after the
checkpoint of epoch N, ``--kill-in-write N`` half-way through writing the N-th
checkpoint of this process. ``python _train_worker.py --stages CKPT_DIR JSON``
runs a list of such argument lists, each in a forked child.
"""

import argparse
import json
import os
import signal
import sys
import traceback
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback

from fscc_sklearn import Conv6Embedder
from fscc_sklearn.datasets._toy import make_toy_volumes
from fscc_sklearn.embedding import _checkpoint
from fscc_sklearn.embedding._checkpoint import AtomicCheckpoint

MAX_EPOCHS = 4


class KillAfter(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)


class KillAtBatch(Callback):
    """SIGKILL after the ``n``-th training batch of this process (mid-epoch)."""

    def __init__(self, n):
        self.n = n

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.n -= 1
            if self.n == 0:
                os.kill(os.getpid(), signal.SIGKILL)


def kill_in_write(epoch):
    """Make the checkpoint write of ``epoch`` die after half of its bytes."""
    calls = {"n": 0}
    write_all = _checkpoint._write_all

    def write_half_then_die(fh, data):
        calls["n"] += 1
        if calls["n"] == epoch:
            fh.write(data[: len(data) // 2])
            fh.flush()
            os.fsync(fh.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        write_all(fh, data)

    _checkpoint._write_all = write_half_then_die


def make_data():
    return make_toy_volumes(n_classes=3, n_per_class=8, box=8, random_state=0)


def make_embedder(callbacks=(), max_epochs=MAX_EPOCHS):
    return Conv6Embedder(
        module__width=4,
        max_epochs=max_epochs,
        batch_size=12,
        lr=0.01,
        random_state=0,
        device="cpu",
        callbacks=list(callbacks),
    )


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--checkpoint")
    parser.add_argument("--kill-after", type=int)
    parser.add_argument("--kill-in-write", type=int)
    parser.add_argument("--kill-at-batch", type=int)
    parser.add_argument("--max-epochs", type=int, default=MAX_EPOCHS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    callbacks = []
    if args.checkpoint:
        callbacks.append(AtomicCheckpoint(args.checkpoint))
    if args.kill_after:
        callbacks.append(KillAfter(args.kill_after))
    if args.kill_at_batch:
        callbacks.append(KillAtBatch(args.kill_at_batch))
    if args.kill_in_write:
        kill_in_write(args.kill_in_write)
    X, y = make_data()
    emb = make_embedder(callbacks, args.max_epochs).fit(X, y)
    out = Path(args.out)
    np.save(out / "features.npy", emb.transform(X))
    (out / "loss.json").write_text(json.dumps(emb.history[:, "train_loss"]))
    resumed = callbacks[0].resumed_from_ if callbacks else 0
    (out / "resumed_from.txt").write_text(str(resumed))


def _saved_epoch(ckpt):
    try:
        return _checkpoint.load_checkpoint(ckpt)["epoch"]
    except FileNotFoundError:  # killed before the first epoch ended
        return 0


def run_stages(checkpoint, stages):
    """Run each argument list in a forked child (one interpreter start-up).

    After each child, prints a JSON line: the signal that ended it (0 for a
    normal exit), the epoch of the checkpoint on disk and the number of
    temporary files next to it.
    """
    torch.set_num_threads(1)  # before any fork: no thread pool to inherit
    for argv in stages:
        child = os.fork()
        if child == 0:
            try:
                main(argv)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(child, 0)
        ckpt = Path(checkpoint)
        report = {
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
            "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "epoch": _saved_epoch(ckpt),
            "temporaries": len(list(ckpt.glob(".*.tmp"))),
        }
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--stages":
        run_stages(sys.argv[2], json.loads(sys.argv[3]))
    else:
        main()
