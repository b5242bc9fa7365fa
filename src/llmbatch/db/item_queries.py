"""Item queries of the repository: bulk inserts and conditional bulk updates of a job's
items (a job may hold hundreds of thousands, so never one ORM object at a time)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    func,
    select,
    text,
    update,
)
from sqlalchemy.exc import DataError, DBAPIError, StatementError

from llmbatch import json_text
from llmbatch.db import result_totals
from llmbatch.db.item_view import (
    ITEMS_WITH_RESULTS,
    counts_with_stored_results,
    has_stored_result,
    settled,
)
from llmbatch.db.result_stage import UNSTORED, Applied, ResultRow, applying_results
from llmbatch.db.tables import items, provider_batches
from llmbatch.domain.models import Usage
from llmbatch.domain.states import ItemStatus, moving
from llmbatch.pausable import Pausable, run_through
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


# Both answer one JSON object, key -> attempts: one value to read back, not a thousand rows.
_OPEN_ATTEMPTS_POSTGRES = text(f"""
    SELECT CAST(json_object_agg(k.key, found.attempts) AS TEXT)
    FROM jsonb_array_elements_text(CAST(:keys AS JSONB)) AS k(key)
    CROSS JOIN LATERAL (
      SELECT items.attempts FROM items
      WHERE items.batch_id = :batch_id AND items.provider_key = k.key
        AND items.status = '{ItemStatus.SUBMITTED}' AND {UNSTORED.format(key="k.key")}
      OFFSET 0) AS found""")
# SQLite: the keys from their JSON array (``json_each``); CROSS JOIN keeps the keys the outer
# loop, each probing the (batch_id, provider_key) index.
_OPEN_ATTEMPTS_SQLITE = text(f"""
    SELECT json_group_object(k.value, items.attempts) FROM json_each(:keys) AS k CROSS JOIN items
    WHERE items.batch_id = :batch_id AND items.provider_key = k.value
      AND items.status = '{ItemStatus.SUBMITTED}' AND {UNSTORED.format(key="k.value")}""")
# Every open key of the batch: one range of the (batch_id, provider_key) index, one anti-join.
_ALL_OPEN_ATTEMPTS = f"""
    SELECT {{aggregate}} FROM items
    WHERE items.batch_id = :batch_id AND items.status = '{ItemStatus.SUBMITTED}'
      AND {UNSTORED.format(key="items.provider_key")}"""
_ALL_OPEN_ATTEMPTS_POSTGRES = text(_ALL_OPEN_ATTEMPTS.format(
    aggregate="CAST(json_object_agg(items.provider_key, items.attempts) AS TEXT)"))
_ALL_OPEN_ATTEMPTS_SQLITE = text(_ALL_OPEN_ATTEMPTS.format(
    aggregate="json_group_object(items.provider_key, items.attempts)"))


def _attempts_by_key(found: str | None) -> dict[str, int]:
    """The JSON object the open-attempts queries answer, as a dict (no row per key)."""
    return {} if found is None else json_text.loads(found)


_SAMPLED = {"items": "job_id, seq, status, batch_id", "item_results": "batch_id, provider_key"}
_STALE_STATISTICS = text("""
    SELECT relname FROM pg_stat_user_tables
    WHERE schemaname = current_schema() AND relname IN ('items', 'item_results')
      AND n_mod_since_analyze > 50 + 0.1 * n_live_tup""")


class ItemQueries:
    """The ``items`` half of ``Repository`` (mixed in; shares its connection)."""

    conn: Connection

    def item_counts(self, job_id: str) -> dict[ItemStatus, int]:
        """Items per status: the item rows' own (the ``(job_id, status)`` index alone) with
        the batches' stored results moved out of ``submitted`` (``db.item_view``)."""
        query = (select(items.c.status, func.count()).where(items.c.job_id == job_id)
                 .group_by(items.c.status))
        stored = self.conn.execute(select(provider_batches.c.result_totals).where(
            provider_batches.c.job_id == job_id,
            provider_batches.c.result_totals.is_not(None))).scalars()
        own = [(str(status), int(n)) for status, n in self.conn.execute(query).all()]
        counts = counts_with_stored_results(own, stored)
        return {ItemStatus(s): n for s, n in counts.items()}

    def cost_total(self, job_id: str) -> Decimal | None:
        """Exact sum of item batch costs in USD (None when no item has a price)."""
        total = self.conn.execute(select(func.sum(settled.cost_pusd))
                                  .select_from(ITEMS_WITH_RESULTS)
                                  .where(items.c.job_id == job_id)).scalar_one()
        return None if total is None else from_pusd(int(total))

    def usage_totals(self, job_id: str) -> Usage:
        row = self.conn.execute(select(
            func.coalesce(func.sum(settled.input_tokens), 0),
            func.coalesce(func.sum(settled.output_tokens), 0),
            func.coalesce(func.sum(settled.cached_tokens), 0),
            func.coalesce(func.sum(settled.reasoning_tokens), 0),
            func.coalesce(func.sum(settled.cache_write_tokens), 0),
            func.coalesce(func.sum(settled.cache_write_1h_tokens), 0),
        ).select_from(ITEMS_WITH_RESULTS).where(items.c.job_id == job_id)).one()
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

    def record_results(self, batch_id: str, rows: Sequence[ResultRow], now: datetime,
                       totals: result_totals.Totals) -> Applied:
        """Store result rows (at most one per provider key, each for a submitted item of the
        batch with no stored result: ``open_attempts``) in bulk, with the history of
        those that did not succeed (``db.result_stage``), and write ``totals``: the batch's
        ``result_totals`` once these are stored (``db.result_totals``).

        A value the database refuses fails the whole call (``is_refused_value``): the caller
        makes results storable first (``domain.storable``) and isolates what still fails.
        """
        return run_through(self.recording_results(batch_id, rows, now, totals))

    def recording_results(self, batch_id: str, rows: Sequence[ResultRow], now: datetime,
                          totals: result_totals.Totals) -> Pausable[Applied]:
        """``record_results`` as a generator that may pause once, while the server takes the
        rows in (``result_stage.applying_results``): the fetch reads its next chunk then."""
        applied = yield from applying_results(self.conn, batch_id, rows, now)
        result_totals.write_totals(self.conn, batch_id, totals)
        return applied

    def stored_totals(self, batch_id: str) -> result_totals.Totals:
        """The batch's stored results summed per status (``db.result_totals``)."""
        return result_totals.stored_totals(self.conn, batch_id)

    def settle_unreported_items(self, batch_id: str, final: ItemStatus,
                                error: dict[str, Any] | None, now: datetime,
                                retry_below_attempts: int | None = None) -> int:
        """Items the provider returned no line for (submitted, no stored result). Those with
        fewer than ``retry_below_attempts`` attempts go back to pending; the rest get
        ``final``."""
        b = items.c
        moved = 0
        if retry_below_attempts is not None:
            moved += self.conn.execute(update(items).where(
                b.batch_id == batch_id,
                b.status.in_(moving(ItemStatus.PENDING, ItemStatus.SUBMITTED)),
                b.attempts < retry_below_attempts, ~has_stored_result(),
            ).values(status=str(ItemStatus.PENDING), batch_id=None, error=error)).rowcount
        moved += self.conn.execute(update(items).where(
            b.batch_id == batch_id, b.status.in_(moving(final, ItemStatus.SUBMITTED)),
            ~has_stored_result(),
        ).values(
            status=str(final), error=error, completed_at=now)).rowcount
        return moved

    def open_attempts(self, batch_id: str, provider_keys: Sequence[str]) -> dict[str, int]:
        """``provider_key -> attempts`` for those of ``provider_keys`` that name a submitted
        item of the batch with no stored result: the keys of a chunk a fetch may store.
        One index probe per key (PostgreSQL: a LATERAL lookup per key, so statistics of a
        batch inserted moments ago cannot turn it into a scan of the whole batch per chunk);
        nothing held for the whole batch, whose size a provider may put at a million."""
        if not provider_keys:
            return {}
        # The keys as one JSON array: one value to bind, not a thousand (or an array dumped
        # element by element).
        query = (_OPEN_ATTEMPTS_POSTGRES if self.conn.dialect.name == "postgresql"
                 else _OPEN_ATTEMPTS_SQLITE)
        found = self.conn.execute(query, {
            "batch_id": batch_id, "keys": json_text.dumps(list(provider_keys))}).scalar()
        return _attempts_by_key(found)

    def all_open_attempts(self, batch_id: str) -> dict[str, int]:
        """``open_attempts`` for every key of the batch at once, answered as one JSON object
        (a row object per key costs more than the query): a fifth of the server's work of
        asking chunk by chunk (a lookup per key), for a dict of the batch's size."""
        query = (_ALL_OPEN_ATTEMPTS_POSTGRES if self.conn.dialect.name == "postgresql"
                 else _ALL_OPEN_ATTEMPTS_SQLITE)
        return _attempts_by_key(self.conn.execute(query, {"batch_id": batch_id}).scalar())

    def refresh_item_statistics(self) -> None:
        """Have PostgreSQL sample ``items`` and ``item_results`` again (``ANALYZE``) when rows
        changed since their last sample exceed autovacuum's own threshold (50 + 10 % of the
        table), without waiting for autovacuum to come round; SQLite plans without statistics.

        Rows inserted in bulk moments ago are not in the planner's statistics: it then takes
        a finished job of 50,000 items for a few dozen and reads each page of its results by
        sorting all the rest (95 ms a page instead of 2 ms, measured; reading 500,000 results
        back slowed to ~1,500 a second). A sample costs about the same at any table size, so
        small jobs finishing on a large table do not each pay for one."""
        if self.conn.dialect.name != "postgresql":
            return
        for (table,) in self.conn.execute(_STALE_STATISTICS).all():
            # Only the columns queries filter, join and sort on: the bodies are not read.
            self.conn.exec_driver_sql(f"ANALYZE {table} ({_SAMPLED[table]})")

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
