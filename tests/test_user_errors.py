"""Issue 21: every user error is one clear line; reports and tables survive any
class name; odd inputs get a clear error instead of a deep crash.

The CLI tests run ``fscc`` in-process on the tiny simulated data of
tests/test_cli.py.
"""

# ruff: noqa: F811 (the ``work`` fixture is imported from test_cli)

import csv
import struct
import tracemalloc
import warnings
from functools import partial

import numpy as np
import pytest
from _benchmarks import import_benchmark
from sklearn.exceptions import NotFittedError
from test_cli import (  # the shared tiny data, models and helpers
    TINY,
    assert_one_line_error,
    run,
    work,  # noqa: F401 (a fixture)
)

from fscc_sklearn import (
    CalibratedFewShotClassifier,
    Conv6Embedder,
    DistributionCalibrationClassifier,
    load_model,
)
from fscc_sklearn.baselines import PrototypeClassifier, TukeyLogisticRegression
from fscc_sklearn.calibration import CalibratedFewShotClassifierCV
from fscc_sklearn.cli import build_parser, main
from fscc_sklearn.io import read_subtomograms, write_predictions, write_subtomograms
from fscc_sklearn.report import plotting
from fscc_sklearn.report._markdown import markdown_text

# class names a user may have: markup, mathtext, spreadsheet formulas
ODD_NAMES = {
    "1u6g": "<script>alert(1)</script>",
    "3cf3": "$\\undefinedmacro$",
    "3gl1": '=HYPERLINK("http://x")',
    "3qm1": "@SUM(A1)",
    "4v94": "-2+3",
}


def _odd_labels(work, tmp_path):
    """The novel classes' labels table with the class names renamed."""
    rows = list(csv.reader((work / "sim" / "novel" / "labels.csv").open()))
    path = tmp_path / "odd.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(rows[0])
        writer.writerows([name, ODD_NAMES[label]] for name, label in rows[1:])
    return path


# one line, --debug, exit codes ------------------------------------------------------


@pytest.mark.parametrize(
    "error, fragment",
    [
        (TypeError("voxel_size must be a number, got 'eight'"), "got 'eight'"),
        (OSError(28, "No space left on device"), "No space left on device"),
        (MemoryError(), "out of memory"),
        (MemoryError("cannot allocate 4 GB"), "out of memory: cannot allocate 4 GB"),
        (UnicodeDecodeError("utf-8", b"\xe9", 0, 1, "invalid byte"), "invalid byte"),
        (ValueError("a\nmessage on\n two lines"), "a message on two lines"),
    ],
)
def test_user_errors_are_one_line_and_exit_1(error, fragment, capsys, monkeypatch):
    def fail(args):
        raise error

    monkeypatch.setattr("fscc_sklearn.cli._simulate.cmd_simulate", fail)
    code, out, err = run(capsys, "simulate", "out")
    assert_one_line_error(code, err, "simulate", fragment)
    assert out == ""


@pytest.mark.parametrize(
    "message",
    [
        "CUDA out of memory. Tried to allocate 20.00 GiB",
        "[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 98304000000 bytes.",
    ],
)
def test_torch_out_of_memory_is_one_line(message, capsys, monkeypatch):
    import torch

    error = (
        torch.cuda.OutOfMemoryError(message)
        if "CUDA" in message
        else RuntimeError(message)
    )

    def fail(args):
        raise error

    monkeypatch.setattr("fscc_sklearn.cli._simulate.cmd_simulate", fail)
    code, _, err = run(capsys, "simulate", "out")
    assert_one_line_error(code, err, "simulate", "out of memory", "--batch-size")


def test_debug_shows_the_traceback_before_or_after_the_command(capsys, monkeypatch):
    def fail(args):
        raise OSError(13, "Permission denied", "out")

    monkeypatch.setattr("fscc_sklearn.cli._simulate.cmd_simulate", fail)
    for argv in (["--debug", "simulate", "out"], ["simulate", "out", "--debug"]):
        code, _, err = run(capsys, *argv)
        assert code == 1
        assert "Traceback (most recent call last)" in err
        assert err.strip().splitlines()[-1].startswith("fscc simulate: error: ")
        assert "Permission denied" in err.strip().splitlines()[-1]


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("fscc_sklearn.cli._simulate.cmd_simulate", interrupted)
    code, out, err = run(capsys, "simulate", "out")
    assert code == 130 and out == ""
    assert err.strip().splitlines() == ["fscc simulate: interrupted"]


def test_a_bug_keeps_its_traceback(capsys, monkeypatch):
    def bug(args):
        raise RuntimeError("internal inconsistency")

    monkeypatch.setattr("fscc_sklearn.cli._simulate.cmd_simulate", bug)
    with pytest.raises(RuntimeError, match="internal inconsistency"):
        main(["simulate", "out"])


def test_a_missing_input_is_one_line_and_debug_adds_the_traceback(work, capsys):
    argv = ["predict", work / "novel.safetensors", work / "nowhere"]
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, "predict", "nowhere")
    code, _, err = run(capsys, *argv, "--debug")
    assert code == 1 and "Traceback" in err and "FileNotFoundError" in err


# argument ranges --------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, option, expected",
    [
        (["pretrain", "d", "--epochs", "0"], "--epochs", ">= 1"),
        (["pretrain", "d", "--width", "0"], "--width", ">= 1"),
        (["pretrain", "d", "--lr", "nan"], "--lr", "finite"),
        (["pretrain", "d", "--temperature", "0"], "--temperature", "> 0"),
        (["pretrain", "d", "--sup-con-weight", "-1"], "--sup-con-weight", ">= 0"),
        (["pretrain", "d", "--lowpass", "1.5"], "--lowpass", "<= 1"),
        (["pretrain", "d", "--seed", "-3"], "--seed", ">= 0"),
        (["pretrain", "d", "--epochs", "2.5"], "--epochs", "whole number"),
        (["evaluate", "m", "d", "--episodes", "0"], "--episodes", ">= 1"),
        (["evaluate", "m", "d", "--queries", "0"], "--queries", ">= 1"),
        (["demo", "--episodes", "0"], "--episodes", ">= 1"),
        (["demo", "--batch-size", "0"], "--batch-size", ">= 1"),
        (["adapt", "m", "d", "--k", "0"], "--k", ">= 1"),
        (["predict", "m", "d", "--chunk-size", "0"], "--chunk-size", ">= 1"),
        (["predict", "m", "d", "--box", "0"], "--box", ">= 1"),
        (["simulate", "o", "--snr", "0"], "--snr", "> 0"),
        (["simulate", "o", "--snr", "inf"], "--snr", "finite"),
        (["simulate", "o", "--n-per-class", "0"], "--n-per-class", ">= 1"),
    ],
)
def test_argument_ranges_are_usage_errors(argv, option, expected, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"error: argument {option}: expected" in last and expected in last


# nothing is written before the work that produces it succeeded ------------------------


def test_pretrain_epochs_0_writes_no_model(work, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    with pytest.raises(SystemExit) as exc:
        main(["pretrain", str(work / "sim" / "base"), "-o", str(out), "--epochs", "0"])
    assert exc.value.code == 2 and not out.exists()
    assert not (tmp_path / "m.safetensors.checkpoint").exists()


def test_evaluate_episodes_0_is_an_error_not_nan(work, tmp_path, capsys):
    report = tmp_path / "report"
    argv = ["evaluate", work / "base.safetensors", work / "sim" / "novel"]
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in [*argv, "--episodes", "0", "--report-dir", report]])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert "nan" not in out + err and "--episodes" in err
    assert not report.exists()


def test_simulate_that_fails_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "sim"
    code, _, err = run(capsys, "simulate", out, "--novel", "no_such_map")
    assert_one_line_error(code, err, "simulate", "no_such_map")
    assert not out.exists()


# pretrain --checkpoint DIR -----------------------------------------------------------


def test_pretrain_checkpoint_folder_resumes_bit_identical(
    work, tmp_path, capsys, monkeypatch
):
    from fscc_sklearn.embedding._checkpoint import AtomicCheckpoint

    folder = tmp_path / "ckpt"
    argv = [
        "pretrain",
        work / "sim" / "base",
        "--epochs",
        "2",
        "--width",
        "4",
        "--batch-size",
        "32",
        "-q",
    ]
    original = AtomicCheckpoint.on_epoch_end

    def stop_after_epoch_1(self, net, **kwargs):
        original(self, net, **kwargs)  # the checkpoint of epoch 1 is saved
        raise KeyboardInterrupt

    resumed_model = tmp_path / "resumed.safetensors"
    with monkeypatch.context() as m:
        m.setattr(AtomicCheckpoint, "on_epoch_end", stop_after_epoch_1)
        code, _, err = run(capsys, *argv, "-o", resumed_model, "--checkpoint", folder)
    assert code == 130 and "no model written" in err
    assert f"resume from '{folder / 'fscc_checkpoint.pt'}'" in err
    assert not resumed_model.exists()
    assert (folder / "fscc_checkpoint.pt").exists()
    assert not (tmp_path / "resumed.safetensors.checkpoint").exists()

    code, _, err = run(capsys, *argv, "-o", resumed_model, "--checkpoint", folder)
    assert code == 0, err
    assert not folder.exists()  # removed once the model is saved
    code, _, _ = run(capsys, *argv, "-o", tmp_path / "straight.safetensors")
    assert code == 0
    resumed = load_model(resumed_model).named_steps["embed"]
    straight = load_model(tmp_path / "straight.safetensors").named_steps["embed"]
    assert len(resumed.history) == len(straight.history) == 2
    for name, value in straight.module_.state_dict().items():
        np.testing.assert_array_equal(resumed.module_.state_dict()[name], value)


# reports: any class name, any feature dimension ---------------------------------------


def test_report_with_odd_class_names(work, tmp_path, capsys):
    report = tmp_path / "report"
    code, _, err = run(
        capsys,
        "evaluate",
        work / "base.safetensors",
        work / "sim" / "novel",
        "--labels",
        _odd_labels(work, tmp_path),
        "--report-dir",
        report,
        *("--way", "3", "--shots", "1", "--queries", "2", "--episodes", "3", "-q"),
    )
    assert code == 0, err
    md = (report / "report.md").read_text()
    page = (report / "report.html").read_text()
    assert "<script>" not in md and "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "\\$\\\\undefinedmacro\\$" in md  # literal, not math on GitHub
    for name in ("confusion_1shot.png", "embedding.png", "examples.png"):
        assert (report / name).stat().st_size > 5000


def test_report_of_a_1_feature_model_skips_the_map_with_a_note(work, tmp_path, capsys):
    model = tmp_path / "w1.safetensors"
    argv = ["pretrain", work / "sim" / "base", "-o", model, *TINY, "-q"]
    code, _, err = run(capsys, *[a if a != "4" else "1" for a in argv])  # width 1
    assert code == 0, err
    report = tmp_path / "report"
    code, out, err = run(
        capsys,
        "evaluate",
        model,
        work / "sim" / "novel",
        "--report-dir",
        report,
        *("--way", "3", "--shots", "1", "--queries", "2", "--episodes", "3", "-q"),
    )
    assert code == 0, err
    md = (report / "report.md").read_text()
    assert "**Note**: Embeddings of the evaluation data: not drawn" in md
    assert "at least 2 features" in md
    assert not (report / "embedding.png").exists()
    assert (report / "examples.png").exists() and "(4 plots)" in out
    assert "plot not drawn" in err


def test_markdown_text_is_literal():
    assert markdown_text("<b>*x*</b> | [a](b) `c` $d$ \\e") == (
        "&lt;b&gt;\\*x\\*&lt;/b&gt; \\| \\[a\\](b) \\`c\\` \\$d\\$ \\\\e"
    )
    assert markdown_text("two\nlines") == "two lines"


def test_plots_draw_class_names_as_plain_text_even_with_usetex(tmp_path):
    import matplotlib

    names = np.array(["$\\undefinedmacro$", "a_b%#&", "<i>x</i>"])
    y = np.repeat(names, 5)
    F = np.random.default_rng(0).normal(size=(15, 4))
    # usetex would need LaTeX (absent here) and choke on these names anyway
    with matplotlib.rc_context({"text.usetex": True}):
        plotting.plot_embedding(F, y, tmp_path / "e.png", novel=names[:1])
        plotting.plot_confusion_matrix(np.eye(3), names, tmp_path / "c.png")
        plotting.plot_class_examples(
            np.random.default_rng(1).random((15, 8, 8, 8)), y, tmp_path / "x.png"
        )
        plotting.plot_accuracy_vs_shots({names[0]: {1: (0.5, 0.1)}}, tmp_path / "a.png")
    assert matplotlib.rcParams["text.usetex"] is False  # the user's setting is back
    for name in ("e", "c", "x", "a"):
        assert (tmp_path / f"{name}.png").stat().st_size > 5000


def test_embedding_map_needs_two_features(tmp_path):
    with pytest.raises(ValueError, match="at least 2 features per point; got 1"):
        plotting.plot_embedding(np.ones((5, 1)), list("aabbb"), tmp_path / "e.png")
    assert not (tmp_path / "e.png").exists()


# CSV cells a spreadsheet would run ----------------------------------------------------


def test_prediction_csv_neutralises_formula_cells(tmp_path):
    labels = ["=1+1", "+x", "-2+3", "@SUM(A1)", "plain", "-1", "+x", "plain"]
    names = [
        "=cmd|' /C calc'!A0",
        "-s.mrc",
        "\ts2.mrc",
        "@s3",
        "s4",
        "s5",
        "s6",
        "s7",
    ]
    classes = sorted(set(labels))
    proba = np.full((8, len(classes)), 1 / len(classes))
    coords = np.array([[-1.5, 2.0, -0.25]] * 8)
    path = write_predictions(
        tmp_path / "p.csv", coords, labels, proba, classes=classes, names=names
    )
    rows = list(csv.DictReader(path.open(newline="")))
    assert [r["label"] for r in rows] == [
        "'=1+1",
        "'+x",
        "'-2+3",
        "'@SUM(A1)",
        "plain",
        "-1",  # a number stays a number
        "'+x",
        "plain",
    ]
    assert [r["subtomogram"] for r in rows[:6]] == [
        "'=cmd|' /C calc'!A0",
        "'-s.mrc",
        "'\ts2.mrc",
        "'@s3",
        "s4",
        "s5",
    ]
    assert [r["x"] for r in rows] == ["-1.5"] * 8  # numeric columns untouched
    assert rows[0]["z"] == "-0.25" and float(rows[0]["probability"]) == 1 / 6
    assert "proba_-1" in rows[0] and "proba_=1+1" in rows[0]
    star = write_predictions(
        tmp_path / "p.star", coords, labels, proba, classes=classes, names=names[:1] * 8
    )
    assert "'=1+1" not in star.read_text()  # STAR is not opened in spreadsheets


def test_predict_csv_of_odd_class_names(work, tmp_path, capsys):
    model = tmp_path / "odd.safetensors"
    labels = _odd_labels(work, tmp_path)
    argv = ["adapt", work / "base.safetensors", work / "sim" / "novel"]
    code, _, err = run(capsys, *argv, "--labels", labels, "-o", model, "-q")
    assert code == 0, err
    table = tmp_path / "p.csv"
    code, _, err = run(capsys, "predict", model, work / "sim" / "novel", "-o", table)
    assert code == 0, err
    predicted = {r["label"] for r in csv.DictReader(table.open(newline=""))}
    assert predicted <= {"'" + n if n[0] in "=+-@" else n for n in ODD_NAMES.values()}
    assert not any(p.startswith(("=", "+", "-", "@")) for p in predicted)


# odd inputs to the library ------------------------------------------------------------


def test_permissive_mrc_with_unknown_stamp_and_huge_extended_header(tmp_path):
    path = tmp_path / "s.mrcs"
    write_subtomograms(path, np.zeros((2, 8, 8, 8), np.float32), 10.0)
    data = bytearray(path.read_bytes())
    data[212:216] = bytes(4)  # machine stamp 0: byte order unknown
    data[92:96] = struct.pack("<i", 2_000_000_000)  # nsymbt
    path.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="extended header of 2000000000 bytes"):
            read_subtomograms(path, permissive=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50e6


def test_permissive_mrc_with_unknown_stamp_still_reads(tmp_path):
    path = tmp_path / "s.mrcs"
    X = np.random.default_rng(0).normal(size=(2, 8, 8, 8)).astype(np.float32)
    write_subtomograms(path, X, 10.0)
    data = bytearray(path.read_bytes())
    data[212:216] = bytes(4)
    path.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="machine stamp"):
        np.testing.assert_array_equal(read_subtomograms(path, permissive=True).X, X)


def test_an_empty_box_is_refused_before_torch(work):
    y = np.array([0, 0, 1, 1])
    model = load_model(work / "base.safetensors")
    for X in (np.zeros((2, 0, 0, 0), np.float32), np.zeros((2, 16, 0, 16))):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no numpy 'Mean of empty slice' first
            with pytest.raises(ValueError, match=r"empty box \((0, 0, 0|16, 0, 16)\)"):
                model.predict(X)
    with pytest.raises(ValueError, match=r"empty box \(0, 0, 0\)"):
        Conv6Embedder(max_epochs=1, module__width=2).fit(
            np.zeros((4, 0, 0, 0), np.float32), y
        )
    with pytest.raises(ValueError, match=r"empty box \(3, 0, 3\)"):
        Conv6Embedder(max_epochs=1, module__width=2).fit(
            np.zeros((4, 1, 3, 0, 3), np.float32), y
        )


@pytest.mark.parametrize(
    "estimator, X",
    [
        (Conv6Embedder(max_epochs=1, module__width=2), np.zeros((4, 4, 4, 4))),
        (CalibratedFewShotClassifier(), np.ones((4, 3))),
        (CalibratedFewShotClassifierCV(), np.ones((4, 3))),
        (PrototypeClassifier(), np.ones((4, 3))),
    ],
    ids=lambda v: type(v).__name__,
)
def test_labels_of_mixed_types_are_named(estimator, X):
    y = np.array(["a", 1, "a", 1], dtype=object)  # a list is read as strings
    with pytest.raises(ValueError, match=r"mixes labels of types \['int', 'str'\]"):
        estimator.fit(X, y)


@pytest.mark.parametrize(
    "estimator",
    [
        CalibratedFewShotClassifier(tukey_lambda=-0.5),
        DistributionCalibrationClassifier(tukey_lambda=-0.5),
        TukeyLogisticRegression(tukey_lambda=-0.5),
        PrototypeClassifier(tukey_lambda=-0.5),
    ],
    ids=lambda v: type(v).__name__,
)
def test_a_negative_tukey_lambda_is_named_at_fit(estimator):
    # x ** -0.5 of a ReLU's zero is inf: this failed deep inside scipy
    X = np.vstack([np.zeros((4, 3)), np.ones((4, 3))])
    with pytest.raises(
        ValueError, match=r"'tukey_lambda' .* range \[0.0, inf\)\. Got -0.5"
    ):
        estimator.fit(X, np.repeat(["a", "b"], 4))


def test_calibrated_cv_before_fit_and_on_negative_features():
    clf = CalibratedFewShotClassifierCV()
    for method in (clf.decision_function, clf.predict, clf.predict_proba):
        with pytest.raises(
            NotFittedError,
            match="This CalibratedFewShotClassifierCV instance is not fitted yet",
        ):
            method(np.ones((2, 3)))
    with pytest.raises(
        ValueError,
        match="Negative values in data passed to CalibratedFewShotClassifierCV",
    ):
        clf.fit(-np.ones((6, 3)), [0, 0, 0, 1, 1, 1])


# the argument parser, fuzzed ---------------------------------------------------------


def _fuzz_cli():
    """benchmarks/fuzz_cli.py: its command-line strategy and ranges (one copy)."""
    return import_benchmark("fuzz_cli")


def test_fuzzed_command_lines_parse_or_are_usage_errors(capsys):
    """Random options and values: a Namespace whose values are in range, or a
    usage error (exit 2) with argparse's message; never another exception."""
    from hypothesis import HealthCheck, given, settings

    fuzz = _fuzz_cli()
    commands, parser = fuzz._commands(), build_parser()
    command_lines = partial(fuzz.command_lines, commands)
    _RANGES = fuzz._RANGES

    @settings(
        max_examples=400,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(command_lines())
    def parse(argv):
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:
            assert exc.code == 2, argv
            err = capsys.readouterr().err
            last = err.strip().splitlines()[-1]
            assert last.startswith((f"fscc {argv[0]}: error: ", "fscc: error: "))
            return
        for action in commands[argv[0]]._actions:
            check = _RANGES.get(getattr(action.type, "__name__", None))
            value = getattr(args, action.dest, None)
            if check is not None and value is not None:
                for v in value if isinstance(value, list) else [value]:
                    assert check(v), (argv, action.dest, v)

    parse()
