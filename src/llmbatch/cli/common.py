"""What the commands share besides their runtime (``cli/runtime.py``): the output consoles and
the ``--config`` option.

Kept apart from ``cli/main.py``, which registers every command: a command in its own module
imports these from here, never from ``main``, so that ``main`` can import it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["ConfigOpt", "console", "err", "warn"]

console = Console()
# Errors are never wrapped: a wrapped "file:line" is useless to an editor, grep or CI log.
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", help="llm_config.yaml (default: found upward, like git)")]

_warnings = Console(stderr=True, soft_wrap=True, highlight=False)


def warn(text: str) -> None:
    """One warning line on stderr (text, not markup: it may quote the user's input)."""
    _warnings.print(f"warning: {text}", markup=False)
