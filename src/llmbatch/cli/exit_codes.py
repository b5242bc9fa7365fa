"""The exit codes of every ``llmbatch`` command, in one place so that scripts can rely on them
and ``docs/cli.md`` can list them."""

from __future__ import annotations

from enum import IntEnum

from llmbatch.errors import InfrastructureError, LLMBatchError

__all__ = ["ExitCode", "exit_code_for"]


class ExitCode(IntEnum):
    OK = 0
    """The command did what it was asked (a job waited for ended with every item done)."""
    JOB_FAILURES = 1
    """A job waited for ended, but some items failed, expired or were cancelled."""
    BAD_INPUT = 2
    """Bad usage, configuration or input file: nothing was stored; fix and run again."""
    UNAVAILABLE = 3
    """The database or broker cannot be reached; nothing about the input is wrong."""
    INTERNAL = 70
    """An unexpected error inside llmbatch (a bug): one line; ``--debug`` shows the traceback."""
    INTERRUPTED = 130
    """Stopped by Ctrl-C."""


def exit_code_for(error: LLMBatchError) -> ExitCode:
    """The exit code a command ends with when ``error`` stops it."""
    if isinstance(error, InfrastructureError):
        return ExitCode.UNAVAILABLE
    return ExitCode.BAD_INPUT
