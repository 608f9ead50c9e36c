"""cluster_embeddings, write_clusters and suggest_labels (issue 23, parts 2 and 3)."""

import sys

import mrcfile
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from fscc_sklearn import (
    CalibratedFewShotClassifier,
    PrototypeClassifier,
    cluster_embeddings,
    suggest_labels,
)
from fscc_sklearn.discovery import STRATEGIES, write_clusters


def blobs(sizes, dim=16, spread=0.05, seed=0):
    """Non-negative features in well separated groups (like ReLU features)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.5, 3.0, size=(len(sizes), dim))
    F = np.vstack(
        [
            c + spread * rng.standard_normal((n, dim))
            for c, n in zip(centres, sizes, strict=True)
        ]
    )
    y = np.repeat(np.arange(len(sizes)), sizes)
    return np.abs(F), y


def flatten(X):
    return np.asarray(X).reshape(len(X), -1)


def volumes(sizes, box=6, seed=0):
    """Volumes whose flattened voxels form separated groups."""
    F, y = blobs(sizes, dim=box**3, seed=seed)
    return F.reshape(-1, box, box, box).astype(np.float32), y


# cluster_embeddings


def test_separated_groups_are_found_and_numbered_by_size():
    F, y = blobs([20, 40, 30])
    res = cluster_embeddings(F, random_state=0)
    assert adjusted_rand_score(y, res.labels) == 1.0
    assert res.sizes.tolist() == [40, 30, 20]
    assert set(res.labels[y == 1]) == {0}  # the largest group is cluster 0
    assert res.embedding.shape == (90, 10)
    assert res.probabilities.shape == (90,)


def test_same_seed_same_result_and_params_reach_hdbscan():
    F, y = blobs([25, 25, 25], spread=0.6, seed=3)
    a = cluster_embeddings(F, random_state=1, hdbscan_params={"min_samples": 3})
    b = cluster_embeddings(F, random_state=1, hdbscan_params={"min_samples": 3})
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.embedding, b.embedding)
    assert a.clusterer.min_samples == 3
    assert a.clusterer.cluster_selection_method == "leaf"  # the default here
    eom = cluster_embeddings(
        F, random_state=1, hdbscan_params={"cluster_selection_method": "eom"}
    )
    assert eom.clusterer.cluster_selection_method == "eom"


def test_examples_are_the_most_central_members():
    F, y = blobs([30, 30], spread=0.3)
    res = cluster_embeddings(F, n_examples=4, random_state=0)
    for c, ex in enumerate(res.examples):
        assert len(ex) == 4 and np.all(res.labels[ex] == c)
        members = np.flatnonzero(res.labels == c)
        d = np.linalg.norm(
            res.embedding[members] - res.embedding[members].mean(0), axis=1
        )
        assert ex[0] == members[np.argmin(d)]


def test_noise_points_are_labelled_minus_one():
    F, _ = blobs([30, 30])
    far = np.full((1, F.shape[1]), 40.0)
    res = cluster_embeddings(np.vstack([F, far]), reduce=None, random_state=0)
    assert res.labels[-1] == -1
    assert res.sizes.sum() == np.sum(res.labels >= 0)


def test_embedder_and_averages_of_volumes():
    X, y = volumes([15, 15])
    res = cluster_embeddings(
        X, FunctionTransformer(flatten), n_components=4, random_state=0
    )
    assert adjusted_rand_score(y, res.labels) == 1.0
    assert res.averages.shape == (2, 6, 6, 6)
    for c in range(2):
        np.testing.assert_allclose(
            res.averages[c], X[res.labels == c].mean(0), rtol=1e-5
        )
    # features given: volumes only for the averages
    res2 = cluster_embeddings(flatten(X), n_components=4, volumes=X, random_state=0)
    np.testing.assert_array_equal(res.labels, res2.labels)
    np.testing.assert_allclose(res.averages, res2.averages)
    assert cluster_embeddings(flatten(X), n_components=4).averages is None


def test_power_one_and_no_reduction_keep_the_features():
    F, _ = blobs([15, 15])
    res = cluster_embeddings(F, reduce=None, power=1)
    np.testing.assert_array_equal(res.embedding, F)
    assert res.reducer is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"reduce": "tsne"}, "reduce must be 'pca', 'umap' or None; got 'tsne'"),
        ({"n_components": 0}, "n_components must be >= 1; got 0"),
        ({"min_cluster_size": 1}, "min_cluster_size must be >= 2; got 1"),
        ({"n_examples": 0}, "n_examples must be >= 1"),
        ({"power": "sqrt"}, "power must be a number"),
        ({"hdbscan_params": {"min_cluster_size": 3}}, "own argument"),
        ({"hdbscan_params": {"colour": 1}}, "hdbscan_params: .*colour"),
        ({"min_cluster_size": 50}, "30 picks cannot form a cluster"),
        ({"volumes": np.zeros((3, 2, 2, 2))}, r"one volume per pick \(30\)"),
    ],
)
def test_bad_options_are_named(kwargs, match):
    F, _ = blobs([15, 15])
    with pytest.raises(ValueError, match=match):
        cluster_embeddings(F, **kwargs)


def test_volumes_without_embedder_and_bad_features_are_refused():
    X, _ = volumes([5, 5])
    with pytest.raises(ValueError, match=r"features of shape \(n, m\); got shape"):
        cluster_embeddings(X)
    with pytest.raises(ValueError, match="must have a transform method"):
        cluster_embeddings(X, embedder="general")
    F, _ = blobs([15, 15])
    F[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cluster_embeddings(F)


def test_umap_missing_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap fails
    F, _ = blobs([15, 15])
    with pytest.raises(ImportError, match="pip install umap-learn"):
        cluster_embeddings(F, reduce="umap")


@pytest.mark.slow
def test_umap_reduction_is_deterministic():
    pytest.importorskip("umap")
    F, y = blobs([30, 30, 30], spread=0.3)
    a = cluster_embeddings(F, reduce="umap", n_components=2, random_state=0)
    b = cluster_embeddings(F, reduce="umap", n_components=2, random_state=0)
    np.testing.assert_array_equal(a.embedding, b.embedding)
    assert adjusted_rand_score(y, a.labels) > 0.9


# write_clusters


def test_write_clusters_writes_table_averages_and_pictures(tmp_path):
    pytest.importorskip("matplotlib")
    X, _ = volumes([15, 12])
    res = cluster_embeddings(X, FunctionTransformer(flatten), n_components=4)
    coords = np.arange(81, dtype=float).reshape(27, 3)
    files = write_clusters(
        res, tmp_path, coords=coords, volumes=X, voxel_size=10.0, names=None
    )
    names = sorted(f.name for f in files)
    assert names == ["averages.mrcs", "cluster_0.png", "cluster_1.png", "clusters.csv"]
    lines = (tmp_path / "clusters.csv").read_text().splitlines()
    assert lines[0] == "name,x,y,z,cluster,probability,example_rank"
    assert lines[1].startswith("pick_000000,0,1,2,")
    assert [int(row.split(",")[4]) for row in lines[1:]] == res.labels.tolist()
    ranks = [int(row.split(",")[6]) for row in lines[1:]]
    assert ranks[res.examples[0][0]] == 1 and sum(r == 1 for r in ranks) == 2
    with mrcfile.open(tmp_path / "averages.mrcs") as m:
        np.testing.assert_allclose(m.data, res.averages)
        assert float(m.voxel_size.x) == pytest.approx(10.0)
    with pytest.raises(FileExistsError):
        write_clusters(res, tmp_path, plots=False)
    write_clusters(res, tmp_path, plots=False, overwrite=True)


def test_write_clusters_checks_its_inputs(tmp_path):
    F, _ = blobs([15, 15])
    res = cluster_embeddings(F)
    with pytest.raises(NotADirectoryError):
        write_clusters(res, tmp_path / "missing")
    with pytest.raises(ValueError, match="names has 2 entries for 30 picks"):
        write_clusters(res, tmp_path, names=["a", "b"])
    with pytest.raises(ValueError, match=r"coords must have shape \(30, 3\)"):
        write_clusters(res, tmp_path, coords=np.zeros((30, 2)))
    # features only: the table, no averages
    files = write_clusters(res, tmp_path)
    assert [f.name for f in files] == ["clusters.csv"]


# suggest_labels


@pytest.fixture(scope="module")
def base_classifier():
    """The default classifier fitted on 4 base groups (calibration off: fast)."""
    F, y = blobs([20, 20, 20, 20], spread=0.3, seed=5)
    return CalibratedFewShotClassifier(calibrate_proba=None, random_state=0).fit(F, y)


@pytest.fixture
def episode(base_classifier):
    """(classifier, features, labels, support rows, pool rows): 3 new groups."""
    F, y = blobs([30, 30, 30], spread=0.3, seed=0)
    support = np.array([0, 30, 60])
    pool = np.setdiff1d(np.arange(90), support)
    return base_classifier, F, y, support, pool


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_gives_distinct_pool_rows_deterministically(strategy, episode):
    clf, F, y, s, p = episode
    a = suggest_labels(
        clf, F[s], y[s], F[p], n_suggest=7, strategy=strategy, random_state=0
    )
    b = suggest_labels(
        clf, F[s], y[s], F[p], n_suggest=7, strategy=strategy, random_state=0
    )
    np.testing.assert_array_equal(a.indices, b.indices)
    assert len(set(a.indices.tolist())) == 7
    assert a.indices.min() >= 0 and a.indices.max() < len(p)
    assert a.proba.shape == (len(p), 3) and a.strategy == strategy
    np.testing.assert_allclose(a.proba.sum(1), 1.0)


def test_uncertainty_strategies_take_the_highest_scores(episode):
    clf, F, y, s, p = episode
    for name in ("margin", "entropy", "unknown"):
        r = suggest_labels(clf, F[s], y[s], F[p], n_suggest=5, strategy=name)
        score = r[name]
        assert score[r.indices].min() >= np.delete(score, r.indices).max()
        assert np.all(np.diff(score[r.indices]) <= 0)


def test_unknown_and_kcenter_find_a_species_nobody_labelled(episode):
    clf, F, y, s, p = episode
    F_new, _ = blobs([5], seed=9)
    pool = np.vstack([F[p], F_new + 3.0])
    new = np.arange(len(p), len(pool))
    for strategy in ("unknown", "kcenter"):
        r = suggest_labels(clf, F[s], y[s], pool, n_suggest=1, strategy=strategy)
        assert r.indices[0] in new


def test_typical_covers_the_group_without_a_label(episode):
    clf, F, y, _, _ = episode
    support = np.array([0, 30])  # groups 0 and 1
    pool = np.setdiff1d(np.arange(90), support)
    r = suggest_labels(clf, F[support], y[support], F[pool], n_suggest=1)
    assert y[pool][r.indices].tolist() == [2]


def test_pipeline_models_embed_support_and_pool():
    X, y = volumes([10, 10, 10])
    model = Pipeline(
        [
            ("embed", FunctionTransformer(flatten)),
            ("clf", CalibratedFewShotClassifier(calibrate_proba=None)),
        ]
    ).fit(X, y)
    r = suggest_labels(model, X[[0, 10, 20]], y[[0, 10, 20]], X[1:10], n_suggest=20)
    assert len(r.indices) == 9  # no more than the pool holds
    assert set(r.predicted.tolist()) == {0}


def test_classifiers_without_probabilities_are_refused(episode):
    _, F, y, s, p = episode
    with pytest.raises(ValueError, match="PrototypeClassifier has no predict_proba"):
        suggest_labels(PrototypeClassifier().fit(F, y), F[s], y[s], F[p])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"strategy": "best"}, "strategy must be one of"),
        ({"n_suggest": 0}, "n_suggest must be >= 1; got 0"),
        ({"n_suggest": 2.5}, "n_suggest must be an integer"),
        ({"power": None}, "power must be a number; got None"),
    ],
)
def test_suggest_bad_options(kwargs, match, episode):
    clf, F, y, s, p = episode
    with pytest.raises(ValueError, match=match):
        suggest_labels(clf, F[s], y[s], F[p], **kwargs)


def test_suggest_bad_inputs(episode):
    clf, F, y, s, p = episode
    with pytest.raises(ValueError, match="one label per support pick"):
        suggest_labels(clf, F[s], y[:2], F[p])
    with pytest.raises(ValueError, match="X_pool is empty"):
        suggest_labels(clf, F[s], y[s], F[:0])
    with pytest.raises(ValueError, match="16 features but X_pool has 4"):
        suggest_labels(clf, F[s], y[s], F[p][:, :4])
