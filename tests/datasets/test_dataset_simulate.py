import numpy as np
import pytest
from scipy import fft as sp_fft
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fscc_sklearn.datasets import (
    missing_wedge_mask,
    noise_spectrum_stats,
    simulate_subtomograms,
)
from fscc_sklearn.datasets._simulate import _electron_wavelength

CLASSES = ["1bxn", "1qvr", "3cf3", "1u6g"]  # similar sizes: size alone does not tell


@pytest.fixture(scope="module")
def pair():
    """The same draws without and with noise (SNR 0.05), 4 classes x 12."""
    kw = dict(n_per_class=12, box=32, random_state=7)
    clean = simulate_subtomograms(CLASSES, snr=None, **kw)
    noisy = simulate_subtomograms(CLASSES, snr=0.05, **kw)
    return clean, noisy


def test_shapes_dtypes_and_metadata(pair):
    _, d = pair
    n = 4 * 12
    assert d.X.shape == (n, 32, 32, 32) and d.X.dtype == np.float32
    assert d.y.shape == (n,) and d.y.dtype.kind == "U"
    assert d.y.tolist() == [c for c in CLASSES for _ in range(12)]
    assert d.class_names == CLASSES
    assert d.rotations.shape == (n, 3, 3)
    eye = np.einsum("nij,nkj->nik", d.rotations, d.rotations)
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape), atol=1e-10)
    np.testing.assert_allclose(np.linalg.det(d.rotations), 1.0)
    assert np.all(np.abs(d.shifts) <= 1.0)
    assert np.all((d.defocus >= 2.0) & (d.defocus <= 5.0))
    assert np.isfinite(d.X).all()


def test_same_seed_same_data_other_seed_other_data():
    kw = dict(n_per_class=3, box=16, snr=0.1)
    a = simulate_subtomograms(["1bxn", "3qm1"], random_state=1, **kw)
    b = simulate_subtomograms(["1bxn", "3qm1"], random_state=1, **kw)
    c = simulate_subtomograms(["1bxn", "3qm1"], random_state=2, **kw)
    d = simulate_subtomograms(["1bxn", "3qm1"], random_state=1, n_jobs=2, **kw)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.rotations, b.rotations)
    np.testing.assert_array_equal(a.X, d.X)  # threads do not change results
    assert not np.allclose(a.X, c.X)
    assert not np.allclose(a.rotations, c.rotations)


def test_same_draws_with_and_without_noise(pair):
    clean, noisy = pair
    np.testing.assert_array_equal(clean.rotations, noisy.rotations)
    np.testing.assert_array_equal(clean.defocus, noisy.defocus)
    assert clean.noise_std == 0.0 and noisy.noise_std > 0


@pytest.mark.parametrize("snr", [0.02, 0.05, 1.0])
def test_measured_snr_matches_request(snr):
    kw = dict(n_per_class=6, box=24, random_state=0)
    clean = simulate_subtomograms(CLASSES, snr=None, **kw).X
    noise = simulate_subtomograms(CLASSES, snr=snr, **kw).X - clean
    measured = clean.var(axis=(1, 2, 3)).mean() / noise.var()
    assert measured == pytest.approx(snr, rel=0.2)
    # The noise level is one per data set, so per particle it barely varies.
    per_particle = noise.var(axis=(1, 2, 3))
    assert per_particle.std() / per_particle.mean() < 0.1


def _wedge_power(X, tilt_deg):
    """Mean |F|^2 of volumes strictly inside / well outside a +-tilt_deg wedge."""
    box = X.shape[-1]
    power = (np.abs(sp_fft.rfftn(X, axes=(1, 2, 3))) ** 2).mean(axis=0)
    kz = sp_fft.fftfreq(box)[:, None, None]
    ky = sp_fft.fftfreq(box)[None, :, None]
    kx = sp_fft.rfftfreq(box)[None, None, :]
    angle = np.degrees(np.arctan2(np.abs(kz), np.abs(kx)))  # 0 along x, 90 along z
    radius = np.sqrt(kz**2 + ky**2 + kx**2)
    band = np.broadcast_to((radius > 0.05) & (radius < 0.3), power.shape)
    inside = band & np.broadcast_to(angle > tilt_deg + 3, power.shape)
    outside = band & np.broadcast_to(angle < tilt_deg - 3, power.shape)
    return power[inside].mean(), power[outside].mean()


@pytest.mark.parametrize("tilt", [60.0, 45.0])
def test_missing_wedge_in_fourier_space(pair, tilt):
    if tilt == 60.0:
        clean, noisy = pair
    else:
        kw = dict(n_per_class=4, box=32, random_state=1, tilt_range=(-tilt, tilt))
        clean = simulate_subtomograms(CLASSES, snr=None, **kw)
        noisy = simulate_subtomograms(CLASSES, snr=0.05, **kw)
    for d in (clean, noisy):
        inside, outside = _wedge_power(d.X, tilt)
        assert outside > 0
        assert inside < 1e-8 * outside


def test_wedge_mask_geometry():
    m = missing_wedge_mask(32)
    assert m.shape == (32, 32, 17)
    full = missing_wedge_mask(32, rfft=False)
    # Symmetric under k -> -k (a central section holds both).
    np.testing.assert_array_equal(
        full, np.roll(full[::-1, ::-1, ::-1], 1, axis=(0, 1, 2))
    )
    # x and y axes measured, z axis missing (beam along z, tilt axis y).
    assert m[0, 0, 5] and m[0, 5, 0] and not m[5, 0, 0]
    # Direction 50 degrees from x in the z-x plane: in the data for +-60,
    # in the wedge for +-45.
    kz, kx = 6, 5  # atan(6/5) = 50.2 degrees
    assert m[kz, 0, kx] and not missing_wedge_mask(32, (-45, 45))[kz, 0, kx]
    # Asymmetric range: only one sign of the angle is kept.
    asym = missing_wedge_mask(32, (-10, 55))
    assert asym[32 - kz, 0, kx] != asym[kz, 0, kx]
    with pytest.raises(ValueError, match="tilt_range"):
        missing_wedge_mask(8, (-100, 60))


def test_noise_is_coloured_and_anisotropic(pair):
    clean, noisy = pair
    stats = noise_spectrum_stats(noisy.X - clean.X)
    assert 0.12 < stats["nyquist_to_mid"] < 0.22  # real SHREC'21: 0.164
    assert 4.0 < stats["x_over_z"] < 12.0  # real SHREC'21: about 7.6
    kw = dict(n_per_class=8, box=32, noise_spectrum="white", random_state=0)
    white = simulate_subtomograms(["1bxn"], snr=0.05, **kw).X
    white -= simulate_subtomograms(["1bxn"], snr=None, **kw).X
    assert noise_spectrum_stats(white, window=None)["nyquist_to_mid"] > 0.8


def test_ctf_sign_and_defocus(pair):
    clean, _ = pair
    # Phase contrast with underfocus makes protein dark at low resolution.
    centre = clean.X[:, 12:20, 12:20, 12:20].mean(axis=(1, 2, 3))
    assert np.all(centre < 0)
    kw = dict(n_per_class=2, box=24, snr=None, random_state=0)
    near = simulate_subtomograms(["1bxn"], defocus=2.0, **kw).X
    far = simulate_subtomograms(["1bxn"], defocus=5.0, **kw).X
    assert not np.allclose(near, far)
    assert _electron_wavelength(300.0) == pytest.approx(0.01969, abs=1e-5)


def _invariant_features(X):
    """Rotation-invariant features: radial density profile and radial power."""
    box = X.shape[-1]
    c = (box - 1) / 2
    z, y, x = np.ogrid[:box, :box, :box]
    shells = np.minimum(np.sqrt((z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2), c).astype(
        int
    )
    counts = np.bincount(shells.ravel())
    flat = X.reshape(len(X), -1)
    profile = np.stack([np.bincount(shells.ravel(), w) / counts for w in flat])
    f = sp_fft.fftfreq(box)
    kz, ky, kx = np.meshgrid(f, f, f, indexing="ij")
    kbin = np.minimum((np.sqrt(kz**2 + ky**2 + kx**2) * box).astype(int), box // 2)
    kcounts = np.bincount(kbin.ravel())
    power = np.abs(sp_fft.fftn(X, axes=(1, 2, 3))).reshape(len(X), -1) ** 2
    spectrum = np.stack([np.bincount(kbin.ravel(), p) / kcounts for p in power])
    return np.hstack([profile, np.log(spectrum[:, 1:] + 1e-12)])


def _accuracy(snr):
    d = simulate_subtomograms(CLASSES, 30, box=32, snr=snr, random_state=11)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    return cross_val_score(clf, _invariant_features(d.X), d.y, cv=3).mean()


def test_classes_separable_at_high_snr_hard_at_low_snr():
    easy, hard = _accuracy(10.0), _accuracy(0.02)
    assert easy > 0.85  # chance is 0.25
    assert hard < 0.55
    assert easy - hard > 0.35


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(snr=0.0), "snr"),
        (dict(n_per_class=0), "n_per_class"),
        (dict(defocus=(5.0, 2.0)), "defocus"),
        (dict(noise_spectrum="pink"), "noise_spectrum"),
        (dict(shift=-1.0), "shift"),
    ],
)
def test_invalid_settings(kwargs, match):
    kw = dict(n_per_class=1, box=8, random_state=0) | kwargs
    with pytest.raises(ValueError, match=match):
        simulate_subtomograms(["1bxn"], **kw)


def test_callable_noise_spectrum():
    d = simulate_subtomograms(
        ["1bxn"],
        4,
        box=16,
        snr=0.5,
        random_state=0,
        noise_spectrum=lambda k: np.exp(-((k / 0.2) ** 2)),
    )
    assert d.params["noise_spectrum"] == "callable"
    assert noise_spectrum_stats(d.X)["nyquist_to_mid"] < 0.05


def test_pose_convention_moves_map_points_as_documented():
    # A compact blob 7 voxels off the map centre along x (numpy order z, y, x).
    n = 33
    grid = np.indices((n, n, n)) - (n - 1) / 2
    offset = np.array([0.0, 0.0, 7.0])
    blob = np.exp(-((grid - offset[:, None, None, None]) ** 2).sum(0) / (2 * 1.2**2))
    d = simulate_subtomograms(
        {"blob": (blob, 10.0)}, 6, box=32, snr=None, defocus=1.0, shift=2.0,
        random_state=4,
    )  # fmt: skip
    centre = np.full(3, 31 / 2)
    for X, rot, shift in zip(d.X, d.rotations, d.shifts, strict=True):
        expected = rot @ offset + shift + centre
        darkest = np.unravel_index(np.argmin(X), X.shape)  # protein is dark
        assert np.linalg.norm(np.array(darkest) - expected) < 1.5
