"""End-to-end tests of the ``fscc`` command, run in-process on tiny simulated data."""

import json
import warnings

import mrcfile
import numpy as np
import pytest

from fscc_sklearn import Conv6Embedder, evaluate_episodes, load_model
from fscc_sklearn._progress import bars_enabled
from fscc_sklearn.cli import build_parser, main
from fscc_sklearn.datasets._toy import make_toy_volumes
from fscc_sklearn.embedding._callbacks import TrainingMonitor
from fscc_sklearn.io import read_labels_table, read_subtomograms

TINY = ["--epochs", "1", "--width", "4", "--batch-size", "32"]
COMMANDS = ["simulate", "pretrain", "adapt", "predict", "evaluate", "demo"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, command, *fragments):
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fscc {command}: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Simulated data, a pre-trained and an adapted model, shared by the tests."""
    root = tmp_path_factory.mktemp("cli")
    assert (
        main(
            [
                "simulate",
                str(root / "sim"),
                "--n-per-class",
                "8",
                "--box",
                "16",
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "pretrain",
                str(root / "sim" / "base"),
                "-o",
                str(root / "base.safetensors"),
                *TINY,
                "--quiet",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "adapt",
                str(root / "base.safetensors"),
                str(root / "sim" / "novel"),
                "--shots",
                "3",
                "-o",
                str(root / "novel.safetensors"),
                "--quiet",
            ]
        )
        == 0
    )
    return root


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"fscc {command}" in out
    for option in ("--quiet", "--force"):
        assert option in out


def test_every_command_takes_seed_and_device_where_relevant():
    parser = build_parser()
    for command in ("pretrain", "evaluate", "demo", "adapt", "predict"):
        args = parser.parse_args(
            [command, "x"] if command in ("adapt", "predict", "evaluate") else [command]
        )
        assert args.seed == 0 and args.device == "auto"
    assert parser.parse_args(["evaluate", "m", "--n-jobs", "2"]).n_jobs == 2
    assert parser.parse_args(["simulate", "out", "--n-jobs", "-1"]).n_jobs == -1


def test_zero_jobs_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "out", "--n-jobs", "0"])
    assert exc.value.code == 2
    assert "--n-jobs must be a positive number or -1" in capsys.readouterr().err


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_simulate_writes_folders_and_labels(work):
    for part, n_classes in (("base", 8), ("novel", 5)):
        folder = work / "sim" / part
        sub = read_subtomograms(folder)
        assert sub.X.shape == (8 * n_classes, 16, 16, 16)
        assert sub.voxel_size == pytest.approx(10.0)
        table = read_labels_table(folder / "labels.csv")
        assert len(np.unique(table.labels)) == n_classes
        assert table.names[0] == "subtomo_000000.mrc"
    novel = read_labels_table(work / "sim" / "novel" / "labels.csv")
    assert sorted(set(novel.labels)) == ["1u6g", "3cf3", "3gl1", "3qm1", "4v94"]


def test_simulate_stack_layout_with_star_labels(tmp_path, capsys):
    code, out, _ = run(
        capsys,
        "simulate",
        tmp_path / "s",
        "--n-per-class",
        "2",
        "--box",
        "8",
        "--layout",
        "stack",
        "--labels-format",
        "star",
        "--novel",
        "1bxn,3qm1",
    )
    assert code == 0 and "novel: 4 subtomograms" in out
    table = read_labels_table(tmp_path / "s" / "novel" / "labels.star")
    assert table.names == [f"{i}@subtomograms.mrcs" for i in range(1, 5)]
    assert table.labels.tolist() == ["1bxn", "1bxn", "3qm1", "3qm1"]
    assert (
        read_subtomograms(tmp_path / "s" / "base" / "subtomograms.mrcs").X.shape[0]
        == 22
    )


def test_simulate_refuses_a_non_empty_folder(work, capsys):
    code, _, err = run(capsys, "simulate", work / "sim", "--n-per-class", "2")
    assert_one_line_error(code, err, "simulate", "not empty", "--force")


def test_pretrain_saves_model_with_metadata(work):
    model, meta = load_model(work / "base.safetensors", return_metadata=True)
    assert meta["kind"] == "pretrained"
    assert meta["box_size"] == 16 and meta["voxel_size"] == pytest.approx(10.0)
    assert meta["seed"] == 0
    assert meta["base_classes"] == [
        "1bxn",
        "1qvr",
        "1s3x",
        "2cg9",
        "3d2f",
        "3h84",
        "4cr2",
        "5mrc",
    ]
    assert meta["training"]["embedder"]["module__width"] == 4
    assert meta["versions"]["torch"] and len(meta["content_sha256"]) == 64
    history = model.named_steps["embed"].history
    assert {"train_loss", "train_ce", "train_supcon", "train_acc"} <= set(history[-1])


def test_pretrain_prints_epoch_lines_and_no_bars_when_not_a_tty(work, tmp_path, capsys):
    code, out, err = run(
        capsys,
        "pretrain",
        work / "sim" / "base",
        "-o",
        tmp_path / "m.safetensors",
        *TINY,
        "--plot-dir",
        tmp_path / "plots",
    )
    assert code == 0
    assert "epoch 1/1, loss" in err and "CE" in err and "SupCon" in err
    assert "\r" not in err  # no progress bars: stderr is not a terminal
    assert "saved" in out
    # what the base fit chose for one-shot classes, with the number it measured
    from fscc_sklearn import load_model

    gain = load_model(tmp_path / "m.safetensors")[-1].base_statistics_.pooling_gain
    assert f"pooling gained {gain:+.1f} points" in err
    for name in ("training.png", "embedding.png", "examples.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quiet_prints_the_results_only(work, tmp_path, capsys):
    argv = [
        "adapt",
        work / "base.safetensors",
        work / "sim" / "novel",
        "-o",
        tmp_path / "a.safetensors",
        "--shots",
        "2",
    ]
    code, loud, _ = run(capsys, *argv)
    assert code == 0
    code, out, err = run(capsys, *argv, "--quiet", "--force")
    assert code == 0 and err == ""
    assert out == loud and out.startswith(f"saved {tmp_path / 'a.safetensors'}")
    code, out, err = run(
        capsys,
        "predict",
        work / "novel.safetensors",
        work / "sim" / "novel",
        "-o",
        tmp_path / "p.csv",
        "-q",
    )
    assert code == 0 and err == ""
    assert "wrote" in out and "accuracy against the labels" in out


def test_adapt_gives_adapted_model(work):
    model, meta = load_model(work / "novel.safetensors", return_metadata=True)
    assert meta["kind"] == "adapted"
    assert meta["novel_classes"] == ["1u6g", "3cf3", "3gl1", "3qm1", "4v94"]
    assert len(meta["user"]["support"]) == 15  # --shots 3, 5 classes
    assert list(model.classes_) == meta["novel_classes"]


def test_predict_writes_table_and_accuracy(work, tmp_path, capsys):
    out_csv = tmp_path / "pred.csv"
    code, out, _ = run(
        capsys,
        "predict",
        work / "novel.safetensors",
        work / "sim" / "novel",
        "-o",
        out_csv,
    )
    assert code == 0 and "accuracy against the labels" in out
    lines = out_csv.read_text().splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["subtomogram", "label", "probability"]
    assert header[3:] == [
        f"proba_{c}" for c in ("1u6g", "3cf3", "3gl1", "3qm1", "4v94")
    ]
    assert len(lines) == 41
    rows = [line.split(",") for line in lines[1:]]
    proba = np.array([[float(v) for v in r[3:]] for r in rows])
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-4)
    assert all(float(r[2]) == pytest.approx(max(map(float, r[3:]))) for r in rows)
    model = load_model(work / "novel.safetensors")
    X = read_subtomograms(work / "sim" / "novel").X
    assert [r[1] for r in rows] == model.predict(X).tolist()


def test_predict_star_output(work, tmp_path, capsys):
    code, _, _ = run(
        capsys,
        "predict",
        work / "novel.safetensors",
        work / "sim" / "novel",
        "-o",
        tmp_path / "pred.star",
    )
    assert code == 0
    table = read_labels_table(tmp_path / "pred.star")
    assert len(table.labels) == 40 and table.names[0] == "subtomo_000000.mrc"


def _tomogram_with_particles(work, tmp_path):
    sub = read_subtomograms(work / "sim" / "novel")
    tomo = np.zeros((48, 48, 48), dtype=np.float32)
    centres = [(8, 8, 8), (24, 8, 8), (8, 24, 8), (8, 8, 24), (24, 24, 24)]
    for (x, y, z), vol in zip(centres, sub.X[::8], strict=True):
        tomo[z - 8 : z + 8, y - 8 : y + 8, x - 8 : x + 8] = vol
    with mrcfile.new(tmp_path / "tomo.mrc") as mrc:
        mrc.set_data(tomo)
        mrc.voxel_size = 10.0
    picks = tmp_path / "picks.csv"
    picks.write_text("x,y,z\n" + "\n".join(f"{x},{y},{z}" for x, y, z in centres))
    expected = load_model(work / "novel.safetensors").predict(sub.X[::8])
    return picks, centres, expected


def test_predict_from_tomogram_and_particle_list(work, tmp_path, capsys):
    picks, centres, expected = _tomogram_with_particles(work, tmp_path)
    code, _, _ = run(
        capsys,
        "predict",
        work / "novel.safetensors",
        "--tomogram",
        tmp_path / "tomo.mrc",
        "--particles",
        picks,
        "-o",
        tmp_path / "pred.csv",
    )
    assert code == 0
    # the CSV particle list comes back with its columns, then the predictions
    lines = [r.split(",") for r in (tmp_path / "pred.csv").read_text().splitlines()]
    assert lines[0][:6] == ["x", "y", "z", "subtomogram", "prediction", "score"]
    assert [tuple(int(v) for v in r[0:3]) for r in lines[1:]] == centres
    assert [r[4] for r in lines[1:]] == expected.tolist()


def test_predict_on_a_dask_scheduler(work, tmp_path, capsys):
    import distributed

    picks, centres, expected = _tomogram_with_particles(work, tmp_path)
    with distributed.LocalCluster(
        n_workers=1, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        code, out, err = run(
            capsys,
            "predict",
            work / "novel.safetensors",
            "--tomogram",
            tmp_path / "tomo.mrc",
            "--particles",
            picks,
            "--scheduler",
            cluster.scheduler_address,
            "--chunk-size",
            "2",
            "-o",
            tmp_path / "pred.csv",
        )
    assert code == 0, err
    assert "in 3 chunks" in out
    lines = (tmp_path / "pred.csv").read_text().splitlines()
    header = lines[0].split(",")
    labels = [r.split(",")[header.index("prediction")] for r in lines[1:]]
    assert labels == expected.tolist()

    # without --scheduler: the same table (one writer, io.write_predictions)
    code, _, err = run(
        capsys,
        "predict",
        work / "novel.safetensors",
        "--tomogram",
        tmp_path / "tomo.mrc",
        "--particles",
        picks,
        "-o",
        tmp_path / "local.csv",
    )
    assert code == 0, err
    local = (tmp_path / "local.csv").read_text().splitlines()
    assert local[0] == lines[0]
    # the CSV particle list's columns, then the predictions (issue 22)
    assert header[:6] == ["x", "y", "z", "subtomogram", "prediction", "score"]
    numbers = header.index("score")
    for a, b in zip(local[1:], lines[1:], strict=True):
        a, b = a.split(","), b.split(",")
        assert a[:numbers] == b[:numbers]  # names, coordinates, labels
        np.testing.assert_allclose(
            np.array(a[numbers:], float), np.array(b[numbers:], float), rtol=1e-5
        )


def test_scheduler_needs_a_tomogram(work, capsys):
    code, _, err = run(
        capsys,
        "predict",
        work / "novel.safetensors",
        work / "sim" / "novel",
        "--scheduler",
        "tcp://127.0.0.1:1",
        "-o",
        work / "never.csv",
    )
    assert code == 1
    assert "--scheduler works on --tomogram with --particles" in err


def test_evaluate_report_matches_evaluate_episodes(work, tmp_path, capsys):
    report = tmp_path / "report"
    code, out, _ = run(
        capsys,
        "evaluate",
        work / "base.safetensors",
        work / "sim" / "novel",
        "--shots",
        "1",
        "3",
        "--queries",
        "3",
        "--episodes",
        "6",
        "--report-dir",
        report,
        "--seed",
        "3",
    )
    assert code == 0
    assert "5-way 1-shot accuracy:" in out and "5-way 3-shot accuracy:" in out
    results = json.loads((report / "results.json").read_text())
    model = load_model(work / "base.safetensors")
    X = read_subtomograms(work / "sim" / "novel").X
    y = read_labels_table(work / "sim" / "novel" / "labels.csv").labels
    for entry in results["evaluations"]:
        ref = evaluate_episodes(
            model,
            X,
            y,
            n_way=5,
            k_shot=entry["k_shot"],
            n_query=3,
            n_episodes=6,
            random_state=3,
        )
        assert entry["accuracies"] == pytest.approx(ref.accuracies.tolist())
        assert entry["mean"] == pytest.approx(ref.mean)
        assert np.sum(entry["confusion"]) == 6 * 5 * 3
    md = (report / "report.md").read_text()
    html = (report / "report.html").read_text()
    pngs = sorted(p.name for p in report.glob("*.png"))
    assert {
        "confusion_1shot.png",
        "confusion_3shot.png",
        "accuracy_vs_shots.png",
        "training.png",
        "embedding.png",
        "examples.png",
    } == set(pngs)
    for name in pngs:
        data = (report / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        assert f"({name})" in md and f"src='{name}'" in html
    assert f"{results['evaluations'][0]['mean']:.3f}" in md


def test_evaluate_needs_enough_examples(work, capsys):
    code, _, err = run(
        capsys,
        "evaluate",
        work / "base.safetensors",
        work / "sim" / "novel",
        "--shots",
        "5",
        "--queries",
        "15",
        "--episodes",
        "2",
    )
    assert_one_line_error(code, err, "evaluate", "needs 5 classes with >= 20 samples")


def test_missing_input_file(work, tmp_path, capsys):
    code, _, err = run(
        capsys,
        "predict",
        work / "novel.safetensors",
        tmp_path / "nope",
        "-o",
        tmp_path / "p.csv",
    )
    assert_one_line_error(code, err, "predict", "not found", "nope")
    code, _, err = run(
        capsys,
        "adapt",
        tmp_path / "nomodel.safetensors",
        work / "sim" / "novel",
        "-o",
        tmp_path / "a.safetensors",
    )
    assert_one_line_error(code, err, "adapt", "Model file not found")
    assert not (tmp_path / "a.safetensors").exists()


def test_wrong_box_size_refused_then_resampled(work, tmp_path, capsys):
    assert (
        main(
            [
                "simulate",
                str(tmp_path / "s12"),
                "--n-per-class",
                "2",
                "--box",
                "12",
                "--quiet",
            ]
        )
        == 0
    )
    code, _, err = run(
        capsys,
        "predict",
        work / "novel.safetensors",
        tmp_path / "s12" / "novel",
        "-o",
        tmp_path / "p.csv",
    )
    assert_one_line_error(
        code, err, "predict", "box 12^3", "trained on 16^3", "--resample"
    )
    assert not (tmp_path / "p.csv").exists()
    code, out, err = run(
        capsys,
        "predict",
        work / "novel.safetensors",
        tmp_path / "s12" / "novel",
        "-o",
        tmp_path / "p.csv",
        "--resample",
    )
    assert code == 0 and "resampling 12^3" in err
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 11


def test_wrong_voxel_size_refused(work, tmp_path, capsys):
    assert (
        main(
            [
                "simulate",
                str(tmp_path / "v"),
                "--n-per-class",
                "2",
                "--box",
                "16",
                "--voxel-size",
                "13.5",
                "--quiet",
            ]
        )
        == 0
    )
    code, _, err = run(
        capsys,
        "predict",
        work / "novel.safetensors",
        tmp_path / "v" / "novel",
        "-o",
        tmp_path / "p.csv",
    )
    assert_one_line_error(code, err, "predict", "voxel size 13.5 A", "10 A")
    code, _, err = run(
        capsys,
        "predict",
        work / "novel.safetensors",
        tmp_path / "v" / "novel",
        "-o",
        tmp_path / "p.csv",
        "--resample",
    )
    assert code == 0 and "resampling 16^3 at 13.5 A to 16^3 at 10.0 A" in err


def test_unknown_class_in_classes_option(work, tmp_path, capsys):
    code, _, err = run(
        capsys,
        "evaluate",
        work / "base.safetensors",
        work / "sim" / "novel",
        "--classes",
        "1u6g,zzzz",
    )
    assert_one_line_error(code, err, "evaluate", "unknown class 'zzzz'")


def test_labels_file_naming_a_missing_subtomogram(work, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    lines = (work / "sim" / "novel" / "labels.csv").read_text().splitlines()
    labels.write_text("\n".join([*lines, "ghost.mrc,1u6g"]))
    code, _, err = run(
        capsys,
        "adapt",
        work / "base.safetensors",
        work / "sim" / "novel",
        "--labels",
        labels,
        "-o",
        tmp_path / "a.safetensors",
    )
    assert_one_line_error(code, err, "adapt", "ghost.mrc", "line 42")


def test_existing_output_refused_without_force(work, tmp_path, capsys):
    out_file = tmp_path / "p.csv"
    out_file.write_text("keep me")
    argv = [
        "predict",
        work / "novel.safetensors",
        work / "sim" / "novel",
        "-o",
        out_file,
    ]
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, "predict", "already exists", "--force")
    assert out_file.read_text() == "keep me"
    code, _, _ = run(capsys, *argv, "--force")
    assert code == 0 and out_file.read_text().startswith("subtomogram,label")


def test_pretrain_refuses_existing_model_before_training(work, capsys):
    code, _, err = run(
        capsys,
        "pretrain",
        work / "sim" / "base",
        "-o",
        work / "base.safetensors",
        *TINY,
    )
    assert_one_line_error(code, err, "pretrain", "already exists")
    assert "epoch" not in err


def test_safe_and_joblib_models_from_the_cli_predict_the_same(work, tmp_path, capsys):
    for suffix in ("safetensors", "joblib"):
        assert (
            main(
                [
                    "adapt",
                    str(work / "base.safetensors"),
                    str(work / "sim" / "novel"),
                    "--shots",
                    "3",
                    "-o",
                    str(tmp_path / f"a.{suffix}"),
                    "--quiet",
                ]
            )
            == 0
        )
    X = read_subtomograms(work / "sim" / "novel").X
    safe = load_model(tmp_path / "a.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        unsafe = load_model(tmp_path / "a.joblib")
    np.testing.assert_array_equal(safe.predict_proba(X), unsafe.predict_proba(X))
    np.testing.assert_array_equal(safe.predict(X), unsafe.predict(X))
    # the CLI warns in one line when it loads a pickle
    code, _, err = run(
        capsys,
        "predict",
        tmp_path / "a.joblib",
        work / "sim" / "novel",
        "-o",
        tmp_path / "p.csv",
    )
    assert code == 0
    assert "fscc: warning:" in err and "execute arbitrary code" in err


def test_demo_runs_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FSCC_SKLEARN_DATA", str(tmp_path / "cache"))
    out_dir = tmp_path / "demo"
    code, out, _ = run(
        capsys,
        "demo",
        "--pretrain",
        "--n-per-class",
        "8",
        "--box",
        "16",
        *TINY,
        "--episodes",
        "4",
        "--queries",
        "2",
        "--out-dir",
        out_dir,
    )
    assert code == 0
    assert "5-way 1-shot accuracy:" in out and "5-way 5-shot accuracy:" in out
    assert "seed 0, wall time" in out
    assert f"predictions: {out_dir / 'predictions.csv'}" in out
    rows = (out_dir / "predictions.csv").read_text().splitlines()
    assert rows[0].startswith("subtomogram,label,probability,proba_")
    assert len(rows) == 1 + 5 * (8 - 5)  # the novel subtomograms not adapted on
    for name in (
        "pretrained.safetensors",
        "adapted_5shot.safetensors",
        "report.html",
        "embedding.png",
        "examples.png",
        "training.png",
    ):
        assert (out_dir / name).exists(), name
    report = (out_dir / "report.md").read_text()
    for name in ("embedding.png", "examples.png", "confusion_5shot.png"):
        assert f"({name})" in report
    assert "**pre-training**: 1 epochs, batch 32" in report
    code, _, err = run(capsys, "demo", "--out-dir", out_dir)
    assert_one_line_error(code, err, "demo", "not empty")


class _Terminal:
    def isatty(self):
        return True


def test_bars_only_on_a_terminal_and_not_quiet():
    import io

    assert bars_enabled(False, _Terminal())
    assert not bars_enabled(True, _Terminal())
    assert not bars_enabled(False, io.StringIO())


def test_training_monitor_records_loss_terms_and_draws_bars(capsys):
    X, y = make_toy_volumes(n_classes=3, n_per_class=8, box=8, random_state=0)
    lines = []
    monitor = TrainingMonitor(bars=True, log=lines.append)
    net = Conv6Embedder(
        module__width=4,
        max_epochs=2,
        batch_size=12,
        random_state=0,
        callbacks=[("monitor", monitor)],
    )
    net.fit(X, y)
    for row in net.history:
        # the total is CE + lambda * SupCon, averaged over the same samples
        expected = row["train_ce"] + 0.05 * row["train_supcon"]
        assert row["train_loss"] == pytest.approx(expected, rel=1e-5)
    assert [line.split(",")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert "pre-training epoch" in capsys.readouterr().err
    plain = Conv6Embedder(
        module__width=4,
        max_epochs=1,
        batch_size=12,
        sup_con_weight=0,
        callbacks=[("m", TrainingMonitor())],
    )
    plain.fit(X, y)  # without SupCon only CE is recorded
    assert "train_supcon" not in plain.history[-1]
    assert plain.history[-1, "train_ce"] == pytest.approx(
        plain.history[-1, "train_loss"]
    )


@pytest.mark.parametrize("pool", ["0", "2", "auto"])
def test_adapt_pool_radius_shots_sets_the_classifiers_pooling(
    work, tmp_path, capsys, pool
):
    out = tmp_path / f"pool{pool}.safetensors"
    argv = ["adapt", work / "base.safetensors", work / "sim" / "novel", "--shots", "1"]
    code, _, err = run(capsys, *argv, "--pool-radius-shots", pool, "-o", out)
    assert code == 0
    clf = load_model(out)[-1]
    assert clf.pool_radius_shots == (pool if pool == "auto" else int(pool))
    if pool != "auto":
        assert clf.pool_radius_shots_ == int(pool)
    # one-shot classes: adapt says what their radius is and why
    said = "keep their own radius" if clf.pool_radius_shots_ == 0 else "pool their"
    assert said in err and f"pool_radius_shots={clf.pool_radius_shots!r}" in err


def test_adapt_says_nothing_about_pooling_with_five_shots(work, tmp_path, capsys):
    argv = ["adapt", work / "base.safetensors", work / "sim" / "novel", "--shots", "5"]
    code, _, err = run(capsys, *argv, "-o", tmp_path / "five.safetensors")
    assert code == 0 and "radius" not in err


def test_adapt_pool_radius_shots_refuses_other_values(work, tmp_path, capsys):
    for bad in ("-1", "all", "1.5"):
        with pytest.raises(SystemExit):
            main(
                [
                    "adapt",
                    str(work / "base.safetensors"),
                    str(work / "sim" / "novel"),
                    "--pool-radius-shots",
                    bad,
                    "-o",
                    str(tmp_path / "x.safetensors"),
                ]
            )
        assert "--pool-radius-shots" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
