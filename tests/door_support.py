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

FUZZ_CASES = {"ci": 1000, "dev": 200}
"""Generated cases per door of the fuzz tests, by hypothesis profile (tests/conftest.py): the
issue's 1,000 in CI, fewer on a developer's shared machine."""


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
    """What does not change during a fuzz run is computed once: typer rebuilds the click
    command from the function signatures on every call (about 40 ms), and the provider
    registry scans every installed distribution for entry points on every lookup (about
    25 ms). ``main()`` itself runs unchanged."""
    from llmbatch.providers import registry

    built = typer.main.get_command(app)
    original = typer.main.get_command
    scan = registry.entry_points
    found = {group: scan(group=group) for group in (registry.ENTRY_POINT_GROUP,)}

    def cached(typer_instance: typer.Typer) -> Any:
        return built if typer_instance is app else original(typer_instance)

    def entry_points(*, group: str) -> Any:
        return found[group] if group in found else scan(group=group)

    typer.main.get_command = cached  # type: ignore[assignment]
    registry.entry_points = entry_points  # type: ignore[assignment]
    try:
        yield
    finally:
        typer.main.get_command = original  # type: ignore[assignment]
        registry.entry_points = scan  # type: ignore[assignment]


def sqlite_counts(path: Path) -> dict[str, int]:
    """Rows in the tables a submit writes (jobs, items, events); zeros before the first."""
    if not path.exists():
        return {"jobs": 0, "items": 0, "events": 0}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return {t: (conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                    if t in tables else 0) for t in ("jobs", "items", "events")}
