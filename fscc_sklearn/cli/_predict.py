"""``fscc adapt`` and ``fscc predict``: few-shot adaptation and prediction tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..distributed import ParticleJob, predict_particles_distributed
from ..embedding._pretrained import pretrained_path
from ..io import read_voxel_size, write_particle_columns, write_predictions
from ..model_selection import adapt, unfreeze
from ..persistence._model_file import save_model
from ._common import (
    UserError,
    _check_outputs,
    _class_summary,
    _few,
    _note,
    _pooling_summary,
    _say,
    _warn,
)
from ._copick import predict_copick
from ._data import (
    _check_input,
    _embed,
    _fit_to_model,
    _load_model,
    _particle_table,
    _read_data,
)
from ._inputs import particle_names, volume_digests


def _pick_shots(y, k, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < k:
            raise UserError(f"--shots {k}: class '{c}' has only {len(idx)} example(s)")
        rows.append(np.sort(rng.choice(idx, size=k, replace=False)))
    return np.concatenate(rows)


def cmd_adapt(args):
    _check_outputs(args, args.output)
    source = _adapt_source(args)
    model, meta = _load_model(args, source)
    data = _read_data(args, need_labels=True, meta=meta)
    if args.shots is not None:
        data = data.subset(_pick_shots(data.y, args.shots, args.seed))
    # the support set by content, before resampling: predict recognises it
    digests = volume_digests(data.X)
    data = _fit_to_model(args, data, meta)
    base = set(meta.get("base_classes") or [])
    overlap = sorted(set(data.y.tolist()) & {str(c) for c in base})
    if overlap:
        _warn(args, f"{overlap} are base classes of this model")
    model = unfreeze(model)
    if args.k is not None:
        model.set_params(clf__k=args.k)
    if args.pool_radius_shots is not None:
        if "pool_radius_shots" not in model[-1].get_params():
            raise UserError(
                f"--pool-radius-shots: the model's {type(model[-1]).__name__} has no "
                "such option (CalibratedFewShotClassifier has)"
            )
        model.set_params(clf__pool_radius_shots=args.pool_radius_shots)
    if args.reject is not None:
        if "reject" not in model[-1].get_params():
            raise UserError(
                f"--reject: the model's {type(model[-1]).__name__} has no open-set "
                "option (CalibratedFewShotClassifier and "
                "DistributionCalibrationClassifier have)"
            )
        if args.reject != "auto" and not np.isfinite(args.reject):
            raise UserError("--reject inf rejects nothing: leave --reject out")
        model.set_params(clf__reject=args.reject)
    adapted = adapt(model, data.X, data.y)
    clf = adapted[-1]
    if hasattr(clf, "pool_radius_shots_"):
        fewest = np.unique(data.y, return_counts=True)[1].min()
        if fewest <= max(clf.pool_radius_shots_, 2):
            _note(args, _pooling_summary(clf))
    extra = {
        "voxel_size": meta.get("voxel_size") or data.voxel_size,
        "seed": args.seed,
        "support_data": data.source,
        "support": data.names,
        "support_sha256": digests,
        "pretrained_model": args.pretrained or str(args.model),
    }
    save_model(adapted, args.output, extra, overwrite=args.force)
    _say(
        args,
        f"saved {args.output}: adapted to {len(np.unique(data.y))} classes from "
        f"{len(data.y)} examples: {_class_summary(data.y)}",
    )


def _adapt_source(args):
    """The model to adapt: a file, or the path of a shipped model."""

    if args.pretrained is not None and args.data is None:
        # argparse fills the first positional (MODEL) with the data folder
        args.data, args.model = args.model, None
    if args.pretrained is None and args.data is None and not args.tomogram:
        raise ValueError(
            "give a pre-trained MODEL file and the DATA to adapt to, or "
            "--pretrained general and the DATA"
        )
    if (args.model is None) == (args.pretrained is None):
        raise ValueError(
            "give either a pre-trained MODEL file or --pretrained NAME (e.g. "
            "--pretrained general), not both"
            if args.model
            else "give a pre-trained MODEL file or --pretrained general"
        )
    return args.model if args.pretrained is None else pretrained_path(args.pretrained)


def cmd_predict(args):
    _check_outputs(args, args.output)
    model, meta = _load_model(args, args.model)
    if meta.get("kind") == "pretrained":
        _note(args, "note: this model is not adapted; it predicts its base classes")
    clf = model[-1]
    elsewhere = "--scheduler" if args.scheduler else "--copick" if args.copick else None
    open_set = _open_set(args, clf, elsewhere)
    if args.scheduler is not None:
        return _predict_on_cluster(args, model, meta)
    if getattr(args, "copick", None):
        return predict_copick(args, model, meta)
    data = _read_data(args, need_labels=False, meta=meta)
    digests = volume_digests(data.X) if data.y is not None else None
    data = _fit_to_model(args, data, meta)
    classes = model.classes_
    F = _embed(args, model, data.X)
    proba = clf.predict_proba(F)
    pred = clf.predict(F)
    novelty = clf.novelty_score(F) if open_set else None
    _write_predictions(
        args,
        data.names,
        data.coords,
        pred,
        proba,
        classes,
        data.particles,
        data.particle_rows,
        novelty,
    )
    _say(args, f"wrote {args.output}: {len(pred)} particles, {_class_summary(pred)}")
    if data.y is not None:
        _score(args, data, pred, classes, meta, digests)


def _score(args, data, pred, classes, meta, digests) -> None:
    """Accuracy against the input's labels, on what can fairly be scored.

    Not scored: unlabelled subtomograms, labels naming classes the model does
    not predict, and the model's own support examples (recognised by content).
    """
    y = data.y
    known = data.labelled & np.isin(y, [str(c) for c in classes])
    foreign = data.labelled & ~known
    foreign_names = sorted(set(y[foreign].tolist()))
    if foreign.any() and args.labels_use == "auto":
        _note(
            args,
            f"note: not scoring: the labels name classes the model does not predict "
            f"({_few(foreign_names)}); --labels-use score scores the other particles",
        )
        return
    support_digests = (meta.get("user") or {}).get("support_sha256")
    if support_digests is None and meta.get("kind") == "adapted":
        _note(
            args,
            "note: the model does not record its support examples (adapted without "
            "fscc adapt); the accuracy may include them",
        )
    support = np.isin(digests, support_digests or [])
    scored = known & ~support
    excluded = [
        (int(np.sum(known & support)), "support examples of the model"),
        (
            int(foreign.sum()),
            f"with labels the model does not know ({_few(foreign_names)})",
        ),
        (int(np.sum(~data.labelled)), "unlabelled"),
    ]
    excluded = "; ".join(f"{n} {why}" for n, why in excluded if n)
    excluded = f"; not scored: {excluded}" if excluded else ""
    if not scored.any():
        _say(args, f"accuracy against the labels: none scorable{excluded}")
        return
    acc = float(np.mean(pred[scored].astype(str) == y[scored]))
    _say(
        args,
        f"accuracy against the labels: {acc:.3f} ({int(scored.sum())} particles"
        f"{excluded})",
    )


def _open_set(args, clf, elsewhere) -> bool:
    """Set ``--reject`` on the classifier; whether predictions are open-set
    (also when the model was adapted with ``--reject``)."""
    reject = getattr(args, "reject", None)
    model_reject = clf.get_params().get("reject")
    if elsewhere is not None:
        if reject is not None:
            raise UserError(f"--reject is not available with {elsewhere}")
        if model_reject is not None:
            clf.set_params(reject=None)
            _note(args, f"note: the model's rejection is not applied with {elsewhere}")
        return False
    if reject is None:
        return model_reject is not None
    if not hasattr(clf, "novelty_score") or "reject" not in clf.get_params():
        raise UserError(
            f"--reject: the model's {type(clf).__name__} has no open-set option"
        )
    if reject == "auto" and not (
        model_reject == "auto" and hasattr(clf, "novelty_threshold_")
    ):
        raise UserError(
            "--reject auto needs the threshold set when the model was adapted: "
            "adapt it with fscc adapt --reject auto, or give a number (the "
            "novelty column of fscc predict --reject inf shows the scale)"
        )
    clf.set_params(reject=reject)
    return True


def _write_predictions(
    args,
    names,
    coords,
    predicted,
    proba,
    classes,
    particles=None,
    rows=None,
    novelty=None,
):
    """The one prediction table (:func:`fscc_sklearn.io.write_predictions`), or,
    for a STAR/CSV particle list written back in its own format, that list with
    every input column kept and the predictions appended (with ``novelty``:
    also a novelty and an unknown (0/1) column; the prediction of a rejected
    particle is the unknown label, its score that of the likeliest class)."""
    if novelty is not None:
        rejected = ~np.isin(np.asarray(predicted).astype(str), classes.astype(str))
        likeliest = np.where(rejected, classes[np.argmax(proba, 1)], predicted)
    if _lists_particles(args, particles):
        star = particles.format == "star"
        if novelty is None:
            columns = prediction_columns(
                predicted, proba, classes, particles.format, names
            )
        else:
            columns = prediction_columns(
                likeliest, proba, classes, particles.format, names
            )
            columns["_fsccPrediction" if star else "prediction"] = [
                str(c) for c in predicted
            ]
            columns["_fsccNovelty" if star else "novelty"] = novelty
            columns["_fsccUnknown" if star else "unknown"] = rejected.astype(int)
        return write_particle_columns(
            args.output, particles, columns, rows=rows, overwrite=args.force
        )
    if coords is not None and not np.isfinite(coords).all():
        coords = None  # a labels table gave coordinates to some rows only
    return write_predictions(
        args.output,
        coords,
        predicted,
        proba,
        classes=classes,
        names=names,
        novelty=novelty,
        overwrite=args.force,
    )


def _lists_particles(args, particles) -> bool:
    """Whether the output is the input's STAR/CSV particle list, annotated."""
    return (
        particles is not None
        and particles.format in ("star", "csv")
        and Path(args.output).suffix.lower() == "." + particles.format
    )


def prediction_columns(predicted, proba, classes, fmt: str, names=None) -> dict:
    """The particle's name (``particle_<row>``), its class, that class's
    probability (score) and every class's probability, by column."""
    star = fmt == "star"
    proba = np.asarray(proba, dtype=np.float64)
    index = {str(c): k for k, c in enumerate(classes)}
    own = proba[np.arange(len(predicted)), [index[str(c)] for c in predicted]]
    columns = (
        {} if names is None else {"_fsccParticle" if star else "subtomogram": names}
    )
    columns |= {
        "_fsccPrediction" if star else "prediction": [str(c) for c in predicted],
        "_fsccScore" if star else "score": own,
    }
    for k, c in enumerate(classes):
        if not str(c) or any(ch.isspace() or ch == "," for ch in str(c)):
            raise UserError(
                f"class name {str(c)!r} cannot be used in a column name (empty or "
                "contains whitespace or a comma)"
            )
        columns[("_fsccProba_" if star else "proba_") + str(c)] = proba[:, k]
    return columns


def _predict_on_cluster(args, model, meta):
    """``fscc predict --scheduler``: extract and classify on a Dask cluster.

    Writes the same table as without ``--scheduler``.
    """
    if args.tomogram is None or args.particles is None or args.data is not None:
        raise UserError("--scheduler works on --tomogram with --particles")
    if args.resample:
        raise UserError("--resample is not available with --scheduler")
    if args.edge != "skip":
        raise UserError("--edge pad is not available with --scheduler")
    box = args.box or meta.get("box_size")
    if box is None:
        raise UserError("--scheduler needs --box (box edge in voxels)")
    voxel_size = args.voxel_size or read_voxel_size(args.tomogram)
    _check_input(
        meta,
        box,
        voxel_size,
        args.tomogram,
        "--resample is not available with --scheduler",
    )
    table = _particle_table(args)
    try:
        result = predict_particles_distributed(
            model,
            [ParticleJob(args.tomogram, table)],
            scheduler=args.scheduler,
            box=int(box),
            chunk_size=args.chunk_size,
        )
    except OSError as exc:  # no scheduler at that address
        raise UserError(
            f"cannot use the Dask scheduler {args.scheduler}: {exc}"
        ) from exc
    if len(result.skipped):
        _note(args, f"skipped {len(result.skipped)} particle(s) crossing the border")
    _write_predictions(
        args,
        particle_names(result.particle_index),
        result.coords,
        result.labels,
        result.probabilities,
        result.classes,
        table,
        result.particle_index,
    )
    _say(
        args,
        f"wrote {args.output}: {len(result.labels)} particles in {result.n_chunks} "
        f"chunks on {args.scheduler}: {_class_summary(result.labels)}",
    )
