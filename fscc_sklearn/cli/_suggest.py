"""``fscc suggest``: which unlabelled picks to label next."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..discovery import plot_picks, suggest_labels, write_suggestions
from ..model_selection import unfreeze
from ._cluster import _coords, _model_source
from ._common import UserError, _check_outputs, _say
from ._data import _embed, _fit_to_model, _load_model, _plots_available, _read_data


def cmd_suggest(args):
    png = Path(args.output).with_suffix(".png")
    plots = not args.no_plots
    _check_outputs(args, args.output, png if plots else None)
    model, meta = _load_model(args, _model_source(args))
    data = _read_data(args, need_labels=False, meta=meta)
    if data.y is None:
        raise UserError(
            "suggest needs a few labelled picks (the support set): --labels TABLE "
            "naming some of them, or a label column in --particles"
        )
    # an empty label cell marks an unlabelled pick of a particle list
    support = data.labelled & (data.y != "")
    if not support.any():
        raise UserError("none of the picks has a label: label a few first")
    if support.all():
        raise UserError(
            f"all {len(support)} picks are labelled: there is nothing to suggest"
        )
    data = _fit_to_model(args, data, meta)
    F = _embed(args, model, data.X)
    pool = np.flatnonzero(~support)
    result = suggest_labels(
        unfreeze(model[-1]),
        F[support],
        data.y[support],
        F[pool],
        n_suggest=args.n_suggest,
        strategy=args.strategy,
        random_state=args.seed,
    )
    write_suggestions(
        result,
        args.output,
        rows=pool,
        names=data.names,
        coords=_coords(data),
        overwrite=args.force,
    )
    wrote = f"wrote {args.output}"
    if plots and _plots_available(args):
        rows = pool[result.indices]
        plot_picks(
            data.X[rows],
            [f"{r + 1}. {data.names[i]}" for r, i in enumerate(rows)],
            png,
            overwrite=args.force,
        )
        wrote += f" and {png}"
    _say(
        args,
        f"{len(result.indices)} of {len(pool)} unlabelled picks to label next "
        f"({args.strategy}; support: {int(support.sum())} picks of "
        f"{len(result.classes)} classes); {wrote}",
    )
