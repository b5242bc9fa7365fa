"""The outbox: events to deliver, written in the transaction of the change they announce
(``UnitOfWork.commit`` calls ``enqueue``), claimed by a lease, and a log of every attempt.

A payload is built once, when the event happens, and redacted like the timeline
(``observability.redaction``); every attempt sends the same bytes under the same id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from llmbatch.db.tables import jobs, webhook_deliveries, webhook_outbox
from llmbatch.domain.events import Event, EventType
from llmbatch.observability.redaction import redact_value

__all__ = ["OutboxEntry", "WebhookOutbox"]

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class OutboxEntry:
    """One event to deliver."""

    id: str
    job_id: str
    url: str
    type: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


def _payload(event: Event, job: Any) -> tuple[str, dict[str, Any]]:
    """``(type, data)`` of the webhook for ``event`` of ``job``."""
    if event.type is EventType.JOB_COMPLETED:
        return f"job.{event.to_status}", {
            "job_id": job.id, "name": job.name, "status": event.to_status,
            "provider": job.provider, "model": job.model, "tenant": job.tenant,
            "counts": dict(event.data), "error": job.error,
            "created_at": job.created_at.isoformat() if job.created_at else None,
            "completed_at": event.at.isoformat()}
    return str(event.type), {
        "job_id": job.id, "batch_id": event.batch_id, "provider": job.provider,
        "model": job.model, "tenant": job.tenant, "ended_at": event.at.isoformat(),
        **{k: event.data[k] for k in ("provider_status", "total", "completed", "failed")
           if k in event.data}}


class WebhookOutbox:
    """Queries on the outbox and delivery log, on one connection in the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def set_url(self, job_id: str, url: str) -> None:
        self.conn.execute(update(jobs).where(jobs.c.id == job_id).values(webhook_url=url))

    def enqueue(self, events: Sequence[Event], *, batch_events: bool) -> int:
        """Outbox rows for the events that notify (a job's end; a batch's end if asked) of
        jobs that have a webhook URL. Returns how many were written."""
        wanted = [e for e in events if e.type is EventType.JOB_COMPLETED
                  or (batch_events and e.type is EventType.BATCH_ENDED)]
        if not wanted:
            return 0
        j = jobs.c
        rows = self.conn.execute(
            select(j.id, j.name, j.provider, j.model, j.tenant, j.error, j.created_at,
                   j.webhook_url)
            .where(j.id.in_({e.job_id for e in wanted}), j.webhook_url.is_not(None))).all()
        by_id = {row.id: row for row in rows}
        entries = []
        for event in wanted:
            job = by_id.get(event.job_id)
            if job is None:
                continue
            kind, data = _payload(event, job)
            entries.append({
                "id": f"msg_{uuid.uuid4().hex}", "job_id": job.id, "url": job.webhook_url,
                "type": kind, "payload": {"type": kind, "timestamp": event.at.isoformat(),
                                          "data": redact_value(data)},
                "status": PENDING, "attempts": 0, "next_attempt_at": event.at,
                "created_at": event.at})
        if entries:
            self.conn.execute(insert(webhook_outbox), entries)
        return len(entries)

    def due(self, now: datetime, limit: int) -> list[str]:
        o = webhook_outbox.c
        query = (select(o.id).where(o.status == PENDING, o.next_attempt_at <= now,
                                    or_(o.lease_until.is_(None), o.lease_until < now))
                 .order_by(o.next_attempt_at).limit(limit))
        return list(self.conn.execute(query).scalars())

    def claim(self, event_id: str, now: datetime, lease_s: float) -> OutboxEntry | None:
        """Take the entry for one attempt (a conditional UPDATE: one deliverer at a time)."""
        o = webhook_outbox.c
        res = self.conn.execute(update(webhook_outbox).where(
            o.id == event_id, o.status == PENDING,
            or_(o.lease_until.is_(None), o.lease_until < now),
        ).values(lease_until=now + timedelta(seconds=lease_s)))
        if res.rowcount != 1:
            return None
        row = self.conn.execute(select(webhook_outbox).where(o.id == event_id)).one()
        return OutboxEntry(id=row.id, job_id=row.job_id, url=row.url, type=row.type,
                           payload=dict(row.payload), attempts=row.attempts,
                           created_at=row.created_at)

    def record(self, entry: OutboxEntry, *, at: datetime, status_code: int | None,
               error: str | None, duration_ms: int, outcome: str,
               next_attempt_at: datetime | None = None) -> None:
        """Log one attempt and move the entry: delivered, failed for good, or due again."""
        attempt = entry.attempts + 1
        self.conn.execute(insert(webhook_deliveries).values(
            event_id=entry.id, attempt=attempt, at=at, status_code=status_code, error=error,
            duration_ms=duration_ms))
        values: dict[str, Any] = {"attempts": attempt, "lease_until": None,
                                  "last_error": error, "status": outcome}
        if outcome == DELIVERED:
            values["delivered_at"] = at
        if next_attempt_at is not None:
            values["next_attempt_at"] = next_attempt_at
        self.conn.execute(update(webhook_outbox).where(webhook_outbox.c.id == entry.id)
                          .values(**values))

    def replay(self, now: datetime, *, job_id: str | None = None, event_id: str | None = None,
               failed_only: bool = False) -> int:
        """Make entries due again (delivered ones too, unless ``failed_only``): the same id,
        so a receiver that saw one already drops it. Returns how many."""
        o = webhook_outbox.c
        conds = []
        if job_id is not None:
            conds.append(o.job_id == job_id)
        if event_id is not None:
            conds.append(o.id == event_id)
        if failed_only:
            conds.append(o.status == FAILED)
        res = self.conn.execute(update(webhook_outbox).where(*conds).values(
            status=PENDING, next_attempt_at=now, lease_until=None, attempts=0,
            created_at=now))
        return int(res.rowcount)

    def entries(self, job_id: str | None = None, limit: int = 100) -> list[Any]:
        o = webhook_outbox.c
        query = select(o.id, o.job_id, o.type, o.status, o.attempts, o.last_error,
                       o.created_at, o.delivered_at).order_by(o.created_at.desc()).limit(limit)
        if job_id is not None:
            query = query.where(o.job_id == job_id)
        return list(self.conn.execute(query).all())

    def any_due(self, now: datetime) -> bool:
        return bool(self.due(now, 1))
