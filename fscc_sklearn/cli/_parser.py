"""The ``fscc`` argument parser: no library code, so ``fscc --help`` is fast.

Each sub-command names the function that runs it as ``"module:function"`` of
this package; :func:`fscc_sklearn.cli.main` imports that module only after
parsing.
"""

from __future__ import annotations

import argparse
import textwrap

import numpy as np

DEFAULT_MODEL = "fscc_model.safetensors"


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got '{text}'"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _common(sub, *, seed=True, device=True):
    sub.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bars or notes (results and warnings are still printed)",
    )
    sub.add_argument(
        "--force",
        action="store_true",
        help="replace existing output files (in output folders: the files an "
        "earlier run wrote)",
    )
    if seed:
        sub.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    if device:
        sub.add_argument(
            "--device",
            default="auto",
            help="torch device: auto (CUDA if present), cpu, cuda, cuda:1",
        )
    sub.add_argument(
        "--n-jobs",
        type=int,
        default=None,
        help="CPU threads for torch and simulation, parallel episodes (-1: all "
        "cores; default: torch's own thread count, one episode at a time)",
    )


# the readers' formats (fscc_sklearn.io.PARTICLE_LIST_FORMATS, which a test
# compares), written out so that building the parser imports no library code
_LIST_FORMATS = ("shrec19", "shrec21", "star", "csv")


def _data_args(sub, *, labels_required: bool, model: bool = True):
    sub.add_argument(
        "data",
        nargs="?",
        default=None,
        help="folder of MRC subtomograms or an MRC stack (.mrcs)",
    )
    sub.add_argument(
        "--labels",
        help="CSV (subtomogram,label) or STAR (_rlnImageName, _fsccLabel) table, "
        "may label a subset of the files; default: labels.csv/.star in the DATA "
        "folder" + ("" if labels_required else " (optional: to report accuracy)"),
    )
    sub.add_argument("--tomogram", help="tomogram MRC to extract particles from")
    sub.add_argument(
        "--particles", help="particle list (SHREC, STAR or CSV) for --tomogram"
    )
    sub.add_argument(
        "--format",
        choices=("auto", *_LIST_FORMATS),
        default="auto",
        help="format of --particles (default auto: from the extension and "
        "content; a SHREC list whose axis order the file does not decide is "
        "refused: then give shrec19 (pdb_id Z Y X ...) or shrec21 (class x y z ...))",
    )
    sub.add_argument(
        "--box",
        type=_positive_int,
        help="box edge cut from --tomogram, in its voxels"
        + (
            " (default: the model's; another box needs --resample)"
            if model
            else " (required with --tomogram)"
        ),
    )
    sub.add_argument(
        "--edge",
        choices=("skip", "pad"),
        default="skip",
        help="particles whose box crosses the tomogram edge: skip them (default, "
        "named in a warning) or pad the missing voxels with the mean of the part "
        "of the box inside the tomogram",
    )
    sub.add_argument(
        "--voxel-size",
        type=_positive_float,
        help="voxel size in Angstrom when the MRC header has none",
    )
    sub.add_argument(
        "--classes",
        help="comma-separated classes to keep (default: all; needs labels)",
    )


def _resample_arg(sub):
    sub.add_argument(
        "--resample",
        action="store_true",
        help="resample subtomograms whose box or voxel size differ from the model's "
        "(refused by default); from --tomogram, cut the box covering the model's "
        "physical box size",
    )


# the names of fscc_sklearn.embedding's recipes (a test compares), written out
# so that building the parser imports no library code
_RECIPES = ("paper", "transfer")

# the demo's own training settings, for a run of a few minutes: applied by
# ``fscc demo --pretrain`` to the options not given (with --recipe: the width)
DEMO_TRAINING = {"epochs": 10, "width": 16, "batch_size": 128}


def _training_args(sub, *, demo: bool = False):
    """Training options; unset ones take Conv6Embedder's defaults (the demo has
    its own, for a few-minute run)."""

    def default(name):
        if demo and name == "width":
            return f"default {DEMO_TRAINING[name]}"
        if demo and name in DEMO_TRAINING:
            return f"default {DEMO_TRAINING[name]} without --recipe"
        return "default: Conv6Embedder's"

    g = sub.add_argument_group("pre-training")
    g.add_argument(
        "--recipe",
        choices=_RECIPES,
        help="a named pre-training recipe (fscc_sklearn.pretraining_recipe): "
        "paper (Gao et al. 2022) or transfer (Conv6Embedder's defaults); the "
        "options below override it (default: "
        + ("the demo's settings)" if demo else "Conv6Embedder's defaults)"),
    )
    g.add_argument("--epochs", type=_positive_int, help=f"epochs ({default('epochs')})")
    g.add_argument(
        "--width",
        type=_positive_int,
        help=f"channels of every Conv-6 block ({default('width')})",
    )
    g.add_argument(
        "--lr", type=_positive_float, help=f"Adam learning rate ({default('lr')})"
    )
    g.add_argument(
        "--batch-size",
        type=_positive_int,
        help=f"batch size ({default('batch_size')})",
    )
    g.add_argument(
        "--sup-con-weight",
        type=float,
        help=f"weight lambda of the SupCon loss ({default('sup_con_weight')})",
    )
    g.add_argument(
        "--temperature",
        type=_positive_float,
        help=f"SupCon temperature ({default('temperature')})",
    )
    g.add_argument(
        "--lowpass",
        type=float,
        default=None,
        help="low-pass cutoff (fraction of Nyquist) before normalising",
    )


def _episode_args(sub, *, shots=(1, 5)):
    g = sub.add_argument_group("episodes")
    g.add_argument(
        "--way", type=_positive_int, default=5, help="classes per episode (5)"
    )
    g.add_argument(
        "--shots",
        type=_positive_int,
        nargs="+",
        default=list(shots),
        help="labelled examples per class, one or more (1 5)",
    )
    g.add_argument(
        "--queries", type=_positive_int, default=15, help="queries per class (15)"
    )
    g.add_argument(
        "--episodes",
        type=_positive_int,
        default=100,
        help="episodes per setting (100)",
    )


def _add(subparsers, name, func, help, description, examples):
    sub = subparsers.add_parser(
        name,
        help=help,
        description=textwrap.fill(description, 79),
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.set_defaults(func=func)
    return sub


def build_parser() -> argparse.ArgumentParser:
    """The ``fscc`` argument parser (one sub-command per step)."""
    parser = argparse.ArgumentParser(
        prog="fscc",
        description="Few-shot classification of cryo-ET subtomograms (FSCC): "
        "pre-train on labelled base classes, adapt to new classes from a few "
        "examples, predict and evaluate.",
        epilog="Run 'fscc COMMAND --help' for the options and examples of a command.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _add(
        sub,
        "simulate",
        "_simulate:cmd_simulate",
        "simulate a SHREC-like labelled dataset (MRC files + labels)",
        "Simulate subtomograms of the SHREC'21 (or SHREC'19) protein classes "
        "and write OUT_DIR/base and OUT_DIR/novel, each with MRC files and "
        "a labels table.",
        [
            "fscc simulate shrec_like --n-per-class 50",
            "fscc simulate data --dataset shrec19 --snr 0.02 --box 32 "
            "--layout stack --labels-format star",
            "fscc simulate data --novel 1bxn,3qm1 --n-per-class 20",
        ],
    )
    p.add_argument("out_dir", help="output folder (new or empty)")
    p.add_argument("--dataset", choices=("shrec21", "shrec19"), default="shrec21")
    p.add_argument(
        "--n-per-class",
        type=_positive_int,
        default=50,
        help="subtomograms per class (50)",
    )
    p.add_argument(
        "--snr",
        type=float,
        default=None,
        help="signal-to-noise ratio (default: the loader's, load_shrec21_like or "
        "load_shrec19_like)",
    )
    p.add_argument(
        "--box", type=_positive_int, default=32, help="box edge in voxels (32)"
    )
    p.add_argument(
        "--voxel-size",
        type=_positive_float,
        default=10.0,
        help="voxel size in Angstrom of the simulation and the headers (10)",
    )
    p.add_argument(
        "--novel", help="comma-separated novel classes (default: the paper's)"
    )
    p.add_argument(
        "--layout",
        choices=("folder", "stack"),
        default="folder",
        help="one MRC file per subtomogram, or one stack (.mrcs)",
    )
    p.add_argument("--labels-format", choices=("csv", "star"), default="csv")
    _common(p, device=False)

    p = _add(
        sub,
        "pretrain",
        "_train:cmd_pretrain",
        "train the embedder and base-class statistics; save a model",
        "Pre-train Conv-6 with CE + lambda * SupCon on labelled base-class "
        "subtomograms and store the base-class feature statistics.",
        [
            "fscc pretrain shrec_like/base -o base.safetensors",
            "fscc pretrain subtomos/ --labels labels.star --epochs 20 --width 32",
            "fscc pretrain --tomogram tomo.mrc --particles particles.star --box 32 "
            "-o base.safetensors --plot-dir pretrain_plots",
        ],
    )
    _data_args(p, labels_required=True, model=False)
    p.add_argument(
        "-o",
        "--output",
        default=DEFAULT_MODEL,
        help=f"model file (.safetensors, safe; or .joblib) ({DEFAULT_MODEL})",
    )
    p.add_argument("--plot-dir", help="also save training curves and maps here")
    _training_args(p)
    _common(p)

    p = _add(
        sub,
        "adapt",
        "_predict:cmd_adapt",
        "adapt a pre-trained model to new classes from a few examples",
        "Few-shot adaptation: the frozen embedder and the base statistics of "
        "MODEL calibrate a classifier of the new classes in DATA.",
        [
            "fscc adapt base.safetensors data/novel --shots 5 -o novel.safetensors",
            "fscc adapt --pretrained general data/novel --shots 5 -o novel.safetensors",
            "fscc adapt base.safetensors mine/ --labels few.csv -o mine.safetensors",
        ],
    )
    p.add_argument(
        "model", nargs="?", help="pre-trained model file (or use --pretrained)"
    )
    p.add_argument(
        "--pretrained",
        choices=("general",),
        help="start from the model shipped with the package instead of a file "
        "(no pre-training needed; see docs/pretrained.md)",
    )
    _data_args(p, labels_required=True)
    p.add_argument(
        "-o",
        "--output",
        default="fscc_adapted.safetensors",
        help="adapted model file (fscc_adapted.safetensors)",
    )
    p.add_argument(
        "--shots",
        type=_positive_int,
        help="use only this many random examples per class (default: all)",
    )
    p.add_argument(
        "--k", type=_positive_int, help="nearest base classes used for calibration"
    )
    _resample_arg(p)
    _common(p)

    p = _add(
        sub,
        "predict",
        "_predict:cmd_predict",
        "classify subtomograms with an adapted model; write a CSV/STAR table",
        "Predict the class of every subtomogram (or of every particle of a "
        "tomogram) with its probability; coordinates are kept when known.",
        [
            "fscc predict novel.safetensors shrec_like/novel -o predictions.csv",
            "fscc predict novel.safetensors --tomogram tomo.mrc --particles picks.star "
            "-o predictions.star",
        ],
    )
    p.add_argument("model", help="adapted model file")
    _data_args(p, labels_required=False)
    p.add_argument(
        "-o",
        "--output",
        default="predictions.csv",
        help="output table, .csv or .star (predictions.csv)",
    )
    p.add_argument(
        "--labels-use",
        choices=("auto", "score", "ignore"),
        default="auto",
        help="labels found in the input: score the predictions against them "
        "(labels the model does not know are left out), ignore them, or auto "
        "(default: score when every label is a class of the model, else ignore "
        "with a note); they never block prediction",
    )
    _resample_arg(p)
    g = p.add_argument_group("cluster (needs fscc-sklearn[distributed])")
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler (e.g. tcp://10.0.0.5:8786): extract and classify "
        "--tomogram/--particles on that cluster; tomograms must be on a file "
        "system the workers see (default: run here)",
    )
    g.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=256,
        help="particles per task (256)",
    )
    _common(p)

    p = _add(
        sub,
        "evaluate",
        "_evaluate:cmd_evaluate",
        "N-way K-shot episodic accuracy (mean, 95%% CI) and a report",
        "Episodic evaluation on labelled data of classes the model did not "
        "train on: each episode adapts to N classes from K examples and "
        "classifies queries. Writes report.html/.md, results.json and plots.",
        [
            "fscc evaluate base.safetensors shrec_like/novel --report-dir report",
            "fscc evaluate base.safetensors data/ --way 3 --shots 1 5 10 "
            "--episodes 300 --n-jobs 2",
        ],
    )
    p.add_argument("model", help="pre-trained model file")
    _data_args(p, labels_required=True)
    p.add_argument("--report-dir", help="folder for report, results.json and plots")
    _resample_arg(p)
    _episode_args(p)
    _common(p)

    p = _add(
        sub,
        "demo",
        "_demo:cmd_demo",
        "simulate, adapt, evaluate and plot in seconds (or pre-train first)",
        "The whole job on SHREC'21-like simulated data: adapt the shipped "
        "general model (or, with --pretrain, a Conv-6 pre-trained on the 8 base "
        "classes) to the 5 novel ones with 1 and 5 shots, print mean ± 95% CI, "
        "save models, predictions, plots and a report.",
        [
            "fscc demo",
            "fscc demo --pretrain",
            "fscc demo --seed 1 --episodes 300 --out-dir demo1",
            "fscc demo --pretrain --n-per-class 200 --epochs 20 --width 32",
        ],
    )
    p.add_argument(
        "--pretrain",
        action="store_true",
        help="pre-train on the simulated base classes instead of using the "
        "shipped general model",
    )
    p.add_argument("--out-dir", default="fscc_demo", help="output folder (fscc_demo)")
    p.add_argument(
        "--n-per-class",
        type=_positive_int,
        default=100,
        help="simulated subtomograms per class (100)",
    )
    p.add_argument("--box", type=_positive_int, default=32, help="box edge (32)")
    p.add_argument(
        "--episodes",
        type=_positive_int,
        default=100,
        help="episodes per setting (100)",
    )
    p.add_argument(
        "--queries", type=_positive_int, default=15, help="queries per class (15)"
    )
    _training_args(p, demo=True)
    _common(p)
    return parser
