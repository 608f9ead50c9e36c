"""Imaging model: simulated subtomograms with rotation, CTF, missing wedge and noise.

A little over 500 lines on purpose: the wedge, CTF and noise pieces are small and
serve only :func:`simulate_subtomograms`, whose documented parameters are most of
the length; split apart they would be read together anyway.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
from joblib import effective_n_jobs
from scipy import fft as sp_fft
from scipy import ndimage
from scipy.spatial.transform import Rotation
from sklearn.utils import Bunch, check_random_state

from .._progress import progress_bar, visible
from ._maps import _read_mrc, load_map, prepare_map

__all__ = ["missing_wedge_mask", "simulate_subtomograms"]

# Particles per batch: bounds memory (about 9 MB per batch and thread at 32^3)
# while keeping batched FFTs efficient. Changing it changes the noise draws.
_CHUNK = 32

# Corner frequency (cycles/voxel) of the default noise power 1 / (1 + (k/kc)^4).
# Fitted to the radial spectrum of a real SHREC'21 subtomogram: with a Hann
# window, P(0.45-0.50) / P(0.20-0.25) is about 0.17 there.
_SHREC_NOISE_KC = 0.29

MapsLike = Mapping[str, object] | Sequence[str] | str


def _electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å for an acceleration voltage in kV."""
    volts = voltage_kv * 1e3
    # h / sqrt(2 m e V (1 + e V / (2 m c^2))), with constants folded in (Å).
    return 12.264259661581491 / np.sqrt(volts * (1.0 + 0.978475619e-6 * volts))


def _freq_grid(box: int, rfft: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kz = sp_fft.fftfreq(box)[:, None, None]
    ky = sp_fft.fftfreq(box)[None, :, None]
    kx = (sp_fft.rfftfreq(box) if rfft else sp_fft.fftfreq(box))[None, None, :]
    return kz, ky, kx


def missing_wedge_mask(
    box: int, tilt_range: tuple[float, float] = (-60.0, 60.0), rfft: bool = True
) -> np.ndarray:
    """Boolean mask of the Fourier components a single-axis tilt series measures.

    Conventions (numpy axis order (z, y, x)): the electron beam runs along z at
    zero tilt and the tilt axis is y. The projection at tilt angle ``theta``
    measures the central plane that contains the ky axis and the direction
    ``(kz, kx) = (-sin(theta), cos(theta))``. A component ``(kz, ky, kx)`` is
    therefore measured when ``atan(-kz / kx)``, in degrees, lies within
    ``tilt_range``; components on the ky axis are always measured. For the
    symmetric range +-60 degrees this keeps ``|kz| <= tan(60) |kx|``: the wedge
    of missing data is the double wedge around kz, 30 degrees either side.
    The tilt series is treated as continuous (no gaps between tilt steps).

    Parameters
    ----------
    box : int
        Edge length of the cubic volume, in voxels.
    tilt_range : (float, float), default=(-60, 60)
        Lowest and highest tilt angle, in degrees.
    rfft : bool, default=True
        Return the half spectrum laid out as :func:`scipy.fft.rfftn` output,
        shape ``(box, box, box // 2 + 1)``; else the full ``fftn`` layout.

    Returns
    -------
    mask : ndarray of bool
        True where the component is measured.

    Examples
    --------
    >>> from fscc_sklearn.datasets import missing_wedge_mask
    >>> m = missing_wedge_mask(8)
    >>> m.shape
    (8, 8, 5)
    >>> bool(m[0, 0, 3]), bool(m[3, 0, 0])  # along x kept, along z missing
    (True, False)
    """
    lo, hi = (float(t) for t in tilt_range)
    if not -90.0 <= lo <= hi <= 90.0:
        raise ValueError(
            f"tilt_range must satisfy -90 <= lo <= hi <= 90, got {tilt_range}."
        )
    kz, ky, kx = _freq_grid(box, rfft)
    theta = np.degrees(np.arctan2(-kz, kx))
    # A central plane holds k and -k, so fold directions onto (-90, 90].
    theta = np.where(theta > 90.0, theta - 180.0, theta)
    theta = np.where(theta <= -90.0, theta + 180.0, theta)
    eps = 1e-9
    mask = (theta >= lo - eps) & (theta <= hi + eps)
    mask = mask | ((kz == 0) & (kx == 0))
    return np.broadcast_to(mask, (box, box, kx.shape[-1])).copy()


def _noise_power(k: np.ndarray, noise_spectrum: str | Callable) -> np.ndarray:
    if callable(noise_spectrum):
        power = np.asarray(noise_spectrum(k), dtype=float)
        if (
            power.shape != k.shape
            or np.any(power < 0)
            or not np.all(np.isfinite(power))
        ):
            raise ValueError(
                "A callable noise_spectrum must map the frequency array (cycles/voxel) "
                "to finite, non-negative powers of the same shape."
            )
        return power
    if noise_spectrum == "shrec":
        return 1.0 / (1.0 + (k / _SHREC_NOISE_KC) ** 4)
    if noise_spectrum == "white":
        return np.ones_like(k)
    raise ValueError(
        "noise_spectrum must be 'shrec', 'white' or a callable, "
        f"got {noise_spectrum!r}."
    )


def _rfft_weights(box: int) -> np.ndarray:
    # Multiplicity of each rfft column in the full spectrum (Parseval sums).
    w = np.full(box // 2 + 1, 2.0)
    w[0] = 1.0
    if box % 2 == 0:
        w[-1] = 1.0
    return w


def _noise_filter(
    box: int, tilt_range: tuple[float, float], noise_spectrum: str | Callable
) -> np.ndarray:
    """Amplitude filter for white noise: coloured, wedge-masked, unit variance."""
    kz, ky, kx = _freq_grid(box, rfft=True)
    k = np.sqrt(kz**2 + ky**2 + kx**2)
    amp = np.sqrt(_noise_power(k, noise_spectrum)) * missing_wedge_mask(box, tilt_range)
    amp[0, 0, 0] = 0.0
    # For unit white noise, var(irfftn(rfftn(w) * amp)) = sum over the full
    # spectrum of amp^2 / box^3.
    var = float(np.sum(amp**2 * _rfft_weights(box)) / box**3)
    if not var > 0:
        raise ValueError("The noise spectrum is zero everywhere outside the wedge.")
    return (amp / np.sqrt(var)).astype(np.float32)


def _ctf(
    k2: np.ndarray,
    defocus_a: np.ndarray,
    wavelength: float,
    cs_a: float,
    amplitude_contrast: float,
    b_factor: float,
) -> np.ndarray:
    """CTF times B-factor envelope for a batch of defocus values (Å, underfocus > 0)."""
    dz = np.asarray(defocus_a, dtype=np.float32)[:, None, None, None]
    chi = (
        np.float32(np.pi * wavelength) * dz * k2
        - np.float32(0.5 * np.pi * cs_a * wavelength**3) * k2**2
    )
    w_phase = np.float32(np.sqrt(1.0 - amplitude_contrast**2))
    ctf = -(w_phase * np.sin(chi) + np.float32(amplitude_contrast) * np.cos(chi))
    ctf *= np.exp(np.float32(-b_factor / 4.0) * k2)
    return ctf


@lru_cache(maxsize=64)
def _packaged_prepared(name: str, voxel_size: float) -> np.ndarray:
    volume, vs = load_map(name)
    out = prepare_map(volume, vs, voxel_size)
    out.setflags(write=False)
    return out


def _resolve_maps(
    maps: MapsLike,
    voxel_size: float,
    map_voxel_size: float | Mapping[str, float] | None,
) -> tuple[list[str], list[np.ndarray]]:
    if isinstance(maps, str):
        maps = [maps]
    if isinstance(maps, Mapping):
        items = list(maps.items())
    else:
        items = [(str(name), None) for name in maps]
    if not items:
        raise ValueError("maps is empty; give at least one map.")
    names, prepared = [], []
    for name, value in items:
        name = str(name)
        if name in names:
            raise ValueError(f"Map {name!r} is given twice.")
        if value is None:
            prepared.append(_packaged_prepared(name.lower(), float(voxel_size)))
            names.append(name)
            continue
        if isinstance(value, str | os.PathLike):
            volume, vs = _read_mrc(value)
        elif isinstance(value, tuple):
            if len(value) != 2:
                raise ValueError(
                    f"Map {name!r}: a tuple value must be "
                    "(volume, voxel_size_in_angstrom)."
                )
            volume, vs = value
        else:
            volume, vs = value, None
        if vs is None or not vs > 0:
            vs = (
                map_voxel_size.get(name)
                if isinstance(map_voxel_size, Mapping)
                else map_voxel_size
            )
        try:
            prepared.append(prepare_map(volume, vs, voxel_size))
        except ValueError as exc:
            raise ValueError(f"Map {name!r}: {exc}") from None
        names.append(name)
    return names, prepared


def _support_radius(volume: np.ndarray) -> float:
    """Largest distance of a non-zero voxel from the box centre, in voxels."""
    idx = np.argwhere(volume != 0)
    if len(idx) == 0:
        return 0.0
    centre = (np.array(volume.shape) - 1) / 2.0
    return float(np.sqrt(((idx - centre) ** 2).sum(axis=1)).max())


def _as_range(value: float | tuple[float, float], what: str) -> tuple[float, float]:
    lo, hi = (value, value) if np.ndim(value) == 0 else tuple(value)
    lo, hi = float(lo), float(hi)
    if not lo <= hi:
        raise ValueError(f"{what} range must have low <= high, got {value}.")
    return lo, hi


def simulate_subtomograms(
    maps: MapsLike,
    n_per_class: int = 100,
    *,
    box: int = 32,
    voxel_size: float = 10.0,
    snr: float | None = 0.05,
    tilt_range: tuple[float, float] = (-60.0, 60.0),
    defocus: float | tuple[float, float] = (2.0, 5.0),
    amplitude_contrast: float = 0.07,
    b_factor: float = 400.0,
    voltage: float = 300.0,
    cs: float = 2.7,
    shift: float = 1.0,
    noise_spectrum: str | Callable = "shrec",
    map_voxel_size: float | Mapping[str, float] | None = None,
    n_jobs: int | None = None,
    progress: bool = False,
    random_state: int | np.random.RandomState | None = None,
) -> Bunch:
    """Simulate cryo-ET subtomograms of macromolecules from density maps.

    Each particle goes through, in this order:

    1. **Pose.** A uniformly random 3D rotation about the map centre
       (:meth:`scipy.spatial.transform.Rotation.random`) and a random shift,
       uniform in ``[-shift, shift]`` voxels on each axis, applied together by
       trilinear interpolation straight onto the ``box**3`` grid (density
       outside the box is cut off, nothing wraps around).
    2. **CTF** at ``voltage`` (electron wavelength 0.0197 Å at 300 kV),
       spherical aberration ``cs`` and a defocus drawn per particle uniformly
       from ``defocus``: ``CTF(k) = -(sqrt(1 - A^2) sin(chi) + A cos(chi))
       exp(-B k^2 / 4)`` with ``chi = pi lambda dz k^2 - pi/2 Cs lambda^3 k^4``,
       ``k`` the spatial frequency in 1/Å and ``dz > 0`` underfocus. It depends
       on ``|k|`` only: every Fourier component lies on the central section of
       some tilt, where its in-plane frequency is ``|k|`` (defocus gradients
       across tilted images are ignored). The sign makes protein dark, as in
       real tomograms. The CTF is applied by FFT on the box, so it is circular.
    3. **Missing wedge** for ``tilt_range`` about the y axis, beam along z, see
       :func:`missing_wedge_mask` (numpy axis order (z, y, x) throughout).
    4. **Coloured Gaussian noise**: white noise filtered by a radial power
       spectrum and by the same wedge mask. The default ``"shrec"`` spectrum
       ``1 / (1 + (k / 0.29)^4)`` (k in cycles/voxel) is flat at low frequency
       and falls to about 1/6 of the mid-frequency level at Nyquist, like the
       measured noise of a real SHREC'21 subtomogram (P(0.45-0.50) /
       P(0.20-0.25) = 0.17 vs 0.16 real, with a Hann window); the wedge makes
       it about 8x weaker along z than along x (real data: 7.6x).

    **SNR** is defined over the whole simulated set:
    ``snr = mean_i var(s_i) / sigma^2``, where ``s_i`` is the noise-free
    subtomogram ``i`` after steps 1-3, ``var`` is taken over its ``box**3``
    voxels and ``sigma^2`` is the noise variance per voxel (the same for every
    particle, as in a tomogram). Large particles therefore get a higher
    per-particle SNR than small ones. The variance depends on ``box`` (more
    solvent lowers it).

    **Intensity**: every map is resampled to ``voxel_size`` and normalised to
    background 0 and maximum 1 (see :func:`prepare_map`), so particles keep
    their relative mass. ``X`` is not standardised afterwards.

    Parameters
    ----------
    maps : dict, list of str or str
        The classes. A list of names (or one name) selects packaged maps (see
        :func:`available_maps`). A dict maps a class name to a 3D array (voxel
        size taken from ``map_voxel_size``), a tuple ``(array, voxel_size_A)``,
        or the path of an MRC file (voxel size read from its header, or from
        ``map_voxel_size`` if the header says 0). Arrays are in (z, y, x) order
        with the particle at the centre and protein positive.
    n_per_class : int, default=100
        Subtomograms per class.
    box : int, default=32
        Edge length of the subtomograms, in voxels.
    voxel_size : float, default=10.0
        Voxel size of the subtomograms in Å (SHREC'19/'21: 10 Å).
    snr : float or None, default=0.05
        Signal-to-noise ratio as defined above (SHREC'19 in the FSCC paper:
        0.02). ``None`` or ``np.inf`` gives noise-free data; the random draws
        are the same, so ``X(snr) - X(None)`` is exactly the noise.
    tilt_range : (float, float), default=(-60, 60)
        Tilt range in degrees.
    defocus : float or (float, float), default=(2.0, 5.0)
        Defocus range in µm (underfocus positive), drawn uniformly per particle.
    amplitude_contrast : float, default=0.07
        Fraction of amplitude contrast ``A``.
    b_factor : float, default=400.0
        B-factor of the Gaussian envelope in Å^2 (an assumption: it stands in
        for detector, drift and dose damping; 0.78 amplitude at 10 Å voxels'
        Nyquist).
    voltage : float, default=300.0
        Acceleration voltage in kV.
    cs : float, default=2.7
        Spherical aberration in mm.
    shift : float, default=1.0
        Largest shift per axis in voxels (0 disables shifts); it stands for
        picking error (SHREC positions are whole voxels, so about 0.5-1).
    noise_spectrum : {"shrec", "white"} or callable, default="shrec"
        Radial noise power; a callable gets the frequency magnitude array in
        cycles/voxel and returns powers. It is rescaled to give the SNR.
    map_voxel_size : float or dict, optional
        Voxel size in Å of maps given without one (a dict is keyed by class
        name). A map whose voxel size stays unknown raises ``ValueError``.
    n_jobs : int, optional
        Threads for interpolation and FFTs; ``None`` means 1, ``-1`` all cores.
        Results do not depend on it.
    progress : bool, default=False
        Show a progress bar (tqdm, only if installed and stderr is a terminal).
    random_state : int, RandomState instance or None, default=None
        Seed of all random draws (poses, shifts, defocus, noise).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``X`` : float32 array (n, box, box, box), n = n_classes * n_per_class,
        ordered class by class;
        ``y`` : str array (n,), class names;
        ``rotations`` : float64 array (n, 3, 3), the rotation of each particle
        in numpy order (z, y, x): a map point at offset ``r`` from the map
        centre moves to ``rotations[i] @ r + shifts[i]`` from the box centre
        (``Rotation.from_matrix(rotations[i][::-1, ::-1])`` is the same rotation
        in scipy's (x, y, z) order);
        ``shifts`` : float64 array (n, 3), voxels, (z, y, x);
        ``defocus`` : float64 array (n,), µm;
        ``signal_var`` : float64 array (n,), variance of each noise-free
        subtomogram; ``noise_std`` : float, the noise sigma;
        ``class_names`` : list of str; ``params`` : dict of the settings.

    Raises
    ------
    ValueError
        For an unknown map name, a map whose voxel size is unknown, or invalid
        settings.

    Examples
    --------
    >>> from fscc_sklearn.datasets import simulate_subtomograms
    >>> data = simulate_subtomograms(["1bxn", "3qm1"], n_per_class=2, box=16,
    ...                              snr=0.1, random_state=0)
    >>> data.X.shape, data.X.dtype, data.y.tolist()
    ((4, 16, 16, 16), dtype('float32'), ['1bxn', '1bxn', '3qm1', '3qm1'])
    """
    box = int(box)
    n_per_class = int(n_per_class)
    if box < 2:
        raise ValueError(f"box must be >= 2, got {box}.")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}.")
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}.")
    if snr is not None and not snr > 0:
        raise ValueError(f"snr must be > 0 (or None for no noise), got {snr}.")
    if not 0.0 <= amplitude_contrast < 1.0:
        raise ValueError(
            f"amplitude_contrast must be in [0, 1), got {amplitude_contrast}."
        )
    if shift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}.")
    df_lo, df_hi = _as_range(defocus, "defocus")
    tilt_range = _as_range(tilt_range, "tilt_range")
    wedge = missing_wedge_mask(box, tilt_range)
    noisy = snr is not None and np.isfinite(snr)
    noise_amp = _noise_filter(box, tilt_range, noise_spectrum) if noisy else None

    names, volumes = _resolve_maps(maps, voxel_size, map_voxel_size)
    # Trilinear interpolation reads neighbours up to sqrt(3) voxels away.
    radii = [_support_radius(v) + 2.0 for v in volumes]
    n_classes = len(names)
    n = n_classes * n_per_class
    labels = np.repeat(np.arange(n_classes), n_per_class)

    # Poses and defocus are drawn up front in a fixed order, so results do not
    # depend on n_jobs or on the noise level.
    rs = check_random_state(random_state)
    rot_xyz = Rotation.random(n, random_state=rs).as_matrix()
    rotations = np.ascontiguousarray(rot_xyz[:, ::-1, ::-1])
    shifts = rs.uniform(-shift, shift, size=(n, 3))
    defocus_um = rs.uniform(df_lo, df_hi, size=n)
    noise_seed = np.random.SeedSequence(rs.randint(0, 2**31 - 1, size=4).tolist())

    n_threads = max(1, int(effective_n_jobs(n_jobs)))
    kz, ky, kx = _freq_grid(box, rfft=True)
    k2 = ((kz**2 + ky**2 + kx**2) / voxel_size**2).astype(np.float32)
    wedge_f = wedge.astype(np.float32)
    wavelength = _electron_wavelength(voltage)
    centre = np.full(3, (box - 1) / 2.0)
    shape = (box, box, box)
    axes = (1, 2, 3)

    X = np.empty((n, *shape), dtype=np.float32)
    signal_var = np.empty(n)
    chunks = [slice(a, min(a + _CHUNK, n)) for a in range(0, n, _CHUNK)]
    # One generator per chunk, so the noise does not depend on thread timing.
    chunk_seeds = noise_seed.spawn(len(chunks))

    def signal_chunk(sl: slice) -> None:
        vols = np.zeros((sl.stop - sl.start, *shape), dtype=np.float32)
        for i, j in enumerate(range(sl.start, sl.stop)):
            vol = volumes[labels[j]]
            # Interpolate only the part of the box the particle can reach;
            # the rest is exactly zero. This halves the cost for small ones.
            middle = centre + shifts[j]
            reach = radii[labels[j]]
            lo = np.clip(np.floor(middle - reach), 0, box).astype(int)
            hi = np.clip(np.ceil(middle + reach) + 1, 0, box).astype(int)
            if np.any(hi <= lo):
                continue
            inv = rotations[j].T
            offset = (np.array(vol.shape) - 1) / 2.0 + inv @ (lo - middle)
            ndimage.affine_transform(
                vol,
                inv,
                offset=offset,
                output=vols[i, lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]],
                order=1,
                mode="constant",
            )
        spec = sp_fft.rfftn(vols, axes=axes)
        spec *= wedge_f * _ctf(
            k2, defocus_um[sl] * 1e4, wavelength, cs * 1e7, amplitude_contrast, b_factor
        )
        X[sl] = sp_fft.irfftn(spec, s=shape, axes=axes)
        signal_var[sl] = X[sl].var(axis=axes)

    def noise_chunk(sl: slice, seed: np.random.SeedSequence, std: float) -> None:
        rng = np.random.default_rng(seed)
        white = rng.standard_normal((sl.stop - sl.start, *shape), dtype=np.float32)
        spec = sp_fft.rfftn(white, axes=axes)
        spec *= noise_amp * np.float32(std)
        X[sl] += sp_fft.irfftn(spec, s=shape, axes=axes)

    # Chunks run in parallel threads: ndimage, pocketfft, numpy's random
    # generators and large ufuncs all release the GIL.
    with (
        ThreadPoolExecutor(n_threads) as pool,
        progress_bar(
            len(chunks) * (2 if noisy else 1), "simulating", visible(progress)
        ) as bar,
    ):
        for _ in pool.map(signal_chunk, chunks):
            bar.update(1)
        noise_std = 0.0
        if noisy:
            mean_var = float(signal_var.mean())
            if not mean_var > 0:
                raise ValueError(
                    "The noise-free subtomograms are empty; check the maps."
                )
            noise_std = float(np.sqrt(mean_var / snr))
            stds = [noise_std] * len(chunks)
            for _ in pool.map(noise_chunk, chunks, chunk_seeds, stds):
                bar.update(1)

    params = dict(
        maps=names,
        n_per_class=n_per_class,
        box=box,
        voxel_size=float(voxel_size),
        snr=None if not noisy else float(snr),
        tilt_range=list(tilt_range),
        defocus=[df_lo, df_hi],
        amplitude_contrast=float(amplitude_contrast),
        b_factor=float(b_factor),
        voltage=float(voltage),
        cs=float(cs),
        shift=float(shift),
        noise_spectrum=noise_spectrum
        if isinstance(noise_spectrum, str)
        else "callable",
    )
    return Bunch(
        X=X,
        y=np.asarray(names)[labels],
        rotations=rotations,
        shifts=shifts,
        defocus=defocus_um,
        signal_var=signal_var,
        noise_std=noise_std,
        class_names=names,
        params=params,
    )
