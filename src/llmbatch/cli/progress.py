"""Live progress of a job in the terminal, read from the database (the source of truth)."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from llmbatch.bootstrap import Runtime
from llmbatch.service_layer.read_models import JobSummary, job_summary

__all__ = ["wait_for_job"]


def wait_for_job(rt: Runtime | Callable[[str], JobSummary], job_id: str, console: Console, *,
                 interval_s: float = 0.5, timeout_s: float | None = None) -> JobSummary:
    """Show a progress bar until the job is terminal (or ``timeout_s`` passes). ``rt`` is the
    local runtime, or how to read a job's summary (a remote API's)."""
    summary: Callable[[str], JobSummary] = (
        rt if callable(rt) else lambda job_id: job_summary(rt, job_id))
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        job = summary(job_id)
        task = bar.add_task(f"{job.provider} {job.id}", total=job.item_count, detail="")
        while True:
            job = summary(job_id)
            detail = " ".join(f"{s}={n}" for s, n in sorted(job.counts.items()) if n)
            bar.update(task, completed=job.finished_items, detail=f"{job.status} {detail}")
            if job.ended:
                return job
            if deadline is not None and time.monotonic() > deadline:
                return job
            time.sleep(interval_s)
