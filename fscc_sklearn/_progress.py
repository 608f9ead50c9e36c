"""Progress feedback: tqdm bars on a terminal, lines in logs, silence on request."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

# No skorch or torch here: the simulator (datasets/) reports progress too.
__all__ = ["bars_enabled", "progress_bar", "visible"]


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
