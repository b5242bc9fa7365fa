"""``llmbatch status``, ``jobs`` and ``events``: what a user reads about jobs, laid out to fit
80 columns with no id ever cut (ids are what one copies into the next command); ``--wide``
adds columns, ``--json`` prints everything for scripts. Each reads through a ``JobSource``:
the local database, or a remote API with ``--api-url`` (the same values, the same output)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmbatch.cli.costs import cost_fields, cost_line
from llmbatch.cli.source import job_source
from llmbatch.domain.retention import CleanupState
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus
from llmbatch.service_layer.read_models.stalls import Stall
from llmbatch.service_layer.read_models.values import (
    BatchSummary,
    EventRecord,
    JobDetail,
    JobSummary,
)

__all__ = ["events", "jobs", "status"]

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", help="llm_config.yaml (default: found upward, like git)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (every field)")]
WideOpt = Annotated[bool, typer.Option("--wide", help="More columns (wider than 80)")]


def _console(wide: bool = False) -> Console:
    """80 columns fit by default; ``--wide`` tables take the width their cells need (a
    narrower terminal wraps them) rather than folding cells to the terminal's width."""
    return Console(soft_wrap=False, highlight=False, width=400 if wide else None)


def _table(*columns: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in columns:
        table.add_column(name, no_wrap=name in {"job", "batch", "status", "provider id"},
                         overflow="fold")
    return table


def _cost(cost: float | None) -> str:
    return "-" if cost is None else f"${cost:.4f}"


# ---- status ---------------------------------------------------------------------------------
def _status_data(job: JobDetail, children: list[JobSummary],
                 reasons: list[Stall]) -> dict[str, Any]:
    return {
        "id": job.id, "name": job.name, "status": str(job.status), "provider": job.provider,
        "model": job.model, "endpoint": str(job.endpoint), "items": job.item_count,
        "counts": {str(k): v for k, v in sorted(job.counts.items())},
        "usage": job.usage.as_dict(), "cost_usd": job.cost_usd,
        "parent_job_id": job.parent_job_id,
        "children": [{"id": c.id, "status": str(c.status), "items": c.item_count}
                     for c in children],
        "created_at": job.created_at.isoformat(),
        "completed_at": job.completed_at.isoformat() if job.completed_at else None,
        "error": job.error, "waiting": [r.as_dict() for r in reasons],
        "batches": [{"id": b.id, "status": str(b.status), "provider_batch_id":
                     b.provider_batch_id, "provider_status": b.provider_status,
                     "items": b.item_count, "request_counts": dict(b.request_counts),
                     "attempt": b.attempt, "polls": b.poll_count, "error": b.error,
                     "error_code": b.error_code,
                     "cleanup_state": b.cleanup_state and str(b.cleanup_state),
                     "cleanup_attempts": b.cleanup_attempts} for b in job.batches],
    }


def _provider_data(b: BatchSummary) -> str:
    """The batch's data at the provider, in a word: ``deleted``, ``kept``, ``pending`` (with
    the failed attempts so far: ``pending, 1 failed``), ``failed, 3 attempts`` (gave up),
    ``-`` before its results are stored."""
    state = b.cleanup_state
    if state is None:
        return "-"
    if state is CleanupState.PENDING and b.cleanup_attempts:
        return f"pending, {b.cleanup_attempts} failed"
    if state is CleanupState.FAILED:
        return f"failed, {b.cleanup_attempts} attempts"
    return str(state)


def status(job_id: Annotated[str, typer.Argument(help="The job")], config: ConfigOpt = None,
           as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """A job's counts, usage, cost, lineage, provider batches, and why it waits.

    Fits 80 columns with no id cut; --wide adds provider ids, statuses and errors."""
    source = job_source(config)
    progress = source.job_progress(job_id)
    job = progress.job
    children = list(source.list_jobs(parent_job_id=job_id, limit=100).entries)
    note = source.cost_note(job.provider, job.model)
    data = {**_status_data(job, children, list(progress.reasons)), **cost_fields(job, note)}
    out = _console(wide)
    if as_json:
        out.print_json(json.dumps(data))
        return
    out.print(f"[bold]{job.id}[/bold]  {job.status}", highlight=False)
    named = f"  name: {escape(job.name)}" if job.name else ""
    out.print(f"  {job.provider} / {escape(job.model)}, {job.item_count} items{named}")
    out.print("  " + ("  ".join(f"{k}={v}" for k, v in data["counts"].items()) or "no items"))
    if job.parent_job_id:
        out.print(f"  retry of: {job.parent_job_id}")
    for child in children:
        out.print(f"  retried by: {child.id} ({child.status}, {child.item_count} items)")
    usage = _table("input tokens", "cached", "cache writes", "output tokens", "reasoning")
    u = job.usage
    usage.add_row(str(u.input_tokens), str(u.cached_tokens), str(u.cache_write_tokens),
                  str(u.output_tokens), str(u.reasoning_tokens))
    out.print(usage)
    out.print(escape(cost_line(job, note)))  # wrapped: a price hint can be long
    if job.error:
        out.print(f"  error: {escape(job.error)}", soft_wrap=True)
    for reason in progress.reasons:
        out.print(f"  [yellow]waiting:[/yellow] {escape(str(reason))}", soft_wrap=True)
    if not job.batches:
        return
    columns = ["batch", "status", "items", "at provider", "provider data"]
    if wide:
        columns += ["provider id", "provider status", "polls", "error"]
    table = _table(*columns)
    for b in job.batches:
        counts = b.request_counts
        at_provider = (f"{counts.get('completed', 0) + counts.get('failed', 0)}/"
                       f"{counts.get('total', b.item_count)}" if counts else "-")
        row = [b.id, str(b.status), str(b.item_count), at_provider, _provider_data(b)]
        if wide:
            row += [b.provider_batch_id or "-", b.provider_status or "-", str(b.poll_count),
                    escape(b.error or "")]
        table.add_row(*row)
    out.print(table)


# ---- jobs -----------------------------------------------------------------------------------
def _job_dict(job: JobSummary) -> dict[str, Any]:
    return {"id": job.id, "name": job.name, "status": str(job.status),
            "provider": job.provider, "model": job.model, "items": job.item_count,
            "counts": {str(k): v for k, v in sorted(job.counts.items())},
            "parent_job_id": job.parent_job_id, "created_at": job.created_at.isoformat(),
            "completed_at": job.completed_at.isoformat() if job.completed_at else None}


def jobs(config: ConfigOpt = None,
         limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first")] = 20,
         status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status")] = None,
         as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """Recent jobs, newest first."""
    page = job_source(config).list_jobs(limit=limit, status=status)
    out = _console(wide)
    if as_json:
        out.print_json(json.dumps([_job_dict(j) for j in page.entries]))
        return
    if not page.entries:
        out.print("no jobs yet" + (f" in status {status}" if status else ""))
        return
    columns = ["job", "status", "succeeded", "name"]
    if wide:
        columns += ["provider", "model", "failed", "created", "parent"]
    table = _table(*columns)
    for job in page.entries:
        done = f"{job.counts.get(ItemStatus.SUCCEEDED, 0)}/{job.item_count}"
        row = [job.id, str(job.status), done, escape(job.name or "")]
        if wide:
            failed = sum(job.counts.get(s, 0) for s in (ItemStatus.FAILED, ItemStatus.EXPIRED))
            row += [job.provider, escape(job.model), str(failed),
                    job.created_at.strftime("%Y-%m-%d %H:%M"), job.parent_job_id or ""]
        table.add_row(*row)
    out.print(table)


# ---- events ---------------------------------------------------------------------------------
def _event_dict(e: EventRecord) -> dict[str, Any]:
    return {"id": e.id, "at": e.at.isoformat(), "type": e.type, "batch_id": e.batch_id,
            "from_status": e.from_status, "to_status": e.to_status, "data": dict(e.data)}


def _change(e: EventRecord) -> str:
    if e.from_status and e.to_status:
        return f"{e.from_status} -> {e.to_status}"
    return e.to_status or ""


def events(job_id: Annotated[str, typer.Argument(help="The job")], config: ConfigOpt = None,
           as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """A job's timeline, oldest first, and why it waits now if it does."""
    source = job_source(config)
    evs = list(source.iter_job_events(job_id))
    out = _console(wide)
    if as_json:
        out.print_json(json.dumps([_event_dict(e) for e in evs], default=str))
        return
    if wide:
        table = _table("time", "event", "batch", "change", "data")
        for e in evs:
            table.add_row(e.at.strftime("%H:%M:%S.%f")[:-3], e.type, e.batch_id or "",
                          _change(e), escape(json.dumps(e.data, default=str)))
        out.print(table)
    else:
        for e in evs:
            head = "  ".join(p for p in (e.at.strftime("%H:%M:%S"), e.type,
                                         e.batch_id or "", _change(e)) if p)
            out.print(head, highlight=False)
            if e.data:
                details = ", ".join(f"{k}={v}" for k, v in e.data.items())
                out.print(f"    {escape(details)}", soft_wrap=True, highlight=False)
    progress = source.job_progress(job_id)
    for reason in progress.reasons:
        out.print(f"[yellow]now waiting:[/yellow] {escape(str(reason))}", soft_wrap=True)
    if not progress.job.ended and not progress.reasons:
        still = [b for b in progress.job.batches if b.status is BatchStatus.IN_PROGRESS]
        if still:
            out.print(f"now: {len(still)} batch(es) running at the provider "
                      f"({progress.at_provider_done}/{progress.at_provider_total} done there)")
