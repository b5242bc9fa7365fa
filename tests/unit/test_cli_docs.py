"""``docs/cli.md`` keeps up with ``--help``: every command has its section and every option
of it is named there, so a new option cannot ship undocumented."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from llmbatch.cli.main import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def leaf_commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield " ".join(path), command
        return
    for name, sub in subcommands.items():
        yield from leaf_commands(sub, (*path, name))


def sections(text: str) -> dict[str, str]:
    """``command -> its section``, from the ``### `llmbatch COMMAND ...` `` headings."""
    found: dict[str, str] = {}
    parts = re.split(r"^### `llmbatch ", text, flags=re.MULTILINE)
    for part in parts[1:]:
        heading = part.split("`", 1)[0]
        words = [w for w in heading.split() if re.fullmatch(r"[a-z][a-z-]*", w)]
        found[" ".join(words)] = part
    return found


def test_every_command_and_option_is_in_the_cli_doc() -> None:
    text = DOC.read_text(encoding="utf-8")
    documented = sections(text)
    root = typer.main.get_command(app)
    missing: list[str] = []
    for name, command in leaf_commands(root):
        section = documented.get(name)
        if section is None:
            missing.append(f"{name}: no section")
            continue
        for param in command.params:
            if param.param_type_name != "option" or "--help" in param.opts:
                continue
            for opt in [*param.opts, *param.secondary_opts]:
                if f"`{opt}" not in section and f"/ `{opt}" not in section:
                    missing.append(f"{name}: {opt}")
    for param in root.params:
        for opt in param.opts:
            if f"`{opt}`" not in text:
                missing.append(f"global: {opt}")
    assert missing == []
