"""Optional progress bar: tqdm when installed and stderr is a terminal, else silent."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


class _Silent:
    def update(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def progress_bar(total: int, desc: str, enabled: bool) -> Iterator[object]:
    """Yield an object with ``update(n)``; a tqdm bar only when it can be seen."""
    show = bool(enabled) and getattr(sys.stderr, "isatty", lambda: False)()
    if show:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            show = False
    if not show:
        yield _Silent()
        return
    with tqdm(total=total, desc=desc, leave=False) as bar:
        yield bar
