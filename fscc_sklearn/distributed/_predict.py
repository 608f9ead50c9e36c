"""Embed or classify the particles of many tomograms in chunks, locally or on Dask."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ..io import (
    ParticleTable,
    extract_subtomograms,
    read_particle_list,
    write_predictions,
)
from ..model_selection import unfreeze
from ._client import dask_client, set_worker_threads

__all__ = [
    "ParticleJob",
    "ParticleResults",
    "embed_particles_distributed",
    "predict_particles_distributed",
]


@dataclass(frozen=True)
class ParticleJob:
    """One tomogram and the particles to cut out of it.

    Attributes
    ----------
    tomogram : str, path-like or ndarray of shape (Z, Y, X)
        MRC file (read memory-mapped by whichever process handles a chunk, so
        on a cluster it must be on a file system all workers see) or an array.
    particles : str, path-like, ParticleTable or array-like of shape (n, 3)
        Particle list file (any format :func:`~fscc_sklearn.io.read_particle_list`
        reads), a table, or ``(x, y, z)`` centres in voxels.
    name : str, optional
        Tomogram name written to the output; default: the file name, or
        ``tomogram_<i>`` for arrays.
    """

    tomogram: str | os.PathLike | np.ndarray
    particles: str | os.PathLike | ParticleTable | np.ndarray
    name: str | None = None


@dataclass(frozen=True)
class ParticleResults:
    """Per-particle outputs gathered from all chunks, in job and particle order.

    Attributes
    ----------
    tomograms : ndarray of shape (n,), object
        Name of the tomogram of each particle.
    job_index : ndarray of shape (n,), int
        Position of the particle's job in ``jobs``.
    particle_index : ndarray of shape (n,), int
        Row of the particle in its job's particle list.
    coords : ndarray of shape (n, 3)
        Particle centres ``(x, y, z)`` in voxels.
    labels : ndarray of shape (n,) or None
        Predicted labels (prediction only).
    probabilities : ndarray of shape (n, n_classes) or None
        Class probabilities (prediction with ``probabilities=True``).
    classes : ndarray of shape (n_classes,) or None
        Column labels of ``probabilities``.
    features : ndarray of shape (n, n_features) or None
        Embeddings (embedding only).
    skipped : ndarray of shape (n_skipped, 2), int
        ``(job_index, particle_index)`` of particles whose box crossed the
        tomogram border (``border="skip"``).
    n_chunks : int
        Number of tasks the particles were split into.
    """

    tomograms: np.ndarray
    job_index: np.ndarray
    particle_index: np.ndarray
    coords: np.ndarray
    labels: np.ndarray | None
    probabilities: np.ndarray | None
    classes: np.ndarray | None
    features: np.ndarray | None
    skipped: np.ndarray
    n_chunks: int

    def __len__(self) -> int:
        return len(self.job_index)


def _as_jobs(jobs) -> list[ParticleJob]:
    if isinstance(jobs, (ParticleJob, str, os.PathLike)):
        raise ValueError(
            "jobs must be a list of ParticleJob or (tomogram, particles) pairs; "
            f"got a single {type(jobs).__name__}."
        )
    out = []
    for j, job in enumerate(jobs):
        if isinstance(job, ParticleJob):
            out.append(job)
        elif isinstance(job, tuple) and len(job) in (2, 3):
            out.append(ParticleJob(*job))
        else:
            raise ValueError(
                f"jobs[{j}] must be a ParticleJob or a (tomogram, particles[, name]) "
                f"tuple; got {job!r}."
            )
    if not out:
        raise ValueError("jobs is empty; expected at least one ParticleJob.")
    return out


def _job_coords(job: ParticleJob) -> np.ndarray:
    particles = job.particles
    if isinstance(particles, (str, os.PathLike)):
        particles = read_particle_list(particles)
    if isinstance(particles, ParticleTable):
        return particles.coords
    coords = np.asarray(particles, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(
            f"Particles of {_job_name(job, '?')} must have shape (n, 3) (x, y, z); "
            f"got {coords.shape}."
        )
    return coords


def _job_name(job: ParticleJob, j) -> str:
    if job.name is not None:
        return str(job.name)
    if isinstance(job.tomogram, (str, os.PathLike)):
        return Path(job.tomogram).name
    return f"tomogram_{j}"


def model_box(model) -> int:
    """Box size of the subtomograms ``model`` was fitted on (from ``input_shape_``)."""
    steps = [s for _, s in model.steps] if isinstance(model, Pipeline) else [model]
    for step in map(unfreeze, steps):
        shape = getattr(step, "input_shape_", None)
        if shape is not None:
            side = set(shape[-3:])
            if len(side) == 1:
                return int(shape[-1])
    raise ValueError(
        "Cannot tell the box size from the model (no step with a cubic "
        "input_shape_); pass box=."
    )


def _run_chunk(model, tomogram, coords, box, border, pad_value, task):
    """Extract one chunk of particles and run the model on it (runs on a worker)."""
    ext = extract_subtomograms(tomogram, coords, box, border, pad_value=pad_value)
    if len(ext) == 0:
        return ext.kept, ext.skipped, None, None
    if task == "transform":
        return ext.kept, ext.skipped, model.transform(ext.X), None
    proba = model.predict_proba(ext.X) if task == "predict_proba" else None
    return ext.kept, ext.skipped, model.predict(ext.X), proba


def _run_chunks(model, chunks, task, scheduler, torch_threads):
    """Results of ``_run_chunk`` for every chunk, in order."""
    if scheduler is None:
        return [_run_chunk(model, *chunk, task) for chunk in chunks]
    from distributed import as_completed

    with dask_client(scheduler) as client:
        if torch_threads is not None:
            set_worker_threads(client, torch_threads)
        # the model goes to every worker once; tasks refer to it by key
        model_ref = client.scatter(model, broadcast=True, hash=False)
        arrays = {}
        token = uuid.uuid4().hex[:8]
        futures = []
        for i, (tomogram, *rest) in enumerate(chunks):
            if isinstance(tomogram, np.ndarray):
                if id(tomogram) not in arrays:
                    arrays[id(tomogram)] = client.scatter(tomogram, hash=False)
                tomogram = arrays[id(tomogram)]
            futures.append(
                client.submit(
                    _run_chunk,
                    model_ref,
                    tomogram,
                    *rest,
                    task,
                    key=f"fscc-{task}-{token}-{i}",
                    pure=False,
                )
            )
        position = {f.key: i for i, f in enumerate(futures)}
        results = [None] * len(chunks)
        try:
            # loop=: the client is not the default one (set_as_default=False)
            done = as_completed(futures, loop=client.loop, with_results=True)
            for future, result in done:
                results[position[future.key]] = result
        except BaseException:
            client.cancel(futures)
            raise
        return results


def _map_particles(
    model, jobs, task, *, box, border, pad_value, chunk_size, scheduler, torch_threads
):
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int)
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}.")
    if torch_threads is not None and scheduler is None:
        raise ValueError("torch_threads only applies with a Dask scheduler.")
    check_is_fitted(model)
    box = model_box(model) if box is None else box
    jobs = _as_jobs(jobs)
    names, coords, chunks, owners = [], [], [], []
    for j, job in enumerate(jobs):
        names.append(_job_name(job, j))
        c = _job_coords(job)
        coords.append(c)
        tomogram = job.tomogram
        if isinstance(tomogram, (str, os.PathLike)):
            tomogram = os.path.abspath(tomogram)  # workers may run elsewhere
        for start in range(0, len(c), chunk_size):
            chunks.append(
                (tomogram, c[start : start + chunk_size], box, border, pad_value)
            )
            owners.append((j, start))
    results = _run_chunks(model, chunks, task, scheduler, torch_threads)

    job_idx, part_idx, outs, probas, skipped = [], [], [], [], []
    for (j, start), (kept, skip, out, proba) in zip(owners, results, strict=True):
        skipped.extend((j, start + s) for s in skip)
        if out is None:
            continue
        job_idx.append(np.full(len(kept), j))
        part_idx.append(start + kept)
        outs.append(out)
        if proba is not None:
            probas.append(proba)
    if not outs:
        raise ValueError(
            "No particle could be extracted: every box crossed a tomogram border "
            f"({len(skipped)} skipped); use border='pad' or check the coordinates."
        )
    job_idx = np.concatenate(job_idx)
    part_idx = np.concatenate(part_idx)
    return dict(
        tomograms=np.asarray(names, dtype=object)[job_idx],
        job_index=job_idx,
        particle_index=part_idx,
        coords=np.stack([coords[j][p] for j, p in zip(job_idx, part_idx, strict=True)]),
        outputs=np.concatenate(outs),
        probabilities=np.concatenate(probas) if probas else None,
        skipped=np.asarray(skipped, dtype=np.intp).reshape(-1, 2),
        n_chunks=len(chunks),
    )


def _check_output(output, overwrite):
    if output is None:
        return None
    output = Path(output)
    if output.suffix.lower() not in (".csv", ".star"):
        raise ValueError(f"output must end in .csv or .star; got '{output}'.")
    if output.exists() and not overwrite:
        raise FileExistsError(
            f"Output file '{output}' already exists; pass overwrite=True to replace it"
        )
    return output


def predict_particles_distributed(
    model,
    jobs: Iterable[ParticleJob | tuple],
    output: str | os.PathLike | None = None,
    *,
    scheduler=None,
    box: int | None = None,
    probabilities: bool = True,
    border: str = "skip",
    pad_value: float | str = "mean",
    chunk_size: int = 256,
    torch_threads: int | None = None,
    overwrite: bool = False,
) -> ParticleResults:
    """Classify the particles of many tomograms, on a Dask cluster if given one.

    Particles are split into chunks of ``chunk_size`` per tomogram; each chunk is
    cut out of its (memory-mapped) tomogram and classified by ``model`` where it
    runs, so only coordinates travel to the workers and labels come back. On a
    cluster the fitted model is sent to every worker once (``scatter`` with
    ``broadcast=True``), not with every task. Without ``scheduler`` the same
    chunks run one after the other in this process, with identical results.

    Parameters
    ----------
    model : fitted estimator
        Takes subtomograms ``(n, box, box, box)`` as extracted (raw voxel
        values: put normalisation inside the pipeline), e.g. the result of
        :func:`~fscc_sklearn.adapt`.
    jobs : iterable of ParticleJob or (tomogram, particles[, name]) tuples
    output : str or path-like, optional
        ``.csv`` or ``.star`` file for all predictions: the package's one
        prediction table (:func:`~fscc_sklearn.io.write_predictions`, as
        ``fscc predict`` writes it), with a tomogram column. Checked before any
        work starts.
    scheduler : str, distributed.Client or None, default=None
        Dask scheduler address (e.g. ``"tcp://10.0.0.5:8786"``) or client; None
        runs locally without Dask.
    box : int, optional
        Box edge in voxels; default: the model's training box.
    probabilities : bool, default=True
        Also compute ``predict_proba`` (written as ``probability`` and
        ``proba_<class>`` columns).
    border, pad_value
        Handling of boxes crossing the tomogram border, as in
        :func:`~fscc_sklearn.io.extract_subtomograms`.
    chunk_size : int, default=256
        Particles per task. Larger chunks cost less scheduling overhead, smaller
        ones balance the load better.
    torch_threads : int, optional
        Set the torch threads of every worker first (see
        :func:`set_worker_threads`); only with ``scheduler``.
    overwrite : bool, default=False
        Whether ``output`` may be replaced.

    Returns
    -------
    ParticleResults
        ``labels`` (and ``probabilities``/``classes``) of every extracted
        particle, with its tomogram, coordinates and indices.

    Raises
    ------
    FileExistsError
        If ``output`` exists and ``overwrite`` is False.
    ValueError
        For malformed jobs or parameters, or when no particle can be extracted.
    """
    output = _check_output(output, overwrite)
    if probabilities and not hasattr(model, "predict_proba"):
        raise ValueError(
            f"{type(model).__name__} has no predict_proba; pass probabilities=False."
        )
    task = "predict_proba" if probabilities else "predict"
    res = _map_particles(
        model,
        jobs,
        task,
        box=box,
        border=border,
        pad_value=pad_value,
        chunk_size=chunk_size,
        scheduler=scheduler,
        torch_threads=torch_threads,
    )
    classes = np.asarray(model.classes_) if probabilities else None
    if output is not None:
        write_predictions(
            output,
            res["coords"],
            res["outputs"],
            res["probabilities"],
            classes=classes,
            tomograms=res["tomograms"],
            overwrite=overwrite,
        )
    return ParticleResults(
        tomograms=res["tomograms"],
        job_index=res["job_index"],
        particle_index=res["particle_index"],
        coords=res["coords"],
        labels=res["outputs"],
        probabilities=res["probabilities"],
        classes=classes,
        features=None,
        skipped=res["skipped"],
        n_chunks=res["n_chunks"],
    )


def embed_particles_distributed(
    model,
    jobs: Sequence[ParticleJob | tuple],
    *,
    scheduler=None,
    box: int | None = None,
    border: str = "skip",
    pad_value: float | str = "mean",
    chunk_size: int = 256,
    torch_threads: int | None = None,
) -> ParticleResults:
    """Features ``model.transform`` of the particles of many tomograms.

    Same chunking and scheduling as :func:`predict_particles_distributed`;
    ``model`` is a fitted transformer such as
    :class:`~fscc_sklearn.Conv6Embedder` or the frozen part of a pipeline
    (``pipe[:-1]``).

    Returns
    -------
    ParticleResults
        With ``features`` of shape (n_extracted, n_features).
    """
    if not hasattr(model, "transform"):
        raise ValueError(f"{type(model).__name__} has no transform method.")
    res = _map_particles(
        model,
        jobs,
        "transform",
        box=box,
        border=border,
        pad_value=pad_value,
        chunk_size=chunk_size,
        scheduler=scheduler,
        torch_threads=torch_threads,
    )
    return ParticleResults(
        tomograms=res["tomograms"],
        job_index=res["job_index"],
        particle_index=res["particle_index"],
        coords=res["coords"],
        labels=None,
        probabilities=None,
        classes=None,
        features=res["outputs"],
        skipped=res["skipped"],
        n_chunks=res["n_chunks"],
    )
