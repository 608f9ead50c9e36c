import numpy as np
import pytest

from fscc_sklearn.nn import ClassBalancedBatchSampler


def test_every_batch_is_class_balanced():
    labels = np.repeat([0, 1, 2], [50, 10, 30])
    sampler = ClassBalancedBatchSampler(labels, batch_size=12, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 90 // 12
    for batch in batches:
        assert np.bincount(labels[batch], minlength=3).tolist() == [4, 4, 4]
        assert len(set(batch)) == len(batch)


def test_samples_of_a_class_are_used_before_repeating():
    labels = np.repeat([0, 1], [8, 40])
    batches = list(ClassBalancedBatchSampler(labels, batch_size=8, seed=1))
    small = np.concatenate([np.asarray(b)[labels[b] == 0] for b in batches])
    # 6 batches x 4 = 24 draws of class 0: each of its 8 samples exactly 3 times
    assert np.bincount(small).tolist() == [3] * 8


def test_sampler_is_seeded():
    labels = np.repeat([0, 1, 2], 20)
    a = list(ClassBalancedBatchSampler(labels, 12, seed=3))
    b = list(ClassBalancedBatchSampler(labels, 12, seed=3))
    c = list(ClassBalancedBatchSampler(labels, 12, seed=4))
    assert a == b and a != c


def test_sampler_needs_two_per_class():
    with pytest.raises(
        ValueError, match="batch_size=5 cannot hold 2 samples of each of 3"
    ):
        ClassBalancedBatchSampler(np.repeat([0, 1, 2], 5), batch_size=5)
