"""The machine and software a benchmark ran on: one description for every script.

New runs record :func:`machine_info`; results saved before it keep the keys they
were written with, so the renderers read the load through :func:`load_at_start`
(``loadavg_start`` now, ``load_average_at_start`` or ``loadavg`` before).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# thread settings that change the timings
_THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MALLOC_MMAP_MAX_",
    "MALLOC_TRIM_THRESHOLD_",
    "OMP_WAIT_POLICY",
)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# the instruction sets that pick oneDNN's and the BLAS's kernels
_KERNEL_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512", "amx", "vnni", "bf16", "fp16")


def cpu_flags() -> list[str]:
    """The CPU's vector and matrix instruction flags (``/proc/cpuinfo``)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(_KERNEL_FLAGS))
    return []


def _git() -> str | None:
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info(*, threads: int | None = None, packages=()) -> dict:
    """Date, commit, CPU, versions, thread settings and load average now.

    Parameters
    ----------
    threads : int, optional
        Torch threads the benchmark asked for (default: torch's setting, when
        the benchmark uses torch).
    packages : sequence of str
        Further packages whose version to record (e.g. ``("dask",)``).

    Returns
    -------
    info : dict
        JSON-able; versions are flat keys (``"numpy"``, ``"torch"``, ...).
    """
    import scipy
    import sklearn
    from threadpoolctl import threadpool_info

    import fscc_sklearn

    info = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": _git(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "fscc_sklearn": fscc_sklearn.__version__,
    }
    for name in packages:
        info[name] = importlib.import_module(name).__version__
    if "torch" in sys.modules or "torch" in packages:  # what the benchmark uses
        import skorch
        import torch

        info.update(
            torch=torch.__version__,
            skorch=skorch.__version__,
            torch_threads=torch.get_num_threads() if threads is None else threads,
            torch_interop_threads=torch.get_num_interop_threads(),
            mkldnn=torch.backends.mkldnn.is_available(),
            cpu_capability=torch.backends.cpu.get_cpu_capability(),
        )
    info["blas"] = [
        {k: i.get(k) for k in ("internal_api", "num_threads", "version")}
        for i in threadpool_info()
    ]
    info["env"] = {k: os.environ.get(k) for k in _THREAD_ENV}
    # other jobs on a shared machine slow the timings down
    info["loadavg_start"] = list(os.getloadavg())
    return info


def load_at_start(info: dict) -> float:
    """The 1-minute load average a result recorded at its start."""
    for key in ("loadavg_start", "load_average_at_start", "loadavg"):
        if key in info:
            return float(info[key][0])
    return float("nan")


def machine_line(info: dict | None = None) -> str:
    """``"<cpu>, <n> cores"`` for one-line records."""
    info = machine_info() if info is None else info
    return f"{info['cpu']}, {info['cpu_count']} cores"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(
    prefix: str | os.PathLike, result: dict, markdown: str, *, echo: bool = True
) -> None:
    """``prefix.json`` (the result) and ``prefix.md`` (its report), and print
    the report unless ``echo`` is false.

    Each file is replaced in one step, so a long run saving as it goes never
    leaves half a file behind when it is stopped.
    """
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    text = {".json": json.dumps(result, indent=1, default=str) + "\n", ".md": markdown}
    for suffix, content in text.items():
        path = prefix.with_name(prefix.name + suffix)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(content)
        os.replace(tmp, path)
    if echo:
        print(markdown)
