"""Tiny synthetic subtomograms of blob-shaped particles, for tests and checks."""

import numpy as np
from sklearn.utils import check_random_state


def make_toy_volumes(
    n_classes=4, n_per_class=20, box=16, n_blobs=4, noise=0.5, random_state=None
):
    """Noisy 3D volumes whose classes differ by the layout of a few Gaussian blobs.

    Every class has its own random blob layout (its "structure"); each sample is
    that layout with a random shift of up to one voxel, random blob amplitudes
    and Gaussian noise of standard deviation ``noise``.

    Returns
    -------
    X : ndarray of shape (n_classes * n_per_class, box, box, box), float32
    y : ndarray of shape (n_classes * n_per_class,), int
    """
    rng = check_random_state(random_state)
    grid = np.stack(np.meshgrid(*[np.arange(box)] * 3, indexing="ij"), -1)
    X = np.empty((n_classes * n_per_class, box, box, box), dtype=np.float32)
    y = np.repeat(np.arange(n_classes), n_per_class)
    for c in range(n_classes):
        centres = rng.uniform(box * 0.25, box * 0.75, size=(n_blobs, 3))
        widths = rng.uniform(0.8, 2.0, size=n_blobs) * box / 16
        for i in np.flatnonzero(y == c):
            shifted = centres + rng.uniform(-1, 1, size=3)
            amps = rng.uniform(0.7, 1.3, size=n_blobs)
            d2 = ((grid[None] - shifted[:, None, None, None]) ** 2).sum(-1)
            vol = (
                amps[:, None, None, None]
                * np.exp(-d2 / (2 * widths[:, None, None, None] ** 2))
            ).sum(0)
            X[i] = vol + noise * rng.standard_normal(vol.shape)
    return X, y
