"""Item queries of the repository: bulk inserts and conditional bulk updates of a job's
items (a job may hold hundreds of thousands, so never one ORM object at a time)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import DataError, DBAPIError, StatementError

from llmbatch.db.result_stage import ResultRow, apply_results
from llmbatch.db.tables import items
from llmbatch.domain.models import Usage
from llmbatch.domain.states import ItemStatus, moving
from llmbatch.pricing import from_pusd

__all__ = ["AnyRow", "ItemQueries", "is_refused_value"]

AnyRow = Row[*tuple[Any, ...]]


def is_refused_value(exc: BaseException) -> bool:
    """Whether a write failed because the database or its driver refused a value in it (so
    the same rows fail again, whatever the retry) rather than because the database failed.

    PostgreSQL answers a data error (SQLSTATE class 22: NUL in text or JSONB, JSON it cannot
    parse, a number out of its column's range, a string over its column's width); the drivers
    refuse before sending: a lone surrogate cannot be encoded (``UnicodeError``), SQLite binds
    no integer past 64 bits (``OverflowError``), a JSON column gets a value ``json`` cannot
    write (``TypeError``, wrapped by SQLAlchemy).
    """
    if isinstance(exc, DataError):
        return True
    if isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc, "sqlstate", None)  # a driver's own error (PostgreSQL COPY)
    if isinstance(sqlstate, str):
        return sqlstate.startswith("22")
    if isinstance(exc, StatementError):
        return isinstance(exc.orig, UnicodeError | OverflowError | TypeError)
    return isinstance(exc, UnicodeError | OverflowError)


class ItemQueries:
    """The ``items`` half of ``Repository`` (mixed in; shares its connection)."""

    conn: Connection

    def item_counts(self, job_id: str) -> dict[ItemStatus, int]:
        query = (select(items.c.status, func.count()).where(items.c.job_id == job_id)
                 .group_by(items.c.status))
        return {ItemStatus(s): n for s, n in self.conn.execute(query).all()}

    def cost_total(self, job_id: str) -> Decimal | None:
        """Exact sum of item batch costs in USD (None when no item has a price)."""
        total = self.conn.execute(select(func.sum(items.c.cost_pusd))
                                  .where(items.c.job_id == job_id)).scalar_one()
        return None if total is None else from_pusd(int(total))

    def copy_items_for_retry(self, parent_id: str, child_id: str,
                             statuses: Iterable[ItemStatus]) -> int:
        """Copy a job's items in ``statuses`` into a new job as fresh pending items (one
        INSERT ... SELECT, keeping ``seq`` so the child's results keep the input order)."""
        src = select(
            literal(child_id), items.c.seq, items.c.custom_id, items.c.provider_key,
            items.c.request, items.c.wire_bytes, items.c.estimated_tokens,
            items.c.cost_bound_pusd, literal(str(ItemStatus.PENDING)), literal(0),
        ).where(items.c.job_id == parent_id, items.c.status.in_([str(s) for s in statuses]))
        res = self.conn.execute(insert(items).from_select(
            ["job_id", "seq", "custom_id", "provider_key", "request", "wire_bytes",
             "estimated_tokens", "cost_bound_pusd", "status", "attempts"], src))
        return res.rowcount

    def usage_totals(self, job_id: str) -> Usage:
        row = self.conn.execute(select(
            func.coalesce(func.sum(items.c.input_tokens), 0),
            func.coalesce(func.sum(items.c.output_tokens), 0),
            func.coalesce(func.sum(items.c.cached_tokens), 0),
            func.coalesce(func.sum(items.c.reasoning_tokens), 0),
            func.coalesce(func.sum(items.c.cache_write_tokens), 0),
            func.coalesce(func.sum(items.c.cache_write_1h_tokens), 0),
        ).where(items.c.job_id == job_id)).one()
        return Usage(*(int(v) for v in row))

    def iter_pending_sizes(self, job_id: str) -> Iterator[tuple[int, int, int]]:
        """``(seq, wire_bytes, estimated_tokens)`` of pending items in input order: the
        planner's input."""
        query = (select(items.c.seq, items.c.wire_bytes, items.c.estimated_tokens)
                 .where(items.c.job_id == job_id, items.c.status == str(ItemStatus.PENDING))
                 .order_by(items.c.seq))
        for row in self.conn.execute(query):
            yield row.seq, row.wire_bytes, row.estimated_tokens

    def mark_items_submitted(self, batch_id: str) -> int:
        res = self.conn.execute(update(items).where(
            items.c.batch_id == batch_id,
            items.c.status.in_(moving(ItemStatus.SUBMITTED, ItemStatus.QUEUED)),
        ).values(status=str(ItemStatus.SUBMITTED), attempts=items.c.attempts + 1))
        return res.rowcount

    def release_queued_items(self, batch_id: str) -> int:
        """A batch that will not be sent: its queued items go back to pending."""
        res = self.conn.execute(update(items).where(
            items.c.batch_id == batch_id,
            items.c.status.in_(moving(ItemStatus.PENDING, ItemStatus.QUEUED)),
        ).values(status=str(ItemStatus.PENDING), batch_id=None))
        return res.rowcount

    def record_results(self, batch_id: str, rows: Sequence[ResultRow], now: datetime) -> int:
        """Apply result rows (at most one per provider key) to the batch's submitted items,
        with the history of those that did not succeed, in bulk (``db.result_stage``).

        Rows for items that already moved on are ignored, so re-running a fetch is harmless.
        A value the database refuses fails the whole call (``is_refused_value``): the caller
        makes results storable first (``domain.storable``) and isolates what still fails.
        """
        return apply_results(self.conn, batch_id, rows, now)

    def settle_unreported_items(self, batch_id: str, final: ItemStatus,
                                error: dict[str, Any] | None, now: datetime,
                                retry_below_attempts: int | None = None) -> int:
        """Items the provider returned no line for. Those with fewer than
        ``retry_below_attempts`` attempts go back to pending; the rest get ``final``."""
        b = items.c
        moved = 0
        if retry_below_attempts is not None:
            moved += self.conn.execute(update(items).where(
                b.batch_id == batch_id,
                b.status.in_(moving(ItemStatus.PENDING, ItemStatus.SUBMITTED)),
                b.attempts < retry_below_attempts,
            ).values(status=str(ItemStatus.PENDING), batch_id=None, error=error)).rowcount
        moved += self.conn.execute(update(items).where(
            b.batch_id == batch_id, b.status.in_(moving(final, ItemStatus.SUBMITTED)),
        ).values(
            status=str(final), error=error, completed_at=now)).rowcount
        return moved

    def attempt_range(self, batch_id: str) -> tuple[int, int] | None:
        """Lowest and highest ``attempts`` among a batch's submitted items (None if none)."""
        low, high = self.conn.execute(select(func.min(items.c.attempts), func.max(items.c.attempts))
                                      .where(items.c.batch_id == batch_id,
                                             items.c.status == str(ItemStatus.SUBMITTED))).one()
        return None if low is None else (int(low), int(high))

    def attempts_of(self, batch_id: str, provider_keys: Sequence[str]) -> dict[str, int]:
        """``provider_key -> attempts`` for submitted items of a batch."""
        query = select(items.c.provider_key, items.c.attempts).where(
            items.c.batch_id == batch_id, items.c.provider_key.in_(list(provider_keys)),
            items.c.status == str(ItemStatus.SUBMITTED))
        return {r.provider_key: r.attempts for r in self.conn.execute(query).all()}

    def cancel_unsent_items(self, job_id: str, now: datetime) -> int:
        """Pending and queued items of a cancelled job become cancelled."""
        res = self.conn.execute(update(items).where(
            items.c.job_id == job_id,
            items.c.status.in_(moving(ItemStatus.CANCELLED, ItemStatus.PENDING,
                                      ItemStatus.QUEUED)),
        ).values(status=str(ItemStatus.CANCELLED), completed_at=now,
                 error={"type": "cancelled", "code": "cancelled_by_user",
                        "message": "job cancelled before this item was sent",
                        "retryable": False}))
        return res.rowcount

    def fail_items_over_bytes(self, job_id: str, max_bytes: int, error: dict[str, Any],
                              now: datetime) -> int:
        """Pending items whose line alone exceeds the batch's byte limit (it was lowered after
        the job was created): they can never be sent, so they fail instead of blocking plan."""
        res = self.conn.execute(update(items).where(
            items.c.job_id == job_id, items.c.status.in_(moving(ItemStatus.FAILED,
                                                                ItemStatus.PENDING)),
            items.c.wire_bytes + 1 > max_bytes,
        ).values(status=str(ItemStatus.FAILED), error=error, completed_at=now))
        return res.rowcount

    def fail_unsent_items(self, batch_id: str, error: dict[str, Any], now: datetime) -> int:
        """Queued items of a batch the provider refused for good."""
        res = self.conn.execute(update(items).where(
            items.c.batch_id == batch_id,
            items.c.status.in_(moving(ItemStatus.FAILED, ItemStatus.QUEUED)),
        ).values(status=str(ItemStatus.FAILED), error=error, completed_at=now))
        return res.rowcount
