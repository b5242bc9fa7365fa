"""Read models of jobs: one job's summary (what a progress bar polls), its full status (counts,
usage, cost, provider batches), and job lists with filters and a cursor.

``tenant`` scopes every read: None reads every tenant (the local CLI, an admin); a job of
another tenant is reported exactly like a job that does not exist.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from llmbatch.bootstrap import Runtime
from llmbatch.db.item_queries import AnyRow
from llmbatch.db.read_queries import ReadQueries, reading
from llmbatch.domain.models import Endpoint, Usage
from llmbatch.domain.retention import CleanupState
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus
from llmbatch.errors import NotFoundError
from llmbatch.pricing import from_pusd
from llmbatch.service_layer.read_models.cursors import check_limit, job_cursor, parse_job_cursor
from llmbatch.service_layer.read_models.values import BatchSummary, JobDetail, JobSummary, Page

__all__ = ["job_detail", "job_summary", "list_jobs", "require_job"]

_USAGE_FIELDS = Usage._fields


def job_summary(rt: Runtime, job_id: str, *, tenant: str | None = None) -> JobSummary:
    """A job with its item counts per status; ``NotFoundError`` if there is no such job."""
    with reading(rt.engine) as q:
        row = require_job(q, job_id, tenant)
        counts = q.item_counts([job_id])[job_id]
    return JobSummary(**_summary_fields(row), counts=counts)


def job_detail(rt: Runtime, job_id: str, *, tenant: str | None = None) -> JobDetail:
    """A job's status in full, read from one snapshot: its counts, usage and cost come from
    one grouped pass over its items."""
    with reading(rt.engine) as q:
        row = require_job(q, job_id, tenant)
        totals = q.item_totals(job_id)
        batches = q.batches(job_id)
    groups = [g._mapping for g in totals]
    costs = [int(g["cost_pusd"]) for g in groups if g["cost_pusd"] is not None]
    sync_costs = [int(g["sync_cost_pusd"]) for g in groups if g["sync_cost_pusd"] is not None]
    m = row._mapping
    return JobDetail(
        **_summary_fields(row),
        counts={ItemStatus(g["status"]): int(g["items"]) for g in groups},
        submitted_at=m["submitted_at"], error=m["error"], metadata=dict(m["metadata"] or {}),
        usage=Usage(**{f: sum(int(g[f]) for g in groups) for f in _USAGE_FIELDS}),
        cost_usd=from_pusd(sum(costs)) if costs else None,
        sync_cost_usd=from_pusd(sum(sync_costs)) if sync_costs else None,
        batches=tuple(_batch(b) for b in batches))


def list_jobs(rt: Runtime, *, limit: int = 50, cursor: str | None = None,
              status: JobStatus | Collection[JobStatus] | None = None,
              tenant: str | None = None, provider: str | None = None,
              parent_job_id: str | None = None) -> Page[JobSummary]:
    """Jobs newest first, with their item counts, ``limit`` at a time (1 to
    ``MAX_PAGE_SIZE``). Filters: one status or several, tenant, provider, parent job (a
    retry's children). ``cursor`` is a page's ``next_cursor``; a job created while paging
    appears on no later page, and none is shown twice."""
    check_limit(limit)
    before = parse_job_cursor(cursor) if cursor is not None else None
    statuses = ((JobStatus(status),) if isinstance(status, str)
                else tuple(JobStatus(s) for s in status or ()))
    with reading(rt.engine) as q:
        rows = q.jobs(limit=limit + 1, before=before, statuses=statuses, tenant=tenant,
                      provider=provider, parent_job_id=parent_job_id)
        page = rows[:limit]
        counts = q.item_counts([r.id for r in page])
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]._mapping
        next_cursor = job_cursor(last["created_at"], last["id"])
    return Page(tuple(JobSummary(**_summary_fields(r), counts=counts[r.id]) for r in page),
                next_cursor)


def require_job(q: ReadQueries, job_id: str, tenant: str | None) -> AnyRow:
    """The job's row, or ``NotFoundError`` (also for another tenant's job)."""
    row = q.job(job_id, tenant)
    if row is None:
        raise NotFoundError(f"no job {job_id!r}")
    return row


def _summary_fields(row: AnyRow) -> dict[str, Any]:
    m = row._mapping
    return {"id": m["id"], "tenant": m["tenant"], "name": m["name"], "provider": m["provider"],
            "model": m["model"], "endpoint": Endpoint(m["endpoint"]),
            "status": JobStatus(m["status"]), "item_count": m["item_count"],
            "created_at": m["created_at"], "completed_at": m["completed_at"],
            "parent_job_id": m["parent_job_id"]}


def _cleanup_state(value: str | None) -> CleanupState | None:
    return None if value is None else CleanupState(value)


def _batch(row: AnyRow) -> BatchSummary:
    m = row._mapping
    return BatchSummary(
        id=m["id"], status=BatchStatus(m["status"]), attempt=m["attempt"],
        item_count=m["item_count"], provider_batch_id=m["provider_batch_id"],
        provider_status=m["provider_status"], request_counts=dict(m["request_counts"] or {}),
        poll_count=m["poll_count"], error=m["error"], error_code=m["error_code"],
        created_at=m["created_at"], submitted_at=m["submitted_at"], ended_at=m["ended_at"],
        next_poll_at=m["next_poll_at"], lease_until=m["lease_until"],
        lease_owner=m["lease_owner"], call_failures=m["call_failures"],
        cleanup_state=_cleanup_state(m["cleanup_state"]),
        cleanup_attempts=m["cleanup_attempts"] or 0)
