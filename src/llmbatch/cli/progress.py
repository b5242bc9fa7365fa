"""Live progress of a job in the terminal, read from the database (the source of truth), or
from a remote API's ``/progress`` (the same read model, served).

The bar counts stored results plus what the provider reports done on batches not fetched yet
(marked ``at provider``), so a batch the provider is working through moves the bar long before
any result is downloaded. Beside it: an ETA from the polling model, and, when the job is held
up, a line saying why (printed above the bar whenever the reason changes). At the end: the
counts, the cost and the next command.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from llmbatch.cli.source import JobSource
from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.service_layer.read_models.job_progress import JobProgress
from llmbatch.service_layer.read_models.values import JobDetail

__all__ = ["detail_line", "final_lines", "format_duration", "wait_for_job"]


def format_duration(seconds: float) -> str:
    """``45s``, ``12m``, ``3h20m``: an ETA is an estimate, so no false precision."""
    if seconds < 90:
        return f"{max(round(seconds), 1)}s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)}m"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours}h{minutes:02d}m"


def detail_line(p: JobProgress) -> str:
    """What stands beside the bar: status, provider-side and fetched counts, ETA."""
    bits = [str(p.job.status)]
    if p.at_provider_total:
        bits.append(f"{p.at_provider_done}/{p.at_provider_total} done at provider")
    bits.append(f"{p.fetched} fetched")
    bits += sorted({r.short for r in p.reasons})
    if p.eta_s is not None and not p.job.ended:
        bits.append(f"ETA ~{format_duration(p.eta_s)}")
    return " · ".join(bits)


def wait_for_job(source: JobSource, job_id: str, console: Console, *,
                 interval_s: float = 0.5, timeout_s: float | None = None) -> JobDetail:
    """Show a progress bar until the job is terminal (or ``timeout_s`` passes)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    columns = (TextColumn("[bold]{task.description}"), BarColumn(bar_width=24),
               MofNCompleteColumn(), TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    shown: set[tuple[str, str | None]] = set()
    with Progress(*columns, console=console, transient=False) as bar:
        progress = source.job_progress(job_id)
        task = bar.add_task(progress.job.provider, total=progress.job.item_count, detail="")
        while True:
            progress = source.job_progress(job_id)
            # A reason is printed when it starts (not again for fresher numbers: the bar
            # says it is still there).
            for reason in progress.reasons:
                if (reason.kind, reason.batch_id) not in shown:
                    bar.console.print(f"[yellow]waiting:[/yellow] {escape(str(reason))}",
                                      highlight=False, soft_wrap=True)
            shown = {(r.kind, r.batch_id) for r in progress.reasons}
            bar.update(task, completed=progress.done, detail=escape(detail_line(progress)))
            if progress.job.ended:
                return progress.job
            if deadline is not None and time.monotonic() > deadline:
                return progress.job
            time.sleep(interval_s)


def final_lines(job: JobDetail) -> list[str]:
    """The summary after a job ended: counts, cost, and the command to run next."""
    counts = ", ".join(f"{n} {s}" for s, n in sorted(job.counts.items()) if n) or "no items"
    if job.cost_usd is not None:
        cost = f"cost ${job.cost_usd:.4f}"
    else:
        cost = f"cost unknown (no prices for {job.model} in the config)"
    tokens = f"{job.usage.input_tokens} in / {job.usage.output_tokens} out tokens"
    lines = [f"job {job.id} {job.status}: {counts} · {tokens} · {cost}"]
    if job.error:
        lines.append(f"  error: {job.error}")
    failed = sum(job.counts.get(s, 0) for s in (ItemStatus.FAILED, ItemStatus.EXPIRED))
    lines.append(f"next: llmbatch results {job.id} -o {job.id}.jsonl")
    if failed or job.status is JobStatus.CANCELLED:
        lines.append(f"      llmbatch retry {job.id}   (re-sends only what did not succeed)")
    return lines
