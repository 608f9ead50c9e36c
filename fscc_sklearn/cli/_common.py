"""What every ``fscc`` command shares that needs no library code: errors,
messages, output checks (imported by ``main``, so kept free of torch)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# What the commands write into a report, plot or demo folder: with --force an
# earlier run's files of these names are removed first, and nothing else.
_OWN_FILES = (
    "report.md",
    "report.html",
    "results.json",
    "training.png",
    "embedding.png",
    "examples.png",
    "accuracy_vs_shots.png",
    "confusion_*shot.png",
    "pretrained.safetensors",
    "adapted_5shot.safetensors",
    "predictions.csv",
    "clusters.csv",
    "averages.mrcs",
    "cluster_*.png",
)


class UserError(Exception):
    """A mistake in the command line or the inputs: reported in one line."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what was (not) written, for the one-line message."""


def _say(args, *parts) -> None:
    """Results: on stdout, also with --quiet."""
    print(*parts, flush=True)


def _note(args, text: str) -> None:
    """Progress notes go to stderr so stdout holds only results; -q hides them."""
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr, flush=True)


def _warn(args, text: str) -> None:
    """Something the user should act on: on stderr, also with --quiet."""
    print(f"fscc: warning: {text}", file=sys.stderr, flush=True)


def _check_outputs(args, *paths) -> None:
    """Refuse existing outputs before any work starts (unless --force)."""
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        if p.exists() and not args.force:
            raise UserError(f"output '{p}' already exists; pass --force to replace it")
        if not p.parent.exists():
            raise UserError(f"output folder '{p.parent}' does not exist")


def _check_dir(args, folder) -> Path:
    """Refuse an output folder that cannot be used (before any work starts)."""
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise UserError(f"'{folder}' exists and is not a folder")
        if any(folder.iterdir()) and not args.force:
            raise UserError(f"folder '{folder}' is not empty; pass --force to reuse it")
    elif not folder.parent.exists():
        raise UserError(f"parent folder '{folder.parent}' does not exist")
    return folder


def _prepare_dir(args, folder) -> Path:
    """An output folder that is new or empty (or, with --force, cleared of the
    files an earlier run of these commands wrote there; nothing else)."""
    folder = _check_dir(args, folder)
    if not folder.exists():
        folder.mkdir()
        return folder
    stale = sorted({f for pattern in _OWN_FILES for f in folder.glob(pattern)})
    for f in stale:
        if f.is_file():
            f.unlink()
    if stale:
        _note(args, f"--force: removed {len(stale)} file(s) of an earlier run")
    return folder


def _class_summary(y) -> str:
    classes, counts = np.unique(y, return_counts=True)
    return ", ".join(f"{c} ({n})" for c, n in zip(classes, counts, strict=True))


def _pooling_summary(clf) -> str:
    """What a CalibratedFewShotClassifier does with classes of one or two
    examples, and why."""
    shots, gain = clf.pool_radius_shots_, clf.base_statistics_.pooling_gain
    what = (
        "classes of one or two examples keep their own radius"
        if shots == 0
        else f"classes of up to {shots} examples pool their radius"
    )
    why = (
        "not measured"
        if gain is None
        else f"pooling gained {gain:+.1f} points on one-shot episodes of the base "
        "classes"
    )
    return (
        f"{what} (pool_radius_shots={clf.pool_radius_shots!r}: {why}; "
        "docs/calibration.md, step 4)"
    )


def _few(names, n=5) -> str:
    return ", ".join(map(str, names[:n])) + (" ..." if len(names) > n else "")
