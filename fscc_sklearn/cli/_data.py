"""Reading a command's inputs: subtomograms, tomograms, particle lists, models;
progress bars, embedding and plots shared by the commands."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import numpy as np

from .._progress import bars_enabled, progress_bar
from ..io import (
    ParticleListFormatError,
    SeveralTomogramsError,
    read_particle_list,
)
from ..model_selection import unfreeze
from ..persistence._model_file import check_model_input, load_model
from ..report.plotting import matplotlib_available
from ._common import UserError, _note, _warn
from ._inputs import (
    _voxel_size,
    load_subtomogram_data,
    load_tomogram_data,
    resample_volumes,
    tomogram_info,
)


def _bars(args) -> bool:
    return bars_enabled(getattr(args, "quiet", False))


def _load_model(args, path):
    model, meta = load_model(path, device=args.device, return_metadata=True)
    return model, meta


def _particle_table(args):
    """The --particles list, read in --format (auto: only when the file decides),
    in voxels of --tomogram (STAR files in Angstrom or with a stated pixel size
    are converted with its voxel size and shape)."""
    shape, header_vs = tomogram_info(args.tomogram)
    options = {
        "voxel_size": _voxel_size(header_vs, args.voxel_size, args.tomogram),
        "tomogram_shape": shape,
    }
    if getattr(args, "tomo_name", None) or getattr(args, "tomograms_star", None):
        options.update(tomo_name=args.tomo_name, tomograms_star=args.tomograms_star)
    try:
        return read_particle_list(args.particles, format=args.format, **options)
    except ParticleListFormatError as exc:
        choices = " or ".join(f"--format {c}" for c in exc.candidates)
        raise UserError(
            f"cannot tell the format of '{exc.path}': {exc.reason}; pass {choices}"
        ) from None
    except SeveralTomogramsError as exc:
        # the list's tomogram named like the --tomogram file
        if options.get("tomo_name") is None:
            options["tomo_name"] = Path(args.tomogram).stem
            with contextlib.suppress(ValueError):
                return read_particle_list(args.particles, format=args.format, **options)
        raise UserError(f"{exc}".replace("tomo_name=, ", "")) from None


def _extraction_box(args, meta, voxel_size) -> int:
    """Box edge (tomogram voxels) to cut: --box, or what the model needs."""
    model_box = None if meta is None else meta.get("box_size")
    if model_box is None:
        if args.box is None:
            raise UserError("--tomogram needs --box (box edge in voxels)")
        return args.box
    model_box = int(model_box)
    if getattr(args, "resample", False):
        if args.box is not None:
            return args.box
        model_vs = meta.get("voxel_size")
        if voxel_size is None or model_vs is None:
            return model_box
        # the same physical size as the model's box, resampled to it afterwards
        return max(1, round(model_box * float(model_vs) / voxel_size))
    if args.box is not None and args.box != model_box:
        raise UserError(
            f"--box {args.box}: the model takes {model_box}^3 boxes; omit --box, or "
            f"pass --resample to cut {args.box}^3 and resample to {model_box}^3"
        )
    return model_box


def _report_edges(args, table, edge) -> None:
    """Name the particles skipped or padded at the tomogram's edge."""

    def listed(rows):
        shown = ", ".join(
            f"#{i + 1} (x, y, z)=({', '.join(f'{v:g}' for v in table.coords[i])})"
            for i in rows[:5]
        )
        return shown + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")

    if len(edge.outside):
        _note(
            args,
            f"note: skipped {len(edge.outside)} particle(s) whose centre lies outside "
            f"the tomogram (Z, Y, X)={edge.shape}: {listed(edge.outside)}",
        )
    if len(edge.crossing) and edge.padded:
        _note(
            args,
            f"note: padded {len(edge.crossing)} particle(s) whose box crosses the "
            f"tomogram edge: {listed(edge.crossing)}",
        )
    elif len(edge.crossing):
        _warn(
            args,
            f"skipped {len(edge.crossing)} particle(s) whose box crosses the tomogram "
            f"edge (--edge pad keeps them): {listed(edge.crossing)}",
        )


def _read_tomogram(args, *, need_labels, use_labels, meta):
    if args.data is not None:
        raise UserError("give either DATA or --tomogram/--particles, not both")
    if args.particles is None:
        raise UserError("--tomogram needs --particles (a particle list)")
    table = _particle_table(args)
    _, header_vs = tomogram_info(args.tomogram)
    box = _extraction_box(
        args, meta, _voxel_size(header_vs, args.voxel_size, args.tomogram)
    )
    with progress_bar(len(table), "extracting", _bars(args)) as bar:
        data, edge = load_tomogram_data(
            args.tomogram,
            table,
            box,
            need_labels=need_labels,
            use_labels=use_labels,
            voxel_size=args.voxel_size,
            edge=args.edge,
            progress=bar,
        )
    _report_edges(args, table, edge)
    return data


def _read_data(args, *, need_labels: bool, meta: dict | None = None):
    """Subtomograms from DATA (+ --labels) or --tomogram + --particles.

    Commands that need labels keep only the labelled subtomograms; ``meta``
    (the model's metadata) sets the box cut from a tomogram.
    """

    use_labels = getattr(args, "labels_use", "auto") != "ignore"
    if getattr(args, "tomogram", None) is not None:
        data = _read_tomogram(
            args, need_labels=need_labels, use_labels=use_labels, meta=meta
        )
    else:
        if args.data is None:
            raise UserError("give DATA (folder or MRC stack) or --tomogram/--particles")
        if args.particles is not None:
            raise UserError("--particles needs --tomogram")
        if args.box is not None:
            raise UserError(
                f"--box {args.box} sets the box cut from --tomogram; the "
                "subtomograms in DATA keep their own box (--resample fits them to "
                "the model's)"
            )
        data = load_subtomogram_data(
            args.data,
            args.labels,
            need_labels=need_labels,
            voxel_size=args.voxel_size,
            use_labels=use_labels,
        )
    if data.voxel_size is None:
        _note(
            args,
            f"note: the voxel size of '{data.source}' is unknown (0 in the header): "
            "treated as unknown, so it is not checked; pass --voxel-size to set it",
        )
    if need_labels:
        data = _labelled_only(args, data)
    if getattr(args, "classes", None):
        data = _keep_classes(args, data)
    return data


def _labelled_only(args, data):
    """The labelled subtomograms (a table may label a subset of a folder)."""
    n_missing = int(np.sum(~data.labelled))
    if n_missing == len(data.labelled):
        raise UserError(
            f"none of the {n_missing} subtomograms of '{data.source}' has a label in "
            f"'{data.labels_source}'"
        )
    if n_missing:
        _note(
            args,
            f"note: {n_missing} of {len(data.labelled)} subtomograms have no label in "
            f"'{data.labels_source}' and are not used",
        )
        data = data.subset(np.flatnonzero(data.labelled))
    return data


def _keep_classes(args, data):
    wanted = [c.strip() for c in args.classes.split(",") if c.strip()]
    if data.y is None:
        raise UserError(
            "--classes needs labels (--labels FILE, a labels.csv in the folder, or "
            "a labelled particle list)"
        )
    present = set(data.y[data.labelled].tolist())
    unknown = [c for c in wanted if c not in present]
    if unknown:
        raise UserError(
            f"unknown class '{unknown[0]}' in --classes; the labels have "
            f"{sorted(present)}"
        )
    return data.subset(np.flatnonzero(np.isin(data.y, wanted) & data.labelled))


def _fit_to_model(args, data, meta):
    """Check (or, with --resample, fix) box and voxel size against the model."""
    box, vs = data.X.shape[-1], data.voxel_size
    if getattr(args, "resample", False):
        want_box, want_vs = int(meta["box_size"]), meta.get("voxel_size")
        if box != want_box or (
            vs is not None and want_vs is not None and not np.isclose(vs, want_vs)
        ):
            _note(args, f"resampling {box}^3 at {vs} A to {want_box}^3 at {want_vs} A")
            data.X = resample_volumes(data.X, vs, want_vs, want_box)
            data.voxel_size = want_vs if want_vs is not None else vs
        return data
    _check_input(meta, box, vs, data.source)
    return data


# the library's advice at the end of its message, replaced by the flag's
_LIBRARY_ADVICE = re.compile(r"\s*\([^()]*\)\.?$")


def _check_input(meta, box, voxel_size, source, advice="pass --resample to resample"):
    """``check_model_input``, its message naming the command's flag."""
    try:
        check_model_input(meta, box, voxel_size, source=source)
    except ValueError as exc:
        message = _LIBRARY_ADVICE.sub("", str(exc)).rstrip(" .;")
        raise UserError(f"{message} ({advice})") from None


def _embed(args, pipe, X):
    """Features of ``X`` under all steps but the last (the embedder batches them
    and draws the bar)."""
    head = pipe[:-1]
    with _progress_of(head, _bars(args)):
        return head.transform(X)


@contextlib.contextmanager
def _progress_of(pipe, show: bool):
    """Set the ``progress`` parameter of the pipeline's steps that have one."""
    steps = [s for _, s in unfreeze(pipe).steps]
    steps = [s for s in steps if "progress" in s.get_params(deep=False)]
    before = [s.progress for s in steps]
    for s in steps:
        s.set_params(progress=show)
    try:
        yield
    finally:
        for s, value in zip(steps, before, strict=True):
            s.set_params(progress=value)


def _plots_available(args) -> bool:
    if matplotlib_available():
        return True
    _note(
        args, "no plots: matplotlib is not installed (pip install 'fscc-sklearn[plot]')"
    )
    return False


def _draw(args, plots, notes, caption, draw, path, *data, **options) -> None:
    """One figure; one these results cannot give (e.g. a 2-D map of 1 feature)
    is left out with a note instead of losing the report."""
    try:
        draw(*data, path, overwrite=args.force, **options)
    except ValueError as exc:
        notes.append(f"{caption}: not drawn: {exc}")
        _warn(args, f"{caption}: plot not drawn: {exc}")
        return
    plots[caption] = path.name
