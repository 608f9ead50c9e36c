"""``fscc predict --copick``: classify the picks of a copick run, write them back."""

from __future__ import annotations

import numpy as np

from ..io import (
    read_copick_picks,
    read_copick_tomogram,
    write_copick_picks,
    write_predictions,
)
from ._common import UserError, _class_summary, _say
from ._data import _embed, _extraction_box, _fit_to_model, _report_edges
from ._inputs import load_tomogram_data


def _object_map(args) -> dict[str, str]:
    mapping = {}
    for item in args.copick_object:
        cls, sep, obj = item.partition("=")
        if not sep or not cls or not obj:
            raise UserError(f"--copick-object {item!r}: expected CLASS=OBJECT")
        mapping[cls] = obj
    return mapping


def predict_copick(args, model, meta) -> None:
    """Picks of ``--run`` cut from its ``--tomogram-type`` tomogram, classified,
    and written back as picks of the class's copick object (and as ``-o``)."""
    if args.data is not None or args.tomogram is not None or args.particles:
        raise UserError("give either --copick or DATA / --tomogram, not both")
    if not args.run or not args.tomogram_type:
        raise UserError("--copick needs --run and --tomogram-type")
    spacing = args.voxel_spacing or meta.get("voxel_size")
    if spacing is None:
        raise UserError("--copick needs --voxel-spacing (the model has no voxel size)")
    spacing = float(spacing)
    mapping = _object_map(args)
    objects = None
    if args.pick_objects:
        objects = [o.strip() for o in args.pick_objects.split(",") if o.strip()]
    table = read_copick_picks(args.copick, args.run, spacing, objects=objects)
    tomogram = read_copick_tomogram(args.copick, args.run, spacing, args.tomogram_type)
    name = f"copick run {args.run} ({args.tomogram_type}, {spacing:g} A)"
    box = _extraction_box(args, meta, spacing)
    use_labels = args.labels_use != "ignore"
    data, edge = load_tomogram_data(
        tomogram,
        table,
        box,
        need_labels=False,
        voxel_size=spacing,
        use_labels=use_labels,
        edge=args.edge,
        name=name,
    )
    _report_edges(args, table, edge)
    data = _fit_to_model(args, data, meta)
    classes = model.classes_
    F = _embed(args, model, data.X)
    clf = model[-1]
    proba = clf.predict_proba(F)
    pred = clf.predict(F)
    index = {str(c): k for k, c in enumerate(classes)}
    score = proba[np.arange(len(pred)), [index[str(c)] for c in pred]]
    write_predictions(
        args.output,
        data.coords,
        pred,
        proba,
        classes=classes,
        tomograms=[args.run] * len(pred),
        names=data.names,
        overwrite=args.force,
    )
    counts = write_copick_picks(
        args.copick,
        args.run,
        data.coords,
        pred,
        spacing,
        scores=score,
        object_names=mapping,
        user_id=args.copick_user,
        overwrite=args.force,
    )
    _say(
        args,
        f"wrote {args.output} and copick picks of run {args.run} (user "
        f"{args.copick_user}): {len(pred)} particles, {_class_summary(pred)}; "
        + ", ".join(f"{o}: {n}" for o, n in counts.items()),
    )
