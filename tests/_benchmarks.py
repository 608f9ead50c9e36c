"""Import a script of ``benchmarks/`` as a module, for tests of its harness."""

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def import_benchmark(name: str):
    """``benchmarks/<name>.py`` as a fresh module (its folder on ``sys.path``
    while it loads, for its own ``_machine`` imports)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))
