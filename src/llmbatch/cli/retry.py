"""``llmbatch retry JOB``: a child job of the lines that did not succeed, after the cause was
fixed. Lines a later retry of the same lineage already carried (to success, or still
running) are left out and counted, so retrying twice never pays twice."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from llmbatch.cli.source import job_source, local_only
from llmbatch.cli.wait import wait_and_report

__all__ = ["retry"]


def retry(
    job_id: Annotated[str, typer.Argument(help="The ended job whose failed lines to re-run")],
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="llm_config.yaml (default: found upward, like git)")] = None,
    include_cancelled: Annotated[bool, typer.Option(
        "--include-cancelled", help="Also re-run lines that were cancelled")] = False,
    name: Annotated[str | None, typer.Option(help="A label for the new job")] = None,
    wait: Annotated[bool, typer.Option(help="Show progress until the new job ends")] = False,
    worker: Annotated[bool | None, typer.Option(
        help="Start an embedded worker while waiting")] = None,
) -> None:
    """Re-run JOB's failed and expired lines in a child job, never what already succeeded.

    Takes lines whose latest attempt in JOB's lineage did not succeed (cancelled: opt in)."""
    if worker:
        local_only("--worker")
    console = Console(highlight=False, soft_wrap=True)
    source = job_source(config, publish=True)
    outcome = source.retry_lineage(job_id, name=name, include_cancelled=include_cancelled)
    assert outcome.child_id is not None
    console.print(f"created job [bold]{outcome.child_id}[/bold] retrying {outcome.count} "
                  f"line(s) of {job_id}")
    skipped = [f"{n} already succeeded in a later retry" for n in (outcome.already_succeeded,)
               if n] + [f"{n} still running in a later retry" for n in (outcome.in_flight,) if n]
    if skipped:
        console.print(f"left out (never sent twice): {', '.join(skipped)}")
    if wait:
        start_worker = source.embedded_broker if worker is None else worker
        raise SystemExit(wait_and_report(source, outcome.child_id, config, start_worker,
                                         console))
