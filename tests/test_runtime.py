import subprocess
import sys

import numpy as np
import pytest

from fscc_sklearn._progress import progress_bar, visible
from fscc_sklearn.embedding._runtime import PageReleaser, tune_malloc


def _resident_pages(arr):
    """Pages of a memory map's file resident in this process (from /proc)."""
    start = arr.ctypes.data
    with open("/proc/self/smaps") as fh:
        lines = fh.read().splitlines()
    for i, line in enumerate(lines):
        head = line.split()[0]
        if ":" in head:  # a field line, not a mapping header
            continue
        lo, hi = (int(v, 16) for v in head.split("-"))
        if lo <= start < hi:
            for rest in lines[i + 1 :]:
                if rest.startswith("Rss:"):
                    return int(rest.split()[1])
    raise AssertionError("mapping not found")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_page_releaser_drops_read_pages_and_keeps_data(tmp_path):
    X = np.arange(64 * 16**3, dtype=np.float32).reshape(64, 16, 16, 16)
    np.save(tmp_path / "x.npy", X)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    pages = PageReleaser(mm)
    assert pages.active
    assert float(mm.sum()) == float(X.sum())  # touches every page
    full = _resident_pages(mm)
    pages.release(48)
    assert _resident_pages(mm) < 0.5 * full
    np.testing.assert_array_equal(mm[:48], X[:48])  # re-read from the file


def test_page_releaser_ignores_arrays_it_must_not_touch(tmp_path):
    X = np.ones((8, 4, 4, 4), dtype=np.float32)
    np.save(tmp_path / "x.npy", X)
    assert not PageReleaser(X).active  # plain memory
    cow = np.load(tmp_path / "x.npy", mmap_mode="c")
    cow[0] = 5.0
    releaser = PageReleaser(cow)
    assert not releaser.active  # would discard the private change
    releaser.release(8)
    assert cow[0, 0, 0, 0] == 5.0
    strided = np.load(tmp_path / "x.npy", mmap_mode="r")[::2]
    assert not PageReleaser(strided).active


def test_progress_callback_and_silent_bar():
    seen = []
    with progress_bar(5, "x", visible(lambda d, t: seen.append((d, t)))) as bar:
        bar.update(2)
        bar.update(3)
    assert seen == [(2, 5), (5, 5)]
    with progress_bar(5, "x", visible(True)) as bar:  # stderr is no terminal here
        assert type(bar).__name__ == "_Silent"


def _rss_after_free(tune_call: str) -> tuple[int, int]:
    """Resident bytes of a fresh process with a 256 MiB block held, then freed."""
    code = (
        "import os\n"
        "from fscc_sklearn.embedding._runtime import tune_malloc\n"
        "import numpy as np\n"
        f"assert {tune_call} is True\n"
        "page = os.sysconf('SC_PAGE_SIZE')\n"
        "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * page\n"
        "a = np.ones(256 * 2**20 // 8); held = rss(); del a\n"
        "print(held, rss())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    held, freed = map(int, out.stdout.split())
    return held, freed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tune_malloc_keeps_freed_memory_unless_a_threshold_is_given():
    held, freed = _rss_after_free("tune_malloc()")
    assert freed > held - 16 * 2**20  # the 256 MiB stayed with the process
    held, freed = _rss_after_free("tune_malloc(trim_threshold=2**20)")
    assert freed < held - 200 * 2**20  # given back above a 1 MiB threshold


@pytest.mark.parametrize("bad", [-1, 2**31, 10 * 2**30])
def test_tune_malloc_rejects_thresholds_mallopt_cannot_take(bad):
    with pytest.raises(ValueError, match="trim_threshold"):
        tune_malloc(trim_threshold=bad)


def test_importing_the_datasets_imports_no_skorch():
    # the simulator reports progress through _progress, which must stay light
    code = (
        "import sys, fscc_sklearn.datasets, fscc_sklearn._progress\n"
        "print(sorted(m for m in ('skorch', 'torch') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "skorch" not in done.stdout, done.stdout
