"""Live progress of a job in the terminal, read from the database (the source of truth)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from llmbatch.bootstrap import Runtime
from llmbatch.domain.job import Job
from llmbatch.domain.states import ItemStatus, is_terminal

__all__ = ["finished_items", "wait_for_job"]

FINAL_ITEM_STATES = (ItemStatus.SUCCEEDED, ItemStatus.FAILED, ItemStatus.CANCELLED,
                     ItemStatus.EXPIRED)


def finished_items(job: Job) -> int:
    return sum(job.counts.get(s, 0) for s in FINAL_ITEM_STATES)


def wait_for_job(rt: Runtime, job_id: str, console: Console, *, interval_s: float = 0.5,
                 timeout_s: float | None = None) -> Job:
    """Show a progress bar until the job is terminal (or ``timeout_s`` passes)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        with rt.uow() as uow:
            job = uow.repo.get_job(job_id)
        task = bar.add_task(f"{job.provider} {job.id}", total=job.item_count, detail="")
        while True:
            with rt.uow() as uow:
                job = uow.repo.get_job(job_id)
            detail = " ".join(f"{s}={n}" for s, n in sorted(job.counts.items()) if n)
            bar.update(task, completed=finished_items(job), detail=f"{job.status} {detail}")
            if is_terminal(job.status):
                return job
            if deadline is not None and time.monotonic() > deadline:
                return job
            time.sleep(interval_s)
