import pickle

import numpy as np
import pytest
import torch
from _ddp_workers import fit_embedder

from fscc_sklearn import Conv6Embedder
from fscc_sklearn.datasets._toy import make_toy_volumes
from fscc_sklearn.distributed import (
    DistributedCESupConLoss,
    DistributedClassBalancedBatchSampler,
    DistributedConv6Embedder,
)
from fscc_sklearn.nn import ClassBalancedBatchSampler


def test_shards_are_disjoint_and_make_up_the_single_process_batch():
    labels = np.repeat(np.arange(5), [7, 9, 12, 4, 30])
    whole = list(ClassBalancedBatchSampler(labels, 30, seed=3))
    shards = [
        list(
            DistributedClassBalancedBatchSampler(labels, 30, 3, num_replicas=3, rank=r)
        )
        for r in range(3)
    ]
    assert [len(s) for s in shards] == [len(whole)] * 3
    for step, batch in enumerate(whole):
        parts = [s[step] for s in shards]
        assert sorted(sum(parts, [])) == sorted(batch)
        assert [len(p) for p in parts] == [10, 10, 10]
        # each shard holds 2 samples of every class (6 per class, 3 ranks)
        for p in parts:
            assert np.bincount(labels[p], minlength=5).tolist() == [2] * 5


def test_distributed_sampler_refuses_inconsistent_settings():
    labels = [0, 0, 1, 1]
    with pytest.raises(ValueError, match="seed=None"):
        DistributedClassBalancedBatchSampler(labels, 4, None, num_replicas=2, rank=0)
    with pytest.raises(
        ValueError, match=r"rank must be in \[0, num_replicas=2\); got 2"
    ):
        DistributedClassBalancedBatchSampler(labels, 4, 0, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="4 samples cannot be shared by 5 processes"):
        DistributedClassBalancedBatchSampler(labels, 4, 0, num_replicas=5, rank=0)
    single = DistributedClassBalancedBatchSampler(labels, 4, None)
    assert (single.num_replicas, single.rank) == (1, 0)


@pytest.fixture(scope="module")
def tiny_data():
    return make_toy_volumes(n_classes=3, n_per_class=16, box=8, random_state=0)


@pytest.mark.slow
def test_ddp_embedder_keeps_two_ranks_in_lockstep(run_ranks, tiny_data):
    X, y = tiny_data
    r0, r1 = run_ranks(fit_embedder, X, y)
    assert r0["ddp"] and r1["ddp"]
    for name, value in r0["state"].items():
        torch.testing.assert_close(r1["state"][name], value, rtol=0, atol=0)
    np.testing.assert_array_equal(r0["features"], r1["features"])
    assert np.all(np.isfinite(r0["loss"])) and len(r0["loss"]) == 2
    # one process with the same seed sees the same batches; the weights differ
    # only through per-process BatchNorm statistics, so the objective is close
    single = Conv6Embedder(
        module__width=4, max_epochs=2, batch_size=24, lr=0.01, random_state=0
    ).fit(X, y)
    loss = np.asarray(single.history[:, "train_loss"])
    np.testing.assert_allclose(r0["loss"][0], loss[0], rtol=0.05)


def test_ddp_embedder_in_one_process_is_a_conv6embedder(tiny_data):
    X, y = tiny_data
    params = dict(module__width=4, max_epochs=1, batch_size=24, random_state=0)
    net = DistributedConv6Embedder(**params).fit(X, y)
    plain = Conv6Embedder(**params).fit(X, y)
    assert net.ddp_module_ is None
    assert isinstance(net.criterion_, DistributedCESupConLoss)
    np.testing.assert_allclose(
        net.transform(X), plain.transform(X), rtol=1e-5, atol=1e-6
    )
    back = pickle.loads(pickle.dumps(net))
    assert back.ddp_module_ is None
    np.testing.assert_array_equal(back.transform(X), net.transform(X))
    assert "ddp_module_" not in net.get_params()


@pytest.mark.parametrize("cls", [Conv6Embedder, DistributedConv6Embedder])
def test_unfitted_embedders_survive_pickling(cls):
    # Dask's scheduler and joblib's workers unpickle estimators before any fit
    back = pickle.loads(pickle.dumps(cls(module__width=4, max_epochs=2)))
    assert back.device == "auto"
    assert back.get_params()["module__width"] == 4
    assert back.get_params()["max_epochs"] == 2
