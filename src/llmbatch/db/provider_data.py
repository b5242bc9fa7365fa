"""Queries for deleting a batch's data at the provider after its results are stored
(``service_layer.provider_data``): which fetched batches have a deletion due, and taking one.

The state lives on the batch row (``cleanup_state``, ``cleanup_attempts``; the retry time in
``next_poll_at``, unused once a batch is fetched), so a deletion that a dead worker never ran
is found again by the tick.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, or_, select, update

from llmbatch.db.tables import provider_batches
from llmbatch.domain.retention import CleanupState
from llmbatch.domain.states import BatchStatus

__all__ = ["claim_cleanup", "due_cleanups"]


def due_cleanups(conn: Connection, now: datetime, redispatch_before: datetime,
                 limit: int) -> list[str]:
    """Fetched batches whose deletion is due, lease free and not dispatched recently."""
    b = provider_batches.c
    query = select(b.id).where(
        b.status == str(BatchStatus.FETCHED), b.cleanup_state == str(CleanupState.PENDING),
        or_(b.next_poll_at.is_(None), b.next_poll_at <= now),
        or_(b.lease_until.is_(None), b.lease_until < now),
        or_(b.dispatched_at.is_(None), b.dispatched_at < redispatch_before),
    ).order_by(b.next_poll_at).limit(limit)
    return list(conn.execute(query).scalars())


def claim_cleanup(conn: Connection, batch_id: str, owner: str, now: datetime,
                  lease_s: float) -> int | None:
    """Take the lease on a fetched batch whose deletion is pending and due; the number of
    attempts made so far, or None when it is not (done, kept, not due, or leased)."""
    b = provider_batches.c
    res = conn.execute(update(provider_batches).where(
        b.id == batch_id, b.status == str(BatchStatus.FETCHED),
        b.cleanup_state == str(CleanupState.PENDING),
        or_(b.next_poll_at.is_(None), b.next_poll_at <= now),
        or_(b.lease_until.is_(None), b.lease_until < now),
    ).values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s), updated_at=now))
    if res.rowcount != 1:
        return None
    attempts = conn.execute(select(b.cleanup_attempts).where(b.id == batch_id)).scalar()
    return int(attempts or 0)
