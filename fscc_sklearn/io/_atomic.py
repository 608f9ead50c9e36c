"""One way to write a file: atomically, with the permissions of a new file.

Every writer of the package (tables, MRC files, model files, checkpoints,
reports, plots, the dataset cache) goes through :func:`atomic_output`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_output"]

_TEMPORARY_TRIES = 100


def _new_temporary(path: Path) -> Path:
    """A new empty file next to ``path``, created with the mode a new file gets here.

    ``os.open(..., 0o666)`` lets the system apply the umask (and any default
    ACL) as it would for any new file, without reading or changing the
    process-wide umask.
    """
    for _ in range(_TEMPORARY_TRIES):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"Cannot create a temporary file next to '{path}'")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike, overwrite: bool = False, *, durable: bool = False
) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` once the block succeeds.

    The temporary file lives in the same directory as ``path`` (named
    ``.<name>.<random>.tmp``) so the final :func:`os.replace` (or, without
    ``overwrite``, :func:`os.link`, which never clobbers) is atomic. On error
    the temporary file is removed and ``path`` is left untouched.

    Every output gets the permissions of a new file in its folder (``0o666``
    less the umask), also when the code in the block recreates the temporary
    file with other permissions.

    Parameters
    ----------
    path : str or path-like
        Final destination.
    overwrite : bool, default=False
        Whether an existing ``path`` may be replaced.
    durable : bool, default=False
        Flush the file and the rename to disk (``fsync``) before returning, so
        that a power loss leaves the old or the new file (checkpoints).

    Yields
    ------
    tmp : pathlib.Path
        Where to write the content.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        If the parent directory of ``path`` does not exist.
    ValueError
        If ``path`` is a directory.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"Output path '{path}' is a directory; expected a file path")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"Output file '{path}' already exists; pass overwrite=True to replace it"
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Output directory '{path.parent}' does not exist")
    tmp = _new_temporary(path)
    try:
        mode = stat.S_IMODE(tmp.stat().st_mode)
        yield tmp
        if stat.S_IMODE(tmp.stat().st_mode) != mode:
            os.chmod(tmp, mode)  # e.g. safetensors recreates the file as 0600
        if durable:
            _fsync(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(
                    f"Output file '{path}' already exists; pass overwrite=True to "
                    "replace it"
                ) from None
            except OSError:  # hard links unsupported here: best-effort check
                if path.exists():
                    raise FileExistsError(
                        f"Output file '{path}' already exists; pass overwrite=True "
                        "to replace it"
                    ) from None
                os.replace(tmp, path)
        if durable:
            with contextlib.suppress(OSError):  # the rename itself
                _fsync(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
