"""Shared fixtures for the fscc_sklearn.io tests."""

import mrcfile
import numpy as np
import pytest


def ramp_volume(shape_zyx):
    """Asymmetric volume whose value encodes its index: 10000*z + 100*y + x."""
    z, y, x = np.indices(shape_zyx)
    return (10000 * z + 100 * y + x).astype(np.float32)


@pytest.fixture
def ramp_tomogram(tmp_path):
    """An MRC tomogram of shape (Z, Y, X) = (30, 40, 50) holding ramp_volume."""
    data = ramp_volume((30, 40, 50))
    path = tmp_path / "tomo.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 10.0
    return path, data
