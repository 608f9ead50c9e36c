import csv
import logging

import joblib
import mrcfile
import numpy as np
import pytest
import torch
from _dask_helpers import CountingModel, loads
from distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from fscc_sklearn import (
    CalibratedFewShotClassifier,
    Conv6Embedder,
    evaluate_episodes,
    make_episodic_scorer,
)
from fscc_sklearn.datasets._toy import make_toy_volumes
from fscc_sklearn.distributed import (
    ParticleJob,
    dask_client,
    embed_particles_distributed,
    joblib_backend,
    predict_particles_distributed,
    set_worker_threads,
)
from fscc_sklearn.io import ParticleTable, write_particle_table

BOX = 8


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of 2 worker processes with 1 thread (and 1 torch thread) each."""
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        assert set(set_worker_threads(client, 1).values()) == {1}
        yield client


@pytest.fixture(scope="module")
def model():
    X, y = make_toy_volumes(n_classes=3, n_per_class=12, box=BOX, random_state=0)
    pipe = Pipeline(
        [
            (
                "embed",
                Conv6Embedder(
                    module__width=4, max_epochs=1, batch_size=36, random_state=0
                ),
            ),
            ("clf", CalibratedFewShotClassifier(n_samples=20, random_state=0)),
        ]
    )
    return pipe.fit(X, y)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    """Two MRC tomograms, one with a STAR list, one with a CSV list; 2 border boxes."""
    root = tmp_path_factory.mktemp("tomos")
    rng = np.random.default_rng(0)
    jobs = []
    for t, (shape, fmt) in enumerate([((30, 34, 40), "star"), ((24, 24, 24), "csv")]):
        tomo = rng.standard_normal(shape).astype(np.float32)
        path = root / f"tomo{t}.mrc"
        with mrcfile.new(path) as mrc:
            mrc.set_data(tomo)
        zyx = rng.integers(BOX // 2, np.array(shape) - BOX // 2, size=(9, 3))
        xyz = zyx[:, ::-1].astype(float)
        xyz[0] = [1, 1, 1]  # crosses the border: skipped
        particles = root / f"tomo{t}.{fmt}"
        write_particle_table(particles, ParticleTable(coords=xyz))
        jobs.append(ParticleJob(path, particles))
    return jobs


def _same(a, b):
    for field in ("tomograms", "job_index", "particle_index", "coords", "skipped"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.n_chunks == b.n_chunks


def test_prediction_on_the_cluster_equals_the_local_run(client, model, jobs, tmp_path):
    address = client.scheduler.address
    local = predict_particles_distributed(
        model, jobs, tmp_path / "local.csv", chunk_size=4
    )
    remote = predict_particles_distributed(
        model, jobs, tmp_path / "remote.csv", scheduler=address, chunk_size=4
    )
    _same(local, remote)
    np.testing.assert_array_equal(local.labels, remote.labels)
    np.testing.assert_allclose(local.probabilities, remote.probabilities, atol=1e-12)
    assert (tmp_path / "local.csv").read_text() == (tmp_path / "remote.csv").read_text()
    # 9 particles per tomogram in chunks of 4: 3 + 3 chunks; first of each skipped
    assert remote.n_chunks == 6 and len(remote) == 16
    assert remote.skipped.tolist() == [[0, 0], [1, 0]]
    assert remote.particle_index.tolist() == list(range(1, 9)) * 2
    with open(tmp_path / "remote.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["tomogram"] for r in rows] == ["tomo0.mrc"] * 8 + ["tomo1.mrc"] * 8
    assert [r["label"] for r in rows] == [str(v) for v in remote.labels]
    assert set(rows[0]) >= {"x", "y", "z", "proba_0", "proba_1", "proba_2"}


def test_labels_match_predicting_the_extracted_boxes_directly(client, model, jobs):
    from fscc_sklearn.io import extract_subtomograms, read_particle_list

    res = predict_particles_distributed(
        model, jobs[:1], scheduler=client, chunk_size=2, probabilities=False
    )
    coords = read_particle_list(jobs[0].particles).coords
    boxes = extract_subtomograms(jobs[0].tomogram, coords, BOX)
    np.testing.assert_array_equal(res.particle_index, boxes.kept)
    np.testing.assert_array_equal(res.labels, model.predict(boxes.X))
    np.testing.assert_array_equal(res.coords, coords[boxes.kept])
    assert res.probabilities is None


def test_model_is_sent_once_per_worker_not_per_task(client, model, jobs):
    before = sum(client.run(loads).values())
    counting = CountingModel(model).fit()
    res = predict_particles_distributed(
        counting, jobs, scheduler=client, chunk_size=1, box=BOX
    )
    after = sum(client.run(loads).values())
    assert res.n_chunks == 18
    assert after - before == 2  # one copy per worker


def test_embedding_on_the_cluster_equals_the_local_run(client, model, jobs):
    embedder = model["embed"]
    local = embed_particles_distributed(embedder, jobs, chunk_size=5)
    remote = embed_particles_distributed(embedder, jobs, scheduler=client, chunk_size=5)
    _same(local, remote)
    assert remote.features.shape == (16, embedder.module_.num_features)
    np.testing.assert_allclose(local.features, remote.features, rtol=1e-5, atol=1e-6)


def test_in_memory_tomograms_are_shipped_to_the_workers(client, model):
    tomo = np.random.default_rng(1).standard_normal((20, 20, 20)).astype(np.float32)
    jobs = [ParticleJob(tomo, [[10, 10, 10], [8, 9, 11]], name="mem")]
    local = predict_particles_distributed(model, jobs)
    remote = predict_particles_distributed(model, jobs, scheduler=client, chunk_size=1)
    np.testing.assert_array_equal(local.labels, remote.labels)
    assert remote.tomograms.tolist() == ["mem", "mem"]


def test_episodes_under_the_dask_joblib_backend_match_the_local_run(client):
    rng = np.random.default_rng(0)
    centres = rng.gamma(2.0, 1.0, size=(10, 16))
    F = np.abs(centres.repeat(20, 0) + rng.normal(0, 0.6, (200, 16)))
    y = np.arange(10).repeat(20)
    clf = CalibratedFewShotClassifier(n_samples=50, random_state=0).fit(
        F[y < 5], y[y < 5]
    )
    kwargs = dict(n_way=3, k_shot=1, n_query=5, n_episodes=12, random_state=7)
    local = evaluate_episodes(clf, F[y >= 5], y[y >= 5], n_jobs=1, **kwargs)
    with joblib_backend(client) as c:
        assert c is client
        remote = evaluate_episodes(clf, F[y >= 5], y[y >= 5], n_jobs=-1, **kwargs)
    np.testing.assert_array_equal(remote.seeds, local.seeds)
    np.testing.assert_array_equal(remote.accuracies, local.accuracies)


@pytest.mark.slow
def test_grid_search_under_the_dask_joblib_backend_matches_the_local_run(client):
    X, y = make_toy_volumes(n_classes=6, n_per_class=10, box=BOX, random_state=1)
    pipe = Pipeline(
        [
            (
                "embed",
                Conv6Embedder(
                    module__width=4, max_epochs=1, batch_size=32, random_state=0
                ),
            ),
            ("clf", CalibratedFewShotClassifier(n_samples=20, random_state=0)),
        ]
    )
    scorer = make_episodic_scorer(n_way=2, k_shot=1, n_query=3, n_episodes=5)
    grid = {"clf__k": [1, 2], "embed__sup_con_weight": [0.0, 0.1]}

    def search(n_jobs):
        gs = GridSearchCV(pipe, grid, cv=GroupKFold(2), scoring=scorer, n_jobs=n_jobs)
        return gs.fit(X, y, groups=y).cv_results_

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as on the workers, so float sums run in one order
    try:
        local = search(1)
    finally:
        torch.set_num_threads(threads)
    with joblib.parallel_backend("dask", client=client):
        remote = search(-1)
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_array_equal(remote[key], local[key])


def test_bad_arguments_are_refused_before_any_work(model, jobs, tmp_path):
    with pytest.raises(ValueError, match="scheduler must be a Dask scheduler address"):
        with dask_client(42):
            pass
    existing = tmp_path / "out.star"
    existing.write_text("keep me")
    with pytest.raises(FileExistsError, match="out.star' already exists"):
        predict_particles_distributed(
            model, jobs, existing, scheduler="tcp://nowhere:1"
        )
    assert existing.read_text() == "keep me"
    with pytest.raises(ValueError, match=r"output must end in .csv or .star; got"):
        predict_particles_distributed(model, jobs, tmp_path / "out.txt")
    with pytest.raises(
        ValueError, match="chunk_size must be a positive integer; got 0"
    ):
        predict_particles_distributed(model, jobs, chunk_size=0)
    with pytest.raises(ValueError, match="jobs is empty"):
        predict_particles_distributed(model, [])
    with pytest.raises(ValueError, match="got a single ParticleJob"):
        predict_particles_distributed(model, jobs[0])
    with pytest.raises(ValueError, match="torch_threads only applies"):
        predict_particles_distributed(model, jobs, torch_threads=1)
    svm = LinearSVC().fit(np.eye(4), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="LinearSVC has no predict_proba"):
        predict_particles_distributed(svm, jobs, box=BOX)
    with pytest.raises(ValueError, match="Cannot tell the box size"):
        predict_particles_distributed(CountingModel(model).fit(), jobs)
    with pytest.raises(ValueError, match=r"must have shape \(n, 3\)"):
        predict_particles_distributed(model, [(jobs[0].tomogram, [[1, 2]])])


def test_every_box_skipped_is_an_error(model, jobs):
    with pytest.raises(ValueError, match="every box crossed a tomogram border"):
        predict_particles_distributed(model, [(jobs[0].tomogram, [[0, 0, 0]])])
