"""Bad inputs to the estimators and readers raise clear errors, never deep crashes."""

import struct

import joblib
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fscc_sklearn import CalibratedFewShotClassifier, Conv6Embedder
from fscc_sklearn.datasets._toy import make_toy_volumes
from fscc_sklearn.io import (
    extract_subtomograms,
    read_particle_list,
    read_subtomograms,
    write_subtomograms,
)
from fscc_sklearn.model_selection import evaluate_episodes, sample_episode

FAST = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def volumes():
    return make_toy_volumes(n_classes=3, n_per_class=6, box=8, random_state=0)


@pytest.fixture(scope="module")
def fitted(volumes):
    X, y = volumes
    torch.set_num_threads(1)
    return _embedder(max_epochs=1).fit(X, y)


def _embedder(**params):
    defaults = dict(
        module__width=4, max_epochs=1, batch_size=12, random_state=0, device="cpu"
    )
    return Conv6Embedder(**{**defaults, **params})


# --------------------------------------------------------------------------
# Conv6Embedder


def _bad_volume_arrays():
    """Arrays that are not a stack of finite real cubic volumes of 8^3."""
    wrong_ndim = hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=0, max_dims=6, max_side=3).filter(
            lambda s: len(s) not in (4, 5)
        ),
    )
    empty = st.sampled_from([np.zeros((0, 8, 8, 8), np.float32)])
    non_finite = st.tuples(
        st.integers(0, 17), st.sampled_from([np.nan, np.inf, -np.inf])
    ).map(_with_bad_value)
    bad_dtype = st.sampled_from(
        [np.complex64, np.bool_, object, "U3", "datetime64[s]"]
    ).map(lambda dt: np.zeros((18, 8, 8, 8)).astype(dt))
    channels = st.sampled_from([np.zeros((18, 2, 8, 8, 8), np.float32)])
    return st.one_of(wrong_ndim, empty, non_finite, bad_dtype, channels)


def _with_bad_value(args):
    i, value = args
    X = np.ones((18, 8, 8, 8), np.float32)
    X[i, 1, 2, 3] = value
    return X


@FAST
@given(X=_bad_volume_arrays())
def test_transform_rejects_bad_volumes(fitted, X):
    with pytest.raises(ValueError, match=r"X |X$|NaN|got"):
        fitted.transform(X)


@FAST
@given(X=_bad_volume_arrays())
def test_fit_rejects_bad_volumes_before_training(volumes, X):
    n = X.shape[0] if X.ndim else 1
    y = volumes[1] if n == 18 else np.arange(n) % 2
    with pytest.raises(ValueError):
        _embedder().fit(X, y)


def test_transform_rejects_other_box_sizes(fitted):
    with pytest.raises(ValueError, match=r"trained on \(1, 8, 8, 8\)"):
        fitted.transform(np.zeros((2, 10, 10, 10), np.float32))


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.zeros(18), "at least 2 base classes"),
        (np.r_[np.zeros(17), 1], "has only 1 sample"),
        (np.arange(17), r"y must have shape \(18,\)"),
        (np.linspace(0, 1, 18), "Unknown label type"),
        (np.zeros((18, 2)), r"y must have shape \(18,\)"),
    ],
)
def test_fit_rejects_bad_labels(volumes, labels, match):
    with pytest.raises(ValueError, match=match):
        _embedder().fit(volumes[0], labels)


def test_non_cubic_boxes_are_rejected(volumes):
    with pytest.raises(ValueError, match="cubic"):
        _embedder().fit(volumes[0][:, :, :, :6], volumes[1])


def test_string_and_integer_labels_train_the_same_model(volumes):
    X, y = volumes
    names = np.array(["ribosome", "proteasome", "tric"])[y]  # sorted: 1, 0, 2
    order = {"proteasome": 0, "ribosome": 1, "tric": 2}
    as_int = np.array([order[n] for n in names])
    a = _embedder().fit(X, names)
    b = _embedder().fit(X, as_int)
    assert a.classes_.tolist() == ["proteasome", "ribosome", "tric"]
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


@pytest.mark.parametrize("kind", ["duplicated", "constant", "zeros", "tiny", "huge"])
def test_degenerate_volumes_train_to_finite_features(volumes, kind):
    X, y = volumes
    X = {
        "duplicated": np.repeat(X[::6], 6, axis=0),
        "constant": np.full_like(X, 3.0),
        "zeros": np.zeros_like(X),
        "tiny": X * 1e-30,
        "huge": X * 1e30,
    }[kind]
    F = _embedder(max_epochs=2).fit(X, y).transform(X)
    assert F.dtype == np.float32 and np.isfinite(F).all() and (F >= 0).all()


# --------------------------------------------------------------------------
# CalibratedFewShotClassifier

finite = st.floats(0, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def _bad_features(draw):
    X = draw(hnp.arrays(np.float64, (draw(st.integers(4, 12)), 3), elements=finite))
    kind = draw(st.sampled_from(["nan", "inf", "negative", "1d", "3d", "empty"]))
    i = draw(st.integers(0, len(X) - 1))
    if kind in ("nan", "inf", "negative"):
        X[i, 0] = {"nan": np.nan, "inf": np.inf, "negative": -1.0}[kind]
    elif kind == "1d":
        X = X[:, 0]
    elif kind == "3d":
        X = X[:, :, None]
    else:
        X = X[:0]
    return X


@pytest.mark.parametrize("method", ["bayes", "paper"])
@FAST
@given(X=_bad_features())
def test_classifier_rejects_bad_features(method, X):
    y = np.arange(len(X)) % 2
    clf = CalibratedFewShotClassifier(method=method, n_samples=10, random_state=0)
    with pytest.raises(ValueError):
        clf.fit(X, y)
    good = np.abs(np.random.default_rng(0).normal(size=(8, 3)))
    fitted = clf.fit(good, np.arange(8) % 2)
    if X.ndim == 2 and len(X):
        with pytest.raises(ValueError):
            fitted.predict(X)


def test_classifier_rejects_wrong_feature_count_and_single_sample_base_class():
    rng = np.random.default_rng(0)
    X, y = rng.gamma(2, size=(20, 4)), np.repeat([0, 1], 10)
    base = CalibratedFewShotClassifier().fit(X, y)
    with pytest.raises(ValueError, match="4 features"):
        base.predict(X[:, :3])
    with pytest.raises(ValueError, match="dimensions"):
        CalibratedFewShotClassifier(base=base, k=1).fit(X[:2, :3], [0, 1])
    with pytest.raises(ValueError, match="class '7' has only 1 sample"):
        CalibratedFewShotClassifier().fit(np.vstack([X, X[:1]]), np.r_[y, 7])


@FAST
@given(
    n_way=st.integers(1, 4),
    k_shot=st.integers(1, 3),
    n_query=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 2),
    labels=st.sampled_from([np.arange(5), np.array(list("abcde"))]),
)
def test_sample_episode_gives_disjoint_balanced_sets(
    n_way, k_shot, n_query, seed, labels
):
    y = np.repeat(labels, 6)
    support, query = sample_episode(y, n_way, k_shot, n_query, random_state=seed)
    assert len(support) == n_way * k_shot and len(query) == n_way * n_query
    assert not set(support) & set(query)
    assert set(y[support]) == set(y[query])
    _, counts = np.unique(y[support], return_counts=True)
    assert (counts == k_shot).all()
    again = sample_episode(y, n_way, k_shot, n_query, random_state=seed)
    np.testing.assert_array_equal(again[0], support)


def test_sample_episode_needs_enough_classes_and_samples():
    y = np.repeat([0, 1, 2], [5, 5, 2])
    with pytest.raises(ValueError, match="only 2 of 3 classes"):
        sample_episode(y, 3, 1, 2, random_state=0)
    with pytest.raises(ValueError, match="only 0 of 0 classes"):
        sample_episode([], 1, 1, 1, random_state=0)


# --------------------------------------------------------------------------
# readers: the declared sizes of a damaged header are checked before reading


def _mrc_with_header_words(tmp_path, words):
    path = tmp_path / "v.mrc"
    write_subtomograms(path, np.ones((1, 4, 4, 4), np.float32), voxel_size=10.0)
    raw = bytearray(path.read_bytes())
    for word, value in words.items():
        raw[4 * word : 4 * word + 4] = struct.pack("<i", value)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(
    "words, match",
    [
        ({0: 100000, 1: 100000, 2: 100000}, r"100000 x 100000 x 100000 voxels"),
        ({23: 2**31 - 1}, "extended header of 2147483647 bytes"),
        ({23: -5}, "extended header of -5 bytes"),
        ({2: -3}, "negative dimensions"),
        ({22: 401, 9: 0}, "volume stack .* mz=0"),
    ],
)
def test_impossible_mrc_headers_are_rejected_up_front(tmp_path, words, match):
    path = _mrc_with_header_words(tmp_path, words)
    with pytest.raises(ValueError, match=match):
        read_subtomograms(path)
    with pytest.raises(ValueError, match=match):
        extract_subtomograms(path, [[1, 1, 1]], box=2)


def test_truncated_mrc_names_the_file(tmp_path):
    path = tmp_path / "stack.mrcs"
    write_subtomograms(path, np.ones((3, 4, 4, 4), np.float32), voxel_size=10.0)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="stack.mrcs.*truncated"):
        read_subtomograms(path)


def test_absurd_star_numbers_are_rejected(tmp_path):
    path = tmp_path / "p.star"
    path.write_text(
        "data_particles\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n_rlnCoordinateZ\n"
        "1 2 3\n1e400 2 3\n"
    )
    with pytest.raises(ValueError, match="p.star"):
        read_particle_list(path)


def test_duplicated_and_out_of_bounds_particles(tmp_path):
    tomo = np.arange(10**3, dtype=np.float32).reshape(10, 10, 10)
    res = extract_subtomograms(tomo, [[5, 5, 5], [5, 5, 5], [0, 0, 0]], box=4)
    assert res.kept.tolist() == [0, 1] and res.n_skipped == 1
    np.testing.assert_array_equal(res.X[0], res.X[1])
    with pytest.raises(ValueError, match="outside the tomogram"):
        extract_subtomograms(tomo, [[5, 5, 5], [50, 5, 5]], box=4)


def test_memory_guard_stops_huge_extractions(monkeypatch):
    from fscc_sklearn import _resources

    monkeypatch.setattr(_resources, "available_memory", lambda: 10**6)
    tomo = np.zeros((64, 64, 64), np.float32)
    with pytest.raises(MemoryError, match=r"200 subtomograms of 32\^3 voxels"):
        extract_subtomograms(tomo, np.full((200, 3), 32.0), box=32)
    small = extract_subtomograms(tomo, np.full((2, 3), 32.0), box=8)
    assert small.X.shape == (2, 8, 8, 8)


def test_paper_episodes_are_reproducible_and_independent_of_n_jobs():
    rng = np.random.default_rng(0)
    F = rng.gamma(2, size=(60, 6)) + np.repeat(np.eye(6) * 3, 10, axis=0)
    y = np.repeat(np.arange(6), 10)
    base = CalibratedFewShotClassifier(method="paper", n_samples=30).fit(F[:30], y[:30])
    kwargs = dict(n_way=3, k_shot=1, n_query=3, n_episodes=6, random_state=7)
    one = evaluate_episodes(base, F[30:], y[30:], n_jobs=1, **kwargs)
    # threads: order of completion varies, as with processes, at no start-up cost
    # (tests/test_model_selection.py covers the process backend)
    with joblib.parallel_config(backend="threading"):
        two = evaluate_episodes(base, F[30:], y[30:], n_jobs=3, **kwargs)
    again = evaluate_episodes(base, F[30:], y[30:], n_jobs=1, **kwargs)
    np.testing.assert_array_equal(one.accuracies, two.accuracies)
    np.testing.assert_array_equal(one.accuracies, again.accuracies)
    np.testing.assert_array_equal(one.seeds, two.seeds)
