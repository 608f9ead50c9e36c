"""The Python examples of README.md and docs/*.md run as written.

Every ```python block is executed in a fresh namespace, in a temporary working
directory with its own dataset cache. Two conventions keep this fast and honest:

- A block that is not meant to run (a fragment with your own data, a cluster)
  is preceded by an HTML comment ``<!-- not run: <reason> -->``; the reason is
  required.
- Sizes are shrunk by the exact text substitutions in ``SMALLER`` below (fewer
  subtomograms, a narrow network trained for one epoch). Each substitution must
  match, so an edited example cannot silently escape the shrinking.
"""

import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, GroupKFold

from fscc_sklearn import CalibratedFewShotClassifier, make_episodic_scorer

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>\S.*?)\s*-->\s*$")

_TINY = "fs.Conv6Embedder(max_epochs=1, module__width=4, batch_size=32)"
# (text in the docs, text the test runs instead): sizes only, never behaviour
SMALLER = {
    "README.md": [
        (
            "load_shrec21_like(n_per_class=200)",
            "load_shrec21_like(n_per_class=16, box=16)",
        ),
        ("fs.Conv6Embedder()", _TINY),
        (
            "make_episodic_scorer(n_way=3)",
            "make_episodic_scorer(n_way=3, n_episodes=5)",
        ),
        ('"clf__k": [1, 2, 3]', '"clf__k": [1, 3]'),
    ],
    "calibration.md": [
        (
            "load_shrec21_like(n_per_class=200)",
            "load_shrec21_like(n_per_class=16, box=16)",
        ),
        ("fs.Conv6Embedder()", _TINY),
    ],
}


def python_blocks(path):
    """``(line number, code, reason not run or None)`` of every python block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, indent = i, match["indent"]
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        if i == len(lines) or not lines[i].startswith(indent):
            raise AssertionError(f"{path.name}:{start + 1}: unclosed python block")
        code = textwrap.dedent("\n".join(lines[start + 1 : i]))
        above = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        marker = _NOT_RUN.match(above)
        blocks.append((start + 1, code, marker["reason"] if marker else None))
        i += 1
    return blocks


def _cases():
    for path in DOCS:
        for line, code, reason in python_blocks(path):
            marks = [pytest.mark.skip(reason=f"not run: {reason}")] if reason else []
            yield pytest.param(path, line, code, id=f"{path.name}:{line}", marks=marks)


def _shrunk(path, code):
    for old, new in SMALLER.get(path.name, []):
        code = code.replace(old, new)
    return code


def test_every_size_substitution_still_matches_its_file():
    for name, pairs in SMALLER.items():
        path = next(p for p in DOCS if p.name == name)
        runnable = "\n".join(c for _, c, reason in python_blocks(path) if not reason)
        for old, _ in pairs:
            assert old in runnable, f"{name}: '{old}' is no longer in a run example"


def test_markers_and_fences_are_recognised(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text(
        "text\n<!-- not run: needs a cluster -->\n```python\nraise SystemExit\n```\n"
        "  ```python\n  a = 1\n  ```\n```pycon\n>>> b\n```\n"
    )
    assert python_blocks(doc) == [
        (3, "raise SystemExit", "needs a cluster"),
        (6, "a = 1", None),
    ]


@pytest.mark.parametrize(("path", "line", "code"), list(_cases()))
def test_example_runs_as_written(path, line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FSCC_SKLEARN_DATA", str(tmp_path / "data"))
    compiled = compile(_shrunk(path, code), f"{path.name}:{line}", "exec")
    with warnings.catch_warnings():
        # a GridSearchCV candidate scored NaN must fail the example, not pass it
        warnings.filterwarnings("error", message=".*non-finite.*")
        exec(compiled, {"__name__": "__example__"})


def test_plain_import_reaches_the_subpackages_the_examples_use():
    # a fresh interpreter: other tests may have imported the subpackages already
    code = "import fscc_sklearn as fs; print(fs.datasets.__name__, fs.io.__name__)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["fscc_sklearn.datasets", "fscc_sklearn.io"]


def _features(n_classes, n_per_class=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.gamma(2.0, size=(n_classes, 6)) * 3
    X = np.repeat(centres, n_per_class, 0) + rng.gamma(
        1.0, size=(n_classes * n_per_class, 6)
    )
    return X, np.repeat([f"c{i}" for i in range(n_classes)], n_per_class)


def test_episodic_scorer_names_the_class_count_of_a_too_small_fold():
    # 8 classes in GroupKFold(3): one test fold holds only 2 classes for 3-way episodes
    X, y = _features(8)
    search = GridSearchCV(
        CalibratedFewShotClassifier(),
        {"k": [1, 2]},
        cv=GroupKFold(3),
        scoring=make_episodic_scorer(n_way=3, n_query=5, n_episodes=3),
        error_score="raise",
    )
    with pytest.raises(ValueError, match=r"test fold holds 2 classes.*3-way"):
        search.fit(X, y, groups=y)
    # with the default error_score the same message reaches the user as a warning
    search.set_params(error_score=np.nan)
    with pytest.warns(UserWarning, match=r"test fold holds 2 classes"):
        search.fit(X, y, groups=y)


def test_episodic_scorer_scores_folds_with_enough_classes():
    X, y = _features(8)
    search = GridSearchCV(
        CalibratedFewShotClassifier(),
        {"k": [1, 2]},
        cv=GroupKFold(2),
        scoring=make_episodic_scorer(n_way=3, n_query=5, n_episodes=3),
        error_score="raise",
    ).fit(X, y, groups=y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
