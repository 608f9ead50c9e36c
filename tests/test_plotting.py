"""The PNG figures: valid files of non-trivial size, input checks, no overwriting."""

import struct

import numpy as np
import pytest

from fscc_sklearn import plotting

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG, "not a PNG file"
    assert len(data) > 5000, f"suspiciously small PNG ({len(data)} bytes)"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_training_curves(tmp_path):
    history = [
        {
            "train_loss": 2.0 - 0.1 * i,
            "train_ce": 1.8 - 0.1 * i,
            "train_supcon": 4.0,
            "train_acc": 0.2 + 0.05 * i,
        }
        for i in range(5)
    ]
    out = plotting.plot_training_curves(history, tmp_path / "t.png")
    w, h = png_size(out)
    assert w > h > 200
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_training_curves([], tmp_path / "e.png")


def test_embedding_marks_novel_classes(tmp_path):
    rng = np.random.default_rng(0)
    F = rng.gamma(2.0, size=(60, 10))
    y = np.repeat(["a", "b", "c"], 20)
    plain = plotting.plot_embedding(F, y, tmp_path / "plain.png")
    marked = plotting.plot_embedding(F, y, tmp_path / "novel.png", novel=["c"])
    png_size(plain)
    png_size(marked)
    assert plain.read_bytes() != marked.read_bytes()
    tsne = plotting.plot_embedding(F[::2], y[::2], tmp_path / "tsne.png", method="tsne")
    png_size(tsne)
    with pytest.raises(ValueError, match="method must be"):
        plotting.plot_embedding(F, y, tmp_path / "x.png", method="mds")
    with pytest.raises(ValueError, match="one label per row"):
        plotting.plot_embedding(F, y[:5], tmp_path / "x.png")


def test_confusion_matrix(tmp_path):
    M = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 6]])
    png_size(plotting.plot_confusion_matrix(M, ["a", "b", "c"], tmp_path / "c.png"))
    with pytest.raises(ValueError, match="square"):
        plotting.plot_confusion_matrix(M[:2], ["a", "b"], tmp_path / "x.png")


def test_class_examples(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 8, 8, 8)).astype(np.float32)
    y = np.repeat(["a", "b", "c"], 4)
    w, h = png_size(plotting.plot_class_examples(X, y, tmp_path / "e.png"))
    assert w > h  # 5 columns, 3 rows
    png_size(plotting.plot_class_examples(X[:, None], y, tmp_path / "e5.png", axis=2))
    with pytest.raises(ValueError, match="axis"):
        plotting.plot_class_examples(X, y, tmp_path / "x.png", axis=3)


def test_accuracy_vs_shots(tmp_path):
    results = {"5-way": {1: (0.4, 0.03), 5: (0.6, 0.02)}, "3-way": {1: (0.5, np.nan)}}
    png_size(plotting.plot_accuracy_vs_shots(results, tmp_path / "a.png", chance=0.2))
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_accuracy_vs_shots({}, tmp_path / "x.png")


def test_existing_file_is_kept_without_overwrite(tmp_path):
    path = tmp_path / "c.png"
    path.write_bytes(b"mine")
    M = np.eye(2)
    with pytest.raises(FileExistsError, match="already exists"):
        plotting.plot_confusion_matrix(M, ["a", "b"], path)
    assert path.read_bytes() == b"mine"
    plotting.plot_confusion_matrix(M, ["a", "b"], path, overwrite=True)
    png_size(path)


def test_matplotlib_is_imported_lazily():
    import subprocess
    import sys

    code = (
        "import sys, fscc_sklearn.report.plotting; print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False"
