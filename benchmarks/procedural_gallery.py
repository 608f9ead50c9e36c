"""Gallery: projections of procedural maps beside the 15 packaged SHREC maps.

Run: python benchmarks/procedural_gallery.py [--n 30] [--seed 0]
Writes docs/images/procedural_gallery.png (z-projections and central x-slices).
"""

import argparse
from pathlib import Path

import numpy as np

from fscc_sklearn.datasets import available_maps, load_map, prepare_map
from fscc_sklearn.datasets._maps import crop_or_pad
from fscc_sklearn.datasets._procedural import make_procedural_maps

BOX = 40  # every panel shows the same 40 nm field of view
OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "procedural_gallery.png"


def _panel(ax, volume, title):
    volume = crop_or_pad(volume, BOX)
    n = BOX
    proj = volume.sum(axis=0)
    slab = volume[:, :, n // 2]
    ax.imshow(np.hstack([proj / proj.max(), slab / max(slab.max(), 1e-6)]), cmap="gray")
    ax.set_title(title, fontsize=6)
    ax.axis("off")


def main(argv=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    packaged = available_maps()
    pm = make_procedural_maps(args.n, random_state=args.seed)
    cols = 6
    rows = int(np.ceil(len(packaged) / cols)) + int(np.ceil(args.n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.0, rows * 1.15))
    axes = axes.ravel()
    for ax in axes:
        ax.axis("off")
    for i, name in enumerate(packaged):
        vol, vs = load_map(name)
        _panel(axes[i], prepare_map(vol, vs, 10.0), f"packaged {name}")
    start = int(np.ceil(len(packaged) / cols)) * cols
    for j, (vol, recipe) in enumerate(zip(pm.maps.values(), pm.recipes, strict=True)):
        title = f"{recipe['symmetry'].split(':')[0]} {recipe['diameter'] / 10:.0f} nm"
        _panel(axes[start + j], vol, title)
    fig.suptitle(
        f"Packaged SHREC maps (top) and procedural maps, seed {args.seed} (below): "
        "z-projection | central x-slice, 10 Å voxels, 40 nm boxes",
        fontsize=8,
    )
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
