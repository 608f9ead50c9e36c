"""Issue 17: answers a user can trust (no silent wrong results, no first-run traps).

Each test runs the ``fscc`` command in-process on the tiny simulated data of
tests/test_cli.py and fails on the behaviour the issue reported.
"""

# ruff: noqa: F811 (the ``work`` fixture is imported from test_cli)

import json
import subprocess
import sys

import mrcfile
import numpy as np
import pytest
from test_cli import (  # the shared tiny data, models and helpers
    TINY,
    _tomogram_with_particles,
    assert_one_line_error,
    run,
    work,  # noqa: F401 (a fixture)
)

from fscc_sklearn import Conv6Embedder, load_model
from fscc_sklearn.cli import build_parser
from fscc_sklearn.io import PARTICLE_LIST_FORMATS, read_labels_table
from fscc_sklearn.report._markdown import EpisodicEvaluation, write_report


def _rows(path):
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, r.split(","), strict=True)) for r in lines[1:]]


def _predict(capsys, work, *argv):
    return run(capsys, "predict", work / "novel.safetensors", *argv)


# 1. the SHREC'19 / '21 axis order is never guessed ------------------------------


def test_shrec_list_with_undecided_axis_order_needs_format(work, tmp_path, capsys):
    _, centres, expected = _tomogram_with_particles(work, tmp_path)
    # SHREC'21 layout (class x y z ...) with lower-case names: once read as
    # SHREC'19 (z y x), which swapped x and z without an error
    shrec = tmp_path / "locations.txt"
    shrec.write_text("".join(f"1u6g {x} {y} {z} 0 0 0\n" for x, y, z in centres))
    tomo = ["--tomogram", tmp_path / "tomo.mrc", "--particles", shrec]
    code, _, err = _predict(capsys, work, *tomo, "-o", tmp_path / "p.csv")
    assert_one_line_error(
        code, err, "predict", "locations.txt", "--format shrec19 or --format shrec21"
    )
    assert not (tmp_path / "p.csv").exists()
    code, _, _ = _predict(
        capsys, work, *tomo, "--format", "shrec21", "-o", tmp_path / "p.csv"
    )
    assert code == 0
    rows = _rows(tmp_path / "p.csv")
    assert [tuple(int(float(r[a])) for a in "xyz") for r in rows] == centres
    assert [r["label"] for r in rows] == expected.tolist()


def test_format_option_names_the_readers_formats():
    for command in ("pretrain", "adapt", "predict", "evaluate"):
        argv = [command] if command == "pretrain" else [command, "m"]
        for fmt in ("auto", *PARTICLE_LIST_FORMATS):
            assert build_parser().parse_args([*argv, "--format", fmt]).format == fmt


# 2. accuracy only on particles that were not support examples --------------------


def test_predict_leaves_the_support_examples_out_of_the_accuracy(
    work, tmp_path, capsys
):
    code, out, _ = _predict(
        capsys, work, work / "sim" / "novel", "-o", tmp_path / "p.csv"
    )
    assert code == 0
    support = set(
        load_model(work / "novel.safetensors", return_metadata=True)[1]["user"][
            "support"
        ]
    )
    assert len(support) == 15
    truth = read_labels_table(work / "sim" / "novel" / "labels.csv")
    label = dict(zip(truth.names, truth.labels, strict=True))
    held = [r for r in _rows(tmp_path / "p.csv") if r["subtomogram"] not in support]
    acc = np.mean([r["label"] == label[r["subtomogram"]] for r in held])
    assert (
        f"accuracy against the labels: {acc:.3f} (25 particles; not scored: 15 "
        "support examples of the model)" in out
    )


def test_support_examples_are_recognised_by_content_in_a_tomogram(
    work, tmp_path, capsys
):
    _, centres, _ = _tomogram_with_particles(work, tmp_path)
    names = [f"subtomo_{i:06d}.mrc" for i in range(0, 40, 8)]  # what it placed
    truth = read_labels_table(work / "sim" / "novel" / "labels.csv")
    label = dict(zip(truth.names, truth.labels, strict=True))
    picks = tmp_path / "labelled.csv"
    picks.write_text(
        "x,y,z,label\n"
        + "".join(
            f"{x},{y},{z},{label[n]}\n"
            for (x, y, z), n in zip(centres, names, strict=True)
        )
    )
    support = set(
        load_model(work / "novel.safetensors", return_metadata=True)[1]["user"][
            "support"
        ]
    )
    n_support = len(set(names) & support)
    code, out, _ = _predict(
        capsys,
        work,
        "--tomogram",
        tmp_path / "tomo.mrc",
        "--particles",
        picks,
        "-o",
        tmp_path / "p.csv",
    )
    assert code == 0
    if n_support:
        assert f"({5 - n_support} particles; not scored: {n_support} support" in out
    else:
        assert "(5 particles)" in out


# 4. --resample cuts the same physical box; --box is used or refused ---------------


def test_resample_cuts_the_physical_box_of_the_model(work, tmp_path, capsys):
    from scipy.ndimage import zoom

    picks, centres, _ = _tomogram_with_particles(work, tmp_path)
    # the same specimen sampled twice as finely (5 A): the 10 A tomogram
    # interpolated onto a grid of half the spacing
    tomo10 = mrcfile.read(tmp_path / "tomo.mrc")
    tomo5 = zoom(tomo10, 2, order=3, mode="nearest", grid_mode=True)
    with mrcfile.new(tmp_path / "tomo5.mrc") as mrc:
        mrc.set_data(tomo5.astype(np.float32))
        mrc.voxel_size = 5.0
    picks5 = tmp_path / "picks5.csv"
    picks5.write_text(
        "x,y,z\n" + "".join(f"{2 * x},{2 * y},{2 * z}\n" for x, y, z in centres)
    )
    code, _, _ = _predict(
        capsys,
        work,
        "--tomogram",
        tmp_path / "tomo.mrc",
        "--particles",
        picks,
        "-o",
        tmp_path / "p10.csv",
    )
    assert code == 0
    code, _, err = _predict(
        capsys,
        work,
        "--tomogram",
        tmp_path / "tomo5.mrc",
        "--particles",
        picks5,
        "--resample",
        "-o",
        tmp_path / "p5.csv",
    )
    # 16 voxels of 10 A = 32 of 5 A; once a 16^3 box was cut and shrunk to 8^3
    assert code == 0 and "resampling 32^3 at 5.0 A to 16^3 at 10.0 A" in err
    at10, at5 = _rows(tmp_path / "p10.csv"), _rows(tmp_path / "p5.csv")
    # CSV picks come back as CSV with their columns and a prediction column
    assert [r["prediction"] for r in at5] == [r["prediction"] for r in at10]

    def proba(rows):
        return np.array(
            [[float(v) for k, v in r.items() if k.startswith("proba_")] for r in rows]
        )

    # measured: at most 0.21 apart (the tiny test model is very sensitive)
    np.testing.assert_allclose(proba(at5), proba(at10), atol=0.3)


def test_box_is_used_or_refused_never_ignored(work, tmp_path, capsys):
    picks, _, _ = _tomogram_with_particles(work, tmp_path)
    tomo = ["--tomogram", tmp_path / "tomo.mrc", "--particles", picks]
    code, _, err = _predict(
        capsys, work, *tomo, "--box", "20", "-o", tmp_path / "p.csv"
    )
    assert_one_line_error(code, err, "predict", "--box 20", "16^3", "--resample")
    code, _, err = _predict(
        capsys, work, *tomo, "--box", "20", "--resample", "-o", tmp_path / "p.csv"
    )
    assert code == 0 and "resampling 20^3 at 10.0 A to 16^3 at 10.0 A" in err
    for command in ("predict", "adapt", "evaluate"):
        model = "novel" if command == "predict" else "base"
        code, _, err = run(
            capsys,
            command,
            work / f"{model}.safetensors",
            work / "sim" / "novel",
            "--box",
            "16",
            "-o" if command != "evaluate" else "--seed",
            tmp_path / "x.out" if command != "evaluate" else "0",
        )
        assert_one_line_error(code, err, command, "--box 16", "--tomogram")


# 5. Ctrl-C during pretrain ---------------------------------------------------------


def test_ctrl_c_during_pretrain_writes_no_model_and_a_rerun_resumes(
    work, tmp_path, capsys, monkeypatch
):
    from fscc_sklearn.embedding._callbacks import TrainingMonitor

    out_model = tmp_path / "m.safetensors"
    argv = [
        "pretrain",
        work / "sim" / "base",
        "-o",
        out_model,
        "--epochs",
        "3",
        "--width",
        "4",
        "--batch-size",
        "32",
        "-q",
    ]
    batches = {"n": 0}
    original = TrainingMonitor.on_batch_end

    def press_ctrl_c_in_epoch_2(self, net, **kwargs):
        original(self, net, **kwargs)
        batches["n"] += 1
        if batches["n"] == 3:  # 2 batches per epoch: the first of epoch 2
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(TrainingMonitor, "on_batch_end", press_ctrl_c_in_epoch_2)
        code, out, err = run(capsys, *argv)
    assert code == 130 and out == "" and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        "fscc pretrain: interrupted: pre-training stopped after 1 of 3"
    )
    assert "no model written" in last and "resume" in last
    assert sum("interrupted" in line for line in err.splitlines()) == 1
    assert not out_model.exists()
    checkpoint = tmp_path / "m.safetensors.checkpoint" / "fscc_checkpoint.pt"
    assert checkpoint.exists()

    code, out, err = run(capsys, *argv[:-1])  # the same command, not quiet
    assert code == 0 and "resuming from the checkpoint" in err
    assert "epoch 2/3" in err and "epoch 1/3" not in err
    assert out_model.exists() and not checkpoint.parent.exists()
    resumed = load_model(out_model).named_steps["embed"]
    code, _, _ = run(
        capsys, *argv[:2], "-o", tmp_path / "straight.safetensors", *argv[4:]
    )
    straight = load_model(tmp_path / "straight.safetensors").named_steps["embed"]
    assert len(resumed.history) == 3
    for name, value in straight.module_.state_dict().items():
        np.testing.assert_array_equal(resumed.module_.state_dict()[name], value)


# 6. labels found in the input never block prediction -------------------------------


def test_labels_of_unknown_classes_do_not_block_prediction(work, tmp_path, capsys):
    # the base data's labels name classes the adapted model does not predict
    base = work / "sim" / "base"
    code, out, err = _predict(capsys, work, base, "-o", tmp_path / "auto.csv")
    assert code == 0 and "wrote" in out and "accuracy" not in out
    assert "not scoring" in err and "1bxn" in err and "--labels-use score" in err
    assert len(_rows(tmp_path / "auto.csv")) == 64
    code, out, err = _predict(
        capsys, work, base, "--labels-use", "ignore", "-o", tmp_path / "ignore.csv"
    )
    assert code == 0 and "accuracy" not in out and err == ""


def test_labels_use_score_scores_the_known_labels_only(work, tmp_path, capsys):
    table = read_labels_table(work / "sim" / "novel" / "labels.csv")
    labels = [lab.upper() if i < 8 else lab for i, lab in enumerate(table.labels)]
    few = tmp_path / "upper.csv"
    few.write_text(
        "subtomogram,label\n"
        + "".join(f"{n},{lab}\n" for n, lab in zip(table.names, labels, strict=True))
    )
    novel = work / "sim" / "novel"
    code, out, _ = _predict(
        capsys,
        work,
        novel,
        "--labels",
        few,
        "--labels-use",
        "score",
        "-o",
        tmp_path / "p.csv",
    )
    assert code == 0
    assert "with labels the model does not know (1U6G)" in out
    assert "not scored: " in out and "8 with labels" in out


def test_relion_class_numbers_do_not_block_prediction(work, tmp_path, capsys):
    _, centres, expected = _tomogram_with_particles(work, tmp_path)
    star = tmp_path / "picks.star"
    star.write_text(
        "data_particles\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n_rlnCoordinateZ\n"
        "_rlnClassNumber\n" + "".join(f"{x} {y} {z} 1\n" for x, y, z in centres)
    )
    code, out, err = _predict(
        capsys,
        work,
        "--tomogram",
        tmp_path / "tomo.mrc",
        "--particles",
        star,
        "-o",
        tmp_path / "p.csv",
    )
    assert code == 0 and "not scoring" in err and "(1)" in err
    assert [r["label"] for r in _rows(tmp_path / "p.csv")] == expected.tolist()


# 8. particles at the tomogram's edge ---------------------------------------------


def test_edge_particles_are_named_and_outside_centres_skipped(work, tmp_path, capsys):
    _tomogram_with_particles(work, tmp_path)
    picks = tmp_path / "edge.csv"
    picks.write_text("x,y,z\n8,8,8\n6,8,8\n50,24,24\n")
    tomo = ["--tomogram", tmp_path / "tomo.mrc", "--particles", picks]
    code, out, err = _predict(capsys, work, *tomo, "-o", tmp_path / "skip.csv")
    assert code == 0
    warning = [line for line in err.splitlines() if line.startswith("fscc: warning:")]
    assert len(warning) == 1
    assert "skipped 1 particle(s) whose box crosses the tomogram edge" in warning[0]
    assert "#2 (x, y, z)=(6, 8, 8)" in warning[0] and "--edge pad" in warning[0]
    assert "centre lies outside" in err and "#3 (x, y, z)=(50, 24, 24)" in err
    assert [r["subtomogram"] for r in _rows(tmp_path / "skip.csv")] == ["particle_1"]
    code, _, err = _predict(
        capsys, work, *tomo, "--edge", "pad", "-o", tmp_path / "pad.csv"
    )
    assert code == 0 and "padded 1 particle(s)" in err and "warning" not in err
    assert [r["subtomogram"] for r in _rows(tmp_path / "pad.csv")] == [
        "particle_1",
        "particle_2",
    ]


# 9. a labels table may label a subset of a folder --------------------------------


def test_labels_of_a_subset_of_the_folder(work, tmp_path, capsys):
    table = read_labels_table(work / "sim" / "novel" / "labels.csv")
    keep = [i for i in range(40) if i % 8 < 2]  # 2 per class
    few = tmp_path / "few.csv"
    few.write_text(
        "subtomogram,label\n"
        + "".join(f"{table.names[i]},{table.labels[i]}\n" for i in keep)
    )
    novel = work / "sim" / "novel"
    code, out, err = run(
        capsys,
        "adapt",
        work / "base.safetensors",
        novel,
        "--labels",
        few,
        "-o",
        tmp_path / "few.safetensors",
    )
    assert code == 0 and "30 of 40 subtomograms have no label" in err
    assert "from 10 examples" in out
    code, out, _ = run(
        capsys,
        "predict",
        tmp_path / "few.safetensors",
        novel,
        "--labels",
        few,
        "-o",
        tmp_path / "p.csv",
    )
    assert code == 0 and len(_rows(tmp_path / "p.csv")) == 40
    assert (
        "none scorable; not scored: 10 support examples of the model; 30 unlabelled"
        in out
    )


# 10. one clear line for every input mistake -----------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["adapt", "m", "d", "--shots", "0"],
        ["adapt", "m", "d", "--shots", "-1"],
        ["evaluate", "m", "d", "--shots", "1", "0"],
        ["evaluate", "m", "d", "--way", "0"],
        ["pretrain", "d", "--batch-size", "0"],
        ["predict", "m", "d", "--voxel-size", "0"],
    ],
)
def test_non_positive_counts_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert "expected a number" in capsys.readouterr().err


def test_cuda_on_a_machine_without_it_is_one_line(work, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = _predict(
        capsys,
        work,
        work / "sim" / "novel",
        "--device",
        "cuda",
        "-o",
        tmp_path / "p.csv",
    )
    assert_one_line_error(code, err, "predict", "--device cuda", "--device cpu")


def test_particle_list_mistakes_are_one_line(work, tmp_path, capsys):
    _tomogram_with_particles(work, tmp_path)
    empty, junk = tmp_path / "empty.txt", tmp_path / "junk.txt"
    empty.write_text("")
    junk.write_text("some notes\n")
    for path, fragment in ((empty, "is empty"), (junk, "--format")):
        code, _, err = _predict(
            capsys,
            work,
            "--tomogram",
            tmp_path / "tomo.mrc",
            "--particles",
            path,
            "-o",
            tmp_path / "p.csv",
        )
        assert_one_line_error(code, err, "predict", path.name, fragment)
        assert "format=" not in err


def test_evaluate_checks_every_shot_count_before_running(work, tmp_path, capsys):
    code, out, err = run(
        capsys,
        "evaluate",
        work / "base.safetensors",
        work / "sim" / "novel",
        "--shots",
        "1",
        "25",
        "--queries",
        "3",
        "--episodes",
        "2",
        "--report-dir",
        tmp_path / "r",
    )
    assert_one_line_error(code, err, "evaluate", "--shots 25")
    assert out == "" and not (tmp_path / "r").exists()


def test_classes_without_labels_is_an_error(work, tmp_path, capsys):
    picks, _, _ = _tomogram_with_particles(work, tmp_path)
    code, _, err = _predict(
        capsys,
        work,
        "--tomogram",
        tmp_path / "tomo.mrc",
        "--particles",
        picks,
        "--classes",
        "1u6g",
        "-o",
        tmp_path / "p.csv",
    )
    assert_one_line_error(code, err, "predict", "--classes needs labels")


def test_voxel_size_zero_in_a_header_is_unknown_with_a_note(work, tmp_path, capsys):
    picks, _, _ = _tomogram_with_particles(work, tmp_path)
    with mrcfile.new(tmp_path / "nosize.mrc") as mrc:
        mrc.set_data(mrcfile.read(tmp_path / "tomo.mrc"))  # voxel size left 0
    code, _, err = _predict(
        capsys,
        work,
        "--tomogram",
        tmp_path / "nosize.mrc",
        "--particles",
        picks,
        "-o",
        tmp_path / "p.csv",
    )
    assert code == 0
    assert "voxel size of" in err and "unknown (0 in the header)" in err


# 12. defaults, warnings, --help, --force, demo outputs and the report --------------


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom fscc_sklearn.cli import main\n"
        "for argv in (['--help'], ['predict', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('torch' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "fscc predict" in done.stdout
    assert done.stderr.strip() == "False"
    import fscc_sklearn

    assert sorted(fscc_sklearn._MODULE_OF) == sorted(fscc_sklearn.__all__)


def test_pretrain_uses_the_library_defaults_and_warns(work, tmp_path, capsys):
    args = build_parser().parse_args(["pretrain", "d"])
    assert args.epochs is None and args.batch_size is None and args.lr is None
    default = Conv6Embedder()
    code, out, err = run(
        capsys,
        "pretrain",
        work / "sim" / "base",
        "-o",
        tmp_path / "m.safetensors",
        "--width",
        "4",
    )
    assert code == 0
    assert f"{default.max_epochs} epochs, batch {default.batch_size}" in out
    embedder = load_model(tmp_path / "m.safetensors").named_steps["embed"]
    assert embedder.max_epochs == default.max_epochs
    assert embedder.batch_size == default.batch_size
    assert "64 subtomograms at batch size 64 make 1 optimiser step(s)" in err


def test_pretrain_trains_the_library_recipe_unless_one_is_named():
    from fscc_sklearn.cli._train import _new_pipeline
    from fscc_sklearn.embedding import pretraining_recipe

    def embedder_params(*options):
        args = build_parser().parse_args(["pretrain", "d", *options])
        return _new_pipeline(args, log=None).named_steps["embed"].get_params()

    default = Conv6Embedder().get_params()
    keys = set(pretraining_recipe("transfer")) | set(pretraining_recipe("paper"))
    cli = embedder_params()
    assert {k: cli[k] for k in keys} == {k: default[k] for k in keys}
    paper = embedder_params("--recipe", "paper")
    assert {k: paper[k] for k in keys} == {
        **{k: default[k] for k in keys},
        **pretraining_recipe("paper"),
    }
    assert paper["batch_size"] == 128 and paper["max_epochs"] == 5
    # an option given overrides the recipe; nothing else is set by the CLI
    mixed = embedder_params("--recipe", "paper", "--epochs", "2")
    assert mixed["max_epochs"] == 2 and mixed["lr"] == 0.05


def test_recipe_choices_are_the_library_recipes():
    from fscc_sklearn.cli._parser import _RECIPES
    from fscc_sklearn.embedding._recipes import _RECIPES as library

    assert sorted(_RECIPES) == sorted(library)


def test_embedding_is_one_transform_with_the_embedders_own_bar(monkeypatch):
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline

    from fscc_sklearn.cli._data import _embed

    class Recorder(TransformerMixin, BaseEstimator):
        def __init__(self, progress=False):
            self.progress = progress

        def fit(self, X, y=None):
            self.calls_ = []
            return self

        def transform(self, X):
            self.calls_.append((len(X), self.progress))
            return np.asarray(X)[:, :2]

    X = np.arange(700 * 3, dtype=float).reshape(700, 3)
    inner = Recorder().fit(X)
    pipe = Pipeline([("embed", FrozenEstimator(inner)), ("clf", "passthrough")])
    args = build_parser().parse_args(["evaluate", "m", "d"])
    monkeypatch.setattr("fscc_sklearn.cli._data.bars_enabled", lambda quiet: True)
    F = _embed(args, pipe, X)
    # the embedder batches X itself: no chunks of 256 on top, and the bar is the
    # embedder's (its progress parameter is set for the call, then restored)
    np.testing.assert_array_equal(F, X[:, :2])
    assert inner.calls_ == [(700, True)]
    assert inner.progress is False


def test_training_at_chance_is_warned(work, tmp_path, capsys):
    code, out, err = run(
        capsys,
        "pretrain",
        work / "sim" / "base",
        "-o",
        tmp_path / "m.safetensors",
        *TINY,
    )
    assert code == 0
    acc = (
        load_model(tmp_path / "m.safetensors")
        .named_steps["embed"]
        .history[-1, "train_acc"]
    )
    if acc <= 1 / 8 + 1.96 * np.sqrt(1 / 8 * 7 / 8 / 64):
        assert f"training accuracy {acc:.3f} is at chance (0.125" in err
    else:
        assert "at chance" not in err


def test_force_clears_the_stale_files_of_an_earlier_report(work, tmp_path, capsys):
    report = tmp_path / "report"
    argv = [
        "evaluate",
        work / "base.safetensors",
        work / "sim" / "novel",
        "--queries",
        "3",
        "--episodes",
        "3",
        "--report-dir",
        report,
    ]
    assert run(capsys, *argv, "--shots", "1", "3")[0] == 0
    assert (report / "confusion_3shot.png").exists()
    (report / "notes.txt").write_text("mine")
    code, _, err = run(capsys, *argv, "--shots", "1", "--force")
    assert code == 0 and "removed" in err
    assert not (report / "confusion_3shot.png").exists()
    assert (report / "confusion_1shot.png").exists()
    assert (report / "notes.txt").read_text() == "mine"
    md = (report / "report.md").read_text()
    assert (
        "confusion_3shot" not in md and "pre-training" in md and "epochs, batch" in md
    )


def test_report_warns_when_accuracy_is_at_chance(tmp_path):
    def evaluation(accs):
        accs = np.asarray(accs)
        ci = 1.96 * accs.std(ddof=1) / np.sqrt(len(accs))
        classes = np.arange(5)
        return EpisodicEvaluation(
            5,
            1,
            3,
            float(accs.mean()),
            float(ci),
            accs,
            np.arange(len(accs)),
            classes,
            np.zeros((5, 5), int),
        )

    chance, good = evaluation([0.1, 0.3, 0.2, 0.25]), evaluation([0.8, 0.9, 0.85, 0.8])
    md, html, results = write_report(tmp_path, "t", {}, [chance, good], {})
    text = md.read_text()
    assert text.count("**Warning**") == 1 and "is at chance (0.200)" in text
    assert "<b>Warning</b>" in html.read_text()
    flags = [e["at_chance"] for e in json.loads(results.read_text())["evaluations"]]
    assert flags == [True, False]


def test_simulate_force_replaces_an_earlier_simulation(tmp_path, capsys):
    # docs/cli.md runs "fscc simulate data --novel 1bxn,3qm1 --n-per-class 20
    # --force" after a larger simulation into the same folder
    argv = ["simulate", tmp_path / "data", "--box", "8", "-q"]
    assert run(capsys, *argv, "--n-per-class", "3")[0] == 0
    code, _, err = run(
        capsys, *argv, "--n-per-class", "2", "--novel", "1bxn,3qm1", "--force"
    )
    assert code == 0, err
    assert (
        len(read_labels_table(tmp_path / "data" / "novel" / "labels.csv").labels) == 4
    )
    assert len(list((tmp_path / "data" / "base").glob("*.mrc"))) == 2 * 11
