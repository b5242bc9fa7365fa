"""The command line as a user meets it first: mistakes are one clear line and exit 2, never a
traceback, and reading commands never create a database on the way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def llmbatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI in ``cwd`` as a user would, its project search stopping at ``cwd``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMBATCH_")}
    env["LLMBATCH_CEILING_DIRECTORIES"] = str(cwd)
    return subprocess.run([sys.executable, "-m", "llmbatch", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=120, check=False, env=env)


@pytest.mark.parametrize(("args", "says"), [
    (["no-such-command"], "No such command 'no-such-command'"),
    (["submit"], "Missing argument 'file'"),
    (["submit", "x.jsonl", "--provider"], "Option '--provider' requires an argument"),
    (["jobs", "--limit", "abc"], "Invalid value for '--limit'"),
    (["--no-such-option"], "No such option: --no-such-option"),
], ids=["unknown-command", "missing-argument", "option-without-value", "bad-value",
        "unknown-option"])
def test_a_usage_mistake_is_one_error_line_and_exit_2(tmp_path: Path, args: list[str],
                                                      says: str) -> None:
    result = llmbatch(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and says in errors[0]


def test_version_prints_the_version(tmp_path: Path) -> None:
    from llmbatch import __version__

    result = llmbatch("--version", cwd=tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, f"llmbatch {__version__}")


@pytest.mark.parametrize("args", [["status", "job_x"], ["jobs"], ["results", "job_x"],
                                  ["events", "job_x"], ["cancel", "job_x"], ["retry", "job_x"]])
def test_reading_commands_in_a_directory_with_no_database_say_so_and_create_none(
        tmp_path: Path, args: list[str]) -> None:
    result = llmbatch(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no llmbatch project here" in result.stderr
    assert str(tmp_path / ".llmbatch" / "llmbatch.db") in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_error_quoting_user_input_is_printed_as_text_not_markup(tmp_path: Path) -> None:
    (tmp_path / "llm_config.yaml").write_text("'[/red]': 1\n", encoding="utf-8")
    result = llmbatch("submit", "in.jsonl", "--provider", "openai", "--model", "m",
                      cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "[/red]" in result.stderr
