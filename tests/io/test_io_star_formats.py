"""RELION 5, RELION 3.1/4 and Warp STAR files written by starfile, read by us
(issue 22), and the table checks of issue 21."""

import numpy as np
import pandas as pd
import pytest
import starfile

from fscc_sklearn.io import (
    ParticleTable,
    SeveralTomogramsError,
    read_labels_table,
    read_particle_list,
    read_relion_tomograms,
    read_star,
    write_particle_table,
)

RNG = np.random.default_rng(22)
# a tomogram of 4096 x 4096 x 1000 unbinned pixels of 1.35 A, binned 4 (5.4 A)
PS, BIN = 1.35, 4.0
SIZE = (4096.0, 4096.0, 1000.0)
VOXEL = PS * BIN
SHAPE_ZYX = (250, 1024, 1024)


def _relion5(tmp_path, n=6, tomo_names=("TS_01",), origin=True):
    """A RELION 5 particles.star + tomograms.star and the expected voxels."""
    vox = RNG.uniform([0, 0, 0], [1023, 1023, 249], size=(n, 3))
    shift = RNG.uniform(-5, 5, size=(n, 3)) if origin else np.zeros((n, 3))
    centre = np.array(SIZE) / (2 * BIN)  # RELION: size / 2, in binned voxels
    centred = (vox - centre) * VOXEL + shift  # RELION subtracts the origin
    names = [tomo_names[i % len(tomo_names)] for i in range(n)]
    particles = pd.DataFrame(
        {
            "rlnTomoName": names,
            "rlnCenteredCoordinateXAngst": centred[:, 0],
            "rlnCenteredCoordinateYAngst": centred[:, 1],
            "rlnCenteredCoordinateZAngst": centred[:, 2],
            "rlnOriginXAngst": shift[:, 0],
            "rlnOriginYAngst": shift[:, 1],
            "rlnOriginZAngst": shift[:, 2],
            "rlnAngleRot": RNG.uniform(-180, 180, n),
            "rlnAngleTilt": RNG.uniform(0, 180, n),
            "rlnAnglePsi": RNG.uniform(-180, 180, n),
            "rlnOpticsGroup": 1,
            "rlnClassNumber": RNG.integers(1, 3, n),
        }
    )
    optics = pd.DataFrame(
        {
            "rlnOpticsGroup": [1],
            "rlnOpticsGroupName": ["optics1"],
            "rlnTomoTiltSeriesPixelSize": [PS],
            "rlnImagePixelSize": [VOXEL],
        }
    )
    general = {"rlnTomoSubTomosAre2DStacks": 1}
    star = tmp_path / "particles.star"
    starfile.write(
        {"general": general, "optics": optics, "particles": particles},
        star,
        float_format="%.10f",
    )
    tomograms = pd.DataFrame(
        {
            "rlnTomoName": list(dict.fromkeys(tomo_names)),
            "rlnTomoTiltSeriesPixelSize": PS,
            "rlnTomoTomogramBinning": BIN,
            "rlnTomoSizeX": SIZE[0],
            "rlnTomoSizeY": SIZE[1],
            "rlnTomoSizeZ": SIZE[2],
        }
    )
    tstar = tmp_path / "tomograms.star"
    starfile.write({"global": tomograms}, tstar, float_format="%.6f")
    return star, tstar, vox, centred, shift, names


def test_relion5_centred_angstrom_to_voxels_both_units(tmp_path):
    star, tstar, vox, centred, shift, _ = _relion5(tmp_path)
    # the centre from tomograms.star (sizes and binning) or from the tomogram's shape
    for kwargs in (
        {"tomograms_star": tstar},
        {"voxel_size": VOXEL, "tomogram_shape": SHAPE_ZYX},
        {"tomograms_star": tstar, "voxel_size": VOXEL, "tomogram_shape": SHAPE_ZYX},
    ):
        table = read_star(star, **kwargs)
        np.testing.assert_allclose(table.coords, vox, atol=1e-6, rtol=0)
        assert table.voxel_size == pytest.approx(VOXEL)
        # back to RELION's units: Angstrom from the centre size / 2, origin added
        angst = (table.coords - np.array(SIZE) / (2 * BIN)) * VOXEL + shift
        np.testing.assert_allclose(angst, centred, atol=1e-6 * VOXEL, rtol=0)
    assert table.tomograms.tolist() == ["TS_01"] * len(vox)
    assert table.angle_convention == "relion_zyz"
    assert table.labels is not None


def test_relion5_centre_is_size_over_two_not_minus_one(tmp_path):
    # a particle at centred (0, 0, 0) A sits at voxel N/2 (RELION's float
    # size / 2), not N/2 - 1 nor (N - 1)/2
    star = tmp_path / "p.star"
    starfile.write(
        pd.DataFrame(
            {
                "rlnTomoName": ["t"],
                "rlnCenteredCoordinateXAngst": [0.0],
                "rlnCenteredCoordinateYAngst": [10.0],
                "rlnCenteredCoordinateZAngst": [-10.0],
            }
        ),
        star,
    )
    table = read_star(star, voxel_size=10.0, tomogram_shape=(51, 64, 100))
    np.testing.assert_allclose(table.coords, [[50.0, 33.0, 24.5]], atol=1e-12)


def test_relion5_needs_voxel_size_and_centre_and_refuses_mismatch(tmp_path):
    star, tstar, *_ = _relion5(tmp_path)
    with pytest.raises(ValueError, match=r"Angstrom.*voxel_size="):
        read_star(star)
    with pytest.raises(ValueError, match=r"tomogram_shape="):
        read_star(star, voxel_size=VOXEL)
    with pytest.raises(ValueError, match=r"gives 5.4 A.*tomogram has 10 A"):
        read_star(star, tomograms_star=tstar, voxel_size=10.0)
    with pytest.raises(ValueError, match=r"size mismatch.*\(125, 512, 512\)"):
        read_star(star, tomograms_star=tstar, tomogram_shape=(125, 512, 512))


def test_relion5_several_tomograms_in_one_file(tmp_path):
    star, tstar, vox, *_, names = _relion5(tmp_path, n=8, tomo_names=("TS_01", "TS_02"))
    names = np.array(names)
    table = read_star(star, tomograms_star=tstar)
    np.testing.assert_allclose(table.coords, vox, atol=1e-6, rtol=0)
    assert table.tomograms.tolist() == names.tolist()
    with pytest.raises(SeveralTomogramsError, match="TS_01.*TS_02") as exc:
        read_star(star, voxel_size=VOXEL, tomogram_shape=SHAPE_ZYX)
    assert exc.value.names == ["TS_01", "TS_02"]
    two = read_star(star, voxel_size=VOXEL, tomogram_shape=SHAPE_ZYX, tomo_name="TS_02")
    keep = np.flatnonzero(names == "TS_02")
    np.testing.assert_allclose(two.coords, vox[keep], atol=1e-6, rtol=0)
    assert two.rows.tolist() == keep.tolist()
    with pytest.raises(ValueError, match="no particle of tomogram 'TS_09'"):
        read_star(star, tomograms_star=tstar, tomo_name="TS_09")


def test_tomograms_star_reader(tmp_path):
    _, tstar, *_ = _relion5(tmp_path, tomo_names=("a", "b"))
    tomos = read_relion_tomograms(tstar)
    assert sorted(tomos) == ["a", "b"]
    assert tomos["a"].voxel_size == pytest.approx(VOXEL)
    assert tomos["b"].size == SIZE


def test_warp_voxel_coordinates_single_block(tmp_path):
    vox = RNG.uniform(0, 200, size=(5, 3))
    star = tmp_path / "warp.star"
    starfile.write(
        pd.DataFrame(
            {
                "rlnCoordinateX": vox[:, 0],
                "rlnCoordinateY": vox[:, 1],
                "rlnCoordinateZ": vox[:, 2],
                "rlnAngleRot": 0.0,
                "rlnAngleTilt": 0.0,
                "rlnAnglePsi": 0.0,
                "rlnMicrographName": "TS_01_10.00Apx.mrc",
            }
        ),
        star,
        float_format="%.12f",
    )
    table = read_particle_list(star)
    np.testing.assert_allclose(table.coords, vox, atol=1e-6, rtol=0)
    assert table.tomograms.tolist() == ["TS_01_10.00Apx.mrc"] * 5
    assert table.voxel_size is None  # Warp's file does not state it
    assert len(read_star(star, tomo_name="TS_01_10.00Apx")) == 5


def test_relion31_and_relion4_optics_pixel_size(tmp_path):
    # RELION 4 tomography: rlnCoordinate in unbinned tilt-series pixels (1.35 A)
    px = RNG.uniform(0, 4000, size=(4, 3))
    shift = RNG.uniform(-3, 3, size=(4, 3))
    for column in ("rlnTomoTiltSeriesPixelSize", "rlnMicrographPixelSize"):
        star = tmp_path / f"{column}.star"
        starfile.write(
            {
                "optics": pd.DataFrame({"rlnOpticsGroup": [1], column: [PS]}),
                "particles": pd.DataFrame(
                    {
                        "rlnMicrographName": "TS_01",
                        "rlnCoordinateX": px[:, 0],
                        "rlnCoordinateY": px[:, 1],
                        "rlnCoordinateZ": px[:, 2],
                        "rlnOriginXAngst": shift[:, 0],
                        "rlnOriginYAngst": shift[:, 1],
                        "rlnOriginZAngst": shift[:, 2],
                        "rlnOpticsGroup": 1,
                    }
                ),
            },
            star,
            float_format="%.12f",
        )
        expected = (px * PS - shift) / VOXEL
        table = read_star(star, voxel_size=VOXEL)
        np.testing.assert_allclose(table.coords, expected, atol=1e-6, rtol=0)
        assert table.voxel_size == VOXEL
        # without the tomogram's voxel size: the file's own pixels, tagged so
        same = read_star(star)
        np.testing.assert_allclose(same.coords, px - shift / PS, atol=1e-6, rtol=0)
        assert same.voxel_size == PS


def test_our_writer_is_read_by_starfile_and_back(tmp_path):
    coords = RNG.uniform(-1e4, 1e4, size=(7, 3))
    labels = ["1BXN", "a#b", "nan", "two words", "", "data_x", "3"]
    path = write_particle_table(
        tmp_path / "p.star", ParticleTable(coords=coords, labels=labels)
    )
    df = starfile.read(path, parse_as_string=["fsccLabel"])
    np.testing.assert_array_equal(
        df[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy(), coords
    )
    assert df["fsccLabel"].fillna("nan").tolist() == labels
    back = read_particle_list(path)
    np.testing.assert_array_equal(back.coords, coords)
    assert back.labels.tolist() == labels


# --------------------------------------------------------------------------
# issue 21: tables


def _write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


STAR = "data_particles\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n_rlnCoordinateZ\n"


def test_duplicated_columns_and_blocks_are_errors(tmp_path):
    dup_csv = _write(tmp_path, "d.csv", "x,y,z,x\n1,2,3,4\n")
    with pytest.raises(ValueError, match=r"d\.csv.*column 'x' appears twice"):
        read_particle_list(dup_csv)
    dup_label = _write(tmp_path, "l.csv", "x,y,z,label,label\n1,2,3,a,b\n")
    with pytest.raises(ValueError, match=r"l\.csv.*column 'label' appears twice"):
        read_particle_list(dup_label)
    dup_star = _write(tmp_path, "s.star", STAR + "_rlnCoordinateX\n1 2 3 4\n")
    with pytest.raises(
        ValueError, match=r"s\.star.*column _rlnCoordinateX appears twice \(lines 3"
    ):
        read_particle_list(dup_star)
    two_blocks = _write(tmp_path, "b.star", STAR + "1 2 3\n" + STAR + "4 5 6\n")
    with pytest.raises(ValueError, match=r"b\.star.*'data_particles' appears twice"):
        read_particle_list(two_blocks)
    labels = _write(tmp_path, "labels.csv", "subtomogram,label,label\na.mrc,x,y\n")
    with pytest.raises(ValueError, match=r"labels\.csv.*column 'label' appears twice"):
        read_labels_table(labels)


@pytest.mark.parametrize("value", ["１２", "1_000", "0x10", "١"])
def test_numbers_are_ascii_decimal_only(tmp_path, value):
    csv = _write(tmp_path, "n.csv", f"x,y,z\n1,2,3\n{value},2,3\n")
    with pytest.raises(ValueError, match=rf"n\.csv, line 3: .*{value}"):
        read_particle_list(csv)
    star = _write(tmp_path, "n.star", STAR + f"1 2 {value}\n")
    with pytest.raises(ValueError, match=rf"n\.star, line 6: .*{value}"):
        read_particle_list(star)
    shrec = _write(
        tmp_path, "n.txt", f"# class x y z phi theta psi\nA 1 {value} 3 0 0 0\n"
    )
    with pytest.raises(ValueError, match=rf"n\.txt, line 2: .*{value}"):
        read_particle_list(shrec, format="shrec21")
    labels = _write(
        tmp_path, "labels.csv", f"subtomogram,label,x,y,z\na.mrc,A,1,2,{value}\n"
    )
    with pytest.raises(ValueError, match=rf"labels\.csv, line 2: .*{value}"):
        read_labels_table(labels)


def test_decoding_errors_name_the_file_and_line(tmp_path):
    text = "subtomogram,label\na.mrc,A\nb.mrc,Caf\u00e9\n"
    labels = _write(tmp_path, "labels.csv", text, encoding="latin-1")
    with pytest.raises(ValueError, match=r"labels\.csv', line 3: not UTF-8"):
        read_labels_table(labels)
    star = _write(tmp_path, "p.star", STAR + "1 2 3\n4 5 6 # caf\u00e9\n", "latin-1")
    with pytest.raises(ValueError, match=r"p\.star', line 7: not UTF-8"):
        read_particle_list(star)
    csv = _write(tmp_path, "p.csv", "x,y,z,label\n1,2,3,caf\u00e9\n", "latin-1")
    with pytest.raises(ValueError, match=r"p\.csv', line 2: not UTF-8"):
        read_particle_list(csv)


def test_labels_match_by_full_relative_path(tmp_path):
    from fscc_sklearn.cli._inputs import load_subtomogram_data
    from fscc_sklearn.io import write_subtomograms

    data = tmp_path / "data"
    write_subtomograms(data, np.zeros((2, 4, 4, 4), np.float32), 10.0, prefix="s")
    good = _write(tmp_path, "good.csv", "subtomogram,label\n./s000000.mrc,A\n")
    loaded = load_subtomogram_data(data, good, need_labels=False)
    assert loaded.y.tolist() == ["A", ""]
    other = _write(
        tmp_path, "other.csv", "subtomogram,label\n../elsewhere/s000000.mrc,A\n"
    )
    with pytest.raises(
        ValueError, match=r"line 2.*'\.\./elsewhere/s000000\.mrc' is not in"
    ):
        load_subtomogram_data(data, other, need_labels=False)


def test_written_back_star_keeps_every_block_column_and_value(tmp_path):
    from fscc_sklearn.io import write_particle_columns

    star, tstar, vox, *_ = _relion5(tmp_path, n=5)
    table = read_star(star, tomograms_star=tstar)
    keep = [4, 0, 2]
    out = write_particle_columns(
        tmp_path / "out.star",
        table,
        {"fsccPrediction": ["a", "b", "c"], "_fsccScore": [0.5, 0.25, 1.0]},
        rows=keep,
    )
    before = starfile.read(star, always_dict=True)
    after = starfile.read(out, always_dict=True)
    assert list(after) == ["general", "optics", "particles"]
    assert after["general"] == before["general"]
    pd.testing.assert_frame_equal(after["optics"], before["optics"])
    old = before["particles"].iloc[keep].reset_index(drop=True)
    new = after["particles"]
    assert list(new.columns) == [*old.columns, "fsccPrediction", "fsccScore"]
    pd.testing.assert_frame_equal(new[old.columns], old)  # same text, same values
    assert new["fsccPrediction"].tolist() == ["a", "b", "c"]
    assert new["fsccScore"].tolist() == [0.5, 0.25, 1.0]
    back = read_star(out, tomograms_star=tstar)
    np.testing.assert_allclose(back.coords, vox[keep], atol=1e-6, rtol=0)
    with pytest.raises(FileExistsError):
        write_particle_columns(out, table, {"x": [1, 2, 3]}, rows=keep)
    with pytest.raises(ValueError, match="already has column"):
        write_particle_columns(tmp_path / "again.star", back, {"fsccScore": [1] * 3})
    with pytest.raises(ValueError, match="keep the input's format"):
        write_particle_columns(tmp_path / "o.csv", table, {"s": [1] * 5})


def test_written_back_csv_keeps_every_column(tmp_path):
    from fscc_sklearn.io import write_particle_columns

    src = _write(
        tmp_path, "p.csv", "x,y,z,tm_score,note\n1,2,3,0.5,a b\n\n4,5,6,0.25,\n"
    )
    table = read_particle_list(src)
    out = write_particle_columns(tmp_path / "o.csv", table, {"prediction": ["A", "B"]})
    assert out.read_text() == (
        "x,y,z,tm_score,note,prediction\n1,2,3,0.5,a b,A\n4,5,6,0.25,,B\n"
    )


def test_written_back_csv_neutralises_new_formula_cells(tmp_path):
    from fscc_sklearn.io import write_particle_columns

    src = _write(tmp_path, "p.csv", "x,y,z,note\n1,2,3,=keep\n")
    out = write_particle_columns(
        tmp_path / "o.csv",
        read_particle_list(src),
        {"prediction": ["=HYPERLINK(1)"], "score": [-0.5]},
    )
    assert out.read_text().splitlines()[1] == "1,2,3,=keep,'=HYPERLINK(1),-0.5"


def test_a_value_starfile_would_cut_is_refused(tmp_path):
    star = _write(tmp_path, "h.star", STAR + "_fsccLabel\n1 2 3 ok\n4 5 6 a#b\n")
    with pytest.raises(
        ValueError, match=r"h\.star, line 8: column _fsccLabel holds 'a#b'"
    ):
        read_particle_list(star)
    quoted = _write(tmp_path, "q.star", STAR + '_fsccLabel\n1 2 3 nan\n4 5 6 "a#b"\n')
    assert read_particle_list(quoted).labels.tolist() == ["nan", "a#b"]
