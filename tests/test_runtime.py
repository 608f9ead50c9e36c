import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fscc_sklearn._progress import progress_bar, visible
from fscc_sklearn.cli import _setup_runtime
from fscc_sklearn.embedding._runtime import (
    PageReleaser,
    _startup_malloc_settings,
    tune_malloc,
)


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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tune_malloc_keeps_freed_memory_unless_a_threshold_is_given():
    # anonymous resident bytes (RssAnon) with a 256 MiB block held, then freed,
    # in a fresh process: never trimming, then with a 1 MiB threshold. RssAnon
    # leaves out the pages of mapped files (torch's libraries), which the
    # kernel may drop or read in at any time on a busy machine; the margins
    # are a quarter of the block
    code = (
        "from fscc_sklearn.embedding._runtime import tune_malloc\n"
        "import numpy as np\n"
        "def rss():\n"
        "    with open('/proc/self/status') as fh:\n"
        "        line = next(r for r in fh if r.startswith('RssAnon:'))\n"
        "    return int(line.split()[1]) * 1024\n"
        "for threshold in (None, 2**20):\n"
        "    assert tune_malloc(trim_threshold=threshold) is True\n"
        "    a = np.ones(256 * 2**20 // 8); held = rss(); del a\n"
        "    print(held, rss())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    (held, freed), (held_1m, freed_1m) = (
        map(int, line.split()) for line in out.stdout.splitlines()
    )
    assert freed > held - 64 * 2**20  # the 256 MiB stayed with the process
    assert freed_1m < held_1m - 192 * 2**20  # given back above 1 MiB


# Fits in a fresh process (the test process's malloc state depends on the
# tests before, e.g. the CLI's tune_malloc). glibc has no mallopt getter, so
# the settings are seen through their effect: whether a fresh 1 GiB malloc,
# larger than any free block the fits leave, is served by mmap (mallinfo2's
# hblks grows) - true with M_MMAP_MAX > 0, false inside the scope (0).
_FIT_WORKER = """
import ctypes, json, os
import numpy as np
from skorch.callbacks import Callback
from fscc_sklearn import Conv6Embedder, tune_malloc
from fscc_sklearn.embedding import _runtime

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keep"
Info = type("Info", (ctypes.Structure,), {
    "_fields_": [(n, ctypes.c_size_t) for n in names.split()]})
libc.mallinfo2.restype = Info

def mmapped():
    before = libc.mallinfo2().hblks
    block = libc.malloc(1 << 30)
    mapped = libc.mallinfo2().hblks > before
    libc.free(block)
    return mapped

def rss():
    with open("/proc/self/status") as fh:
        return int(next(r for r in fh if r.startswith("VmRSS:")).split()[1]) << 10

calls, inside, peak = [], [], [0]
real = _runtime._mallopt
_runtime._mallopt = lambda param, value: calls.append([param, value]) or real(
    param, value)

class Probe(Callback):
    def on_batch_end(self, net, **kwargs):
        inside.append(mmapped())
        peak[0] = max(peak[0], rss())

rng = np.random.default_rng(0)
X = rng.normal(size=(32, 16, 16, 16)).astype(np.float32)
y = np.repeat([0, 1], 16)
kw = dict(module__width=32, batch_size=32, max_epochs=1, random_state=0,
          device="cpu", callbacks=[("probe", Probe())])
Conv6Embedder(**kw).fit(X[::8], y[::8])  # one-time costs: kernels, imports
out = {"mmapped_before": mmapped(), "rss_before": rss()}
del calls[:], inside[:]
emb = Conv6Embedder(**kw).fit(X, y)
out.update(calls=list(calls), inside=list(inside), peak=peak[0], rss_after=rss(),
           mmapped_after=mmapped(), env={k: v for k, v in os.environ.items()
                                         if "MALLOC" in k or "TUNABLES" in k})
tune_malloc()
del calls[:], inside[:]
emb.transform(X)
out.update(tuned_calls=calls, tuned_after=mmapped())
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def fit_in_fresh_process():
    # glibc's own start-up values: no malloc variables from the caller's shell
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"
    }
    done = subprocess.run(
        [sys.executable, "-c", _FIT_WORKER], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_fit_keeps_the_heap_inside_and_leaves_malloc_settings_as_found(
    fit_in_fresh_process,
):
    out = fit_in_fresh_process
    assert out["mmapped_before"] and out["mmapped_after"]  # glibc's default again
    assert out["inside"] and not any(out["inside"])  # no mmap during training
    m_mmap_max, m_trim_threshold = -4, -1
    assert out["calls"] == [
        [m_mmap_max, 0],
        [m_trim_threshold, -1],
        [m_mmap_max, 65536],
        [m_trim_threshold, 128 * 1024],
    ], out["env"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_fit_gives_the_memory_of_its_activations_back(fit_in_fresh_process):
    out = fit_in_fresh_process
    MiB = 2**20
    assert out["peak"] > out["rss_before"] + 64 * MiB  # the check means something
    # stated margin (docs/performance.md): 16 MiB
    assert out["rss_after"] < out["rss_before"] + 16 * MiB


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_transform_keeps_a_process_wide_tune_malloc(fit_in_fresh_process):
    out = fit_in_fresh_process
    assert out["tuned_calls"] == []  # the caller's setting stands
    assert out["tuned_after"] is False  # still no mmap after transform


def test_startup_malloc_settings_read_the_environment(monkeypatch):
    for name in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    m_mmap_max, m_trim_threshold = -4, -1
    assert _startup_malloc_settings() == {
        m_mmap_max: 65536,
        m_trim_threshold: 128 * 1024,
    }
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "7")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_max=0x10:x.y=1")
    assert _startup_malloc_settings() == {m_mmap_max: 16, m_trim_threshold: 65536}


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


def test_cli_lets_openmp_threads_sleep_unless_told_otherwise(monkeypatch):
    args = argparse.Namespace(n_jobs=None, command="simulate")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    _setup_runtime(args)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    _setup_runtime(args)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"  # the user's choice stands
