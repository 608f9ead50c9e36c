"""The ``fscc`` arguments shared by several commands, and the argparse types
that check their ranges (a bad value is a usage error naming the option)."""

from __future__ import annotations

import argparse
import math
import textwrap

DEFAULT_MODEL = "fscc_model.safetensors"


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, got {text!r}"
        ) from None


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {value}")
    return value


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _pool_shots(text: str) -> int | str:
    """argparse type of --pool-radius-shots: "auto" or an integer >= 0."""
    return text if text == "auto" else _non_negative_int(text)


def _non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (seeds)."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _fraction(text: str) -> float:
    """argparse type: a number in (0, 1]."""
    value = _finite(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number > 0 and <= 1, got {value}")
    return value


def _debug_arg(parser, default=False) -> None:
    """``--debug``: before or after the command (``default=SUPPRESS`` on the
    commands, so that their default does not reset a global ``--debug``)."""
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="show the Python traceback of an error instead of one line",
    )


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
        sub.add_argument(
            "--seed", type=_non_negative_int, default=0, help="random seed (default 0)"
        )
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
    _debug_arg(sub, default=argparse.SUPPRESS)


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
    _star_tomogram_args(sub)
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


def _star_tomogram_args(sub):
    """RELION 5 particle lists: which tomogram, and its tomograms.star (issue 22)."""
    sub.add_argument(
        "--tomo-name",
        help="for a STAR list of several tomograms: the rlnTomoName (or "
        "rlnMicrographName) of --tomogram (default: its file name, when listed)",
    )
    sub.add_argument(
        "--tomograms-star",
        help="RELION 5 tomograms.star: pixel size, binning and size of each "
        "tomogram, to place _rlnCenteredCoordinate*Angst (default: the voxel size "
        "and shape of --tomogram)",
    )


def _copick_args(sub):
    """``fscc predict --copick``: particles and tomogram of a copick run (issue 22)."""
    g = sub.add_argument_group("copick project (needs fscc-sklearn[copick])")
    g.add_argument(
        "--copick",
        metavar="CONFIG",
        help="copick project config (local filesystem project): classify the "
        "picks of --run in its tomogram and write the predictions back as picks",
    )
    g.add_argument("--run", help="copick run name")
    g.add_argument(
        "--tomogram-type", help="copick reconstruction type (e.g. wbp, denoised)"
    )
    g.add_argument(
        "--voxel-spacing",
        type=_positive_float,
        help="copick voxel spacing in Angstrom (default: the model's voxel size)",
    )
    g.add_argument(
        "--pick-objects",
        help="comma-separated pickable objects whose picks are classified "
        "(default: all picks of the run)",
    )
    g.add_argument(
        "--copick-object",
        action="append",
        default=[],
        metavar="CLASS=OBJECT",
        help="write class CLASS as picks of copick object OBJECT (repeatable; "
        "default: the object named like the class)",
    )
    g.add_argument(
        "--copick-user",
        default="fscc",
        help="copick user id of the written picks (fscc; session 0)",
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
        type=_non_negative_float,
        help=f"weight lambda of the SupCon loss ({default('sup_con_weight')})",
    )
    g.add_argument(
        "--temperature",
        type=_positive_float,
        help=f"SupCon temperature ({default('temperature')})",
    )
    g.add_argument(
        "--lowpass",
        type=_fraction,
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
