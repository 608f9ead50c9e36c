"""``fscc cluster``: the species in unlabelled picks (clusters, averages, PNGs)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score

from ..discovery import cluster_embeddings, write_clusters
from ..embedding._pretrained import pretrained_path
from ._common import UserError, _check_dir, _note, _prepare_dir, _say
from ._data import _embed, _fit_to_model, _load_model, _plots_available, _read_data


def _model_source(args):
    """The model whose embedder to use: MODEL, or the path of a shipped one."""
    if args.pretrained is not None and args.data is None and args.model is not None:
        # argparse fills the first positional (MODEL) with the data folder
        args.data, args.model = args.model, None
    if args.pretrained is None and args.data is None and not args.tomogram:
        raise UserError(
            "give a MODEL file (or --pretrained general) and the picks (DATA, or "
            "--tomogram with --particles)"
        )
    if (args.model is None) == (args.pretrained is None):
        raise UserError(
            "give either a MODEL file or --pretrained general, not both"
            if args.model
            else "give a MODEL file or --pretrained general"
        )
    return args.model if args.pretrained is None else pretrained_path(args.pretrained)


def _coords(data):
    """The picks' coordinates when every pick has them."""
    if data.coords is None or not np.isfinite(data.coords).all():
        return None
    return data.coords


def _reduce(args):
    return None if args.reduce == "none" else args.reduce


def cmd_cluster(args):
    _check_dir(args, args.out_dir)
    model, meta = _load_model(args, _model_source(args))
    data = _read_data(args, need_labels=False, meta=meta)
    data = _fit_to_model(args, data, meta)
    if len(data.X) < args.min_cluster_size:
        raise UserError(
            f"--min-cluster-size {args.min_cluster_size}: only {len(data.X)} picks"
        )
    F = _embed(args, model, data.X)
    params = {"cluster_selection_method": args.selection}
    if args.min_samples is not None:
        params["min_samples"] = args.min_samples
    if _reduce(args) == "umap":
        _note(args, "note: UMAP compiles its code on first use (about a minute)")
    try:
        result = cluster_embeddings(
            F,
            reduce=_reduce(args),
            n_components=args.n_components,
            min_cluster_size=args.min_cluster_size,
            hdbscan_params=params,
            n_examples=args.examples,
            volumes=data.X,
            random_state=args.seed,
        )
    except ImportError:
        raise UserError(
            "--reduce umap needs umap-learn (pip install 'fscc-sklearn[umap]'); "
            "--reduce pca needs nothing more"
        ) from None
    folder = _prepare_dir(args, args.out_dir)
    plots = not args.no_plots and _plots_available(args)
    write_clusters(
        result,
        folder,
        names=data.names,
        coords=_coords(data),
        volumes=data.X,
        voxel_size=data.voxel_size,
        plots=plots,
        overwrite=args.force,
    )
    noise = int(np.sum(result.labels < 0))
    _say(
        args,
        f"{len(result.sizes)} clusters in {len(F)} picks (sizes "
        f"{', '.join(map(str, result.sizes)) or 'none'}; noise {noise}); wrote "
        f"{folder}/clusters.csv"
        + (", averages.mrcs" if len(result.sizes) else "")
        + (" and cluster_<k>.png" if plots and len(result.sizes) else ""),
    )
    if data.y is not None and data.labelled.any():
        _compare(args, data, result.labels)


def _compare(args, data, labels) -> None:
    """How the clusters match the labels the input happens to have."""
    y, known = data.y, data.labelled
    ari = adjusted_rand_score(y[known], labels[known])
    _say(
        args, f"adjusted Rand index against the labels: {ari:.3f} ({known.sum()} picks)"
    )
    for c in range(int(labels.max()) + 1):
        inside = known & (labels == c)
        if inside.any():
            names, counts = np.unique(y[inside], return_counts=True)
            top = np.argmax(counts)
            _say(
                args,
                f"  cluster {c}: {names[top]} {counts[top]}/{inside.sum()} "
                "labelled picks",
            )
