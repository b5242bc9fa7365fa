"""Item history: one row per provider batch an item rode in without succeeding there.

Rows are written in the same transaction as the result they describe, and only for items still
``submitted`` in that batch (INSERT ... SELECT guarded like the result UPDATE), so a fetch that
runs again after a crash writes no row twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, literal, select

from llmbatch.db.item_view import has_stored_result
from llmbatch.db.tables import JSONType, UTCDateTime, item_attempts, items
from llmbatch.domain.states import ItemStatus

__all__ = ["HistoryRepository"]

_COLUMNS = ["job_id", "seq", "batch_id", "attempt", "outcome", "error", "at"]


class HistoryRepository:
    """Writes ``item_attempts`` on one connection, in the caller's transaction (readers get
    the history with each result: ``db.read_queries``)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def record_unreported(self, batch_id: str, outcome: str, error: dict[str, Any] | None,
                          now: datetime) -> None:
        """One history row for every item of the batch that got no result line (still
        submitted, no stored result)."""
        source = select(
            items.c.job_id, items.c.seq, literal(batch_id), items.c.attempts, literal(outcome),
            literal(error, JSONType), literal(now, UTCDateTime),
        ).where(items.c.batch_id == batch_id, items.c.status == str(ItemStatus.SUBMITTED),
                ~has_stored_result())
        self.conn.execute(insert(item_attempts).from_select(_COLUMNS, source))
