"""Making a running batch due for a poll now: the database side of an early wake-up.

A provider's webhook says a batch has probably ended; the batch's ``next_poll_at`` is brought
forward to now, so the next poll (the wake-up message, or the tick if that message is lost)
asks the provider at once. The batch's state itself is never changed here: that is the poll's
job, under its lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, or_, select, update

from llmbatch.db.tables import provider_batches
from llmbatch.domain.states import BatchStatus

__all__ = ["POLLED_STATES", "bring_polls_forward", "polled_batches_named"]

POLLED_STATES: Sequence[BatchStatus] = (BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING)


def polled_batches_named(provider: str, provider_batch_id: str) -> Select[tuple[str, Any]]:
    """Our still-polled batches that are ``provider_batch_id`` at ``provider`` (id, lease):
    found through ``ix_provider_batches_provider_batch_id``, not by a scan of every batch."""
    b = provider_batches.c
    return select(b.id, b.lease_until).where(
        b.provider == provider, b.provider_batch_id == provider_batch_id,
        b.status.in_([str(s) for s in POLLED_STATES]))


def bring_polls_forward(conn: Connection, provider: str, provider_batch_id: str,
                        now: datetime) -> tuple[list[str], list[str]]:
    """``(due, free)``: our batches that are ``provider_batch_id`` at ``provider`` and still
    polled, now due (``next_poll_at`` moved to ``now`` where it was later), and among them
    those no task holds a lease on (those a wake-up message may be sent for; a poll that
    holds one is asking the provider right now)."""
    b = provider_batches.c
    rows = conn.execute(polled_batches_named(provider, provider_batch_id)).all()
    due = [row.id for row in rows]
    if due:
        conn.execute(update(provider_batches).where(
            b.id.in_(due), or_(b.next_poll_at.is_(None), b.next_poll_at > now))
            .values(next_poll_at=now))
    free = [row.id for row in rows if row.lease_until is None or row.lease_until < now]
    return due, free
