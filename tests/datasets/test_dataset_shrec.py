import os

import numpy as np
import pytest

from fscc_sklearn.datasets import (
    SHREC19_CLASSES,
    SHREC21_CLASSES,
    _shrec,
    get_data_home,
    load_shrec19_like,
    load_shrec21_like,
)

SMALL = dict(n_per_class=2, box=12, progress=False)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FSCC_SKLEARN_DATA", str(tmp_path))
    return tmp_path


def test_get_data_home_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("FSCC_SKLEARN_DATA", str(tmp_path / "a"))
    assert get_data_home() == tmp_path / "a"
    monkeypatch.delenv("FSCC_SKLEARN_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert get_data_home() == tmp_path / "xdg" / "fscc_sklearn"
    assert get_data_home(tmp_path / "b") == tmp_path / "b"
    assert (tmp_path / "b").is_dir()


def test_shrec21_like_paper_split(cache_dir):
    d = load_shrec21_like(**SMALL)
    assert d.novel_classes == ["1u6g", "3cf3", "3gl1", "3qm1", "4v94"]
    assert sorted(d.base_classes + d.novel_classes) == sorted(SHREC21_CLASSES)
    assert len(d.base_classes) == 8
    assert d.X_base.shape == (16, 12, 12, 12) and d.X_base.dtype == np.float32
    assert d.X_novel.shape == (10, 12, 12, 12)
    assert set(d.y_base) == set(d.base_classes)
    assert set(d.y_novel) == set(d.novel_classes)
    assert d.params["seed"] == 0 and d.params["snr"] == 0.05
    assert len(d.rotations_base) == 16 and len(d.defocus_novel) == 10


def test_shrec19_like_stand_ins(cache_dir):
    d = load_shrec19_like(**SMALL)
    assert d.params["snr"] == 0.02
    assert sorted(d.base_classes + d.novel_classes) == sorted(SHREC19_CLASSES)
    assert d.novel_classes == ["1u6g", "3cf3", "3gl1", "3qm1", "3j9i"]
    assert "4v4r" in d.base_classes
    assert d.stand_ins == {"4b4t": "4v4r", "4d8q": "3j9i"}
    assert "stand" in load_shrec19_like.__doc__ and "4d8q" in d.DESCR


def test_cache_hit_is_identical_and_not_recomputed(cache_dir, monkeypatch):
    first = load_shrec21_like(random_state=5, **SMALL)
    files = list(cache_dir.glob("shrec21_like_*.npz"))
    assert len(files) == 1 and first.cache_path == str(files[0])
    assert not list(cache_dir.glob("*.tmp"))

    def boom(*args, **kwargs):
        raise AssertionError("simulated again despite a cache hit")

    monkeypatch.setattr(_shrec, "simulate_subtomograms", boom)
    second = load_shrec21_like(random_state=5, **SMALL)
    for key in ("X_base", "y_base", "X_novel", "y_novel", "rotations_novel"):
        np.testing.assert_array_equal(first[key], second[key])
    # Another seed or SNR is another cache entry (and must simulate).
    with pytest.raises(AssertionError, match="simulated again"):
        load_shrec21_like(random_state=6, **SMALL)
    with pytest.raises(AssertionError, match="simulated again"):
        load_shrec21_like(random_state=5, snr=0.1, **SMALL)


def test_cache_reproducible_from_seed(cache_dir, tmp_path):
    cached = load_shrec21_like(random_state=3, **SMALL)
    fresh = load_shrec21_like(random_state=3, cache=False, **SMALL)
    np.testing.assert_array_equal(cached.X_novel, fresh.X_novel)
    other = load_shrec21_like(random_state=4, cache=False, **SMALL)
    assert not np.allclose(cached.X_novel, other.X_novel)


def test_no_cache_writes_nothing(cache_dir):
    d = load_shrec21_like(cache=False, **SMALL)
    assert d.cache_path is None
    assert not list(cache_dir.iterdir())


def test_corrupt_cache_is_recomputed(cache_dir):
    d = load_shrec19_like(**SMALL)
    with open(d.cache_path, "wb") as fh:
        fh.write(b"not an npz")
    again = load_shrec19_like(**SMALL)
    np.testing.assert_array_equal(d.X_base, again.X_base)


def test_custom_split_and_errors(cache_dir):
    d = load_shrec21_like(split=["4cr2", "5MRC"], cache=False, **SMALL)
    assert d.novel_classes == ["4cr2", "5mrc"] and len(d.base_classes) == 11
    with pytest.raises(ValueError, match="Unknown novel classes"):
        load_shrec21_like(split=["4b4t"], **SMALL)
    with pytest.raises(ValueError, match="split must be 'paper'"):
        load_shrec21_like(split="random", **SMALL)
    with pytest.raises(ValueError, match="at least one base"):
        load_shrec21_like(split=list(SHREC21_CLASSES), **SMALL)
    with pytest.raises(ValueError, match="random_state must be an int"):
        load_shrec21_like(random_state=np.random.RandomState(0), **SMALL)


def test_simulate_kwargs_enter_the_key(cache_dir):
    a = load_shrec21_like(simulate_kwargs={"tilt_range": (-45, 45)}, **SMALL)
    b = load_shrec21_like(**SMALL)
    assert a.cache_path != b.cache_path
    assert a.params["simulate_kwargs"] == {"tilt_range": (-45, 45)}
    assert os.path.exists(a.cache_path) and os.path.exists(b.cache_path)
    with pytest.raises(ValueError, match="as arguments"):
        load_shrec21_like(simulate_kwargs={"snr": 1.0}, **SMALL)
