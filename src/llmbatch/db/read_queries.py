"""Read-only queries behind the read models (``service_layer.read_models``): what people read
about jobs, their provider batches, events, items and results.

Kept apart from the ``Repository``, which serves the lifecycle's writes and hot paths: these
queries select only the columns a reader shows, aggregate a job's items in one grouped pass,
and page with keysets (never ``OFFSET``), so a page costs the same on page 1 and page 1,000.
They run inside ``reading(engine)``, a read-only transaction that holds up no writer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Text, and_, cast, func, or_, select

from llmbatch.db.engine import read_only_connection
from llmbatch.db.item_queries import AnyRow
from llmbatch.db.item_view import ITEMS_WITH_RESULTS, counts_with_stored_results, settled
from llmbatch.db.tables import events, item_attempts, items, jobs, provider_batches
from llmbatch.domain.states import ItemStatus, JobStatus

__all__ = ["RESULT_COLUMNS", "ReadQueries", "reading"]

_JOB_COLUMNS = (jobs.c.id, jobs.c.tenant, jobs.c.name, jobs.c.provider, jobs.c.model,
                jobs.c.endpoint, jobs.c.status, jobs.c.item_count, jobs.c.parent_job_id,
                jobs.c.created_at, jobs.c.submitted_at, jobs.c.completed_at, jobs.c.error,
                jobs.c.metadata)

_BATCH_COLUMNS = (provider_batches.c.id, provider_batches.c.status, provider_batches.c.attempt,
                  provider_batches.c.item_count, provider_batches.c.provider_batch_id,
                  provider_batches.c.provider_status, provider_batches.c.request_counts,
                  provider_batches.c.poll_count, provider_batches.c.error,
                  provider_batches.c.error_code, provider_batches.c.created_at,
                  provider_batches.c.submitted_at, provider_batches.c.ended_at,
                  provider_batches.c.next_poll_at, provider_batches.c.lease_until,
                  provider_batches.c.lease_owner, provider_batches.c.call_failures,
                  provider_batches.c.cleanup_state, provider_batches.c.cleanup_attempts)

# Item columns come from ``db.item_view``: the item row with its stored result laid over it
# (every query naming them selects from ``ITEMS_WITH_RESULTS``).
_TOKEN_COLUMNS = (settled.input_tokens, settled.output_tokens, settled.cached_tokens,
                  settled.reasoning_tokens, settled.cache_write_tokens,
                  settled.cache_write_1h_tokens)
_USAGE_COLUMNS = (*_TOKEN_COLUMNS, settled.cost_pusd)

_ITEM_COLUMNS = (items.c.seq, items.c.custom_id, settled.status, items.c.attempts,
                 items.c.batch_id, settled.finish_reason, settled.error, settled.completed_at,
                 *_USAGE_COLUMNS)

# What a result record holds: everything but the request (which may be large and is not
# output) and the bookkeeping columns.
RESULT_COLUMNS = (*_ITEM_COLUMNS, settled.output_text, settled.response)


@contextmanager
def reading(engine: Engine) -> Iterator[ReadQueries]:
    """``ReadQueries`` on a read-only transaction: one consistent snapshot, no write lock."""
    with read_only_connection(engine) as conn:
        yield ReadQueries(conn)


class ReadQueries:
    """The read side's queries on one connection (see the module docstring)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # ---- jobs -----------------------------------------------------------------------------
    def job(self, job_id: str, tenant: str | None = None) -> AnyRow | None:
        """A job's row (without its config snapshot); None if absent or another tenant's."""
        query = select(*_JOB_COLUMNS).where(jobs.c.id == job_id)
        if tenant is not None:
            query = query.where(jobs.c.tenant == tenant)
        return self.conn.execute(query).first()

    def jobs(self, *, limit: int, before: tuple[datetime, str] | None = None,
             statuses: Collection[JobStatus] = (), tenant: str | None = None,
             provider: str | None = None, parent_job_id: str | None = None) -> list[AnyRow]:
        """Up to ``limit`` jobs, newest first, strictly after ``before`` (the ``created_at``
        and id of the last job of the previous page) in that order."""
        query = select(*_JOB_COLUMNS).order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        if before is not None:
            created_at, job_id = before
            query = query.where(or_(jobs.c.created_at < created_at,
                                    and_(jobs.c.created_at == created_at, jobs.c.id < job_id)))
        if statuses:
            query = query.where(jobs.c.status.in_([str(s) for s in statuses]))
        if tenant is not None:
            query = query.where(jobs.c.tenant == tenant)
        if provider is not None:
            query = query.where(jobs.c.provider == provider)
        if parent_job_id is not None:
            query = query.where(jobs.c.parent_job_id == parent_job_id)
        return list(self.conn.execute(query.limit(limit)).all())

    def item_counts(self, job_ids: Sequence[str]) -> dict[str, dict[ItemStatus, int]]:
        """``job id -> status -> items`` for several jobs in two queries (no sums, so the
        ``(job_id, status)`` index answers the first alone; the second reads the stored
        results' totals of the jobs' batches: ``db.item_view``)."""
        if not job_ids:
            return {}
        own: dict[str, list[tuple[str, int]]] = {job_id: [] for job_id in job_ids}
        query = (select(items.c.job_id, items.c.status, func.count())
                 .where(items.c.job_id.in_(list(job_ids)))
                 .group_by(items.c.job_id, items.c.status))
        for job_id, status, count in self.conn.execute(query).all():
            own[job_id].append((status, int(count)))
        stored: dict[str, list[dict[str, dict[str, int]]]] = {job_id: [] for job_id in job_ids}
        b = provider_batches.c
        for job_id, totals in self.conn.execute(select(b.job_id, b.result_totals).where(
                b.job_id.in_(list(job_ids)), b.result_totals.is_not(None))).all():
            stored[job_id].append(totals)
        return {job_id: {ItemStatus(status): n for status, n in
                         counts_with_stored_results(own[job_id], stored[job_id]).items()}
                for job_id in job_ids}

    def item_totals(self, job_id: str) -> list[AnyRow]:
        """Per item status of a job: ``status, items, input_tokens, output_tokens,
        cached_tokens, reasoning_tokens, cache_write_tokens, cache_write_1h_tokens, cost_pusd,
        sync_cost_pusd`` (costs NULL when no item of that status has a price). One grouped
        pass over the job's items for counts, usage and cost together."""
        query = (select(settled.status, func.count().label("items"),
                        *(func.coalesce(func.sum(c), 0).label(c.name)
                          for c in _TOKEN_COLUMNS),
                        func.sum(settled.cost_pusd).label("cost_pusd"),
                        func.sum(settled.sync_cost_pusd).label("sync_cost_pusd"))
                 .select_from(ITEMS_WITH_RESULTS)
                 .where(items.c.job_id == job_id).group_by(settled.status))
        return list(self.conn.execute(query).all())

    # ---- provider batches -----------------------------------------------------------------
    def batches(self, job_id: str) -> list[AnyRow]:
        """A job's provider batches, oldest first."""
        query = (select(*_BATCH_COLUMNS).where(provider_batches.c.job_id == job_id)
                 .order_by(provider_batches.c.created_at, provider_batches.c.id))
        return list(self.conn.execute(query).all())

    # ---- events ---------------------------------------------------------------------------
    def events(self, job_id: str, *, after_id: int | None, limit: int) -> list[AnyRow]:
        """Up to ``limit`` events of a job with an id above ``after_id``, oldest first."""
        query = select(events).where(events.c.job_id == job_id)
        if after_id is not None:
            query = query.where(events.c.id > after_id)
        return list(self.conn.execute(query.order_by(events.c.id).limit(limit)).all())

    # ---- items and results ----------------------------------------------------------------
    def items(self, job_id: str, *, after_seq: int | None, limit: int,
              statuses: Collection[ItemStatus] = ()) -> list[AnyRow]:
        """Up to ``limit`` items of a job after ``after_seq``, in input order (no request or
        response bodies)."""
        return self._items_after(_ITEM_COLUMNS, job_id, after_seq, limit, statuses)

    def results(self, job_id: str, *, after_seq: int | None, limit: int) -> list[AnyRow]:
        """Up to ``limit`` items of a job after ``after_seq``, in input order, with their
        output."""
        return self._items_after(RESULT_COLUMNS, job_id, after_seq, limit, ())

    def _items_after(self, columns: Sequence[ColumnElement[Any]], job_id: str,
                     after_seq: int | None, limit: int,
                     statuses: Collection[ItemStatus]) -> list[AnyRow]:
        query = select(*columns).select_from(ITEMS_WITH_RESULTS).where(items.c.job_id == job_id)
        if after_seq is not None:
            query = query.where(items.c.seq > after_seq)
        if statuses:
            query = query.where(settled.status.in_([str(s) for s in statuses]))
        return list(self.conn.execute(query.order_by(items.c.seq).limit(limit)).all())

    def attempts(self, job_id: str, first_seq: int, last_seq: int) -> list[AnyRow]:
        """Earlier unsuccessful attempts of a run of a job's items (``item_attempts`` rows),
        by item then in the order they happened."""
        query = (select(item_attempts.c.seq, item_attempts.c.attempt, item_attempts.c.batch_id,
                        item_attempts.c.outcome, item_attempts.c.error, item_attempts.c.at)
                 .where(item_attempts.c.job_id == job_id,
                        item_attempts.c.seq.between(first_seq, last_seq))
                 .order_by(item_attempts.c.seq, item_attempts.c.id))
        return list(self.conn.execute(query).all())


# ---- results as JSON text (the API's download) -----------------------------------------------
_RAW_RESULT_COLUMNS = (items.c.seq, items.c.custom_id, settled.status, settled.output_text,
                       settled.finish_reason, cast(settled.response, Text).label("response"),
                       *_TOKEN_COLUMNS, settled.cost_pusd,
                       cast(settled.error, Text).label("error"), items.c.attempts)


def raw_results(conn: Connection, job_id: str, *, after_seq: int | None,
                limit: int) -> list[AnyRow]:
    """``ReadQueries.results`` with ``response`` and ``error`` as their stored JSON text, not
    decoded: what a JSON-lines download splices in as it is."""
    query = (select(*_RAW_RESULT_COLUMNS).select_from(ITEMS_WITH_RESULTS)
             .where(items.c.job_id == job_id))
    if after_seq is not None:
        query = query.where(items.c.seq > after_seq)
    return list(conn.execute(query.order_by(items.c.seq).limit(limit)).all())
