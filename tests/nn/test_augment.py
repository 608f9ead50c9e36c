"""WedgeSafeAugment: shapes, determinism and the missing wedge staying in place."""

import numpy as np
import pytest
import torch

from fscc_sklearn.nn._augment import WedgeSafeAugment

N = 16


def _wedge_mask(n=N, half_angle=30.0):
    """Missing wedge of a +-60 degree tilt series about y, beam along z.

    True where a frequency was never measured: within ``half_angle`` degrees
    of the beam axis kz in the kx-kz plane (independent of ky).
    """
    f = np.fft.fftfreq(n)
    kz, _, kx = np.meshgrid(f, f, f, indexing="ij")  # volume axes (z, y, x)
    return np.abs(kx) < np.abs(kz) * np.tan(np.radians(half_angle))


def _wedged_batch(n_samples=6, seed=0):
    rng = np.random.default_rng(seed)
    mask = _wedge_mask()
    vols = []
    for _ in range(n_samples):
        spec = np.fft.fftn(rng.standard_normal((N, N, N)))
        spec[mask] = 0
        vols.append(np.fft.ifftn(spec).real)
    return torch.tensor(np.stack(vols)[:, None], dtype=torch.float32), mask


def _wedge_energy_fraction(x):
    mask = _wedge_mask()
    spec = np.abs(np.fft.fftn(x[:, 0].double().numpy(), axes=(1, 2, 3))) ** 2
    return spec[:, mask].sum(1) / spec.sum(axis=(1, 2, 3))


def test_wedge_is_empty_before_augmentation():
    x, _ = _wedged_batch()
    assert _wedge_energy_fraction(x).max() < 1e-10


@pytest.mark.parametrize("seed", range(5))
def test_flips_and_shifts_keep_the_wedge_in_place(seed):
    x, _ = _wedged_batch()
    y = WedgeSafeAugment(max_shift=3)(x, torch.Generator().manual_seed(seed))
    assert not torch.equal(x, y)
    assert _wedge_energy_fraction(y).max() < 1e-10


def test_every_flip_pattern_keeps_the_wedge():
    x, _ = _wedged_batch(n_samples=1)
    for dims in [(2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4)]:
        assert _wedge_energy_fraction(torch.flip(x, dims)).max() < 1e-10


def test_a_90_degree_turn_about_the_beam_axis_moves_the_wedge():
    # negative control: the test would notice a transform that moves the wedge
    x, _ = _wedged_batch()
    turned = torch.rot90(x, 1, dims=(3, 4))
    assert _wedge_energy_fraction(turned).min() > 0.05


def test_noise_fills_the_wedge_with_the_requested_level():
    x, _ = _wedged_batch()
    aug = WedgeSafeAugment(flip=False, max_shift=0, noise_std=0.5)
    y = aug(x, torch.Generator().manual_seed(0))
    ratio = (y - x).flatten(1).std(1) / x.flatten(1).std(1)
    np.testing.assert_allclose(ratio.numpy(), 0.5, rtol=0.1)
    assert _wedge_energy_fraction(y).min() > 0.01


def test_shape_dtype_and_input_untouched():
    x = torch.randn(5, 1, 8, 8, 8, dtype=torch.float64)
    before = x.clone()
    y = WedgeSafeAugment(noise_std=0.1)(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(x, before)


def test_flips_and_shifts_permute_voxels():
    x = torch.randn(8, 1, 8, 8, 8)
    y = WedgeSafeAugment(max_shift=2)(x, torch.Generator().manual_seed(3))
    for a, b in zip(x, y, strict=True):
        assert torch.equal(a.flatten().sort().values, b.flatten().sort().values)


def test_same_seed_same_batch_different_seed_different_batch():
    x = torch.randn(8, 1, 8, 8, 8)
    aug = WedgeSafeAugment(noise_std=0.1)
    a = aug(x, torch.Generator().manual_seed(7))
    b = aug(x, torch.Generator().manual_seed(7))
    c = aug(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_identity_when_everything_is_off():
    x = torch.randn(3, 1, 8, 8, 8)
    y = WedgeSafeAugment(flip=False, max_shift=0)(x, torch.Generator().manual_seed(0))
    assert torch.equal(x, y)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"flip": 1}, "flip"),
        ({"max_shift": -1}, "max_shift"),
        ({"max_shift": 1.5}, "max_shift"),
        ({"noise_std": -0.1}, "noise_std"),
    ],
)
def test_bad_parameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WedgeSafeAugment(**kwargs)


def test_rejects_a_batch_without_channel_axis():
    with pytest.raises(ValueError, match=r"\(N, C, D, H, W\)"):
        WedgeSafeAugment()(torch.zeros(2, 8, 8, 8), torch.Generator())
