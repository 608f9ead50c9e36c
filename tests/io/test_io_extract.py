"""Tests for extracting subtomograms from tomograms."""

import tracemalloc
import warnings

import mrcfile
import numpy as np
import pytest

from fscc_sklearn.io import (
    ParticleTable,
    box_bounds,
    extract_subtomograms,
    read_particle_list,
    write_particle_table,
)


def _value(x, y, z):
    return 10000 * z + 100 * y + x


@pytest.mark.parametrize("box", [4, 5, 1, 2])
def test_box_spans_documented_range(ramp_tomogram, box):
    path, data = ramp_tomogram
    x, y, z = 20, 15, 10
    res = extract_subtomograms(path, [[x, y, z]], box=box)
    lo = np.array([z, y, x]) - box // 2
    expected = data[lo[0] : lo[0] + box, lo[1] : lo[1] + box, lo[2] : lo[2] + box]
    assert res.X.shape == (1, box, box, box)
    assert res.X.dtype == np.float32
    np.testing.assert_array_equal(res.X[0], expected)
    # the particle centre sits at index box // 2 on every axis
    c = box // 2
    assert res.X[0, c, c, c] == _value(x, y, z)
    assert res.voxel_size == pytest.approx(10.0)
    start, stop = box_bounds(np.array([z, y, x]), box)
    np.testing.assert_array_equal(stop - start, box)


def test_axis_order_each_voxel(ramp_tomogram):
    path, _ = ramp_tomogram
    res = extract_subtomograms(path, [[25, 12, 7]], box=3)
    sub = res.X[0]
    # moving along the last axis of the box changes x by one, etc.
    assert sub[1, 1, 2] - sub[1, 1, 1] == 1
    assert sub[1, 2, 1] - sub[1, 1, 1] == 100
    assert sub[2, 1, 1] - sub[1, 1, 1] == 10000
    assert sub[1, 1, 1] == _value(25, 12, 7)


def _list_files(tmp_path, particles):
    """Write the same particles (label, x, y, z) in the three list formats."""
    shrec19 = tmp_path / "particle_locations_model_0.txt"
    shrec19.write_text(  # the header decides the axis order (z y x)
        "# pdb_id Z Y X rot_X rot_Y rot_Z\n"
        + "".join(f"{lab.lower()} {z} {y} {x} 0 0 0\n" for lab, x, y, z in particles)
    )
    shrec21 = tmp_path / "particle_locations.txt"
    shrec21.write_text(
        "".join(f"{lab} {x} {y} {z} 0 0 0\n" for lab, x, y, z in particles)
        + "vesicle 25 20 15 nan nan nan\n"
    )
    star = tmp_path / "particles.star"
    write_particle_table(
        star,
        ParticleTable(
            coords=[[x, y, z] for _, x, y, z in particles],
            labels=[lab for lab, *_ in particles],
        ),
    )
    return shrec19, shrec21, star


@pytest.mark.parametrize("box", [4, 5])
def test_all_list_formats_pick_same_voxels(ramp_tomogram, tmp_path, box):
    path, data = ramp_tomogram
    particles = [("1BXN", 20, 15, 10), ("3GL1", 40, 30, 22), ("4V94", 5, 33, 17)]
    files = _list_files(tmp_path, particles)
    formats = []
    results = []
    for f in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the SHREC'21 vesicle row
            table = read_particle_list(f)
        formats.append(table.format)
        results.append(extract_subtomograms(path, table, box=box))
    assert formats == ["shrec19", "shrec21", "star"]
    c = box // 2
    for res in results:
        assert res.kept.tolist() == [0, 1, 2]
        centres = res.X[:, c, c, c].tolist()
        assert centres == [_value(x, y, z) for _, x, y, z in particles]
        np.testing.assert_array_equal(res.X, results[0].X)


def test_skip_vs_pad_counts_and_values(ramp_tomogram):
    path, data = ramp_tomogram  # (Z, Y, X) = (30, 40, 50)
    coords = [
        [20, 15, 10],  # inside
        [1, 15, 10],  # box reaches x = -1
        [48, 38, 28],  # box reaches x = 50, y = 40, z = 30
        [2, 2, 2],  # touches the low border exactly, fits (box 5)
        [47, 37, 27],  # touches the high border exactly, fits (box 5)
    ]
    skip = extract_subtomograms(path, coords, box=5, border="skip")
    assert skip.kept.tolist() == [0, 3, 4]
    assert skip.skipped.tolist() == [1, 2]
    assert skip.n_skipped == 2 and skip.n_padded == 0
    assert len(skip) == 3

    pad0 = extract_subtomograms(path, coords, box=5, border="pad", pad_value=0.0)
    assert pad0.kept.tolist() == [0, 1, 2, 3, 4]
    assert pad0.padded.tolist() == [1, 2]
    assert pad0.n_padded == 2 and pad0.n_skipped == 0
    np.testing.assert_array_equal(pad0.X[[0, 3, 4]], skip.X)
    # particle 1: x range [-1, 4) -> first x column padded, rest from the data
    assert np.all(pad0.X[1, :, :, 0] == 0)
    np.testing.assert_array_equal(pad0.X[1, :, :, 1:], data[8:13, 13:18, 0:4])
    # particle 2: ranges z [26, 31), y [36, 41), x [46, 51)
    inner = data[26:30, 36:40, 46:50]
    np.testing.assert_array_equal(pad0.X[2, :4, :4, :4], inner)
    assert np.all(pad0.X[2, 4, :, :] == 0)
    assert pad0.X[2, 2, 2, 2] == _value(48, 38, 28)

    padm = extract_subtomograms(path, coords, box=5, border="pad")
    assert padm.X[2, 4, 4, 4] == pytest.approx(inner.mean(dtype=np.float64))
    np.testing.assert_array_equal(padm.X[2, :4, :4, :4], inner)


def test_even_box_border_is_asymmetric(ramp_tomogram):
    path, _ = ramp_tomogram
    # box 4 spans [c - 2, c + 2): x = 2 fits at the low side, x = 48 at the high
    res = extract_subtomograms(path, [[2, 20, 15], [48, 20, 15], [49, 20, 15]], box=4)
    assert res.kept.tolist() == [0, 1]
    assert res.skipped.tolist() == [2]


def test_rounding_to_nearest_voxel(ramp_tomogram):
    path, _ = ramp_tomogram
    res = extract_subtomograms(path, [[20.5, 15.49, 9.6]], box=1)
    assert res.X[0, 0, 0, 0] == _value(21, 15, 10)


def test_centres_outside_tomogram_raise(ramp_tomogram):
    path, _ = ramp_tomogram
    with pytest.raises(ValueError, match=r"1 particle centre.*outside.*#1 \(x, y, z\)"):
        extract_subtomograms(path, [[20, 15, 10], [50, 15, 10]], box=5, border="pad")
    # a Z Y X list mistaken for x y z goes outside along y here
    with pytest.raises(ValueError, match=r"outside.*\(30, 40, 50\)"):
        extract_subtomograms(path, [[10, 45, 20]], box=3)
    with pytest.raises(ValueError, match="outside"):
        extract_subtomograms(path, [[-1, 0, 0]], box=3, border="pad")


def test_array_and_memmap_inputs(ramp_tomogram):
    path, data = ramp_tomogram
    coords = np.array([[20, 15, 10], [30, 5, 3]])
    from_array = extract_subtomograms(data, coords, box=3)
    assert from_array.voxel_size is None
    with mrcfile.mmap(path) as mrc:
        from_memmap = extract_subtomograms(mrc.data, coords, box=3)
    from_file = extract_subtomograms(path, coords, box=3)
    np.testing.assert_array_equal(from_array.X, from_file.X)
    np.testing.assert_array_equal(from_memmap.X, from_file.X)


def test_empty_coordinate_list(ramp_tomogram):
    path, _ = ramp_tomogram
    res = extract_subtomograms(path, np.empty((0, 3)), box=4)
    assert res.X.shape == (0, 4, 4, 4)
    assert res.n_skipped == 0


def test_argument_validation(ramp_tomogram, tmp_path):
    path, data = ramp_tomogram
    with pytest.raises(ValueError, match="box must be a positive integer"):
        extract_subtomograms(path, [[1, 1, 1]], box=0)
    with pytest.raises(ValueError, match="box must be a positive integer"):
        extract_subtomograms(path, [[1, 1, 1]], box=4.0)
    with pytest.raises(ValueError, match="border must be one of"):
        extract_subtomograms(path, [[1, 1, 1]], box=3, border="wrap")
    with pytest.raises(ValueError, match="pad_value"):
        extract_subtomograms(path, [[1, 1, 1]], box=3, border="pad", pad_value="zero")
    with pytest.raises(ValueError, match="pad_value"):
        extract_subtomograms(path, [[1, 1, 1]], box=3, border="pad", pad_value=None)
    with pytest.raises(ValueError, match="pad_value"):
        extract_subtomograms(path, [[1, 1, 1]], box=3, border="pad", pad_value=np.inf)
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        extract_subtomograms(path, [[1, 1]], box=3)
    with pytest.raises(ValueError, match="non-finite"):
        extract_subtomograms(path, [[1, np.nan, 1]], box=3)
    with pytest.raises(ValueError, match="3D volume"):
        extract_subtomograms(data[0], [[1, 1, 1]], box=3)
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"bad\.mrc"):
        extract_subtomograms(bad, [[1, 1, 1]], box=3)


def test_large_tomogram_is_not_loaded(tmp_path):
    """A sparse 512^3 float32 tomogram (512 MiB) is sliced, never read whole."""
    path = tmp_path / "big.mrc"
    n = 512
    coords = np.array([[100, 200, 300], [500, 10, 256], [256, 256, 256]])
    with mrcfile.new_mmap(path, shape=(n, n, n), mrc_mode=2) as mrc:
        for x, y, z in coords:
            mrc.data[z, y, x] = _value(x, y, z)
        mrc.voxel_size = 10.0
    assert path.stat().st_size > n**3 * 4

    tracemalloc.start()
    try:
        res = extract_subtomograms(path, coords, box=32, border="pad", pad_value=0.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.X.shape == (3, 32, 32, 32)
    assert res.X[:, 16, 16, 16].tolist() == [_value(*c) for c in coords]
    assert res.padded.tolist() == [1]
    # output is 3 * 32^3 * 4 B = 384 KiB; the tomogram would be 512 MiB
    assert peak < 8 * 2**20, f"peak traced memory {peak / 2**20:.1f} MiB"
