"""The ``fscc`` argument parser: no library code, so ``fscc --help`` is fast.

Each sub-command names the function that runs it as ``"module:function"`` of
this package; :func:`fscc_sklearn.cli.main` imports that module only after
parsing.
"""

from __future__ import annotations

import argparse

from ._args import (
    _RECIPES,
    DEFAULT_MODEL,
    DEMO_TRAINING,
    _add,
    _common,
    _copick_args,
    _data_args,
    _debug_arg,
    _episode_args,
    _pool_shots,
    _positive_float,
    _positive_int,
    _resample_arg,
    _training_args,
)

__all__ = ["DEFAULT_MODEL", "DEMO_TRAINING", "_RECIPES", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The ``fscc`` argument parser (one sub-command per step)."""
    parser = argparse.ArgumentParser(
        prog="fscc",
        description="Few-shot classification of cryo-ET subtomograms (FSCC): "
        "pre-train on labelled base classes, adapt to new classes from a few "
        "examples, predict and evaluate.",
        epilog="Run 'fscc COMMAND --help' for the options and examples of a command.",
    )
    _debug_arg(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # one function per command, in the order of --help
    _simulate_command(sub)
    _pretrain_command(sub)
    _adapt_command(sub)
    _predict_command(sub)
    _evaluate_command(sub)
    _cluster_command(sub)
    _suggest_command(sub)
    _demo_command(sub)
    return parser


def _simulate_command(sub) -> None:
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
        type=_positive_float,
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


def _pretrain_command(sub) -> None:
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
    p.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="folder of the checkpoint saved after every epoch: the same command "
        "run again after an interruption resumes from it, bit-identical to an "
        "uninterrupted run (default: OUTPUT.checkpoint; removed once the model is "
        "saved; --force starts over)",
    )
    _training_args(p)
    _common(p)


def _adapt_command(sub) -> None:
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
    p.add_argument(
        "--pool-radius-shots",
        type=_pool_shots,
        metavar="auto|N",
        help="new classes with at most N examples share one pooled radius; 'auto' "
        "lets the base classes' measurement decide (default: the model's setting)",
    )
    _reject_arg(
        p,
        "keep the rejection in the model; 'auto' sets its threshold from the "
        "support (fscc predict then answers 'unknown' by default)",
    )
    _resample_arg(p)
    _common(p)


def _predict_command(sub) -> None:
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
    _reject_arg(
        p,
        "answer 'unknown' for particles of none of the classes and write their "
        "novelty and an unknown flag (0/1); 'auto' uses the threshold set by "
        "fscc adapt --reject auto (docs/calibration.md)",
    )
    _resample_arg(p)
    _copick_args(p)
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


def _reject_arg(p, what: str) -> None:
    p.add_argument(
        "--reject",
        type=_reject_value,
        metavar="auto|NUMBER",
        help=f"open-set prediction: {what}; a NUMBER rejects novelty above it",
    )


def _reject_value(text: str):
    """argparse type of --reject: "auto" or a novelty threshold >= 0."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a number >= 0, got {text!r}"
        )
    return value


def _evaluate_command(sub) -> None:
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


def _demo_command(sub) -> None:
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


def _embedding_model_args(p) -> None:
    """MODEL or --pretrained: whose embedder gives the features (cluster, suggest)."""
    p.add_argument(
        "model", nargs="?", help="model file whose embedder to use (or --pretrained)"
    )
    p.add_argument(
        "--pretrained",
        choices=("general",),
        help="use the model shipped with the package instead of a file",
    )


def _cluster_command(sub) -> None:
    p = _add(
        sub,
        "cluster",
        "_cluster:cmd_cluster",
        "find the species in unlabelled picks: clusters, averages, pictures",
        "Embed the picks with the model's embedder, reduce (PCA, or UMAP when "
        "umap-learn is installed) and cluster with HDBSCAN. Writes OUT_DIR/"
        "clusters.csv (cluster of every pick, -1 noise; example_rank 1 marks the "
        "most central member), averages.mrcs (the mean subtomogram of each "
        "cluster, unaligned) and cluster_<k>.png (projections of the average and "
        "central slices of members). Name a cluster and use its members as "
        "support examples.",
        [
            "fscc cluster --pretrained general picks/ -o clusters",
            "fscc cluster model.safetensors --tomogram tomo.mrc --particles "
            "picks.star -o clusters --min-cluster-size 20",
        ],
    )
    _embedding_model_args(p)
    _data_args(p, labels_required=False)
    p.add_argument(
        "-o", "--out-dir", default="clusters", help="output folder (clusters)"
    )
    g = p.add_argument_group("clustering (fscc_sklearn.cluster_embeddings)")
    g.add_argument(
        "--reduce",
        choices=("pca", "umap", "none"),
        default="pca",
        help="reduction before clustering (pca; umap needs umap-learn)",
    )
    g.add_argument(
        "--n-components",
        type=_positive_int,
        default=10,
        help="dimensions kept by the reduction (10)",
    )
    g.add_argument(
        "--min-cluster-size",
        type=_positive_int,
        default=10,
        help="smallest group of picks called a cluster (10)",
    )
    g.add_argument(
        "--min-samples",
        type=_positive_int,
        help="HDBSCAN min_samples (default: --min-cluster-size)",
    )
    g.add_argument(
        "--selection",
        choices=("leaf", "eom"),
        default="leaf",
        help="HDBSCAN cluster selection: leaf (many small clusters, default) or "
        "eom (fewer, larger ones)",
    )
    g.add_argument(
        "--examples",
        type=_positive_int,
        default=5,
        help="central members marked and drawn per cluster (5)",
    )
    p.add_argument("--no-plots", action="store_true", help="write no PNG files")
    _resample_arg(p)
    _common(p)


# fscc_sklearn.discovery.STRATEGIES (a test compares), written out so that
# building the parser imports no library code
_STRATEGIES = ("typical", "margin", "entropy", "kcenter", "unknown", "random")


def _suggest_command(sub) -> None:
    p = _add(
        sub,
        "suggest",
        "_suggest:cmd_suggest",
        "rank unlabelled picks: which to label next",
        "The labelled picks of the input (--labels, or the label column of "
        "--particles) are the support set, the unlabelled ones the pool. Adapts "
        "the model to the support set and writes the N pool picks most worth "
        "labelling (with coordinates when known, the predicted class, margin and "
        "unknown scores) and a PNG of their central slices.",
        [
            "fscc suggest --pretrained general picks/ --labels few.csv -n 20",
            "fscc suggest model.safetensors --tomogram tomo.mrc --particles "
            "picks.star -o next.csv --strategy margin",
        ],
    )
    _embedding_model_args(p)
    _data_args(p, labels_required=False)
    p.add_argument(
        "-o",
        "--output",
        default="suggestions.csv",
        help="output table (suggestions.csv); its picture: the same name, .png",
    )
    p.add_argument(
        "-n",
        "--n-suggest",
        type=_positive_int,
        default=10,
        help="picks to suggest (10)",
    )
    p.add_argument(
        "--strategy",
        choices=_STRATEGIES,
        default="typical",
        help="typical (default: the most typical pick of each unlabelled group), "
        "margin / entropy (least certain), kcenter (most different from the "
        "labelled picks), unknown (farthest from every labelled class), random",
    )
    p.add_argument("--no-plots", action="store_true", help="write no PNG file")
    _resample_arg(p)
    _common(p)
