import numpy as np
import pytest

from fscc_sklearn.datasets import SubtomogramStream, make_procedural_maps


@pytest.fixture(scope="module")
def maps():
    return make_procedural_maps(6, random_state=0).maps


def _stream(maps, **kw):
    params = dict(classes_per_batch=3, per_class=2, box=16, batches_per_epoch=2)
    return SubtomogramStream(maps, **{**params, **kw})


def test_batches_are_fixed_by_their_seed(maps):
    stream = _stream(maps)
    X0, y0 = stream.batch(5)
    X1, y1 = stream.batch(5)
    X2, _ = stream.batch(6)
    np.testing.assert_array_equal(X0, X1)
    np.testing.assert_array_equal(y0, y1)
    assert X0.shape == (6, 16, 16, 16) and X0.dtype == np.float32
    assert not np.allclose(X0, X2)


def test_batches_are_class_balanced_and_index_class_names(maps):
    stream = _stream(maps)
    seen = set()
    for seed in range(10):
        _, y = stream.batch(seed)
        classes, counts = np.unique(y, return_counts=True)
        assert len(classes) == 3 and set(counts) == {2}
        seen.update(classes.tolist())
    assert seen == set(range(6))  # every class gets drawn
    assert stream.class_names == list(maps)


def test_packaged_maps_and_arrays_mix(maps):
    stream = _stream({"1bxn": None, **dict(list(maps.items())[:2])})
    X, y = stream.batch(0)
    assert np.isfinite(X).all() and sorted(set(y.tolist())) == [0, 1, 2]


def test_batch_seeds_and_fingerprint(maps):
    stream = _stream(maps)
    a = stream.batch_seeds([1, 0], 4)
    np.testing.assert_array_equal(a, stream.batch_seeds([1, 0], 4))
    assert len(set(a.tolist())) == 4
    assert not np.array_equal(a, stream.batch_seeds([1, 1], 4))
    assert stream.fingerprint() == _stream(maps).fingerprint()
    assert stream.fingerprint() != _stream(maps, snr=(0.02, 0.1)).fingerprint()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(classes_per_batch=7), "exceeds the 6 classes"),
        (dict(per_class=1), "per_class must be >= 2"),
        (dict(box=2.5), "box must be an integer"),
        (dict(snr=(0.0, 0.1)), "snr must be > 0"),
        (dict(max_tilt=(30, 95)), "max_tilt"),
    ],
)
def test_bad_settings(maps, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _stream(maps, **kwargs)


def test_needs_a_dict_of_classes():
    with pytest.raises(ValueError, match="dict of at least 2 classes"):
        SubtomogramStream(["1bxn", "3qm1"])
