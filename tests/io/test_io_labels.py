"""Labels tables, and the one rule for label columns that every reader follows."""

import numpy as np
import pytest

from fscc_sklearn.io import (
    STAR_LABEL_COLUMNS,
    read_labels_table,
    read_particle_list,
    write_labels_table,
)

_STAR_HEAD = (
    "data_optics\nloop_\n_rlnOpticsGroup\n1\n\n"
    "data_particles\nloop_\n_rlnImageName\n_rlnCoordinateX\n_rlnCoordinateY\n"
    "_rlnCoordinateZ\n"
)


def _star(tmp_path, columns, rows, name="p.star"):
    path = tmp_path / name
    path.write_text(
        _STAR_HEAD
        + "".join(f"{c}\n" for c in columns)
        + "".join(
            f"{i + 1}@s.mrcs {i} {2 * i} {3 * i} {r}\n" for i, r in enumerate(rows)
        )
    )
    return path


@pytest.mark.parametrize("column", STAR_LABEL_COLUMNS)
def test_both_star_readers_take_the_same_label_column(tmp_path, column):
    path = _star(tmp_path, [column], ["3", "7"])
    particles = read_particle_list(path)
    labels = read_labels_table(path)
    assert particles.labels.tolist() == labels.labels.tolist() == ["3", "7"]
    assert labels.names == ["1@s.mrcs", "2@s.mrcs"]
    np.testing.assert_array_equal(labels.coords, particles.coords)


def test_both_star_readers_refuse_two_label_columns_alike(tmp_path):
    path = _star(tmp_path, ["_fsccLabel", "_rlnClassNumber"], ["a 1", "b 2"])
    for read in (read_particle_list, read_labels_table):
        with pytest.raises(ValueError, match=r"has both \['_fsccLabel', '_rlnClass"):
            read(path)
    # naming the column settles it, with or without the underscore, in both
    for name, expected in (("rlnClassNumber", ["1", "2"]), ("_fsccLabel", ["a", "b"])):
        assert read_particle_list(path, label_column=name).labels.tolist() == expected
        assert read_labels_table(path, label_column=name).labels.tolist() == expected


def test_both_csv_readers_refuse_label_and_class_alike(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("subtomogram,x,y,z,label,class\na.mrc,1,2,3,A,1\n")
    for read in (read_particle_list, read_labels_table):
        with pytest.raises(ValueError, match=r"has both \['label', 'class'\]"):
            read(path)
    assert read_labels_table(path, label_column="class").labels.tolist() == ["1"]
    assert read_particle_list(path, label_column="CLASS").labels.tolist() == ["1"]


@pytest.mark.parametrize("suffix", [".csv", ".star"])
def test_labels_table_round_trip(tmp_path, suffix):
    names = ["a.mrc", "2@stack.mrcs", "with space.mrc"]
    path = write_labels_table(tmp_path / f"l{suffix}", names, ["1BXN", 3, "x y"])
    table = read_labels_table(path)
    assert table.names == names
    assert table.labels.tolist() == ["1BXN", "3", "x y"]
    with pytest.raises(FileExistsError, match=f"l{suffix}"):
        write_labels_table(path, names, ["a", "b", "c"])
    with pytest.raises(ValueError, match="same length"):
        write_labels_table(tmp_path / f"m{suffix}", names, ["a"])


def test_labels_table_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("subtomogram,label\na.mrc,A\nb.mrc\n")
    with pytest.raises(ValueError, match=r"l\.csv, line 3: 1 values for 2 columns"):
        read_labels_table(path)
    path.write_text("subtomogram,kind\na.mrc,A\n")
    with pytest.raises(ValueError, match="no 'label' or 'class' column"):
        read_labels_table(path)
    star = _star(tmp_path, ["_other"], ["a"])
    with pytest.raises(ValueError, match="no loop with a label column"):
        read_labels_table(star)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_labels_table(tmp_path / "missing.csv")
