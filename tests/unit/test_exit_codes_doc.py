"""Every exit code of ``cli/exit_codes.py`` is documented where operators and users look: the
exit-code tables of docs/operations.md and docs/cli.md list each code once, and no other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmbatch.cli.exit_codes import ExitCode

DOCS = Path(__file__).resolve().parents[2] / "docs"


def table_codes(path: Path) -> list[int]:
    """The codes in the first column of the table under the ``## Exit codes`` heading."""
    section = path.read_text(encoding="utf-8").split("## Exit codes", 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.MULTILINE)[0]
    return [int(m) for m in re.findall(r"^\| (\d+) \|", section, flags=re.MULTILINE)]


@pytest.mark.parametrize("doc", ["operations.md", "cli.md"])
def test_the_exit_code_table_lists_every_code_once(doc: str) -> None:
    assert table_codes(DOCS / doc) == sorted(int(code) for code in ExitCode)


def test_the_operations_table_names_each_code_as_the_source_does() -> None:
    section = (DOCS / "operations.md").read_text(encoding="utf-8").split("## Exit codes", 1)[1]
    for code in ExitCode:
        assert f"| {int(code)} | `{code.name}` |" in section, code.name
