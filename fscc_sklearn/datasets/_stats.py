"""Realism statistics: radial and directional power spectra of subtomograms."""

from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft

__all__ = ["SHREC21_REFERENCE_STATS", "noise_spectrum_stats"]

# Measured on one real SHREC'21 subtomogram (TomoTwin test file
# model_0_1BXN_1.mrc, 37^3, 1 nm voxels) with the method of
# noise_spectrum_stats; see shared/data/shrec_imaging.md. Shell powers are
# relative to the 0.20-0.25 shell and were measured without a window.
SHREC21_REFERENCE_STATS: dict = {
    "source": "SHREC'21 model_0_1BXN_1.mrc (TomoTwin test data), 37^3",
    "nyquist_to_mid": 0.164,
    "nyquist_to_mid_no_window": 0.175,
    "shell_edges": [0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50],
    "shell_power_no_window": [1.09, 0.77, 0.99, 1.00, 0.76, 0.51, 0.35, 0.24, 0.175],
    "power_z": 45.0,
    "power_y": 162.0,
    "power_x": 340.0,
    "x_over_z": 340.0 / 45.0,
}


def _hann3(box: int) -> np.ndarray:
    w = np.hanning(box)
    return w[:, None, None] * w[None, :, None] * w[None, None, :]


def noise_spectrum_stats(
    X: np.ndarray,
    *,
    window: str | None = "hann",
    cone_deg: float = 37.0,
    shell: tuple[float, float] = (0.15, 0.30),
    batch_size: int = 256,
) -> dict:
    """Radial fall-off and directional anisotropy of the power spectrum.

    Each volume has its mean removed, is optionally multiplied by a separable
    3D Hann window, and its ``|FFT|^2`` is averaged over the volumes.
    Frequencies are in cycles/voxel (Nyquist 0.5); axes are numpy (z, y, x).

    Parameters
    ----------
    X : array-like of shape (n, d, d, d) or (d, d, d)
        Cubic volumes.
    window : {"hann", None}, default="hann"
        Window applied before the FFT (it reduces leakage from the box edges).
    cone_deg : float, default=37.0
        Half-angle of the cones about each axis used for the anisotropy.
    shell : (float, float), default=(0.15, 0.30)
        Frequency shell (cycles/voxel) used for the anisotropy.
    batch_size : int, default=256
        Volumes per FFT batch (bounds memory).

    Returns
    -------
    stats : dict
        ``shell_edges`` (0.05 steps from 0.05 to 0.5) and ``shell_power``
        (mean power per shell, relative to the 0.20-0.25 shell);
        ``nyquist_to_mid`` = P(0.45-0.50) / P(0.20-0.25);
        ``power_z``, ``power_y``, ``power_x``: mean power in the shell within
        ``cone_deg`` of each axis, and ``x_over_z`` = ``power_x / power_z``
        (about 7.6 for a real SHREC'21 subtomogram: the missing wedge about
        the y tilt axis removes power along the beam, z).

    Examples
    --------
    >>> import numpy as np
    >>> from fscc_sklearn.datasets import noise_spectrum_stats
    >>> white = np.random.RandomState(0).standard_normal((8, 16, 16, 16))
    >>> s = noise_spectrum_stats(white, window=None)
    >>> bool(0.8 < s["nyquist_to_mid"] < 1.2), bool(0.8 < s["x_over_z"] < 1.25)
    (True, True)
    """
    X = np.asarray(X)
    if X.ndim == 3:
        X = X[None]
    if X.ndim != 4 or not X.shape[1] == X.shape[2] == X.shape[3]:
        raise ValueError(f"X must hold cubic volumes (n, d, d, d), got {X.shape}.")
    if window not in ("hann", None):
        raise ValueError(f"window must be 'hann' or None, got {window!r}.")
    box = X.shape[1]
    win = _hann3(box) if window == "hann" else None
    power = np.zeros((box, box, box))
    for start in range(0, len(X), batch_size):
        v = np.asarray(X[start : start + batch_size], dtype=np.float64)
        v = v - v.mean(axis=(1, 2, 3), keepdims=True)
        if win is not None:
            v = v * win
        power += (np.abs(sp_fft.fftn(v, axes=(1, 2, 3))) ** 2).sum(axis=0)
    power /= len(X)

    f = sp_fft.fftfreq(box)
    kz, ky, kx = np.meshgrid(f, f, f, indexing="ij")
    k = np.sqrt(kz**2 + ky**2 + kx**2)
    edges = np.round(np.arange(0.05, 0.5001, 0.05), 2)

    def shell_mean(lo: float, hi: float) -> float:
        # The last shell includes Nyquist itself (k = 0.5 along an axis).
        sel = (k >= lo) & ((k < hi) if hi < 0.5 else (k <= hi))
        return float(power[sel].mean())

    mid = shell_mean(0.20, 0.25)
    shell_power = [
        shell_mean(lo, hi) / mid for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]

    in_shell = (k >= shell[0]) & (k < shell[1])
    cos_min = np.cos(np.radians(cone_deg))
    with np.errstate(invalid="ignore", divide="ignore"):
        along = {
            ax: in_shell & (np.abs(comp) / k >= cos_min)
            for ax, comp in (("z", kz), ("y", ky), ("x", kx))
        }
    p = {ax: float(power[sel].mean()) for ax, sel in along.items()}
    return {
        "shell_edges": edges.tolist(),
        "shell_power": shell_power,
        "nyquist_to_mid": shell_mean(0.45, 0.50) / mid,
        "power_z": p["z"],
        "power_y": p["y"],
        "power_x": p["x"],
        "x_over_z": p["x"] / p["z"],
    }
