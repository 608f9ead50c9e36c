"""Tests for parsing particle lists (SHREC'19, SHREC'21, STAR, CSV)."""

import warnings

import numpy as np
import pytest

from fscc_sklearn.io import (
    ParticleListFormatError,
    ParticleTable,
    detect_particle_list_format,
    read_csv_particles,
    read_particle_list,
    read_shrec19,
    read_shrec21,
    read_star,
)

SHREC19 = """1bxn 30 20 10 0.5 1.5 2.5
3gl1 5 6 7 10 20 30
"""

SHREC21 = """4V94 10 20 30 11 22 33
1BXN 1 2 3 0 90 180
vesicle 100 100 100 nan nan nan
fiducial 50 50 50 0 0 0
3D2F 4 5 6 nan nan nan
"""

STAR31 = """
# version 30001

data_optics

loop_
_rlnOpticsGroupName #1
_rlnOpticsGroup #2
_rlnImagePixelSize #3
opticsGroup1 1 10.0

# version 30001

data_particles

loop_
_rlnCoordinateX #1
_rlnCoordinateY #2
_rlnCoordinateZ #3
_rlnAngleRot #4
_rlnAngleTilt #5
_rlnAnglePsi #6
_rlnClassNumber #7
_rlnMicrographName #8
12.5 20.0 30.0 10 20 30 1 "tomo 01.mrc"
1.0 2.0 3.0 0 0 0 2 tomo_02.mrc
"""

STAR30 = """data_
loop_
_rlnMicrographName
_rlnCoordinateZ
_rlnCoordinateX
_rlnCoordinateY
tomo.mrc 3 1 2
tomo.mrc 30 10 20
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shrec19_reorders_zyx(tmp_path):
    path = _write(tmp_path, "particle_locations_model_0.txt", SHREC19)
    table = read_shrec19(path)
    np.testing.assert_array_equal(table.coords, [[10, 20, 30], [7, 6, 5]])
    assert table.labels.tolist() == ["1bxn", "3gl1"]
    np.testing.assert_array_equal(table.angles[0], [0.5, 1.5, 2.5])
    assert table.angle_convention == "shrec19_xyz"
    assert table.n_skipped == 0
    assert read_particle_list(path, format="shrec19").format == "shrec19"


def test_shrec21_skips_and_counts_non_particles(tmp_path):
    path = _write(tmp_path, "particle_locations.txt", SHREC21)
    with pytest.warns(UserWarning, match=r"Skipped 3 row.*lines 3, 4, 5"):
        table = read_shrec21(path)
    np.testing.assert_array_equal(table.coords, [[10, 20, 30], [1, 2, 3]])
    assert table.labels.tolist() == ["4V94", "1BXN"]
    np.testing.assert_array_equal(table.angles, [[11, 22, 33], [0, 90, 180]])
    assert table.angle_convention == "shrec21_zxz"
    assert table.n_skipped == 3
    assert table.skipped_lines == (3, 4, 5)
    assert len(table) == 2
    with pytest.warns(UserWarning):
        assert read_particle_list(path).format == "shrec21"


def test_shrec21_short_vesicle_rows_are_skipped(tmp_path):
    path = _write(tmp_path, "loc.txt", "vesicle 1 2 3\n1BXN 4 5 6 0 0 0\n")
    with pytest.warns(UserWarning, match="Skipped 1 row"):
        table = read_particle_list(path)
    assert table.format == "shrec21"
    assert table.coords.tolist() == [[4.0, 5.0, 6.0]]
    assert table.skipped_lines == (1,)


def test_shrec_junk_rows_name_the_line(tmp_path):
    bad_count = _write(tmp_path, "a.txt", "1BXN 1 2 3 0 0 0\n1BXN 1 2 3 0 0\n")
    with pytest.raises(ValueError, match=r"a\.txt, line 2: expected 7"):
        read_shrec21(bad_count)
    bad_number = _write(tmp_path, "b.txt", "\n1bxn 1 2 3 0 0 0\n1bxn 1 two 3 0 0 0\n")
    with pytest.raises(ValueError, match=r"b\.txt, line 3: expected a number.*'two'"):
        read_shrec19(bad_number)
    nan_coord = _write(tmp_path, "c.txt", "1BXN nan 2 3 0 0 0\n")
    with pytest.raises(ValueError, match=r"c\.txt, line 1: coordinate x is nan"):
        read_shrec21(nan_coord)
    empty = _write(tmp_path, "d.txt", "\n\n")
    with pytest.raises(ValueError, match="no data rows"):
        read_shrec21(empty)


def test_star_relion31_particles_block(tmp_path):
    path = _write(tmp_path, "run_data.star", STAR31)
    table = read_star(path)
    np.testing.assert_array_equal(table.coords, [[12.5, 20, 30], [1, 2, 3]])
    assert table.labels.tolist() == ["1", "2"]
    np.testing.assert_array_equal(table.angles, [[10, 20, 30], [0, 0, 0]])
    assert table.angle_convention == "relion_zyz"
    # user-named label column, with or without underscore; quoted value kept whole
    named = read_star(path, label_column="rlnMicrographName")
    assert named.labels.tolist() == ["tomo 01.mrc", "tomo_02.mrc"]
    assert read_particle_list(path, label_column="_rlnMicrographName").labels[0] == (
        "tomo 01.mrc"
    )


def test_star_bare_data_block_and_column_order(tmp_path):
    path = _write(tmp_path, "old.star", STAR30)
    table = read_particle_list(path)
    assert table.format == "star"
    np.testing.assert_array_equal(table.coords, [[1, 2, 3], [10, 20, 30]])
    assert table.labels is None
    assert table.angles is None
    # content-based detection without the .star suffix
    other = _write(tmp_path, "old.txt", STAR30)
    assert detect_particle_list_format(other) == "star"


def test_star_errors(tmp_path):
    missing = _write(
        tmp_path, "m.star", "data_\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n1 2\n"
    )
    with pytest.raises(ValueError, match=r"m\.star.*missing column.*_rlnCoordinateZ"):
        read_star(missing)
    junk = _write(tmp_path, "j.star", STAR30 + "tomo.mrc 1 2\n")
    with pytest.raises(ValueError, match=r"j\.star, line 9: expected 4 values"):
        read_star(junk)
    nonnum = _write(tmp_path, "n.star", STAR30.replace("30 10 20", "30 ten 20"))
    with pytest.raises(ValueError, match=r"n\.star, line 8:.*_rlnCoordinateX.*'ten'"):
        read_star(nonnum)
    nolabel = _write(tmp_path, "l.star", STAR30)
    with pytest.raises(ValueError, match=r"label column '_rlnClassNumber' not found"):
        read_star(nolabel, label_column="rlnClassNumber")
    nocoords = _write(tmp_path, "o.star", "data_optics\nloop_\n_rlnOpticsGroup\n1\n")
    with pytest.raises(ValueError, match=r"no loop with column _rlnCoordinateX"):
        read_star(nocoords)
    notstar = _write(tmp_path, "x.star", "hello\n")
    with pytest.raises(ValueError, match=r"x\.star, line 1: expected a 'data_'"):
        read_star(notstar)


def test_csv_reader(tmp_path):
    path = _write(
        tmp_path,
        "p.csv",
        "X, Y, Z,Class,score\n1,2,3,1BXN,0.5\n\n4.5,5,6,3GL1,0.1\n",
    )
    table = read_csv_particles(path)
    np.testing.assert_array_equal(table.coords, [[1, 2, 3], [4.5, 5, 6]])
    assert table.labels.tolist() == ["1BXN", "3GL1"]
    assert table.angles is None
    score = read_particle_list(path, label_column="score")
    assert score.labels.tolist() == ["0.5", "0.1"]
    nolabel = _write(tmp_path, "q.csv", "x,y,z\n1,2,3\n")
    assert read_particle_list(nolabel).labels is None


def test_csv_with_angles(tmp_path):
    path = _write(tmp_path, "a.csv", "x,y,z,label,phi,theta,psi\n1,2,3,A,10,20,30\n")
    table = read_particle_list(path)
    assert table.angle_convention == "shrec21_zxz"
    np.testing.assert_array_equal(table.angles, [[10, 20, 30]])


def test_csv_errors(tmp_path):
    missing = _write(tmp_path, "m.csv", "x,y,label\n1,2,A\n")
    with pytest.raises(ValueError, match=r"m\.csv.*missing column.*'z'"):
        read_particle_list(missing)
    junk = _write(tmp_path, "j.csv", "x,y,z\n1,2,3\n4,5\n")
    with pytest.raises(ValueError, match=r"j\.csv, line 3: expected 3 fields"):
        read_particle_list(junk)
    nonnum = _write(tmp_path, "n.csv", "x,y,z\n1,2,3\n\n4,abc,6\n")
    with pytest.raises(ValueError, match=r"n\.csv, line 4: .*for y, got 'abc'"):
        read_particle_list(nonnum)
    empty = _write(tmp_path, "e.csv", "")
    with pytest.raises(ValueError, match=r"e\.csv.*empty"):
        read_particle_list(empty)
    both = _write(tmp_path, "b.csv", "x,y,z,label,class\n1,2,3,a,b\n")
    with pytest.raises(ValueError, match="label_column"):
        read_particle_list(both)


def test_format_errors(tmp_path):
    path = _write(tmp_path, "p.txt", SHREC19)
    with pytest.raises(ValueError, match=r"Unknown particle list format 'xml'"):
        read_particle_list(path, format="xml")
    unknown = _write(tmp_path, "u.txt", "some free text\nnot a list\n")
    with pytest.raises(ParticleListFormatError, match=r"u\.txt.*neither") as exc:
        read_particle_list(unknown)
    assert exc.value.candidates == ("shrec19", "shrec21", "star", "csv")
    empty = _write(tmp_path, "e.txt", "\n# nothing\n")
    with pytest.raises(ValueError, match=r"e\.txt' is empty"):
        read_particle_list(empty)
    ambiguous = _write(tmp_path, "amb.txt", "1234 1 2 3 0 0 0\n")
    with pytest.raises(ParticleListFormatError, match=r"amb\.txt.*SHREC'19") as exc:
        read_particle_list(ambiguous)
    assert exc.value.candidates == ("shrec19", "shrec21")
    # explicit format resolves the ambiguity
    assert read_particle_list(ambiguous, format="shrec21").coords.tolist() == [
        [1.0, 2.0, 3.0]
    ]
    with pytest.raises(ValueError, match="label_column is not used"):
        read_particle_list(path, format="shrec19", label_column="x")
    with pytest.raises(FileNotFoundError, match="missing.star"):
        read_particle_list(tmp_path / "missing.star")


def test_particle_table_validation():
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        ParticleTable(coords=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="labels must have shape"):
        ParticleTable(coords=np.zeros((2, 3)), labels=["a"])
    with pytest.raises(ValueError, match="angle_convention"):
        ParticleTable(coords=np.zeros((1, 3)), angles=np.zeros((1, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = ParticleTable(coords=[[1, 2, 3]], labels=["a"])
    assert t.coords.dtype == np.float64


@pytest.mark.parametrize("case", ["lower", "upper"])
def test_shrec_axis_order_is_never_guessed_from_the_class_names(tmp_path, case):
    # a SHREC'21-style list (class x y z ...) with lower-case names used to be
    # read as SHREC'19 (z y x): x and z swapped without an error
    names = ["1bxn", "3gl1"] if case == "lower" else ["1BXN", "3GL1"]
    text = f"{names[0]} 10 20 30 0 0 0\n{names[1]} 5 6 7 0 0 0\n"
    path = _write(tmp_path, "locations.txt", text)
    with pytest.raises(ParticleListFormatError, match="SHREC'19.*SHREC'21") as exc:
        detect_particle_list_format(path)
    assert exc.value.candidates == ("shrec19", "shrec21")
    assert read_particle_list(path, format="shrec21").coords[0].tolist() == [10, 20, 30]
    assert read_particle_list(path, format="shrec19").coords[0].tolist() == [30, 20, 10]


@pytest.mark.parametrize(
    ("header", "fmt", "first"),
    [
        ("# class x y z phi theta psi", "shrec21", [10, 20, 30]),
        ("class x y z phi theta psi", "shrec21", [10, 20, 30]),
        ("# pdb_id Z Y X rot_X rot_Y rot_Z", "shrec19", [30, 20, 10]),
    ],
)
def test_shrec_header_decides_the_axis_order(tmp_path, header, fmt, first):
    path = _write(tmp_path, "l.txt", f"{header}\n1bxn 10 20 30 0 0 0\n")
    assert detect_particle_list_format(path) == fmt
    table = read_particle_list(path)
    assert table.format == fmt and table.coords.tolist() == [first]
    other = "shrec19" if fmt == "shrec21" else "shrec21"
    with pytest.raises(ValueError, match="header orders the coordinates"):
        read_particle_list(path, format=other)


def test_shrec21_non_particle_rows_decide_the_axis_order(tmp_path):
    path = _write(tmp_path, "l.txt", "1bxn 10 20 30 0 0 0\nvesicle 1 2 3 nan nan nan\n")
    with pytest.warns(UserWarning, match="Skipped 1 row"):
        table = read_particle_list(path)
    assert table.format == "shrec21" and table.coords.tolist() == [[10, 20, 30]]
