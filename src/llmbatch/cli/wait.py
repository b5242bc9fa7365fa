"""``llmbatch wait JOB``: re-attach to a job (after a closed terminal, a Ctrl-C, or a submit
without ``--wait``) and follow it to its end like ``submit --wait``: with the embedded broker a
worker is started for as long as the command waits, since nobody else runs one. With
``--api-url`` it follows the job on the remote API (whose workers run it)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from llmbatch.cli.exit_codes import ExitCode

if TYPE_CHECKING:
    from llmbatch.cli.embedded import EmbeddedWorker
from llmbatch.cli.source import JobSource, job_source, local_only
from llmbatch.domain.states import JobStatus

__all__ = ["embedded_worker", "wait", "wait_and_report"]


def embedded_worker(config: Path | None, source: JobSource) -> EmbeddedWorker:
    """The worker ``--wait`` starts with the embedded broker (not yet started)."""
    from llmbatch.cli.embedded import EmbeddedWorker, stop_wake
    from llmbatch.cli.source import LocalSource

    # Woken as it stops (stop_wake), so the command ends ~3 s sooner after the job did.
    wake = stop_wake(source.rt.publisher) if isinstance(source, LocalSource) else None
    return EmbeddedWorker(config, wake=wake)


def wait_and_report(source: JobSource, job_id: str, config: Path | None, start_worker: bool,
                    console: Console, *, timeout_s: float | None = None) -> int:
    """Follow ``job_id`` with the progress bar, print the summary; the exit code (0 when
    every item succeeded, 1 when the job ended otherwise or the wait timed out)."""
    from llmbatch.cli.progress import final_lines, wait_for_job

    source.job_summary(job_id)  # an unknown job is said before any worker starts
    ctx: AbstractContextManager[object] = (embedded_worker(config, source) if start_worker
                                           else nullcontext())
    with ctx:
        job = wait_for_job(source, job_id, console, timeout_s=timeout_s)
    if not job.ended:
        console.print(f"job {job.id} still {job.status} after {timeout_s:g}s; "
                      f"run `llmbatch wait {job.id}` again to follow it", highlight=False,
                      soft_wrap=True)
        return ExitCode.JOB_FAILURES
    for line in final_lines(job):
        console.print(escape(line), highlight=False, soft_wrap=True)
    return ExitCode.OK if job.status is JobStatus.SUCCEEDED else ExitCode.JOB_FAILURES


def wait(job_id: Annotated[str, typer.Argument(help="The job to follow")],
         config: Annotated[Path | None, typer.Option(
             "--config", "-c", help="llm_config.yaml (default: found upward, like git)")] = None,
         worker: Annotated[bool | None, typer.Option(
             help="Start an embedded worker while waiting (default: on with the SQLite "
                  "broker)")] = None,
         timeout: Annotated[float | None, typer.Option(
             min=0, help="Give up after this many seconds (exit 1; the job goes on)")] = None,
         ) -> None:
    """Follow a job to its end with the progress bar (exit 0 if every item succeeded)."""
    if worker:
        local_only("--worker")
    source = job_source(config, publish=True)  # the worker's stop_wake
    start_worker = source.embedded_broker if worker is None else worker
    raise SystemExit(wait_and_report(source, job_id, config, start_worker, Console(),
                                     timeout_s=timeout))
