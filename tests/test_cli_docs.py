"""docs/cli.md and README.md keep up with the ``fscc`` parser and docs/."""

import argparse
import re
from pathlib import Path

from fscc_sklearn.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
CLI_MD = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands():
    parser = build_parser()
    action = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    return action.choices


def test_every_command_has_a_section_in_cli_md():
    for name in _commands():
        assert f"## `fscc {name}`" in CLI_MD, f"docs/cli.md has no section for {name}"


def test_every_option_of_every_command_is_in_cli_md():
    missing = []
    for name, parser in _commands().items():
        for action in parser._actions:
            longs = [o for o in action.option_strings if o.startswith("--")]
            if longs and longs != ["--help"]:
                if not any(re.search(rf"{o}(?![\w-])", CLI_MD) for o in longs):
                    missing.append(f"fscc {name} {longs[0]}")
    assert not missing, f"not in docs/cli.md: {missing}"


def test_readme_names_every_command_and_links_every_docs_page():
    for name in _commands():
        assert f"fscc {name}" in README, f"README.md does not name fscc {name}"
    for page in sorted((ROOT / "docs").glob("*.md")):
        link = f"(docs/{page.name})"
        assert link in README, f"README.md does not link docs/{page.name}"
