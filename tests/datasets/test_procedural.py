import numpy as np
import pytest
from scipy import ndimage

from fscc_sklearn.datasets import (
    make_procedural_maps,
    prepare_map,
    symmetry_operators,
)
from fscc_sklearn.datasets._maps import crop_or_pad


@pytest.fixture(scope="module")
def maps40():
    return make_procedural_maps(40, random_state=3)


def _rotate(volume, R):
    """``volume`` turned by the (z, y, x) rotation ``R`` about the box centre."""
    centre = (np.array(volume.shape) - 1) / 2.0
    return ndimage.affine_transform(
        volume, R.T, offset=centre - R.T @ centre, order=1, mode="constant"
    )


def _corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_same_seed_same_maps_and_prefix_stable():
    a = make_procedural_maps(3, random_state=7)
    b = make_procedural_maps(5, random_state=7)
    c = make_procedural_maps(3, random_state=8)
    for name in a.maps:
        np.testing.assert_array_equal(a.maps[name], b.maps[name])
    assert a.recipes == b.recipes[:3]
    assert any(
        a.maps[n].shape != c.maps[n].shape or not np.allclose(a.maps[n], c.maps[n])
        for n in a.maps
    )


def test_maps_are_normalised_cubes_with_solvent_border(maps40):
    for (name, vol), recipe in zip(maps40.maps.items(), maps40.recipes, strict=True):
        n = vol.shape[0]
        assert vol.dtype == np.float32 and vol.shape == (n, n, n), name
        assert n == int(np.ceil(recipe["diameter"] / 10.0)) + 8
        assert vol.max() == pytest.approx(1.0) and vol.min() >= 0
        border = np.concatenate(
            [vol[0].ravel(), vol[:, 0].ravel(), vol[..., 0].ravel()]
        )
        assert border.max() < 0.05, name  # the particle fits inside its box
        assert 50.0 <= recipe["diameter"] <= 350.0


def test_grammar_covers_its_families(maps40):
    kinds = {r["symmetry"][0] for r in maps40.recipes}
    assert {"C", "D", "H", "O"} <= kinds
    subunits = {k for r in maps40.recipes for k in r["subunits"]}
    assert {"blob", "ellipsoid", "rod", "ring", "shell", "sheet"} <= subunits


def test_point_group_maps_equal_themselves_under_their_group(maps40):
    checked = 0
    for vol, recipe in zip(maps40.maps.values(), maps40.recipes, strict=True):
        sym = recipe["symmetry"]
        if sym[0] not in "CDTO" or sym == "C1" or vol.shape[0] < 16:
            continue
        rotations, _ = symmetry_operators(sym)
        for R in rotations[1:]:
            assert _corr(vol, _rotate(vol, R)) > 0.95, sym
        checked += 1
    assert checked >= 5


def test_asymmetric_map_is_not_invariant(maps40):
    # the control for the test above: a C1 map turned by 90 degrees changes
    corrs = [
        _corr(v, _rotate(v, symmetry_operators("C4")[0][1]))
        for v, r in zip(maps40.maps.values(), maps40.recipes, strict=True)
        if r["symmetry"] == "C1" and v.shape[0] >= 16
    ]
    assert corrs and min(corrs) < 0.9


def test_maps_are_physical_objects_at_any_voxel_size():
    fine = make_procedural_maps(4, voxel_size=5.0, random_state=1)
    coarse = make_procedural_maps(4, voxel_size=10.0, random_state=1)
    names = list(fine.maps)
    for i, name in enumerate(names):
        n = coarse.maps[name].shape[0]
        resampled = crop_or_pad(prepare_map(fine.maps[name], 5.0, 10.0), n)
        other = crop_or_pad(coarse.maps[names[i - 1]], n)
        same = _corr(resampled, coarse.maps[name])
        assert same > 0.85 and same > _corr(resampled, other) + 0.2


def test_fixed_box():
    pm = make_procedural_maps(2, box=24, random_state=0)
    assert {v.shape for v in pm.maps.values()} == {(24, 24, 24)}


def test_symmetry_operators():
    R, t = symmetry_operators("D3")
    assert R.shape == (6, 3, 3) and not t.any()
    np.testing.assert_allclose(
        R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(R), 1.0)
    assert len(symmetry_operators("O")[0]) == 24
    R, t = symmetry_operators("H5:60:2")
    np.testing.assert_allclose(t[:, 0], [-4, -2, 0, 2, 4])  # rise along z (axis 0)
    np.testing.assert_allclose(R[:, 0, 0], 1.0)  # the twist leaves z alone


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_maps=0), "n_maps must be >= 1"),
        (dict(n_maps=1, voxel_size=0.0), "voxel_size"),
        (dict(n_maps=1, box=2), "box must be >= 4"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_procedural_maps(**kwargs)


@pytest.mark.parametrize("sym", ["X3", "C0", "H3:a:1", "D"])
def test_unknown_symmetry(sym):
    with pytest.raises(ValueError, match="symmetry|helix"):
        symmetry_operators(sym)
