"""``fscc adapt/predict --reject``: open-set predictions in a particle list."""

import mrcfile
import numpy as np
import pandas as pd
import pytest

from fscc_sklearn import load_model
from fscc_sklearn.cli import main
from fscc_sklearn.io import read_subtomograms

TINY = ["--epochs", "1", "--width", "4", "--batch-size", "32", "--quiet"]
CENTRES = np.array([(8, 8, 8), (24, 8, 8), (8, 24, 8), (8, 8, 24), (24, 24, 24)])


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Models adapted with and without --reject auto, a tomogram of five
    novel particles and a CSV particle list of them."""
    root = tmp_path_factory.mktemp("open_set_cli")
    argv = ["simulate", root / "sim", "--n-per-class", "8", "--box", "16", "--quiet"]
    assert main([str(a) for a in argv]) == 0
    base = root / "base.safetensors"
    assert (
        main([str(a) for a in ["pretrain", root / "sim" / "base", "-o", base, *TINY]])
        == 0
    )
    models = {}
    for name, extra in (("plain", []), ("auto", ["--reject", "auto"])):
        models[name] = root / f"{name}.safetensors"
        argv = ["adapt", base, root / "sim" / "novel", "--shots", "3", "-o",
                models[name], "--quiet", *extra]  # fmt: skip
        assert main([str(a) for a in argv]) == 0
    sub = read_subtomograms(root / "sim" / "novel")
    tomo = np.zeros((48, 48, 48), dtype=np.float32)
    for (x, y, z), vol in zip(CENTRES, sub.X[::8], strict=True):
        tomo[z - 8 : z + 8, y - 8 : y + 8, x - 8 : x + 8] = vol
    with mrcfile.new(root / "TS_01.mrc") as mrc:
        mrc.set_data(tomo)
        mrc.voxel_size = 10.0
    picks = root / "picks.csv"
    picks.write_text("x,y,z\n" + "".join(f"{x},{y},{z}\n" for x, y, z in CENTRES))
    expected = load_model(models["plain"]).predict(sub.X[::8]).astype(str)
    return root, models, picks, expected


def _predict(capsys, setup, model, out, *extra):
    root, models, picks, _ = setup
    argv = ["predict", models[model], "--tomogram", root / "TS_01.mrc",
            "--particles", picks, "-o", out, "--quiet", *extra]  # fmt: skip
    return run(capsys, *argv)


def test_adapt_keeps_the_rejection_in_the_model(setup):
    _, models, _, _ = setup
    clf = load_model(models["auto"])[-1]
    assert clf.get_params()["reject"] == "auto"
    assert clf.novelty_threshold_ > 0
    assert load_model(models["plain"])[-1].get_params()["reject"] is None


def test_predict_writes_novelty_and_unknown_columns(setup, tmp_path, capsys):
    *_, expected = setup
    code, _, err = _predict(
        capsys, setup, "auto", tmp_path / "auto.csv", "--reject", "auto"
    )
    assert code == 0, err
    table = pd.read_csv(tmp_path / "auto.csv")
    assert list(table.columns[:3]) == ["x", "y", "z"]
    assert set(table["unknown"]) <= {0, 1}
    assert (table["novelty"] > 0).all()
    rejected = table["unknown"] == 1
    assert (table["prediction"][rejected] == "unknown").all()
    assert table["prediction"][~rejected].tolist() == expected[~rejected].tolist()
    # the model's own setting applies without the option
    code, _, err = _predict(capsys, setup, "auto", tmp_path / "again.csv")
    assert code == 0, err
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again.csv"), table)


def test_predict_reject_numbers(setup, tmp_path, capsys):
    *_, expected = setup
    code, _, err = _predict(
        capsys, setup, "plain", tmp_path / "inf.csv", "--reject", "inf"
    )
    assert code == 0, err
    table = pd.read_csv(tmp_path / "inf.csv")
    assert (table["unknown"] == 0).all()
    assert table["prediction"].astype(str).tolist() == expected.tolist()
    code, _, err = _predict(
        capsys, setup, "plain", tmp_path / "zero.csv", "--reject", "0"
    )
    assert code == 0, err
    zero = pd.read_csv(tmp_path / "zero.csv")
    assert (zero["unknown"] == 1).all() and (zero["prediction"] == "unknown").all()
    np.testing.assert_allclose(zero["novelty"], table["novelty"])
    # without --reject the table is today's
    code, _, err = _predict(capsys, setup, "plain", tmp_path / "plain.csv")
    assert code == 0, err
    assert "novelty" not in pd.read_csv(tmp_path / "plain.csv").columns


def test_predict_reject_errors(setup, tmp_path, capsys):
    root, models, _, _ = setup
    out = tmp_path / "a.csv"
    code, _, err = _predict(capsys, setup, "plain", out, "--reject", "auto")
    assert code != 0 and "fscc adapt --reject auto" in err
    assert not out.exists()
    for bad in ("-1", "nan", "sometimes"):
        with pytest.raises(SystemExit) as exc:
            _predict(capsys, setup, "plain", out, "--reject", bad)
        assert exc.value.code == 2
        assert "expected 'auto' or a number >= 0" in capsys.readouterr().err


def test_predict_a_folder_with_rejection(setup, tmp_path, capsys):
    """A folder of subtomograms gets the one prediction table, plus novelty."""
    root, models, _, _ = setup
    folder = root / "sim" / "novel"
    tables = {}
    for name, model, extra in (
        ("own", "auto", []),  # the model's own 'auto' threshold
        ("all", "plain", ["--reject", "0"]),
    ):
        out = tmp_path / f"{name}.csv"
        code, _, err = run(capsys, "predict", models[model], folder, "-o", out,
                           "--quiet", *extra)  # fmt: skip
        assert code == 0, err
        tables[name] = pd.read_csv(out)
    own, every = tables["own"], tables["all"]
    assert {"subtomogram", "label", "probability", "novelty", "unknown"} <= set(own)
    assert (own["label"][own["unknown"] == 1] == "unknown").all()
    assert (own["label"][own["unknown"] == 0] != "unknown").all()
    assert (every["unknown"] == 1).all() and (every["label"] == "unknown").all()
    # a rejected particle's probability is that of its likeliest class
    proba = every.filter(like="proba_").to_numpy()
    np.testing.assert_allclose(every["probability"], proba.max(axis=1))
