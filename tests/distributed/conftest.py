import multiprocessing
import threading

import pytest
import torch
import torch.multiprocessing as mp


@pytest.fixture
def run_ranks(tmp_path):
    """Run ``fn(rank, world, store, out_dir, *args)`` in gloo processes."""

    def run(fn, *args, world=2):
        # fork lets the children inherit the imported modules (seconds per test)
        # but is only safe while no other Python thread (a Dask client's event
        # loop, say) may hold a lock; otherwise a forkserver that imports them once
        if threading.active_count() == 1:
            method = "fork"
        else:
            method = "forkserver"
            multiprocessing.get_context(method).set_forkserver_preload(
                ["torch", "_ddp_workers"]
            )
        mp.start_processes(
            fn,
            args=(world, tmp_path / "store", tmp_path, *args),
            nprocs=world,
            start_method=method,
        )
        return [
            torch.load(tmp_path / f"rank{r}.pt", weights_only=False)
            for r in range(world)
        ]

    return run
