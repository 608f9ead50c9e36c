"""copick projects (issue 22), and one tomogram's particles written in five
formats giving bit-identical boxes."""

import contextlib

import copick
import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
from copick.models import PickableObject

from fscc_sklearn.io import (
    extract_subtomograms,
    read_copick_picks,
    read_copick_tomogram,
    read_particle_list,
    write_copick_picks,
)

VOXEL = 8.0
SHAPE = (40, 48, 56)  # (Z, Y, X)
RNG = np.random.default_rng(2022)
TOMO = RNG.normal(size=SHAPE).astype(np.float32)
# integer voxel centres, boxes of 12 inside the tomogram
CENTRES = np.column_stack([RNG.integers(6, s - 6, size=9) for s in SHAPE[::-1]]).astype(
    np.float64
)
LABELS = ["ribosome", "apoferritin", "ribosome"] * 3


def _project(tmp_path):
    root = copick.new_config(
        str(tmp_path / "copick.json"),
        str(tmp_path / "overlay"),
        pickable_objects=[
            PickableObject(name="ribosome", is_particle=True, label=1),
            PickableObject(name="apoferritin", is_particle=True, label=2),
            PickableObject(name="novel-a", is_particle=True, label=3),
        ],
    )
    run = root.new_run("TS_1")
    run.new_voxel_spacing(VOXEL).new_tomogram("wbp").from_numpy(TOMO)
    for obj in ("ribosome", "apoferritin"):
        rows = [i for i, lab in enumerate(LABELS) if lab == obj]
        picks = run.new_picks(obj, session_id="0", user_id="manual")
        # one shift in the transformation: copick's centre is location + shift
        transforms = np.tile(np.eye(4), (len(rows), 1, 1))
        transforms[:, :3, 3] = [3.0, -2.0, 1.0]
        picks.from_numpy(CENTRES[rows] * VOXEL - [3.0, -2.0, 1.0], transforms)
    return tmp_path / "copick.json"


def test_copick_read_picks_and_tomogram(tmp_path):
    config = _project(tmp_path)
    table = read_copick_picks(config, "TS_1", VOXEL)
    order = np.lexsort(table.coords.T)
    expected = np.lexsort(CENTRES.T)
    np.testing.assert_allclose(table.coords[order], CENTRES[expected], atol=1e-9)
    assert sorted(table.labels.tolist()) == sorted(LABELS)
    assert table.voxel_size == VOXEL and set(table.tomograms) == {"TS_1"}
    assert len(read_copick_picks(config, "TS_1", VOXEL, objects=["apoferritin"])) == 3
    np.testing.assert_array_equal(
        read_copick_tomogram(config, "TS_1", VOXEL, "wbp"), TOMO
    )
    with pytest.raises(ValueError, match="no run 'TS_9'.*TS_1"):
        read_copick_picks(config, "TS_9", VOXEL)
    with pytest.raises(ValueError, match="no tomogram 'denoised'.*wbp"):
        read_copick_tomogram(config, "TS_1", VOXEL, "denoised")
    with pytest.raises(ValueError, match="no voxel spacing 5 A"):
        read_copick_tomogram(config, "TS_1", 5.0, "wbp")


def test_copick_write_predicted_picks(tmp_path):
    config = _project(tmp_path)
    scores = np.linspace(0.1, 0.9, 9)
    pred = ["1", "2", "1", "1", "2", "2", "1", "1", "1"]
    counts = write_copick_picks(
        config,
        "TS_1",
        CENTRES,
        pred,
        VOXEL,
        scores=scores,
        object_names={"1": "ribosome", "2": "novel-a"},
    )
    assert counts == {"ribosome": 6, "novel-a": 3}
    back = read_copick_picks(config, "TS_1", VOXEL, user_id="fscc")
    got = {tuple(c) for c in back.coords[back.labels == "novel-a"]}
    assert got == {tuple(CENTRES[i]) for i in (1, 4, 5)}
    run = copick.from_file(str(config)).get_run("TS_1")
    (picks,) = run.get_picks(object_name="novel-a", user_id="fscc")
    np.testing.assert_allclose(picks.scores(), scores[[1, 4, 5]])
    with pytest.raises(FileExistsError, match="already has picks"):
        write_copick_picks(
            config,
            "TS_1",
            CENTRES,
            pred,
            VOXEL,
            object_names={"1": "ribosome", "2": "novel-a"},
        )
    with pytest.raises(ValueError, match=r"no pickable object\(s\) \['3'\]"):
        write_copick_picks(config, "TS_1", CENTRES[:1], ["3"], VOXEL, user_id="x")


def _five_formats(tmp_path):
    """The same particles as RELION 5, RELION 3, SHREC'21, CSV and copick."""
    tomo = tmp_path / "TS_1.mrc"
    with mrcfile.new(tomo) as mrc:
        mrc.set_data(TOMO)
        mrc.voxel_size = VOXEL
    z, y, x = SHAPE
    centred = (CENTRES - np.array([x, y, z]) / 2) * VOXEL
    r5 = tmp_path / "relion5.star"
    starfile.write(
        {
            "optics": pd.DataFrame(
                {"rlnOpticsGroup": [1], "rlnTomoTiltSeriesPixelSize": [VOXEL / 2]}
            ),
            "particles": pd.DataFrame(
                {
                    "rlnTomoName": "TS_1",
                    "rlnCenteredCoordinateXAngst": centred[:, 0],
                    "rlnCenteredCoordinateYAngst": centred[:, 1],
                    "rlnCenteredCoordinateZAngst": centred[:, 2],
                    "rlnOpticsGroup": 1,
                    "fsccLabel": LABELS,
                }
            ),
        },
        r5,
        float_format="%.6f",
    )
    r3 = tmp_path / "relion3.star"
    starfile.write(
        pd.DataFrame(
            {
                "rlnMicrographName": "TS_1.mrc",
                "rlnCoordinateX": CENTRES[:, 0],
                "rlnCoordinateY": CENTRES[:, 1],
                "rlnCoordinateZ": CENTRES[:, 2],
                "fsccLabel": LABELS,
            }
        ),
        r3,
    )
    shrec = tmp_path / "particle_locations.txt"
    shrec.write_text(
        "".join(
            f"{lab} {x:g} {y:g} {z:g} 0 0 0\n"
            for lab, (x, y, z) in zip(LABELS, CENTRES, strict=True)
        )
        + "vesicle 1 1 1 nan nan nan\n"
    )
    csv = tmp_path / "picks.csv"
    csv.write_text(
        "x,y,z,label,tm_score\n"
        + "".join(
            f"{x:g},{y:g},{z:g},{lab},0.5\n"
            for lab, (x, y, z) in zip(LABELS, CENTRES, strict=True)
        )
    )
    return tomo, r5, r3, shrec, csv, _project(tmp_path)


def test_five_formats_give_bit_identical_boxes(tmp_path):
    tomo, r5, r3, shrec, csv, config = _five_formats(tmp_path)
    boxes = {}
    for name, path in (
        ("relion5", r5),
        ("relion3", r3),
        ("shrec21", shrec),
        ("csv", csv),
    ):
        with (
            pytest.warns(UserWarning) if name == "shrec21" else contextlib.nullcontext()
        ):
            table = read_particle_list(path, voxel_size=VOXEL, tomogram_shape=SHAPE)
        assert table.labels.tolist() == LABELS, name
        boxes[name] = extract_subtomograms(tomo, table, 12).X
    picks = read_copick_picks(config, "TS_1", VOXEL)
    order = [
        int(np.flatnonzero((np.abs(picks.coords - c) < 1e-6).all(1))[0])
        for c in CENTRES
    ]
    array = read_copick_tomogram(config, "TS_1", VOXEL, "wbp")
    boxes["copick"] = extract_subtomograms(array, picks.coords[order], 12).X
    reference = boxes["csv"]
    assert reference.shape == (9, 12, 12, 12)
    for name, X in boxes.items():
        assert X.dtype == reference.dtype and np.array_equal(X, reference), name
