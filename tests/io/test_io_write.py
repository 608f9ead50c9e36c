"""Tests for writing subtomograms, particle tables and predictions."""

import os
import subprocess
import sys

import numpy as np
import pytest

from fscc_sklearn.io import (
    ParticleTable,
    read_labels_table,
    read_particle_list,
    read_subtomograms,
    write_particle_table,
    write_predictions,
    write_subtomograms,
)
from fscc_sklearn.io._write import atomic_output


def _leftovers(folder):
    return [f for f in os.listdir(folder) if f.endswith(".tmp")]


@pytest.mark.parametrize("fmt", ["csv", "star"])
def test_particle_table_round_trip(tmp_path, fmt):
    rng = np.random.default_rng(1)
    coords = rng.uniform(0, 500, size=(6, 3))
    coords[0] = [0.1, 1e-7, 123456.789]
    angles = rng.uniform(-180, 180, size=(6, 3))
    labels = ["1BXN", "3GL1", "has space", "", "_under", "protein"]
    for convention in ["shrec21_zxz", "shrec19_xyz", "relion_zyz"]:
        table = ParticleTable(
            coords=coords, labels=labels, angles=angles, angle_convention=convention
        )
        path = tmp_path / f"{convention}.{fmt}"
        assert write_particle_table(path, table) == path
        back = read_particle_list(path)
        assert back.format == fmt
        np.testing.assert_array_equal(back.coords, coords)  # bit-identical
        assert back.labels.tolist() == labels
        np.testing.assert_array_equal(back.angles, angles)
        assert back.angle_convention == convention
    assert _leftovers(tmp_path) == []


def test_star_label_column_choice(tmp_path):
    table = ParticleTable(coords=[[1, 2, 3], [4, 5, 6]], labels=[1, 2])
    path = tmp_path / "classes.star"
    write_particle_table(path, table, label_column="rlnClassNumber")
    text = path.read_text()
    assert "_rlnClassNumber #4" in text
    assert "data_particles" in text
    assert read_particle_list(path).labels.tolist() == ["1", "2"]


def test_table_without_labels_or_angles(tmp_path):
    table = ParticleTable(coords=[[1.5, 2, 3]])
    path = tmp_path / "p.csv"
    write_particle_table(path, table)
    assert path.read_text() == "x,y,z\n1.5,2.0,3.0\n"
    back = read_particle_list(path)
    assert back.labels is None and back.angles is None


@pytest.mark.parametrize("suffix", [".csv", ".star"])
def test_predictions_round_trip(tmp_path, suffix):
    coords = np.array([[1.0, 2.0, 3.0], [40.25, 50.5, 60.75]])
    labels = np.array(["1BXN", "3GL1"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    path = tmp_path / f"pred{suffix}"
    write_predictions(path, coords, labels, proba, classes=["1BXN", "3GL1"])
    back = read_particle_list(path)
    np.testing.assert_array_equal(back.coords, coords)
    assert back.labels.tolist() == ["1BXN", "3GL1"]
    text = path.read_text()
    if suffix == ".csv":
        header = text.splitlines()[0]
        assert header == "x,y,z,label,probability,proba_1BXN,proba_3GL1"
        got = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(4, 5, 6))
    else:
        assert "_fsccProbability #5" in text and "_fsccProba_3GL1 #7" in text
        rows = [ln.split() for ln in text.splitlines() if ln[:1].isdigit()]
        got = np.array([[float(v) for v in r[4:]] for r in rows])
    # the probability of each row's label, then every class's
    np.testing.assert_array_equal(got[:, 0].astype(np.float32), proba[[0, 1], [0, 1]])
    np.testing.assert_array_equal(got[:, 1:].astype(np.float32), proba)


def test_predictions_default_class_names_and_validation(tmp_path):
    path = tmp_path / "p.csv"
    write_predictions(path, [[1, 2, 3]], [0], [[0.3, 0.7]])
    assert path.read_text().splitlines()[0] == (
        "x,y,z,label,probability,proba_0,proba_1"
    )
    with pytest.raises(ValueError, match=r"labels \['2'\] are not among the classes"):
        write_predictions(tmp_path / "f.csv", [[1, 2, 3]], [2], [[0.3, 0.7]])
    with pytest.raises(ValueError, match=r"labels must have shape \(1,\)"):
        write_predictions(tmp_path / "a.csv", [[1, 2, 3]], [0, 1])
    with pytest.raises(ValueError, match="probabilities must have shape"):
        write_predictions(tmp_path / "b.csv", [[1, 2, 3]], [0], [0.3, 0.7])
    with pytest.raises(ValueError, match="classes has 3 entries"):
        write_predictions(tmp_path / "c.csv", [[1, 2, 3]], [0], [[1.0]], classes="abc")
    with pytest.raises(ValueError, match="finite"):
        write_predictions(tmp_path / "d.csv", [[1, 2, 3]], [0], [[np.nan]])
    with pytest.raises(ValueError, match=r"extension.*\.csv or \.star"):
        write_predictions(tmp_path / "e.txt", [[1, 2, 3]], [0])
    assert not any(
        (tmp_path / n).exists() for n in "a.csv b.csv c.csv d.csv f.csv".split()
    )


@pytest.mark.parametrize("suffix", [".csv", ".star"])
def test_predictions_without_coordinates_read_back_as_labels(tmp_path, suffix):
    path = write_predictions(
        tmp_path / f"p{suffix}",
        None,
        ["b", "a"],
        [[0.25, 0.75], [0.5, 0.5]],
        classes=["a", "b"],
        names=["1@s.mrcs", "2@s.mrcs"],
        tomograms=["t1", "t1"],
    )
    text = path.read_text()
    if suffix == ".csv":
        header = "tomogram,subtomogram,label,probability,proba_a,proba_b"
        assert text.splitlines()[0] == header
    else:
        assert "_rlnTomoName #1\n_rlnImageName #2\n_fsccLabel #3\n" in text
    table = read_labels_table(path)
    assert table.names == ["1@s.mrcs", "2@s.mrcs"] and table.coords is None
    assert table.labels.tolist() == ["b", "a"]


def test_existing_files_refused_without_overwrite(tmp_path):
    table = ParticleTable(coords=[[1, 2, 3]])
    for name in ["t.csv", "t.star"]:
        path = tmp_path / name
        path.write_text("keep me")
        with pytest.raises(FileExistsError, match=name):
            write_particle_table(path, table)
        assert path.read_text() == "keep me"
        write_particle_table(path, table, overwrite=True)
        assert read_particle_list(path).coords.tolist() == [[1.0, 2.0, 3.0]]

    pred = tmp_path / "pred.csv"
    pred.write_text("keep me")
    with pytest.raises(FileExistsError, match="pred.csv"):
        write_predictions(pred, [[1, 2, 3]], ["a"])
    assert pred.read_text() == "keep me"

    X = np.ones((2, 4, 4, 4), np.float32)
    stack = tmp_path / "s.mrcs"
    write_subtomograms(stack, X, voxel_size=10.0)
    with pytest.raises(FileExistsError, match=r"s\.mrcs"):
        write_subtomograms(stack, 2 * X, voxel_size=10.0)
    np.testing.assert_array_equal(read_subtomograms(stack).X, X)
    write_subtomograms(stack, 2 * X, voxel_size=5.0, overwrite=True)
    sub = read_subtomograms(stack)
    np.testing.assert_array_equal(sub.X, 2 * X)
    assert sub.voxel_size == 5.0

    folder = tmp_path / "parts"
    write_subtomograms(folder, X, voxel_size=None)
    with pytest.raises(FileExistsError, match="subtomo_000000.mrc"):
        write_subtomograms(folder, 3 * X, voxel_size=None)
    np.testing.assert_array_equal(read_subtomograms(folder).X, X)
    write_subtomograms(folder, 3 * X, voxel_size=None, overwrite=True)
    np.testing.assert_array_equal(read_subtomograms(folder).X, 3 * X)
    assert _leftovers(tmp_path) == [] and _leftovers(folder) == []


def test_folder_with_foreign_mrc_files_refused(tmp_path):
    X = np.ones((3, 4, 4, 4), np.float32)
    folder = tmp_path / "parts"
    write_subtomograms(folder, X, voxel_size=None)
    # writing fewer particles would leave subtomo_000002.mrc behind
    with pytest.raises(ValueError, match="subtomo_000002.mrc"):
        write_subtomograms(folder, X[:2], voxel_size=None, overwrite=True)
    assert len(read_subtomograms(folder)) == 3


def test_write_subtomograms_validation(tmp_path):
    with pytest.raises(ValueError, match=r"shape \(n, D, H, W\)"):
        write_subtomograms(tmp_path / "a.mrc", np.zeros((4, 4, 4)), voxel_size=1.0)
    with pytest.raises(ValueError, match="real numbers"):
        write_subtomograms(
            tmp_path / "a.mrc", np.zeros((1, 2, 2, 2), complex), voxel_size=1.0
        )
    with pytest.raises(ValueError, match="voxel_size must be a positive"):
        write_subtomograms(tmp_path / "a.mrc", np.zeros((1, 2, 2, 2)), voxel_size=0)
    with pytest.raises(ValueError, match="Cannot choose a layout"):
        write_subtomograms(tmp_path / "a.h5", np.zeros((1, 2, 2, 2)), voxel_size=1.0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_subtomograms(
            tmp_path / "no" / "a.mrc", np.zeros((1, 2, 2, 2)), voxel_size=1.0
        )
    assert list(tmp_path.iterdir()) == []


def test_float64_input_written_as_float32(tmp_path):
    X = np.random.default_rng(0).normal(size=(2, 3, 4, 5))
    write_subtomograms(tmp_path / "f.mrc", X, voxel_size=2.5)
    sub = read_subtomograms(tmp_path / "f.mrc")
    np.testing.assert_array_equal(sub.X, X.astype(np.float32))
    assert sub.voxel_size == 2.5


def test_atomic_output_leaves_target_untouched_on_error(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("original")
    with pytest.raises(RuntimeError):
        with atomic_output(path, overwrite=True) as tmp:
            tmp.write_text("partial")
            assert tmp.parent == path.parent
            raise RuntimeError("boom")
    assert path.read_text() == "original"
    assert _leftovers(tmp_path) == []


def test_star_control_characters_stay_inside_values(tmp_path):
    table = ParticleTable(coords=[[1, 2, 3], [4, 5, 6]], labels=["a\x0cb", "run"])
    path = tmp_path / "ctrl.star"
    write_particle_table(path, table)
    back = read_particle_list(path)
    assert back.labels.tolist() == ["a\x0cb", "run"]
    np.testing.assert_array_equal(back.coords, table.coords)


def test_outputs_get_the_mode_of_a_new_file_without_touching_the_umask(tmp_path):
    # os.umask is never called (it is process-wide and racy in threads): the
    # temporary file is created with 0o666 and the system applies the umask
    code = (
        "import os, stat, sys\n"
        "os.umask(0o027)\n"
        "def refuse(*a):\n    raise AssertionError('umask called')\n"
        "os.umask = refuse\n"
        "from fscc_sklearn.io import write_predictions\n"
        "from fscc_sklearn.io._write import atomic_output\n"
        "path = write_predictions(sys.argv[1] + '/p.csv', [[1, 2, 3]], ['a'])\n"
        "with atomic_output(sys.argv[1] + '/r.bin') as tmp:\n"
        "    tmp.unlink()\n"
        "    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "    os.close(fd)\n"
        "print(oct(stat.S_IMODE(os.stat(path).st_mode)),"
        " oct(stat.S_IMODE(os.stat(sys.argv[1] + '/r.bin').st_mode)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    # a writer that recreated the file as 0600 still gets the usual mode
    assert done.stdout.split() == ["0o640", "0o640"]
    assert _leftovers(tmp_path) == []


def test_predictions_with_novelty_mark_the_rejected_rows(tmp_path):
    proba = [[0.2, 0.8], [0.6, 0.4]]
    path = write_predictions(
        tmp_path / "p.csv", None, ["b", "unknown"], proba, classes=["a", "b"],
        novelty=[0.5, 7.25],
    )  # fmt: skip
    lines = path.read_text().splitlines()
    assert lines[0] == "label,probability,proba_a,proba_b,novelty,unknown"
    assert lines[1:] == ["b,0.8,0.2,0.8,0.5,0", "unknown,0.6,0.6,0.4,7.25,1"]
    star = write_predictions(
        tmp_path / "p.star", None, ["b", "unknown"], proba, classes=["a", "b"],
        novelty=[0.5, 7.25],
    )  # fmt: skip
    assert "_fsccNovelty" in star.read_text() and "_fsccUnknown" in star.read_text()
    with pytest.raises(ValueError, match="not among the classes"):
        write_predictions(tmp_path / "q.csv", None, ["unknown"], [[0.5, 0.5]],
                          classes=["a", "b"])  # fmt: skip
    with pytest.raises(ValueError, match=r"novelty must have shape \(2,\)"):
        write_predictions(tmp_path / "r.csv", None, ["a", "b"], proba,
                          classes=["a", "b"], novelty=[1.0])  # fmt: skip
