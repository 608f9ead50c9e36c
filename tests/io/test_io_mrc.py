"""Tests for reading subtomograms from MRC files."""

import os
import warnings

import mrcfile
import numpy as np
import pytest

from fscc_sklearn.io import (
    read_subtomograms,
    read_voxel_size,
    write_subtomograms,
)


def _write_volume(path, data, voxel_size=None):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        if voxel_size is not None:
            mrc.voxel_size = voxel_size


def _random_stack(n=4, shape=(6, 7, 8), seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def test_stack_round_trip_values_and_voxel_size(tmp_path):
    X = _random_stack()
    path = tmp_path / "stack.mrcs"
    written = write_subtomograms(path, X, voxel_size=10.0)
    assert written == [path]
    with mrcfile.open(path) as mrc:
        assert mrc.is_volume_stack()
        assert int(mrc.header.ispg) == 401
    sub = read_subtomograms(path)
    assert sub.X.dtype == np.float32
    np.testing.assert_array_equal(sub.X, X)
    assert sub.voxel_size == pytest.approx(10.0)
    assert sub.filenames == (str(path),) * 4
    assert sub.index_in_file.tolist() == [0, 1, 2, 3]
    assert len(sub) == 4


def test_folder_round_trip_sorted_order(tmp_path):
    X = _random_stack(n=3)
    folder = tmp_path / "parts"
    paths = write_subtomograms(folder, X, voxel_size=13.5)
    assert [p.name for p in paths] == [
        "subtomo_000000.mrc",
        "subtomo_000001.mrc",
        "subtomo_000002.mrc",
    ]
    sub = read_subtomograms(folder)
    np.testing.assert_array_equal(sub.X, X)
    assert sub.voxel_size == pytest.approx(13.5)
    assert [os.path.basename(f) for f in sub.filenames] == [p.name for p in paths]
    # a list of files works too, in the order given
    sub2 = read_subtomograms([paths[2], paths[0]])
    np.testing.assert_array_equal(sub2.X, X[[2, 0]])


def test_folder_sorted_by_name_not_creation_order(tmp_path):
    for name, value in [("b.mrc", 2.0), ("a.mrc", 1.0), ("c.map", 3.0)]:
        _write_volume(tmp_path / name, np.full((4, 4, 4), value, np.float32))
    (tmp_path / "notes.txt").write_text("ignored")
    sub = read_subtomograms(tmp_path)
    assert sub.X[:, 0, 0, 0].tolist() == [1.0, 2.0, 3.0]


def test_single_volume_is_one_particle_and_unset_voxel_size(tmp_path):
    data = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    path = tmp_path / "one.mrc"
    _write_volume(path, data)
    sub = read_subtomograms(path)
    assert sub.X.shape == (1, 5, 6, 7)
    assert sub.X.dtype == np.float32
    np.testing.assert_array_equal(sub.X[0], data.astype(np.float32))
    assert sub.voxel_size is None
    assert read_voxel_size(path) is None


def test_expected_voxel_size(tmp_path):
    path = tmp_path / "v.mrc"
    _write_volume(path, np.zeros((4, 4, 4), np.float32), voxel_size=10.0)
    assert read_subtomograms(path, expected_voxel_size=10.005).voxel_size == 10.0
    with pytest.raises(ValueError, match=r"v\.mrc.*voxel size 10\.0.*expected 12"):
        read_subtomograms(path, expected_voxel_size=12.0)
    unset = tmp_path / "unset.mrc"
    _write_volume(unset, np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="unset.mrc.*voxel size None"):
        read_subtomograms(unset, expected_voxel_size=10.0)
    with pytest.raises(ValueError, match="expected_voxel_size must be a positive"):
        read_subtomograms(path, expected_voxel_size=-1.0)


def test_folder_box_shape_mismatch_names_file(tmp_path):
    _write_volume(tmp_path / "a.mrc", np.zeros((4, 4, 4), np.float32))
    _write_volume(tmp_path / "b.mrc", np.zeros((4, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"b\.mrc.*box shape \(4, 4, 5\)"):
        read_subtomograms(tmp_path)


def test_folder_voxel_size_mismatch_names_file(tmp_path):
    _write_volume(tmp_path / "a.mrc", np.zeros((4, 4, 4), np.float32), 10.0)
    _write_volume(tmp_path / "b.mrc", np.zeros((4, 4, 4), np.float32), 10.0)
    _write_volume(tmp_path / "c.mrc", np.zeros((4, 4, 4), np.float32), 11.0)
    with pytest.raises(ValueError, match=r"c\.mrc.*voxel size 11\.0"):
        read_subtomograms(tmp_path)


def test_stack_inside_folder_rejected(tmp_path):
    write_subtomograms(tmp_path / "s.mrcs", _random_stack(n=2), voxel_size=None)
    with pytest.raises(ValueError, match=r"s\.mrcs.*volume stack of 2"):
        read_subtomograms(tmp_path)


def test_truncated_file_raises_naming_file(tmp_path):
    path = tmp_path / "cut.mrc"
    write_subtomograms(path, _random_stack(), voxel_size=10.0)
    raw = path.read_bytes()
    path.write_bytes(raw[:-100])
    with pytest.raises(ValueError, match=r"cut\.mrc.*corrupt or truncated"):
        read_subtomograms(path)
    # truncated inside the header
    path.write_bytes(raw[:300])
    with pytest.raises(ValueError, match=r"cut\.mrc"):
        read_subtomograms(path)


def test_garbage_and_empty_files_raise_naming_file(tmp_path):
    garbage = tmp_path / "garbage.mrc"
    garbage.write_bytes(b"this is not an MRC file at all " * 64)
    with pytest.raises(ValueError, match=r"garbage\.mrc"):
        read_subtomograms(garbage)
    empty = tmp_path / "empty.mrc"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.mrc"):
        read_subtomograms(empty)


def test_corrupt_file_in_folder_is_named(tmp_path):
    _write_volume(tmp_path / "a.mrc", np.zeros((4, 4, 4), np.float32))
    (tmp_path / "b.mrc").write_bytes(b"\x00" * 2000)
    with pytest.raises(ValueError, match=r"b\.mrc"):
        read_subtomograms(tmp_path)


def test_oversized_file_warns_with_name(tmp_path):
    path = tmp_path / "big.mrc"
    _write_volume(path, np.zeros((4, 4, 4), np.float32))
    with open(path, "ab") as f:
        f.write(b"\x00" * 16)
    with pytest.warns(RuntimeWarning, match=r"big\.mrc.*larger than expected"):
        sub = read_subtomograms(path)
    assert sub.X.shape == (1, 4, 4, 4)


def test_missing_paths_and_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mrc"):
        read_subtomograms(tmp_path / "nope.mrc")
    with pytest.raises(ValueError, match="no MRC files"):
        read_subtomograms(tmp_path)
    with pytest.raises(ValueError, match="empty list"):
        read_subtomograms([])
    img = tmp_path / "img.mrc"
    _write_volume(img, np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"img\.mrc.*2D data"):
        read_subtomograms(img)


def test_anisotropic_voxel_size_rejected(tmp_path):
    path = tmp_path / "aniso.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((4, 4, 4), np.float32))
        mrc.voxel_size = (10.0, 10.0, 20.0)
    with pytest.raises(ValueError, match=r"aniso\.mrc.*anisotropic"):
        read_subtomograms(path)


def test_reads_are_not_views_of_the_file(tmp_path):
    path = tmp_path / "s.mrcs"
    write_subtomograms(path, _random_stack(n=2), voxel_size=1.0)
    sub = read_subtomograms(path)
    sub.X[:] = 0  # writable, independent copy
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = read_subtomograms(path)
    assert np.any(again.X != 0)


def test_folder_accepts_single_volume_stacks(tmp_path):
    X = _random_stack(n=2)
    write_subtomograms(tmp_path / "a.mrcs", X[:1], voxel_size=3.0)
    write_subtomograms(tmp_path / "b.mrcs", X[1:], voxel_size=3.0)
    sub = read_subtomograms(tmp_path)
    np.testing.assert_array_equal(sub.X, X)
    assert sub.index_in_file.tolist() == [0, 0]
