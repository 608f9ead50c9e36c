"""Connect to a Dask cluster when given one; otherwise leave everything local."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["dask_client", "joblib_backend", "set_worker_threads"]


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "Running on a Dask cluster needs the optional dependency "
            "dask[distributed]; install it with "
            "`pip install 'fscc-sklearn[distributed]'`."
        ) from exc
    return distributed


@contextlib.contextmanager
def dask_client(scheduler, *, timeout: float = 30) -> Iterator:
    """A ``distributed.Client`` for ``scheduler``, closed on exit if opened here.

    Parameters
    ----------
    scheduler : str or distributed.Client
        Address of a running scheduler (``"tcp://10.0.0.5:8786"``, or a
        ``LocalCluster``'s ``scheduler_address``), or a client to reuse (left
        open on exit).
    timeout : float, default=30
        Seconds to wait for the connection.

    Yields
    ------
    distributed.Client
    """
    distributed = _import_distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ValueError(
            "scheduler must be a Dask scheduler address such as "
            f"'tcp://host:8786' or a distributed.Client; got {scheduler!r}."
        )
    # set_as_default=False: do not hijack dask.compute calls of the caller
    client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def joblib_backend(scheduler=None) -> Iterator:
    """Run the joblib-parallel code inside the block on a Dask cluster.

    With ``scheduler=None`` nothing changes (joblib's local backend). With an
    address or client, joblib's ``"dask"`` backend is active in the block, so
    :func:`~fscc_sklearn.evaluate_episodes`, ``GridSearchCV`` and everything
    else built on ``joblib.Parallel`` send their tasks to the cluster's
    workers; pass ``n_jobs=-1`` to use all of them. Results do not change:
    every episode and every candidate carries its own seed.

    Parameters
    ----------
    scheduler : str, distributed.Client or None

    Yields
    ------
    distributed.Client or None
    """
    if scheduler is None:
        yield None
        return
    import joblib

    with (
        dask_client(scheduler) as client,
        joblib.parallel_backend("dask", client=client),
    ):
        yield client


def set_worker_threads(client, n_threads: int = 1) -> dict:
    """Set the number of torch intra-op threads on every worker of ``client``.

    Dask runs ``threads_per_worker`` tasks side by side and torch would start
    one thread per core in each of them; one torch thread per Dask thread
    avoids oversubscribing the cores.

    Returns
    -------
    dict
        Worker address -> torch threads now in use.
    """
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer; got {n_threads!r}.")
    return client.run(_set_torch_threads, n_threads)


def _set_torch_threads(n_threads: int) -> int:
    import torch

    torch.set_num_threads(n_threads)
    return torch.get_num_threads()
