"""Read model of a job's timeline: its events, oldest first, a page at a time.

The cursor is the id of the last event read, so a reader that follows a running job (a live
stream resuming from ``Last-Event-ID``, a terminal tailing the events) asks again with the id of
the last event it has and gets only what came after.
"""

from __future__ import annotations

from collections.abc import Iterator

from llmbatch.bootstrap import Runtime
from llmbatch.db.read_queries import reading
from llmbatch.service_layer.read_models.cursors import (
    MAX_PAGE_SIZE,
    check_limit,
    parse_position,
    position_cursor,
)
from llmbatch.service_layer.read_models.jobs import require_job
from llmbatch.service_layer.read_models.values import EventRecord, Page

__all__ = ["iter_job_events", "job_events"]


def job_events(rt: Runtime, job_id: str, *, cursor: str | None = None, limit: int = 100,
               tenant: str | None = None) -> Page[EventRecord]:
    """Up to ``limit`` events of a job after the event ``cursor`` names (from the first when
    None). ``next_cursor`` is None once the page reaches the latest event; a job still running
    may record more later, after ``entries[-1].id``."""
    check_limit(limit)
    after_id = parse_position(cursor) if cursor is not None else None
    with reading(rt.engine) as q:
        require_job(q, job_id, tenant)
        rows = q.events(job_id, after_id=after_id, limit=limit + 1)
    entries = tuple(
        EventRecord(id=r.id, job_id=r.job_id, type=r.type, at=r.at, batch_id=r.batch_id,
                    from_status=r.from_status, to_status=r.to_status, data=dict(r.data or {}))
        for r in rows[:limit])
    return Page(entries, position_cursor(entries[-1].id) if len(rows) > limit else None)


def iter_job_events(rt: Runtime, job_id: str, *, cursor: str | None = None,
                    tenant: str | None = None) -> Iterator[EventRecord]:
    """Every event of a job after ``cursor``, as far as recorded now: page after page, each
    its own short read. The job is looked up now (``NotFoundError`` before anything is
    returned)."""
    first = job_events(rt, job_id, cursor=cursor, limit=MAX_PAGE_SIZE, tenant=tenant)
    return _pages_from(rt, job_id, first, tenant)


def _pages_from(rt: Runtime, job_id: str, page: Page[EventRecord],
                tenant: str | None) -> Iterator[EventRecord]:
    while True:
        yield from page.entries
        if page.next_cursor is None:
            return
        page = job_events(rt, job_id, cursor=page.next_cursor, limit=MAX_PAGE_SIZE,
                          tenant=tenant)
