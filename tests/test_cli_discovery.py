"""``fscc cluster`` and ``fscc suggest`` on small simulated picks (issue 23)."""

import sys

import mrcfile
import numpy as np
import pytest

from fscc_sklearn.cli import main
from fscc_sklearn.cli._parser import _STRATEGIES
from fscc_sklearn.datasets import simulate_subtomograms
from fscc_sklearn.discovery import STRATEGIES
from fscc_sklearn.io import write_labels_table, write_subtomograms


def fscc(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, command, *fragments):
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith(f"fscc {command}: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def picks(tmp_path_factory):
    """36 picks of 3 species (32^3 at 10 A, the shipped model's input), a full
    labels table and one labelling 2 picks per species."""
    root = tmp_path_factory.mktemp("discovery")
    data = simulate_subtomograms(["1u6g", "3gl1", "4v94"], 12, snr=1.0, random_state=0)
    files = write_subtomograms(root / "picks", data.X, 10.0, layout="folder")
    names = [f.name for f in files]
    y = np.asarray(data.y)
    write_labels_table(root / "all.csv", names, y)
    few = np.concatenate([np.flatnonzero(y == c)[:2] for c in np.unique(y)])
    write_labels_table(root / "few.csv", [names[i] for i in few], y[few])
    return root, names, y, few


def test_the_parser_knows_the_library_strategies():
    assert _STRATEGIES == STRATEGIES


def test_cluster_writes_table_averages_and_pictures(picks, tmp_path, capsys):
    root, names, y, _ = picks
    argv = ["cluster", "--pretrained", "general", root / "picks", "--labels"]
    argv += [root / "all.csv", "--min-cluster-size", 5, "--seed", 0, "-q"]
    code, out, err = fscc(capsys, *argv, "-o", tmp_path / "a")
    assert code == 0, err
    assert "clusters in 36 picks" in out
    assert "adjusted Rand index against the labels:" in out
    rows = (tmp_path / "a" / "clusters.csv").read_text().splitlines()
    assert rows[0] == "name,cluster,probability,example_rank"
    assert [r.split(",")[0] for r in rows[1:]] == names
    k = max(int(r.split(",")[1]) for r in rows[1:]) + 1
    assert k >= 1
    with mrcfile.open(tmp_path / "a" / "averages.mrcs") as m:
        assert m.data.shape == (k, 32, 32, 32)
    assert (tmp_path / "a" / "cluster_0.png").stat().st_size > 0
    # the same seed gives the same clusters
    code, _, err = fscc(capsys, *argv, "-o", tmp_path / "b", "--no-plots")
    assert code == 0, err
    assert (tmp_path / "b" / "clusters.csv").read_text() == "\n".join(rows) + "\n"
    assert not list((tmp_path / "b").glob("*.png"))


def test_cluster_refuses_bad_requests(picks, tmp_path, capsys):
    root, _, _, _ = picks
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    code, _, err = fscc(
        capsys,
        "cluster",
        "--pretrained",
        "general",
        root / "picks",
        "-o",
        tmp_path / "full",
    )
    one_line_error(code, err, "cluster", "is not empty", "--force")
    code, _, err = fscc(
        capsys,
        "cluster",
        "--pretrained",
        "general",
        root / "picks",
        "-o",
        tmp_path / "x",
        "--min-cluster-size",
        100,
    )
    one_line_error(code, err, "cluster", "--min-cluster-size 100", "only 36 picks")
    code, _, err = fscc(capsys, "cluster", root / "picks", "-o", tmp_path / "y")
    one_line_error(code, err, "cluster", "--pretrained general")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_suggest_lists_unlabelled_picks(picks, tmp_path, capsys):
    root, names, _, few = picks
    out_csv = tmp_path / "next.csv"
    argv = ["suggest", "--pretrained", "general", root / "picks", "--labels"]
    argv += [root / "few.csv", "-n", 4, "-o", out_csv, "-q"]
    code, out, err = fscc(capsys, *argv)
    assert code == 0, err
    assert "4 of 30 unlabelled picks to label next" in out
    rows = out_csv.read_text().splitlines()
    assert rows[0] == "rank,name,predicted,margin,unknown"
    chosen = [r.split(",")[1] for r in rows[1:]]
    assert len(set(chosen)) == 4
    assert not set(chosen) & {names[i] for i in few}
    assert set(chosen) <= set(names)
    assert out_csv.with_suffix(".png").stat().st_size > 0
    # again: the output exists; with --force the same list
    code, _, err = fscc(capsys, *argv)
    one_line_error(code, err, "suggest", "already exists", "--force")
    code, _, err = fscc(capsys, *argv, "--force")
    assert code == 0, err
    assert out_csv.read_text().splitlines() == rows


@pytest.mark.parametrize("strategy", ["margin", "unknown"])
def test_suggest_strategies_from_the_command_line(picks, tmp_path, capsys, strategy):
    root, _, _, _ = picks
    code, out, err = fscc(
        capsys,
        "suggest",
        "--pretrained",
        "general",
        root / "picks",
        "--labels",
        root / "few.csv",
        "--strategy",
        strategy,
        "-o",
        tmp_path / "s.csv",
        "--no-plots",
    )
    assert code == 0, err
    assert f"({strategy};" in out
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 11


def test_suggest_needs_labelled_and_unlabelled_picks(picks, tmp_path, capsys):
    root, _, _, _ = picks
    base = ["suggest", "--pretrained", "general", root / "picks", "-o"]
    code, _, err = fscc(capsys, *base, tmp_path / "a.csv")
    one_line_error(code, err, "suggest", "needs a few labelled picks")
    code, _, err = fscc(capsys, *base, tmp_path / "b.csv", "--labels", root / "all.csv")
    one_line_error(code, err, "suggest", "all 36 picks are labelled")
    with pytest.raises(SystemExit) as exit_:
        main(["suggest", "--pretrained", "general", "--strategy", "best"])
    assert exit_.value.code == 2
    assert "invalid choice: 'best'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["cluster", "suggest"])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"fscc {command} --pretrained general" in out
    for option in ("--quiet", "--force", "--seed", "--pretrained", "--no-plots"):
        assert option in out


def test_suggest_and_cluster_picks_of_a_tomogram(picks, tmp_path, capsys):
    """Picks of a particle list: an empty label marks an unlabelled pick, and the
    tables carry the coordinates."""
    root, names, y, _ = picks
    X = np.stack([mrcfile.read(root / "picks" / n) for n in names])
    rows = [0, 1, 2, 3, 12, 13, 14, 15, 24, 25, 26, 27]  # 4 of each species
    tomo = np.zeros((32, 96, 128), dtype=np.float32)
    centres = [(16 + 32 * i, 16 + 32 * j, 16) for j in range(3) for i in range(4)]
    for (x, yy, z), r in zip(centres, rows, strict=True):
        tomo[z - 16 : z + 16, yy - 16 : yy + 16, x - 16 : x + 16] = X[r]
    with mrcfile.new(tmp_path / "tomo.mrc") as mrc:
        mrc.set_data(tomo)
        mrc.voxel_size = 10.0
    labelled = {0, 4, 8}  # one pick of each species
    lines = ["x,y,z,label"] + [
        f"{x},{yy},{z},{y[r] if k in labelled else ''}"
        for k, ((x, yy, z), r) in enumerate(zip(centres, rows, strict=True))
    ]
    (tmp_path / "picks.csv").write_text("\n".join(lines) + "\n")
    inputs = [
        "--tomogram",
        tmp_path / "tomo.mrc",
        "--particles",
        tmp_path / "picks.csv",
    ]
    code, out, err = fscc(
        capsys,
        "suggest",
        "--pretrained",
        "general",
        *inputs,
        "-n",
        3,
        "-o",
        tmp_path / "next.csv",
        "--no-plots",
        "-q",
    )
    assert code == 0, err
    assert "3 of 9 unlabelled picks" in out
    table = (tmp_path / "next.csv").read_text().splitlines()
    assert table[0] == "rank,name,x,y,z,predicted,margin,unknown"
    xyz = {tuple(float(v) for v in r.split(",")[2:5]) for r in table[1:]}
    assert xyz <= {
        tuple(map(float, c)) for k, c in enumerate(centres) if k not in labelled
    }
    code, out, err = fscc(
        capsys,
        "cluster",
        "--pretrained",
        "general",
        *inputs,
        "--min-cluster-size",
        3,
        "-o",
        tmp_path / "clusters",
        "--no-plots",
        "-q",
    )
    assert code == 0, err
    header, first = (
        (tmp_path / "clusters" / "clusters.csv").read_text().splitlines()[:2]
    )
    assert header == "name,x,y,z,cluster,probability,example_rank"
    assert first.split(",")[1:4] == ["16", "16", "16"]


def test_cluster_without_umap_names_the_flag_and_the_extra(
    picks, tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap fails
    root, _, _, _ = picks
    code, _, err = fscc(
        capsys,
        "cluster",
        "--pretrained",
        "general",
        root / "picks",
        "--reduce",
        "umap",
        "-o",
        tmp_path / "u",
        "-q",
    )
    one_line_error(code, err, "cluster", "--reduce umap needs umap-learn", "[umap]")
    assert not (tmp_path / "u").exists()
