import mrcfile
import numpy as np
import pytest
from scipy import ndimage

from fscc_sklearn.datasets import (
    SHREC19_CLASSES,
    SHREC21_CLASSES,
    available_maps,
    load_map,
    prepare_map,
    simulate_subtomograms,
)
from fscc_sklearn.datasets._maps import _map_dir


def _ball(n=40, radius=8.0, value=3.0):
    c = (n - 1) / 2
    z, y, x = np.ogrid[:n, :n, :n]
    r = np.sqrt((z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2)
    return np.where(r <= radius, value, 0.0).astype(np.float32)


def test_packaged_maps_and_notices():
    names = available_maps()
    assert len(names) == 15
    assert set(SHREC21_CLASSES) <= set(names)
    assert set(SHREC19_CLASSES) <= set(names)
    folder = _map_dir()
    assert (folder / "LICENSE-polnet.txt").is_file()
    assert "Apache" in (folder / "SOURCE.md").read_text()


def test_load_map_reads_header_voxel_size():
    vol, vs = load_map("1BXN")  # case-insensitive
    assert vol.shape == (52, 52, 52) and vol.dtype == np.float32
    assert vs == 10.0


def test_unknown_map_name_is_refused():
    with pytest.raises(ValueError, match="Unknown map name 'nope'"):
        load_map("nope")
    with pytest.raises(ValueError, match="Unknown map name"):
        simulate_subtomograms(["1bxn", "nope"], 1, random_state=0)


def test_prepare_map_normalises_and_centres():
    vol = _ball() + 7.0  # constant background must be removed
    out = prepare_map(vol, 10.0)
    assert out.max() == pytest.approx(1.0)
    assert out[0, 0, 0] == pytest.approx(0.0)
    assert ndimage.center_of_mass(out) == pytest.approx(((40 - 1) / 2,) * 3)
    assert prepare_map(vol, 10.0, box=24).shape == (24, 24, 24)
    assert prepare_map(vol, 10.0, box=64).shape == (64, 64, 64)


def test_prepare_map_resamples_to_target_voxel_size():
    # A ball of radius 8 voxels at 5 A is a ball of radius 4 voxels at 10 A.
    out = prepare_map(_ball(40, 8.0), 5.0, target_voxel_size=10.0)
    assert out.shape == (20, 20, 20)
    volume_voxels = (out > 0.5).sum()
    assert volume_voxels == pytest.approx(4 / 3 * np.pi * 4**3, rel=0.15)
    assert ndimage.center_of_mass(out) == pytest.approx((9.5,) * 3, abs=1e-3)


@pytest.mark.parametrize("voxel_size", [None, 0, 0.0, -1.0])
def test_prepare_map_refuses_unknown_voxel_size(voxel_size):
    with pytest.raises(ValueError, match="voxel size is unknown"):
        prepare_map(_ball(), voxel_size)


def test_simulate_refuses_array_without_voxel_size():
    with pytest.raises(ValueError, match="Map 'ball'.*voxel size is unknown"):
        simulate_subtomograms({"ball": _ball()}, 1, random_state=0)


def test_simulate_resamples_maps_given_at_other_voxel_size():
    vol10, _ = load_map("1qvr")
    vol5 = ndimage.zoom(vol10, 2.0, order=1)  # the same particle at 5 A voxels
    kw = dict(n_per_class=3, box=24, snr=None, random_state=3)
    ref = simulate_subtomograms(["1qvr"], **kw).X
    via_tuple = simulate_subtomograms({"1qvr": (vol5, 5.0)}, **kw).X
    via_param = simulate_subtomograms({"1qvr": vol5}, map_voxel_size=5.0, **kw).X
    np.testing.assert_array_equal(via_tuple, via_param)
    corr = np.corrcoef(ref.ravel(), via_tuple.ravel())[0, 1]
    assert corr > 0.95
    # Forgetting the resampling would blow the particle up twofold.
    wrong = simulate_subtomograms({"1qvr": (vol5, 10.0)}, **kw).X
    assert np.corrcoef(ref.ravel(), wrong.ravel())[0, 1] < corr - 0.2


def test_simulate_reads_mrc_paths(tmp_path):
    vol, _ = load_map("3gl1")
    with_size = tmp_path / "a.mrc"
    no_size = tmp_path / "b.mrc"
    with mrcfile.new(with_size) as mrc:
        mrc.set_data(vol)
        mrc.voxel_size = 10.0
    with mrcfile.new(no_size) as mrc:
        mrc.set_data(vol)  # header voxel size stays 0
    kw = dict(n_per_class=2, box=16, snr=None, random_state=0)
    ref = simulate_subtomograms(["3gl1"], **kw).X
    np.testing.assert_allclose(
        simulate_subtomograms({"3gl1": with_size}, **kw).X, ref, atol=1e-6
    )
    with pytest.raises(ValueError, match="voxel size is unknown"):
        simulate_subtomograms({"3gl1": str(no_size)}, **kw)
    got = simulate_subtomograms(
        {"3gl1": str(no_size)}, map_voxel_size={"3gl1": 10.0}, **kw
    ).X
    np.testing.assert_allclose(got, ref, atol=1e-6)
