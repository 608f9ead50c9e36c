"""skorch callbacks for pre-training: LR schedule, BatchNorm statistics, training
accuracy, progress display, episodic model selection, Ctrl-C for commands."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from skorch.callbacks import Callback
from torch.nn.modules.batchnorm import _BatchNorm

from ..model_selection import sample_episode
from ..nn import ClassBalancedBatchSampler


class WarmupCosineLR(Callback):
    """Linear warm-up, then cosine decay to zero, updated after every batch.

    The rate of step ``t`` of ``T`` (all batches of all epochs) is
    ``lr * t / w`` during the ``w`` warm-up steps and
    ``lr * (1 + cos(pi * (t - w) / (T - w))) / 2`` afterwards, where ``lr`` is
    the net's ``lr``. The per-epoch rate is recorded in the history as ``lr``.

    Parameters
    ----------
    warmup_epochs : float, default=1.0
        Length of the warm-up in epochs (0 starts at the full rate).
    """

    def __init__(self, warmup_epochs=1.0):
        self.warmup_epochs = warmup_epochs

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if not self.warmup_epochs >= 0:
            raise ValueError(f"warmup_epochs must be >= 0; got {self.warmup_epochs!r}.")
        self.steps_per_epoch_ = _steps_per_epoch(net, X, y)
        steps = self.steps_per_epoch_
        self.total_ = max(1, steps * net.max_epochs)
        self.warmup_ = min(self.total_ - 1, round(self.warmup_epochs * steps))

    def _set(self, net):
        t, w, total = self.step_, self.warmup_, self.total_
        if t < w:
            factor = (t + 1) / (w + 1)
        else:
            factor = 0.5 * (1 + math.cos(math.pi * (t - w) / max(1, total - w)))
        for group in net.optimizer_.param_groups:
            group["lr"] = net.lr * factor

    def on_epoch_begin(self, net, **kwargs):
        # from the epoch number, so a resumed or extended fit continues the curve
        self.step_ = (len(net.history) - 1) * self.steps_per_epoch_
        self._set(net)
        net.history.record("lr", net.optimizer_.param_groups[0]["lr"])

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.step_ += 1
            self._set(net)


def _steps_per_epoch(net, X, y):
    """Training batches per epoch, without drawing from the net's generators."""
    if hasattr(X, "stream"):  # a StreamDataset: its own pass length
        return X.stream.batches_per_epoch
    if y is not None and hasattr(net, "sampler_rng_"):  # class-balanced batches
        _, y_idx = np.unique(np.asarray(y), return_inverse=True)
        return len(ClassBalancedBatchSampler(y_idx, net.batch_size, seed=0))
    return len(net.get_iterator(net.get_dataset(X, y), training=True))


class EpisodicValidation(Callback):
    """Few-shot accuracy on held-out base classes after every epoch; keep the best.

    Model selection by what matters for transfer: after each epoch the
    validation subtomograms (of classes *not* in the training data) are
    embedded with :meth:`transform`, and ``n_episodes`` nearest-prototype
    episodes (cosine) are scored on the features. The mean accuracy is
    recorded as ``valid_episodic_acc`` (and ``valid_episodic_acc_best``).
    When training ends, the weights of the best epoch are restored (and
    BatchNorm statistics recomputed on the training data).

    Parameters
    ----------
    X_val : array-like of shape (n_samples, D, H, W)
        Subtomograms of held-out base classes.
    y_val : array-like of shape (n_samples,)
        Their labels; at least 2 classes with ``k_shot + n_query`` samples each.
    n_way : int, default=5
        Classes per episode (capped at the number of validation classes).
    k_shot : int, default=1
    n_query : int, default=15
    n_episodes : int, default=200
    random_state : int, default=0
        Seed of the episodes (the same episodes every epoch).
    restore_best : bool, default=True
        Restore the weights of the best epoch when training ends.
    """

    def __init__(
        self,
        X_val,
        y_val,
        *,
        n_way=5,
        k_shot=1,
        n_query=15,
        n_episodes=200,
        random_state=0,
        restore_best=True,
    ):
        self.X_val = X_val
        self.y_val = y_val
        self.n_way = n_way
        self.k_shot = k_shot
        self.n_query = n_query
        self.n_episodes = n_episodes
        self.random_state = random_state
        self.restore_best = restore_best

    def on_train_begin(self, net, **kwargs):
        y = np.asarray(self.y_val)
        if len(y) != len(self.X_val):
            raise ValueError(
                f"X_val and y_val differ in length: {len(self.X_val)} and {len(y)}."
            )
        n_way = min(self.n_way, len(np.unique(y)))
        if n_way < 2:
            raise ValueError("EpisodicValidation needs at least 2 validation classes.")
        rng = np.random.default_rng(self.random_state)
        self.episodes_ = [
            sample_episode(
                y, n_way, self.k_shot, self.n_query, int(rng.integers(2**31 - 1))
            )
            for _ in range(self.n_episodes)
        ]
        self.best_score_ = -np.inf
        self.best_epoch_ = None
        self.best_state_ = None

    def score(self, features):
        """Mean nearest-prototype (cosine) accuracy of the episodes on ``features``."""
        y = np.asarray(self.y_val)
        z = features / np.maximum(
            np.linalg.norm(features, axis=1, keepdims=True), 1e-12
        )
        accs = []
        for support, query in self.episodes_:
            classes = np.unique(y[support])
            protos = np.stack([z[support][y[support] == c].mean(0) for c in classes])
            pred = classes[np.argmax(z[query] @ protos.T, axis=1)]
            accs.append(np.mean(pred == y[query]))
        return float(np.mean(accs))

    def on_epoch_end(self, net, **kwargs):
        acc = self.score(net.transform(self.X_val))
        net.history.record("valid_episodic_acc", acc)
        best = acc > self.best_score_
        net.history.record("valid_episodic_acc_best", bool(best))
        if best:
            self.best_score_ = acc
            self.best_epoch_ = len(net.history)
            if self.restore_best:
                self.best_state_ = copy.deepcopy(net.module_.state_dict())

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if not self.restore_best or self.best_state_ is None:
            return
        if self.best_epoch_ == len(net.history):
            return  # the last epoch is the best: nothing to restore
        net.module_.load_state_dict(self.best_state_)
        precise_bn = dict(net.callbacks_).get("precise_bn")
        if precise_bn is not None:
            precise_bn.on_train_end(net, X=X, y=y)


class RaiseOnInterrupt(Callback):
    """Let Ctrl-C stop ``fit`` with :class:`KeyboardInterrupt` (for commands).

    skorch ends ``fit`` quietly on KeyboardInterrupt and keeps the partly
    trained net, which suits an interactive session; a command must stop
    instead, so that nothing half-trained is saved. Place this callback last:
    when training ends before ``max_epochs`` complete epochs, it raises
    KeyboardInterrupt from ``on_train_end``, after the other callbacks have
    wound down (progress bars closed, checkpoint written).
    """

    def on_train_end(self, net, **kwargs):
        done = sum("train_loss" in row for row in net.history)
        if done < net.max_epochs:
            raise KeyboardInterrupt(f"after {done} of {net.max_epochs} epochs")


class _TrainAccuracy(Callback):
    """Record the training accuracy of every epoch (from the batches seen)."""

    def on_epoch_begin(self, net, **kwargs):
        self._hits, self._seen = 0, 0

    def on_batch_end(self, net, batch, training, y_pred, **kwargs):
        if training:
            logits = y_pred[0] if isinstance(y_pred, tuple) else y_pred
            self._hits += int((logits.argmax(1).cpu() == batch[1].cpu()).sum())
            self._seen += len(batch[1])

    def on_epoch_end(self, net, **kwargs):
        if self._seen:
            net.history.record("train_acc", self._hits / self._seen)


class PreciseBatchNorm(Callback):
    """Recompute BatchNorm statistics on the training data when training ends.

    Running statistics are an exponential average over the last few batches,
    taken while the weights were still moving; with few steps or a high learning
    rate they do not match the final weights, and eval-mode features (the ones
    that transfer) suffer. One forward pass over the training set with a
    cumulative average fixes that.
    """

    def on_train_end(self, net, X=None, y=None, **kwargs):
        norms = [m for m in net.module_.modules() if isinstance(m, _BatchNorm)]
        if not norms or X is None:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
        net.module_.train()
        with torch.no_grad():
            for Xb, _ in net.get_iterator(net.get_dataset(X), training=False):
                net.infer(Xb)
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        net.module_.eval()


class TrainingMonitor(Callback):
    """A progress bar over the batches and one summary line per epoch.

    With ``bars=True`` a tqdm bar over the batches shows the running loss;
    ``log`` (e.g. ``print`` to stderr) gets one line per epoch with the loss,
    its CE and SupCon terms (``train_ce``, ``train_supcon``, which
    :class:`~fscc_sklearn.Conv6Embedder` records in its history), the training
    accuracy and the duration. Use ``log`` when stderr is not a terminal.

    Parameters
    ----------
    bars : bool, default=False
        Draw a tqdm bar.
    log : callable or None, default=None
        Called with one summary line per epoch.
    """

    def __init__(self, bars: bool = False, log: Callable[[str], None] | None = None):
        self.bars = bars
        self.log = log

    def initialize(self):
        self._bar = None
        self._loss, self._n = 0.0, 0
        return self

    def on_epoch_begin(self, net, **kwargs):
        self._loss, self._n = 0.0, 0
        if self.bars:
            from tqdm.auto import tqdm  # optional: only when bars are drawn

            self._bar = tqdm(
                desc=f"pre-training epoch {len(net.history)}/{net.max_epochs}",
                leave=False,
                unit="batch",
                dynamic_ncols=True,
            )

    def on_batch_end(self, net, batch, training, loss, **kwargs):
        if not training:
            return
        n = len(batch[1])
        self._n += n
        self._loss += float(loss.detach()) * n
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{self._loss / self._n:.3f}")

    def on_epoch_end(self, net, **kwargs):
        self._close()
        row = net.history[-1]
        if self.log is None or "train_loss" not in row:
            return
        parts = [f"epoch {row['epoch']}/{net.max_epochs}"]
        for key, label in (
            ("train_loss", "loss"),
            ("train_ce", "CE"),
            ("train_supcon", "SupCon"),
        ):
            if key in row:
                parts.append(f"{label} {row[key]:.4f}")
        if "train_acc" in row:
            parts.append(f"accuracy {row['train_acc']:.3f}")
        if "dur" in row:
            parts.append(f"{row['dur']:.1f} s")
        self.log(", ".join(parts))

    def on_train_end(self, net, **kwargs):
        self._close()

    def _close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __getstate__(self):
        # a live tqdm bar cannot be pickled (joblib model files)
        state = self.__dict__.copy()
        state["_bar"] = None
        state["log"] = None
        return state
