"""Running the real ``llmbatch`` entry point (``cli.main.main``) in-process, output captured,
for the door tests: fast enough to run a thousand generated cases, and every exception that
would have been a traceback for a user surfaces here as one."""

from __future__ import annotations

import contextlib
import io
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer.main

from llmbatch.cli.main import app, main


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_cli(*args: str) -> Run:
    """``llmbatch ARGS`` through ``main()``; an exception other than ``SystemExit`` propagates
    (a traceback the user would have seen)."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = ["llmbatch", *args]
    code: Any = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code
    finally:
        sys.argv = saved
    return Run(code if isinstance(code, int) else (0 if code is None else 1), out.getvalue(),
               err.getvalue())


@contextlib.contextmanager
def command_built_once() -> Iterator[None]:
    """Typer rebuilds the click command from the function signatures on every call (about
    40 ms); a fuzz run builds it once. ``main()`` itself runs unchanged."""
    built = typer.main.get_command(app)
    original = typer.main.get_command

    def cached(typer_instance: typer.Typer) -> Any:
        return built if typer_instance is app else original(typer_instance)

    typer.main.get_command = cached  # type: ignore[assignment]
    try:
        yield
    finally:
        typer.main.get_command = original  # type: ignore[assignment]


def sqlite_counts(path: Path) -> dict[str, int]:
    """Rows in the tables a submit writes (jobs, items, events); zeros before the first."""
    if not path.exists():
        return {"jobs": 0, "items": 0, "events": 0}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return {t: (conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                    if t in tables else 0) for t in ("jobs", "items", "events")}
