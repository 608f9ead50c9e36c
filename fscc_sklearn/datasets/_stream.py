"""An endless, seeded stream of simulated subtomogram batches over many classes."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

from ._simulate import _as_range, simulate_subtomograms

__all__ = ["SubtomogramStream"]


class SubtomogramStream:
    """Class-balanced batches of freshly simulated subtomograms.

    Every batch draws ``classes_per_batch`` classes at random (without
    replacement), and ``per_class`` new particles of each: new poses, and per
    batch a new SNR, tilt range, defocus range and voxel size (a scale
    jitter), so no sample is seen twice. ``batch(seed)`` depends only on the
    stream's settings and ``seed``, so training from a stream is as
    reproducible as training from an array. Pass a stream to
    :meth:`Conv6Embedder.fit <fscc_sklearn.Conv6Embedder.fit>` in place of
    ``X`` (and no ``y``).

    Parameters
    ----------
    maps : dict
        Class name -> density map, as :func:`simulate_subtomograms` takes them:
        an array (voxel size ``map_voxel_size``), ``(array, voxel_size)``, or
        None for the packaged map of that name.
    map_voxel_size : float, default=10.0
        Voxel size in Å of maps given as plain arrays.
    classes_per_batch : int, default=16
        Classes in every batch (at most the number of classes).
    per_class : int, default=4
        Particles of each class in a batch (>= 2, so every particle has a
        positive for the supervised contrastive loss).
    batches_per_epoch : int, default=100
        Length of one pass (an "epoch" of an endless stream).
    box : int, default=32
        Subtomogram edge in voxels.
    voxel_size : float, default=10.0
        Nominal voxel size of the subtomograms in Å.
    voxel_size_jitter : float, default=0.1
        Each batch is simulated at ``voxel_size * (1 + u)``, ``u`` uniform in
        ``[-jitter, jitter]``: particles appear up to 10 % larger or smaller.
    snr : (float, float), default=(0.015, 0.15)
        SNR range; each batch draws one value, log-uniformly.
    max_tilt : (float, float), default=(45.0, 70.0)
        Each batch draws the lowest and the highest tilt angle independently
        (uniform in this range, the lowest negated).
    defocus : (float, float), default=(1.5, 6.0)
        Defocus range in µm; each batch draws a sub-range, particles a value.
    shift : float, default=1.0
        Largest shift of a particle from the box centre per axis, in voxels.
    eval_batches : int, default=20
        Batches of a fixed, seed-0 pass (e.g. for BatchNorm statistics).

    Attributes
    ----------
    class_names : list of str
        The classes; batch labels index into it.

    Examples
    --------
    >>> from fscc_sklearn.datasets import SubtomogramStream, make_procedural_maps
    >>> pm = make_procedural_maps(4, random_state=0)
    >>> stream = SubtomogramStream(pm.maps, classes_per_batch=2, per_class=2,
    ...                            box=16)
    >>> X, y = stream.batch(seed=0)
    >>> X.shape, y.dtype.name
    ((4, 16, 16, 16), 'int64')
    """

    def __init__(
        self,
        maps: Mapping,
        *,
        map_voxel_size: float = 10.0,
        classes_per_batch: int = 16,
        per_class: int = 4,
        batches_per_epoch: int = 100,
        box: int = 32,
        voxel_size: float = 10.0,
        voxel_size_jitter: float = 0.1,
        snr: tuple[float, float] = (0.015, 0.15),
        max_tilt: tuple[float, float] = (45.0, 70.0),
        defocus: tuple[float, float] = (1.5, 6.0),
        shift: float = 1.0,
        eval_batches: int = 20,
    ):
        if not isinstance(maps, Mapping) or len(maps) < 2:
            raise ValueError(
                "maps must be a dict of at least 2 classes (name -> map); got "
                f"{type(maps).__name__} {maps!r:.80}."
            )
        self.maps = dict(maps)
        self.class_names = [str(name) for name in self.maps]
        self.map_voxel_size = float(map_voxel_size)
        self.classes_per_batch = _positive_int(classes_per_batch, "classes_per_batch")
        if self.classes_per_batch > len(self.maps):
            raise ValueError(
                f"classes_per_batch={classes_per_batch} exceeds the "
                f"{len(self.maps)} classes."
            )
        self.per_class = _positive_int(per_class, "per_class", minimum=2)
        self.batches_per_epoch = _positive_int(batches_per_epoch, "batches_per_epoch")
        self.eval_batches = _positive_int(eval_batches, "eval_batches")
        self.box = _positive_int(box, "box", minimum=4)
        if not voxel_size > 0 or not 0 <= voxel_size_jitter < 1:
            raise ValueError(
                f"voxel_size must be > 0 and voxel_size_jitter in [0, 1); got "
                f"{voxel_size} and {voxel_size_jitter}."
            )
        self.voxel_size = float(voxel_size)
        self.voxel_size_jitter = float(voxel_size_jitter)
        self.snr = _as_range(snr, "snr")
        if not self.snr[0] > 0:
            raise ValueError(f"snr must be > 0; got {snr}.")
        self.max_tilt = _as_range(max_tilt, "max_tilt")
        if not (0 <= self.max_tilt[0] and self.max_tilt[1] <= 90):
            raise ValueError(f"max_tilt must lie in [0, 90] degrees; got {max_tilt}.")
        self.defocus = _as_range(defocus, "defocus")
        self.shift = float(shift)

    @property
    def batch_size(self) -> int:
        """Particles per batch."""
        return self.classes_per_batch * self.per_class

    def batch(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """One batch: ``X`` float32 ``(batch_size, box, box, box)``, ``y`` int64.

        ``y`` indexes :attr:`class_names`; the batch depends only on ``seed``.
        """
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(len(self.maps), self.classes_per_batch, False))
        names = [self.class_names[i] for i in chosen]
        maps = {}
        for name in names:
            value = self.maps[name]
            is_array = value is not None and not isinstance(value, tuple | str)
            maps[name] = (value, self.map_voxel_size) if is_array else value
        jitter = rng.uniform(-self.voxel_size_jitter, self.voxel_size_jitter)
        lo, hi = np.log(self.snr)
        d_lo, d_hi = np.sort(rng.uniform(*self.defocus, size=2))
        data = simulate_subtomograms(
            maps,
            n_per_class=self.per_class,
            box=self.box,
            voxel_size=self.voxel_size * (1.0 + jitter),
            snr=float(np.exp(rng.uniform(lo, hi))),
            tilt_range=(-rng.uniform(*self.max_tilt), rng.uniform(*self.max_tilt)),
            defocus=(float(d_lo), float(d_hi)),
            shift=self.shift,
            random_state=int(rng.integers(2**31 - 1)),
        )
        y = np.repeat(chosen, self.per_class).astype(np.int64)
        return data.X, y

    def batch_seeds(self, seed, n_batches: int) -> np.ndarray:
        """Seeds of ``n_batches`` batches of a pass seeded ``seed`` (int or ints)."""
        seq = np.random.SeedSequence(seed)
        return seq.generate_state(n_batches, dtype=np.uint64) >> np.uint64(1)

    def fingerprint(self) -> str:
        """Digest of the settings and the maps (for checkpoints)."""
        digest = hashlib.blake2b(digest_size=16)
        settings = {k: v for k, v in vars(self).items() if k not in ("maps",)}
        digest.update(repr(sorted(settings.items())).encode())
        for name, value in self.maps.items():
            digest.update(name.encode())
            if isinstance(value, tuple):
                value = value[0]
            if isinstance(value, np.ndarray):
                digest.update(f"{value.dtype.str}{value.shape}".encode())
                digest.update(np.ascontiguousarray(value).tobytes())
            else:
                digest.update(repr(value).encode())
        return digest.hexdigest()

    def __repr__(self) -> str:
        return (
            f"SubtomogramStream({len(self.maps)} classes, batch "
            f"{self.classes_per_batch}x{self.per_class}, box {self.box})"
        )


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}.")
    return int(value)
