"""Tests for subtomogram normalisation and the low-pass filter."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from fscc_sklearn.io import (
    SubtomogramNormalizer,
    lowpass_filter,
    normalize_subtomograms,
)


def _volumes(n=5, shape=(8, 9, 10), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(
        loc=rng.uniform(-5, 5, size=(n, 1, 1, 1)), scale=3.0, size=(n, *shape)
    )


def test_per_volume_zero_mean_unit_variance():
    X = _volumes()
    Z = normalize_subtomograms(X)
    assert Z.dtype == np.float32 and Z.shape == X.shape
    np.testing.assert_allclose(Z.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(axis=(1, 2, 3)), 1, atol=1e-5)
    # per volume: normalising one volume alone gives the same result
    np.testing.assert_allclose(normalize_subtomograms(X[2:3])[0], Z[2], atol=1e-6)
    # input left untouched
    assert not np.allclose(X.mean(axis=(1, 2, 3)), 0)


def test_constant_volume_centred_with_warning():
    X = _volumes(n=3)
    X[1] = 7.0
    with pytest.warns(UserWarning, match=r"1 constant subtomogram.*indices \[1\]"):
        Z = normalize_subtomograms(X)
    assert np.all(Z[1] == 0)
    np.testing.assert_allclose(Z[[0, 2]].std(axis=(1, 2, 3)), 1, atol=1e-5)
    with pytest.warns(UserWarning, match="constant"):
        Zf = normalize_subtomograms(X, lowpass=0.5)
    assert np.max(np.abs(Zf[1])) < 1e-3


def test_lowpass_removes_high_frequencies():
    n = 16
    z, y, x = np.indices((n, n, n))
    low = np.cos(2 * np.pi * 2 * x / n)  # 2 cycles: 0.125 cycles/voxel = 0.25 Nyq
    high = np.cos(2 * np.pi * 6 * y / n)  # 0.375 cycles/voxel = 0.75 Nyquist
    X = (low + high)[None]
    Y = lowpass_filter(X, 0.5)
    np.testing.assert_allclose(Y[0], low, atol=1e-5)
    # cutoff above both keeps both
    np.testing.assert_allclose(lowpass_filter(X, 0.9)[0], X[0], atol=1e-5)
    Z = normalize_subtomograms(X, lowpass=0.5)
    expected = (low - low.mean()) / low.std()
    np.testing.assert_allclose(Z[0], expected, atol=1e-4)


def test_lowpass_odd_shapes_and_chunks():
    X = _volumes(n=70, shape=(5, 6, 7))  # more volumes than one FFT chunk
    Y = lowpass_filter(X, 1.0)
    assert Y.shape == X.shape
    # each volume filtered independently of its neighbours
    np.testing.assert_allclose(lowpass_filter(X[65:66], 1.0)[0], Y[65], atol=1e-5)


def test_validation():
    with pytest.raises(ValueError, match=r"shape \(n, D, H, W\)"):
        normalize_subtomograms(np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        normalize_subtomograms(np.full((1, 2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="real numbers"):
        normalize_subtomograms(np.zeros((1, 2, 2, 2), complex))
    for bad in [0, -0.1, 1.5, "0.5", True]:
        with pytest.raises(ValueError, match="lowpass"):
            normalize_subtomograms(_volumes(n=1), lowpass=bad)
    with pytest.raises(ValueError, match="cutoff"):
        lowpass_filter(_volumes(n=1), None)


def test_transformer_is_stateless_and_pipeline_ready():
    X_train, X_test = _volumes(n=4, seed=1), _volumes(n=3, seed=2)
    norm = SubtomogramNormalizer(lowpass=0.6)
    assert norm.fit(X_train) is norm
    np.testing.assert_array_equal(
        norm.transform(X_test), normalize_subtomograms(X_test, lowpass=0.6)
    )
    # transform without fit works (nothing is learned)
    np.testing.assert_array_equal(
        SubtomogramNormalizer(lowpass=0.6).transform(X_test), norm.transform(X_test)
    )
    cloned = clone(norm)
    assert cloned.get_params() == {"lowpass": 0.6}
    flatten = FunctionTransformer(lambda V: V.reshape(len(V), -1))
    pipe = Pipeline([("norm", SubtomogramNormalizer()), ("flat", flatten)])
    out = pipe.fit_transform(X_train)
    assert out.shape == (4, 8 * 9 * 10)
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-5)
    assert norm.__sklearn_tags__().requires_fit is False
    with pytest.raises(ValueError, match="lowpass"):
        SubtomogramNormalizer(lowpass=2.0).fit(X_train)
