"""Progress feedback: tqdm bars on a terminal, lines in logs, silence on request."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from skorch.callbacks import Callback

__all__ = ["TrainingMonitor", "bars_enabled", "progress_bar", "visible"]


def bars_enabled(quiet: bool = False, stream=None) -> bool:
    """Whether to draw bars: not ``quiet`` and ``stream`` (stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    return not quiet and bool(getattr(stream, "isatty", lambda: False)())


class _Silent:
    """The part of tqdm's interface the library uses, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def set_postfix_str(self, *args, **kwargs) -> None:
        pass


class _Callback:
    """Reports ``fn(done, total)`` after every update."""

    def __init__(self, fn: Callable[[int, int], object], total: int | None):
        self._fn, self._total, self._done = fn, total, 0

    def update(self, n: int = 1) -> None:
        self._done += n
        self._fn(self._done, self._total)

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def set_postfix_str(self, *args, **kwargs) -> None:
        pass


def visible(how) -> bool | Callable:
    """A library ``progress`` setting resolved for :func:`progress_bar`.

    ``True`` means a bar only when stderr is a terminal; callables pass through.
    """
    return how if callable(how) else bool(how) and bars_enabled()


@contextlib.contextmanager
def progress_bar(total: int | None, desc: str, enabled) -> Iterator[object]:
    """Yield a tqdm bar, a callback reporter, or an object that ignores updates.

    Parameters
    ----------
    total : int or None
        Number of steps.
    desc : str
        Label in front of the bar.
    enabled : bool or callable
        True draws a bar (callers decide, usually with :func:`bars_enabled` or
        :func:`visible`); a callable gets ``(done, total)`` after each update.
    """
    if callable(enabled):
        yield _Callback(enabled, total)
        return
    if not enabled:
        yield _Silent()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True) as bar:
        yield bar


class TrainingMonitor(Callback):
    """Per-epoch CE and SupCon losses in the history, and a progress display.

    Reads the criterion's ``last_terms`` (see :class:`~fscc_sklearn.nn.CESupConLoss`)
    after every training batch and records the epoch means as ``train_ce`` and
    ``train_supcon`` in ``net.history``. With ``bars=True`` a tqdm bar over
    batches shows the running loss; ``log`` (e.g. ``print`` to stderr) gets one
    line per epoch (use it when stderr is not a terminal).

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
        self._sums: dict[str, float] = {}
        self._n = 0
        return self

    def on_epoch_begin(self, net, **kwargs):
        self._sums = {"loss": 0.0, "ce": 0.0, "supcon": 0.0, "hits": 0.0}
        self._n = 0
        self._has_supcon = False
        if self.bars:
            from tqdm.auto import tqdm

            epoch = len(net.history)
            self._bar = tqdm(
                desc=f"pre-training epoch {epoch}/{net.max_epochs}",
                leave=False,
                unit="batch",
                dynamic_ncols=True,
            )

    def on_batch_end(self, net, batch, training, loss, y_pred, **kwargs):
        if not training:
            return
        n = len(batch[1])
        self._n += n
        self._sums["loss"] += float(loss.detach()) * n
        terms = getattr(net.criterion_, "last_terms", None) or {}
        if terms.get("ce") is not None:
            self._sums["ce"] += float(terms["ce"]) * n
        if terms.get("supcon") is not None:
            self._has_supcon = True
            self._sums["supcon"] += float(terms["supcon"]) * n
        logits = y_pred[0] if isinstance(y_pred, tuple) else y_pred
        self._sums["hits"] += float((logits.argmax(1).cpu() == batch[1].cpu()).sum())
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{self._sums['loss'] / self._n:.3f}")

    def on_epoch_end(self, net, **kwargs):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if not self._n:
            return
        ce = self._sums["ce"] / self._n
        net.history.record("train_ce", ce)
        supcon = self._sums["supcon"] / self._n if self._has_supcon else None
        if supcon is not None:
            net.history.record("train_supcon", supcon)
        if self.log is not None:
            row = net.history[-1]
            acc = self._sums["hits"] / self._n
            parts = [
                f"epoch {row['epoch']}/{net.max_epochs}",
                f"loss {self._sums['loss'] / self._n:.4f}",
                f"CE {ce:.4f}",
            ]
            if supcon is not None:
                parts.append(f"SupCon {supcon:.4f}")
            parts.append(f"accuracy {acc:.3f}")
            if "dur" in row:
                parts.append(f"{row['dur']:.1f} s")
            self.log(", ".join(parts))

    def on_train_end(self, net, **kwargs):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __getstate__(self):
        # a live tqdm bar cannot be pickled (joblib model files)
        state = self.__dict__.copy()
        state["_bar"] = None
        state["log"] = None
        return state
