"""``fscc simulate``: a SHREC-like labelled dataset as MRC files and labels tables."""

from __future__ import annotations

import time

from ..datasets import load_shrec19_like, load_shrec21_like
from ..io import write_labels_table, write_subtomograms
from ._common import _check_dir, _class_summary, _prepare_dir, _say
from ._data import _bars


def cmd_simulate(args):
    _check_dir(args, args.out_dir)  # refused before simulating, made after
    loader = {"shrec21": load_shrec21_like, "shrec19": load_shrec19_like}[args.dataset]
    split = "paper" if args.novel is None else [c for c in args.novel.split(",") if c]
    t0 = time.perf_counter()
    given = {} if args.snr is None else {"snr": args.snr}  # else the loader's
    data = loader(
        n_per_class=args.n_per_class,
        box=args.box,
        split=split,
        cache=False,
        random_state=args.seed,
        progress=_bars(args),
        n_jobs=args.n_jobs,
        simulate_kwargs={"voxel_size": args.voxel_size},
        **given,
    )
    out = _prepare_dir(args, args.out_dir)
    for part in ("base", "novel"):
        X, y = data[f"X_{part}"], data[f"y_{part}"]
        folder = out / part
        folder.mkdir(exist_ok=True)
        if args.force:  # an earlier simulation's files would be read back with these
            for f in folder.glob("subtomo*.mrc*"):
                f.unlink()
            for f in folder.glob("labels.*"):
                f.unlink()
        if args.layout == "stack":
            stack = folder / "subtomograms.mrcs"
            write_subtomograms(stack, X, args.voxel_size, overwrite=args.force)
            names = [f"{i + 1}@{stack.name}" for i in range(len(X))]
        else:
            files = write_subtomograms(
                folder, X, args.voxel_size, layout="folder", overwrite=args.force
            )
            names = [f.name for f in files]
        write_labels_table(
            folder / f"labels.{args.labels_format}", names, y, overwrite=args.force
        )
        _say(args, f"{part}: {len(X)} subtomograms -> {folder} ({_class_summary(y)})")
    _say(
        args,
        f"{args.dataset}-like, box {args.box}, voxel {args.voxel_size:g} A, seed "
        f"{args.seed}, {time.perf_counter() - t0:.1f} s",
    )
