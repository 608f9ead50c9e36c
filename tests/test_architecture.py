"""The package's one-way dependencies (docs/architecture.md), checked on the source.

Imports are read with ``ast`` from every module of the package, so the rules hold
for imports inside functions too; the subprocess checks see what an ``import``
really pulls in.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "fscc_sklearn"

# Modules that may import the package's own modules inside functions, and why.
LAZY_OWN_IMPORTS = {
    # ``fscc --help`` must not pay for torch: each command imports what it needs
    "fscc_sklearn.cli": "fast --help",
}


def _module_name(path: Path) -> tuple[str, list[str]]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), parts
    return ".".join(parts), parts[:-1]


def _imports():
    """(module, imported module, at_top_level) for every import in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module, package = _module_name(path)
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    names = [".".join(base + ([node.module] if node.module else []))]
                    if not node.module:  # ``from . import x`` imports submodules
                        names = [f"{names[0]}.{a.name}" for a in node.names]
                else:
                    names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            found += [(module, name, id(node) in top) for name in names]
    return found


IMPORTS = _imports()


def _in(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _violations(sources, forbidden):
    return sorted(
        f"{module} imports {name}"
        for module, name, _ in IMPORTS
        if _in(module, *sources) and _in(name, *forbidden)
    )


def test_the_import_scan_sees_the_package():
    modules = {m for m, _, _ in IMPORTS}
    assert {"fscc_sklearn.nn._conv6", "fscc_sklearn.embedding._embedder"} <= modules
    assert ("fscc_sklearn.embedding._embedder", "torch", True) in IMPORTS


def test_nn_knows_only_torch():
    assert (
        _violations(
            ["fscc_sklearn.nn"],
            ["sklearn", "skorch", "mrcfile", "joblib"]
            + [f"fscc_sklearn.{p}" for p in ("embedding", "calibration", "io", "cli")],
        )
        == []
    )


def test_classifiers_work_on_features_without_torch():
    assert (
        _violations(
            ["fscc_sklearn.calibration", "fscc_sklearn.baselines"],
            ["torch", "skorch", "fscc_sklearn.nn", "fscc_sklearn.embedding"],
        )
        == []
    )


def test_io_knows_no_torch_and_no_estimators():
    estimators = ("embedding", "calibration", "baselines", "persistence", "cli")
    assert (
        _violations(
            ["fscc_sklearn.io"],
            ["torch", "skorch"] + [f"fscc_sklearn.{p}" for p in estimators],
        )
        == []
    )


def test_datasets_do_not_use_the_network():
    assert (
        _violations(
            ["fscc_sklearn.datasets"],
            ["skorch", "fscc_sklearn.nn", "fscc_sklearn.embedding", "fscc_sklearn.cli"],
        )
        == []
    )


def test_discovery_works_on_features_without_torch():
    assert (
        _violations(
            ["fscc_sklearn.discovery"],
            ["torch", "skorch"]
            + [f"fscc_sklearn.{p}" for p in ("nn", "embedding", "persistence", "cli")],
        )
        == []
    )


def test_nothing_in_the_library_imports_the_cli():
    assert (
        sorted(
            f"{m} imports {n}"
            for m, n, _ in IMPORTS
            if _in(n, "fscc_sklearn.cli")
            and not _in(m, "fscc_sklearn.cli", "fscc_sklearn.__main__")
        )
        == []
    )


def test_own_modules_are_imported_at_the_top():
    lazy = sorted(
        f"{m} imports {n} inside a function"
        for m, n, top in IMPORTS
        if not top
        and _in(n, "fscc_sklearn")
        and not _in(m, *LAZY_OWN_IMPORTS)
        and m != "fscc_sklearn"  # the root resolves public names on first use
    )
    assert lazy == []


@pytest.mark.parametrize(
    "module, absent",
    [
        ("fscc_sklearn", ("torch", "skorch", "sklearn", "matplotlib")),
        ("fscc_sklearn.io", ("torch", "skorch", "matplotlib")),
        ("fscc_sklearn.datasets", ("skorch", "matplotlib")),
        ("fscc_sklearn.calibration", ("torch", "skorch", "matplotlib")),
        ("fscc_sklearn.baselines", ("torch", "skorch", "matplotlib")),
        ("fscc_sklearn.report", ("torch", "skorch", "matplotlib")),
        ("fscc_sklearn.discovery", ("torch", "skorch", "matplotlib", "umap")),
    ],
)
def test_importing_a_layer_pulls_in_only_what_it_needs(module, absent):
    code = (
        f"import sys, {module}; "
        f"print(','.join(m for m in {absent!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"
