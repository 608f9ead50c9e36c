"""Pre-training recipes, augmentation in fit, LR schedule and episodic validation."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.pipeline import Pipeline

from fscc_sklearn import (
    CalibratedFewShotClassifier,
    Conv6Embedder,
    load_model,
    save_model,
)
from fscc_sklearn.datasets._toy import make_toy_volumes
from fscc_sklearn.embedding._callbacks import EpisodicValidation, WarmupCosineLR
from fscc_sklearn.embedding._recipes import pretraining_recipe
from fscc_sklearn.nn import Conv6
from fscc_sklearn.persistence._model_file import UnsafeModelFileWarning


@pytest.fixture(scope="module")
def small():
    """4 base classes of 12 and 3 held-out classes of 10 toy volumes (8^3)."""
    X, y = make_toy_volumes(n_classes=7, n_per_class=12, box=8, random_state=0)
    base = y < 4
    held = ~base & (np.arange(len(y)) % 12 < 10)
    return X[base], y[base], X[held], y[held]


def _emb(**params):
    # no augmentation, constant lr unless a test asks (the defaults have both)
    defaults = dict(
        module__width=4,
        max_epochs=2,
        batch_size=16,
        random_state=0,
        augment=None,
        lr_schedule=None,
    )
    return Conv6Embedder(**{**defaults, **params})


def test_paper_recipe_states_the_papers_settings():
    p = pretraining_recipe("paper")
    assert p["lr"] == 0.05 and p["max_epochs"] == 5 and p["batch_size"] == 128
    assert p["sup_con_weight"] == 0.05 and p["augment"] is None
    assert p["lr_schedule"] is None
    assert Conv6Embedder(**p).get_params()["lr"] == 0.05


def test_recipe_is_a_copy_and_unknown_names_are_refused():
    pretraining_recipe("transfer")["lr"] = 99
    assert pretraining_recipe("transfer")["lr"] != 99
    with pytest.raises(ValueError, match="'nope'.*paper"):
        pretraining_recipe("nope")


def test_augmentation_is_seeded_and_changes_training(small):
    X, y, _, _ = small
    a = _emb(augment="flip_shift", max_epochs=1).fit(X, y).transform(X[:5])
    b = _emb(augment="flip_shift", max_epochs=1).fit(X, y).transform(X[:5])
    plain = _emb(max_epochs=1).fit(X, y).transform(X[:5])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, plain)


def test_callable_augment_is_called_with_batch_and_generator(small):
    X, y, _, _ = small
    calls = []

    def aug(xb, generator):
        calls.append((tuple(xb.shape), type(generator)))
        return xb

    _emb(augment=aug, max_epochs=1).fit(X, y)
    assert calls and calls[0] == ((16, 1, 8, 8, 8), torch.Generator)


@pytest.mark.parametrize(
    "params, match",
    [({"augment": "rotate"}, "augment"), ({"lr_schedule": "step"}, "lr_schedule")],
)
def test_bad_recipe_params_are_named(small, params, match):
    X, y, _, _ = small
    with pytest.raises(ValueError, match=match):
        _emb(**params).fit(X, y)


def test_cosine_schedule_warms_up_then_decays(small):
    X, y, _, _ = small
    emb = _emb(lr=0.01, lr_schedule="cosine", warmup_epochs=1.0, max_epochs=4)
    emb.fit(X, y)
    lrs = emb.history[:, "lr"]
    steps = 3  # 48 samples, 4 per class per batch of 16
    assert lrs[0] == pytest.approx(0.01 / (steps + 1))
    assert lrs[1] == pytest.approx(0.01)  # warm-up done, cosine starts at 1
    expected = 0.01 * 0.5 * (1 + math.cos(math.pi * steps / (3 * steps)))
    assert lrs[2] == pytest.approx(expected)
    assert lrs[3] < lrs[2]
    assert emb.optimizer_.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_constant_lr_without_schedule(small):
    X, y, _, _ = small
    emb = _emb(lr=0.01, lr_schedule=None).fit(X, y)
    assert "lr" not in emb.history[-1]
    assert emb.optimizer_.param_groups[0]["lr"] == 0.01


def test_warmup_cosine_refuses_negative_warmup(small):
    X, y, _, _ = small
    with pytest.raises(ValueError, match="warmup_epochs"):
        _emb(callbacks=[("sched", WarmupCosineLR(warmup_epochs=-1))]).fit(X, y)


def test_episodic_validation_records_and_restores_the_best_epoch(small):
    X, y, Xv, yv = small
    cb = EpisodicValidation(Xv, yv, n_way=3, n_episodes=30, n_query=5)
    emb = _emb(
        max_epochs=4, lr=0.05, callbacks=[("episodic", cb)], callbacks__precise_bn=None
    )
    emb.fit(X, y)
    accs = emb.history[:, "valid_episodic_acc"]
    assert len(accs) == 4 and all(0 <= a <= 1 for a in accs)
    assert cb.best_score_ == max(accs)
    assert cb.best_epoch_ == int(np.argmax(accs)) + 1
    state = emb.module_.state_dict()
    for k, v in cb.best_state_.items():
        assert torch.equal(state[k], v), k
    assert cb.score(emb.transform(Xv)) == pytest.approx(cb.best_score_)


def test_episodic_validation_needs_two_classes(small):
    X, y, Xv, yv = small
    one = yv == yv[0]
    cb = EpisodicValidation(Xv[one], yv[one], n_episodes=2, n_query=2)
    with pytest.raises(ValueError, match="at least 2 validation classes"):
        _emb(callbacks=[("episodic", cb)]).fit(X, y)


def test_projection_head_feeds_supcon_but_not_the_features():
    net = Conv6(n_classes=3, width=4, volume_size=8, proj_dim=5)
    logits, z = net(torch.randn(2, 1, 8, 8, 8))
    assert logits.shape == (2, 3) and z.shape == (2, 5)
    feats = net.forward_head(net.forward_features(torch.randn(2, 1, 8, 8, 8)), True)
    assert feats.shape == (2, net.num_features)


def test_transfer_recipe_fits_and_survives_the_safe_format(small, tmp_path):
    X, y, _, _ = small
    params = {**pretraining_recipe("transfer"), "max_epochs": 2, "batch_size": 16}
    emb = Conv6Embedder(module__width=4, module__proj_dim=8, random_state=0, **params)
    pipe = Pipeline(
        [("embed", emb), ("clf", CalibratedFewShotClassifier(random_state=0))]
    ).fit(X, y)
    assert emb.transform(X[:3]).shape == (3, emb.module_.num_features)
    path = tmp_path / "m.fscc"
    save_model(pipe, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsafeModelFileWarning)
        loaded = load_model(path)["embed"]
    got = loaded.get_params()
    for key in ("augment", "lr_schedule", "warmup_epochs", "module__proj_dim"):
        assert got[key] == emb.get_params()[key], key
    np.testing.assert_allclose(loaded.transform(X[:3]), emb.transform(X[:3]), atol=1e-5)


def test_augmented_training_resumes_exactly_from_a_checkpoint(small, tmp_path):
    from fscc_sklearn import AtomicCheckpoint

    X, y, _, _ = small

    def emb(max_epochs, ckpt):
        cbs = [("ckpt", AtomicCheckpoint(tmp_path))] if ckpt else []
        return _emb(augment="flip_shift", max_epochs=max_epochs, callbacks=cbs)

    whole = emb(2, False).fit(X, y)
    emb(1, True).fit(X, y)
    resumed = emb(2, True).fit(X, y)
    np.testing.assert_array_equal(resumed.transform(X[:4]), whole.transform(X[:4]))


def test_defaults_are_the_transfer_recipe():
    params = Conv6Embedder().get_params()
    for key, value in pretraining_recipe("transfer").items():
        assert params[key] == value, key
