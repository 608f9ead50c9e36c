"""Procedural pseudo-macromolecules: density maps drawn from a small shape grammar.

A map is an *assembly*: an asymmetric unit of one to three subunits (plus small
surface bumps), copied by a symmetry operator (point group or short helix),
scaled to a diameter, rendered as soft-edged solids, merged by their union,
given internal density variation (the same in every symmetry copy) and
blurred (Gaussian, sigma 5-10 Å).
The grammar and its ranges are documented in ``docs/pretrained.md``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation
from sklearn.utils import Bunch, check_random_state

__all__ = ["make_procedural_maps", "symmetry_operators"]

SUBUNIT_KINDS = ("blob", "ellipsoid", "rod", "ring", "shell", "sheet")
# probability of each symmetry family; n for C/D drawn uniformly in its range
SYMMETRY_FAMILIES = {"C1": 0.22, "C": 0.26, "D": 0.2, "T": 0.07, "O": 0.07, "H": 0.18}
C_ORDERS = (2, 17)
D_ORDERS = (2, 8)
HELIX_UNITS = (4, 12)
DIAMETER = (50.0, 350.0)  # Å, log-uniform: small monomers to ribosomes


def symmetry_operators(symmetry: str) -> tuple[np.ndarray, np.ndarray]:
    """Rotations and translations of a symmetry, in numpy (z, y, x) order.

    Parameters
    ----------
    symmetry : str
        ``"C1"``-``"C17"``, ``"D2"``-``"D8"``, ``"T"``, ``"O"`` (point groups
        about the map centre, n-fold axis along z), or ``"H<n>:<twist>:<rise>"``
        for ``n`` helical units turned by ``twist`` degrees and raised by
        ``rise`` (unit-free; the assembly is scaled afterwards) along z.

    Returns
    -------
    rotations : ndarray of shape (m, 3, 3)
    translations : ndarray of shape (m, 3)
        Copy ``i`` of a point ``p`` is ``rotations[i] @ p + translations[i]``.

    Examples
    --------
    >>> R, t = symmetry_operators("D3")
    >>> R.shape, float(abs(t).max())
    ((6, 3, 3), 0.0)
    """
    kind = symmetry[:1]
    if kind == "H":
        try:
            n, twist, rise = symmetry[1:].split(":")
            n, twist, rise = int(n), float(twist), float(rise)
        except ValueError:
            raise ValueError(
                f"A helix is written 'H<n>:<twist>:<rise>', got {symmetry!r}."
            ) from None
        k = np.arange(n) - (n - 1) / 2.0
        xyz = Rotation.from_euler("z", (k * twist)[:, None], degrees=True).as_matrix()
        translations = np.zeros((n, 3))
        translations[:, 0] = k * rise  # numpy axis 0 is z
        return _to_zyx(xyz), translations
    if kind in ("C", "D") and symmetry[1:].isdigit() and int(symmetry[1:]) >= 1:
        group = Rotation.create_group(symmetry, axis="Z")
    elif symmetry in ("T", "O"):
        group = Rotation.create_group(symmetry)
    else:
        raise ValueError(
            f"Unknown symmetry {symmetry!r}: expected Cn, Dn, T, O or "
            "H<n>:<twist>:<rise>."
        )
    rotations = _to_zyx(group.as_matrix())
    return rotations, np.zeros((len(rotations), 3))


def _to_zyx(xyz: np.ndarray) -> np.ndarray:
    # scipy works in (x, y, z); reversing both axes gives the (z, y, x) matrix
    return np.ascontiguousarray(xyz[:, ::-1, ::-1])


def _draw_symmetry(rng: np.random.Generator) -> str:
    families = list(SYMMETRY_FAMILIES)
    family = families[rng.choice(len(families), p=list(SYMMETRY_FAMILIES.values()))]
    if family == "C":
        return f"C{rng.integers(C_ORDERS[0], C_ORDERS[1] + 1)}"
    if family == "D":
        return f"D{rng.integers(D_ORDERS[0], D_ORDERS[1] + 1)}"
    if family == "H":
        n = rng.integers(HELIX_UNITS[0], HELIX_UNITS[1] + 1)
        return f"H{n}:{rng.uniform(20.0, 180.0):.1f}:{rng.uniform(0.15, 0.45):.3f}"
    return family


def _draw_subunit(rng: np.random.Generator, size: float) -> dict:
    """One solid: its kind, semi-axes (unit-free) and orientation."""
    kind = SUBUNIT_KINDS[rng.integers(len(SUBUNIT_KINDS))]
    if kind == "blob":
        axes = size * rng.uniform(0.85, 1.15, 3)
    elif kind == "ellipsoid":
        axes = size * np.array([1.0, rng.uniform(0.45, 0.9), rng.uniform(0.3, 0.7)])
    elif kind == "rod":
        radius = size * rng.uniform(0.25, 0.45)
        axes = np.array([radius, radius, size * rng.uniform(1.0, 2.0)])
    elif kind == "ring":  # (ring radius, ring radius, tube radius)
        radius = size * rng.uniform(0.7, 1.2)
        axes = np.array([radius, radius, radius * rng.uniform(0.25, 0.5)])
    elif kind == "shell":  # (radius, radius, thickness); open below a cut height
        radius = size * rng.uniform(0.8, 1.3)
        axes = np.array([radius, radius, radius * rng.uniform(0.18, 0.35)])
    else:  # sheet: a rounded slab
        axes = size * np.array([1.0, rng.uniform(0.6, 1.0), rng.uniform(0.15, 0.3)])
    return dict(
        kind=kind,
        axes=axes,
        rotation=Rotation.random(random_state=rng).as_matrix(),
        weight=rng.uniform(0.7, 1.0),
        cut=rng.uniform(-0.6, 0.6),  # shells only: keep the part above cut
    )


def _draw_waves(rng: np.random.Generator, n_waves: int = 8) -> dict:
    """Plane waves (wavelength 25-60 Å) that texture the asymmetric unit."""
    d = rng.normal(size=(n_waves, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return dict(
        vectors=d / rng.uniform(25.0, 60.0, size=(n_waves, 1)),
        phases=rng.uniform(0, 2 * np.pi, n_waves),
    )


def _texture(waves: dict, local: np.ndarray) -> np.ndarray:
    """Unit-variance smooth field at points given in the asymmetric unit's frame."""
    phase = 2 * np.pi * local @ waves["vectors"].T + waves["phases"]
    return np.sqrt(2.0 / len(waves["phases"])) * np.cos(phase).sum(axis=-1)


def _draw_assembly(rng: np.random.Generator) -> dict:
    """Recipe of one map: symmetry, asymmetric unit, diameter (Å), texture."""
    symmetry = _draw_symmetry(rng)
    family = symmetry[0] if symmetry != "C1" else "C1"
    n_copies = len(symmetry_operators(symmetry)[0])
    # more copies -> smaller subunits, so the assembly stays compact
    size = 0.45 * n_copies ** (-1.0 / 3.0) if family != "H" else 0.25
    n_main = int(rng.integers(1, 4 if family == "C1" else 3))
    subunits = []
    for _ in range(n_main):
        unit = _draw_subunit(rng, size * rng.uniform(0.7, 1.3))
        if family == "C1":
            centre = rng.normal(0.0, 0.25, 3)
        elif family in ("C", "H"):
            radial = rng.uniform(0.15, 0.6) if family == "C" else rng.uniform(0.0, 0.5)
            angle = rng.uniform(0, 2 * np.pi)
            height = rng.uniform(-0.3, 0.3) if family == "C" else rng.uniform(-0.1, 0.1)
            centre = np.array([height, radial * np.sin(angle), radial * np.cos(angle)])
        elif family == "D":  # above the equator, so the 2-folds make two layers
            radial, angle = rng.uniform(0.15, 0.6), rng.uniform(0, 2 * np.pi)
            centre = np.array(
                [rng.uniform(0.1, 0.4), radial * np.sin(angle), radial * np.cos(angle)]
            )
        else:  # T, O: off-centre in any direction
            d = rng.normal(size=3)
            centre = d / np.linalg.norm(d) * rng.uniform(0.35, 0.7)
        unit["centre"] = centre
        subunits.append(unit)
    for _ in range(int(rng.integers(0, 7))):  # small surface bumps
        host = subunits[rng.integers(len(subunits))]
        d = rng.normal(size=3)
        offset = d / np.linalg.norm(d) * float(np.max(host["axes"]))
        bump = _draw_subunit(rng, size * rng.uniform(0.2, 0.4))
        bump["kind"] = "blob"
        bump["axes"] = size * rng.uniform(0.2, 0.4) * rng.uniform(0.8, 1.2, 3)
        bump["centre"] = host["centre"] + offset
        subunits.append(bump)
    lo, hi = np.log(DIAMETER)
    return dict(
        symmetry=symmetry,
        subunits=subunits,
        diameter=float(np.exp(rng.uniform(lo, hi))),
        texture=float(rng.uniform(0.15, 0.45)),
        waves=_draw_waves(rng),
        blur=float(rng.uniform(5.0, 10.0)),  # Å
    )


def _depth(unit: dict, points: np.ndarray) -> np.ndarray:
    """Signed depth inside one placed solid (Å, > 0 inside, about the distance)."""
    u = (points - unit["centre"]) @ unit["rotation"]  # into local axes
    axes = unit["axes"]
    kind = unit["kind"]
    if kind == "ring":  # torus in the local (0, 1) plane, tube radius axes[2]
        rho = np.sqrt(u[..., 0] ** 2 + u[..., 1] ** 2)
        return axes[2] - np.sqrt((rho - axes[0]) ** 2 + u[..., 2] ** 2)
    if kind == "shell":  # spherical shell of thickness axes[2], open below cut
        r = np.sqrt(np.sum(u**2, axis=-1))
        depth = 0.5 * axes[2] - np.abs(r - axes[0])
        above = u[..., 2] - unit["cut"] * axes[0]
        return np.minimum(depth, above)
    if kind in ("blob", "ellipsoid"):
        f = np.sqrt(np.sum((u / axes) ** 2, axis=-1))
    elif kind == "rod":  # blunt-ended superellipsoid along local axis 2
        r2 = (u[..., 0] / axes[0]) ** 2 + (u[..., 1] / axes[1]) ** 2
        f = (r2**2 + (u[..., 2] / axes[2]) ** 4) ** 0.25
    else:  # sheet: rounded slab, thin along local axis 2
        f = np.sum((u / axes) ** 4, axis=-1) ** 0.25
    # (1 - f) times an axis approximates the distance to the surface: the
    # shortest axis inside (no depth overshoot), the longest outside (no
    # density smeared beyond the long ends)
    return (1.0 - f) * np.where(f < 1.0, axes.min(), axes.max())


def _extent(unit: dict) -> float:
    """Largest distance of a subunit's surface from its centre (unit-free)."""
    axes = unit["axes"]
    if unit["kind"] == "ring":
        return float(axes[0] + axes[2])
    if unit["kind"] == "shell":
        return float(axes[0] + 0.5 * axes[2])
    if unit["kind"] in ("rod", "sheet"):  # box-like corners: a safe bound
        return float(np.linalg.norm(axes))
    return float(np.max(axes))


def _render(recipe: dict, voxel_size: float, box: int | None) -> np.ndarray:
    rotations, translations = symmetry_operators(recipe["symmetry"])
    units = recipe["subunits"]
    # scale the unit-free assembly so its outer radius is diameter / 2 (Å)
    reach = max(
        np.linalg.norm(R @ u["centre"] + t) + _extent(u)
        for R, t in zip(rotations, translations, strict=True)
        for u in units
    )
    scale = 0.5 * recipe["diameter"] / reach
    # 4 voxels of solvent each side hold the soft edge and the blur
    n = int(np.ceil(recipe["diameter"] / voxel_size)) + 8 if box is None else int(box)
    grid = (np.arange(n) - (n - 1) / 2.0) * voxel_size
    points = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1)
    edge = 6.0  # Å: soft edges, about one voxel at 10 Å
    density = np.zeros((n, n, n))
    for R, t in zip(rotations, translations, strict=True):
        # internal density variation, drawn in the asymmetric unit's own frame
        # so that every symmetry copy carries the same texture
        local = (points - scale * t) @ R
        texture = np.clip(
            1.0 + recipe["texture"] * _texture(recipe["waves"], local), 0.2, None
        )
        for u in units:
            placed = dict(
                u,
                centre=scale * (R @ u["centre"] + t),
                rotation=R @ u["rotation"],
                axes=scale * u["axes"],
            )
            solid = 0.5 * (1.0 + np.tanh(_depth(placed, points) / edge))
            np.maximum(density, u["weight"] * solid * texture, out=density)
    density = ndimage.gaussian_filter(density, recipe["blur"] / voxel_size)
    peak = density.max()
    if not peak > 0:  # pragma: no cover - every solid has a positive core
        raise RuntimeError("An empty procedural map was drawn.")
    return (density / peak).astype(np.float32)


def make_procedural_maps(
    n_maps: int,
    *,
    voxel_size: float = 10.0,
    box: int | None = None,
    random_state: int | np.random.RandomState | None = None,
) -> Bunch:
    """Density maps of pseudo-macromolecules drawn from a shape grammar.

    Each map is an asymmetric unit of 1-3 subunits (blobs, ellipsoids, rods,
    rings, open shells, sheets; plus 0-6 small surface bumps) copied by a
    symmetry (C1, C2-C17, D2-D8, T, O or a short helix of 4-12 units), scaled
    to a diameter between 5 and 35 nm (log-uniform), rendered with soft edges,
    merged by their union, textured (internal density variation of 15-45 %,
    plane waves of 25-60 Å, the same in every symmetry copy) and blurred
    (Gaussian, sigma 5-10 Å). Sizes, textures and blur are physical, so a map
    drawn at another voxel size is the same object. See
    ``docs/pretrained.md`` for the grammar and its ranges.

    Map ``i`` depends only on ``random_state`` and ``i``: the first maps of a
    longer list are the same maps.

    Parameters
    ----------
    n_maps : int
        Number of maps.
    voxel_size : float, default=10.0
        Voxel size of the maps in Å.
    box : int, optional
        Edge of every map's cube in voxels; by default each map gets its own
        box, its diameter plus 8 voxels. A smaller box crops the particle.
    random_state : int, RandomState instance or None, default=None
        Seed of the grammar.

    Returns
    -------
    maps : :class:`~sklearn.utils.Bunch`
        ``maps``: dict of name -> float32 array (z, y, x), background 0,
        maximum 1, the particle at the centre (pass it to
        :func:`simulate_subtomograms` with ``map_voxel_size=voxel_size``);
        ``recipes``: list of dicts (symmetry, diameter in Å, subunit kinds);
        ``voxel_size``: float.

    Examples
    --------
    >>> from fscc_sklearn.datasets import make_procedural_maps
    >>> pm = make_procedural_maps(3, random_state=0)
    >>> list(pm.maps)
    ['proc_000000', 'proc_000001', 'proc_000002']
    >>> [r["symmetry"] for r in pm.recipes]  # doctest: +SKIP
    ['D6', 'C1', 'H7:93.2:0.312']
    """
    n_maps = int(n_maps)
    if n_maps < 1:
        raise ValueError(f"n_maps must be >= 1, got {n_maps}.")
    if not (np.isfinite(voxel_size) and voxel_size > 0):
        raise ValueError(f"voxel_size must be a positive number (Å), got {voxel_size}.")
    if box is not None and int(box) < 4:
        raise ValueError(f"box must be >= 4 voxels or None, got {box}.")
    if isinstance(random_state, int | np.integer):
        seed = int(random_state)
    else:
        seed = int(check_random_state(random_state).randint(0, 2**31 - 1))
    maps, recipes = {}, []
    for i in range(n_maps):
        rng = np.random.default_rng([seed, i])
        recipe = _draw_assembly(rng)
        maps[f"proc_{i:06d}"] = _render(recipe, float(voxel_size), box)
        recipes.append(
            dict(
                symmetry=recipe["symmetry"],
                diameter=recipe["diameter"],
                subunits=[u["kind"] for u in recipe["subunits"]],
                texture=recipe["texture"],
            )
        )
    return Bunch(maps=maps, recipes=recipes, voxel_size=float(voxel_size))
