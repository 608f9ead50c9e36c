"""The memory guard turns impossible allocations into clear MemoryErrors."""

import numpy as np
import pytest

from fscc_sklearn import _resources
from fscc_sklearn._resources import available_memory, check_memory, nbytes_of
from fscc_sklearn.io import read_subtomograms, write_subtomograms


def test_available_memory_is_read_from_the_system():
    avail = available_memory()
    assert isinstance(avail, int) and avail > 0


def test_check_memory_names_the_array_and_sizes(monkeypatch):
    monkeypatch.setattr(_resources, "available_memory", lambda: 2 * 10**9)
    check_memory(10**9, "fits")
    with pytest.raises(MemoryError, match=r"10 stacks: needs 3 GB.*only 2 GB"):
        check_memory(3 * 10**9, "10 stacks")
    monkeypatch.setattr(_resources, "available_memory", lambda: None)
    check_memory(10**30, "unknown limit")  # nothing to compare with: allowed


def test_nbytes_of_never_overflows():
    assert nbytes_of((100_000,) * 3, np.float32) == 4 * 10**15
    assert nbytes_of((2**40, 2**40), np.float64) == 8 * 2**80
    with pytest.raises(ValueError, match="negative"):
        nbytes_of((3, -1), np.float32)


@pytest.mark.parametrize("layout", ["stack", "folder"])
def test_reading_more_than_fits_raises_before_allocating(tmp_path, monkeypatch, layout):
    X = np.zeros((5, 16, 16, 16), np.float32)  # 80 kB
    path = tmp_path / ("s.mrcs" if layout == "stack" else "parts")
    write_subtomograms(path, X, voxel_size=None, layout=layout)
    monkeypatch.setattr(_resources, "available_memory", lambda: 50_000)
    with pytest.raises(MemoryError, match=r"5 subtomograms .*needs 81.9 kB"):
        read_subtomograms(path)
    monkeypatch.setattr(_resources, "available_memory", lambda: 10**6)
    assert read_subtomograms(path).X.shape == X.shape
