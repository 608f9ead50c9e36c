"""``fscc predict`` end to end on every particle-list format (issue 22): RELION 5,
RELION 3 / Warp, SHREC'21, CSV and a copick project, input columns kept."""

import copick
import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
from copick.models import PickableObject

from fscc_sklearn import load_model
from fscc_sklearn.cli import main
from fscc_sklearn.io import read_copick_picks, read_subtomograms

TINY = ["--epochs", "1", "--width", "4", "--batch-size", "32", "--quiet"]
CENTRES = np.array([(8, 8, 8), (24, 8, 8), (8, 24, 8), (8, 8, 24), (24, 24, 24)])
SHAPE = (48, 48, 48)
VOXEL = 10.0


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """An adapted model and a tomogram holding five of its novel subtomograms."""
    root = tmp_path_factory.mktemp("formats")
    argv = ["simulate", root / "sim", "--n-per-class", "8", "--box", "16", "--quiet"]
    assert main([str(a) for a in argv]) == 0
    base, novel = root / "base.safetensors", root / "novel.safetensors"
    assert (
        main([str(a) for a in ["pretrain", root / "sim" / "base", "-o", base, *TINY]])
        == 0
    )
    argv = [
        "adapt",
        base,
        root / "sim" / "novel",
        "--shots",
        "3",
        "-o",
        novel,
        "--quiet",
    ]
    assert main([str(a) for a in argv]) == 0
    sub = read_subtomograms(root / "sim" / "novel")
    tomo = np.zeros(SHAPE, dtype=np.float32)
    for (x, y, z), vol in zip(CENTRES, sub.X[::8], strict=True):
        tomo[z - 8 : z + 8, y - 8 : y + 8, x - 8 : x + 8] = vol
    with mrcfile.new(root / "TS_01.mrc") as mrc:
        mrc.set_data(tomo)
        mrc.voxel_size = VOXEL
    expected = load_model(novel).predict(sub.X[::8]).astype(str)
    return root, novel, tomo, expected


def _predict(capsys, setup, particles, out, *extra):
    root, novel, *_ = setup
    argv = ["predict", novel, "--tomogram", root / "TS_01.mrc", "--particles"]
    return run(capsys, *argv, particles, "-o", out, *extra)


def _relion5(path, names=("TS_01",) * 5, order=range(5)):
    centred = (CENTRES[list(order)] - np.array(SHAPE) / 2) * VOXEL
    starfile.write(
        {
            "general": {"rlnTomoSubTomosAre2DStacks": 1},
            "optics": pd.DataFrame(
                {"rlnOpticsGroup": [1], "rlnTomoTiltSeriesPixelSize": [2.5]}
            ),
            "particles": pd.DataFrame(
                {
                    "rlnTomoName": list(names),
                    "rlnCenteredCoordinateXAngst": centred[:, 0],
                    "rlnCenteredCoordinateYAngst": centred[:, 1],
                    "rlnCenteredCoordinateZAngst": centred[:, 2],
                    "rlnOriginXAngst": 0.0,
                    "rlnOriginYAngst": 0.0,
                    "rlnOriginZAngst": 0.0,
                    "rlnAngleRot": 10.0,
                    "rlnAngleTilt": 20.0,
                    "rlnAnglePsi": 30.0,
                    "rlnOpticsGroup": 1,
                    "rlnTomoParticleName": [f"TS_01/{i}" for i in range(len(names))],
                }
            ),
        },
        path,
    )
    return path


def test_relion5_star_in_star_out_keeps_every_column(setup, tmp_path, capsys):
    _, _, _, expected = setup
    star = _relion5(tmp_path / "particles.star")
    code, out, err = _predict(capsys, setup, star, tmp_path / "pred.star")
    assert code == 0, err
    before = starfile.read(star, always_dict=True)
    after = starfile.read(tmp_path / "pred.star", always_dict=True)
    assert list(after) == ["general", "optics", "particles"]
    pd.testing.assert_frame_equal(after["optics"], before["optics"])
    old, new = before["particles"], after["particles"]
    assert list(new.columns[: len(old.columns)]) == list(old.columns)
    pd.testing.assert_frame_equal(new[old.columns], old)
    assert {"fsccParticle", "fsccPrediction", "fsccScore"} <= set(new.columns)
    assert new["fsccPrediction"].astype(str).tolist() == expected.tolist()
    assert ((new["fsccScore"] > 0) & (new["fsccScore"] <= 1)).all()


def test_relion5_several_tomograms_picks_the_one_cut(setup, tmp_path, capsys):
    _, _, _, expected = setup
    names = ["TS_01", "TS_02", "TS_01", "TS_02", "TS_01", "TS_02", "TS_01", "TS_02"]
    order = [0, 0, 1, 1, 2, 2, 3, 4]
    star = _relion5(tmp_path / "two.star", names=names, order=order)
    # --tomo-name defaults to the tomogram's file name (TS_01.mrc)
    code, _, err = _predict(capsys, setup, star, tmp_path / "pred.star")
    assert code == 0, err
    new = starfile.read(tmp_path / "pred.star")["particles"]
    assert new["rlnTomoName"].tolist() == ["TS_01"] * 4
    assert new["fsccPrediction"].astype(str).tolist() == expected[[0, 1, 2, 3]].tolist()
    code, _, err = _predict(
        capsys, setup, star, tmp_path / "b.star", "--tomo-name", "TS_09"
    )
    assert code == 1 and "no particle of tomogram 'TS_09'" in err


def test_relion5_voxel_size_mismatch_is_refused_with_both(setup, tmp_path, capsys):
    star = _relion5(tmp_path / "particles.star")
    tomograms = tmp_path / "tomograms.star"
    starfile.write(
        {
            "global": pd.DataFrame(
                {
                    "rlnTomoName": ["TS_01"],
                    "rlnTomoTiltSeriesPixelSize": [2.5],
                    "rlnTomoTomogramBinning": [2.0],
                }
            )
        },
        tomograms,
    )
    code, _, err = _predict(
        capsys, setup, star, tmp_path / "p.star", "--tomograms-star", tomograms
    )
    assert code == 1 and "gives 5 A" in err and "tomogram has 10 A" in err
    assert not (tmp_path / "p.star").exists()


def test_relion3_warp_star(setup, tmp_path, capsys):
    _, _, _, expected = setup
    star = tmp_path / "warp.star"
    starfile.write(
        pd.DataFrame(
            {
                "rlnMicrographName": "TS_01.mrc",
                "rlnCoordinateX": CENTRES[:, 0].astype(float),
                "rlnCoordinateY": CENTRES[:, 1].astype(float),
                "rlnCoordinateZ": CENTRES[:, 2].astype(float),
                "rlnAutopickFigureOfMerit": np.linspace(1, 2, 5),
            }
        ),
        star,
    )
    code, _, err = _predict(capsys, setup, star, tmp_path / "pred.star")
    assert code == 0, err
    new = starfile.read(tmp_path / "pred.star")
    assert new["rlnAutopickFigureOfMerit"].tolist() == np.linspace(1, 2, 5).tolist()
    assert new["fsccPrediction"].astype(str).tolist() == expected.tolist()


def test_shrec21_and_csv(setup, tmp_path, capsys):
    _, _, _, expected = setup
    shrec = tmp_path / "particle_locations.txt"
    shrec.write_text(
        "# class x y z phi theta psi\n"
        + "".join(f"A {x} {y} {z} 0 0 0\n" for x, y, z in CENTRES)
    )
    code, _, err = _predict(capsys, setup, shrec, tmp_path / "shrec.csv")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "shrec.csv")
    assert table[["x", "y", "z"]].to_numpy().tolist() == CENTRES.tolist()
    assert table["label"].astype(str).tolist() == expected.tolist()
    csv = tmp_path / "picks.csv"
    csv.write_text(
        "x,y,z,tm_score\n"
        + "".join(f"{x},{y},{z},0.{i}\n" for i, (x, y, z) in enumerate(CENTRES))
    )
    code, _, err = _predict(capsys, setup, csv, tmp_path / "pred.csv")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "pred.csv")
    assert list(table.columns[:4]) == ["x", "y", "z", "tm_score"]
    assert table["tm_score"].tolist() == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert table["prediction"].astype(str).tolist() == expected.tolist()


def test_copick_project(setup, tmp_path, capsys):
    root, novel, tomo, expected = setup
    classes = sorted(set(expected.tolist()))
    objects = [PickableObject(name="picked", is_particle=True, label=1)] + [
        PickableObject(name=f"obj-{c}", is_particle=True, label=k + 2)
        for k, c in enumerate(classes)
    ]
    config = tmp_path / "copick.json"
    project = copick.new_config(
        str(config), str(tmp_path / "overlay"), pickable_objects=objects
    )
    run_ = project.new_run("TS_01")
    run_.new_voxel_spacing(VOXEL).new_tomogram("wbp").from_numpy(tomo)
    run_.new_picks("picked", session_id="0", user_id="pytom").from_numpy(
        CENTRES.astype(float) * VOXEL
    )
    mapping = [a for c in classes for a in ("--copick-object", f"{c}=obj-{c}")]
    code, out, err = run(
        capsys,
        "predict",
        novel,
        "--copick",
        config,
        "--run",
        "TS_01",
        "--tomogram-type",
        "wbp",
        "--pick-objects",
        "picked",
        *mapping,
        "-o",
        tmp_path / "pred.csv",
    )
    assert code == 0, err
    assert "copick picks of run TS_01" in out
    table = pd.read_csv(tmp_path / "pred.csv")
    assert table["tomogram"].tolist() == ["TS_01"] * 5
    assert table["label"].astype(str).tolist() == expected.tolist()
    back = read_copick_picks(config, "TS_01", VOXEL, user_id="fscc")
    for c in classes:
        got = back.coords[back.labels == f"obj-{c}"]
        want = CENTRES[expected == c]
        assert sorted(map(tuple, got.tolist())) == sorted(
            map(tuple, want.astype(float).tolist())
        )
    # again without --force: the picks exist
    code, _, err = run(
        capsys,
        "predict",
        novel,
        "--copick",
        config,
        "--run",
        "TS_01",
        "--tomogram-type",
        "wbp",
        "--pick-objects",
        "picked",
        *mapping,
        "-o",
        tmp_path / "again.csv",
    )
    assert code == 1 and "already has picks" in err
