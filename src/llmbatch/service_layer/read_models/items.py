"""Read models of a job's items: a page of items (optionally of some statuses only), and every
result in input order, streamed.

Results are read in chunks, each in its own short read-only transaction, so exporting a job of
any size holds no transaction open for long and memory does not grow with the job.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from decimal import Decimal

from llmbatch.bootstrap import Runtime
from llmbatch.db.item_queries import AnyRow
from llmbatch.db.read_queries import reading
from llmbatch.domain.models import Usage
from llmbatch.domain.states import ItemStatus
from llmbatch.pricing import from_pusd
from llmbatch.service_layer.read_models.cursors import check_limit, parse_position, position_cursor
from llmbatch.service_layer.read_models.jobs import require_job
from llmbatch.service_layer.read_models.values import (
    ItemAttempt,
    ItemSummary,
    Page,
    ResultRecord,
)

__all__ = ["RESULT_CHUNK", "job_items", "job_results"]

RESULT_CHUNK = 2000


def job_items(rt: Runtime, job_id: str, *,
              status: ItemStatus | Collection[ItemStatus] | None = None,
              cursor: str | None = None, limit: int = 100,
              tenant: str | None = None) -> Page[ItemSummary]:
    """Up to ``limit`` items of a job in input order, after the item ``cursor`` names; only
    those in ``status`` (one or several) when given."""
    check_limit(limit)
    after_seq = parse_position(cursor) if cursor is not None else None
    statuses = ((ItemStatus(status),) if isinstance(status, str)
                else tuple(ItemStatus(s) for s in status or ()))
    with reading(rt.engine) as q:
        require_job(q, job_id, tenant)
        rows = q.items(job_id, after_seq=after_seq, limit=limit + 1, statuses=statuses)
    entries = tuple(
        ItemSummary(seq=r.seq, custom_id=r.custom_id, status=ItemStatus(r.status),
                    attempts=r.attempts, batch_id=r.batch_id, finish_reason=r.finish_reason,
                    usage=usage_of(r), cost_usd=usd_of(r.cost_pusd), error=r.error,
                    completed_at=r.completed_at)
        for r in rows[:limit])
    return Page(entries, position_cursor(entries[-1].seq) if len(rows) > limit else None)


def job_results(rt: Runtime, job_id: str, *, tenant: str | None = None,
                chunk: int = RESULT_CHUNK) -> Iterator[ResultRecord]:
    """One record per input line, in input order (an unfinished item too, with its status).

    The job is looked up now (``NotFoundError`` before anything is streamed); the records
    are read as the iterator is consumed.
    """
    with reading(rt.engine) as q:
        job = require_job(q, job_id, tenant)._mapping
    return _stream_results(rt, job_id, job["provider"], job["model"], chunk)


def _stream_results(rt: Runtime, job_id: str, provider: str, model: str,
                    chunk: int) -> Iterator[ResultRecord]:
    after_seq: int | None = None
    while True:
        with reading(rt.engine) as q:
            rows = q.results(job_id, after_seq=after_seq, limit=chunk)
            attempts = q.attempts(job_id, rows[0].seq, rows[-1].seq) if rows else []
        if not rows:
            return
        history: dict[int, list[ItemAttempt]] = {}
        for a in attempts:
            history.setdefault(a.seq, []).append(ItemAttempt(
                attempt=a.attempt, batch_id=a.batch_id, outcome=a.outcome, error=a.error,
                at=a.at))
        for r in rows:
            yield ResultRecord(
                custom_id=r.custom_id, status=ItemStatus(r.status), output_text=r.output_text,
                finish_reason=r.finish_reason, response=r.response, usage=usage_of(r),
                cost_usd=usd_of(r.cost_pusd), error=r.error, provider=provider, model=model,
                attempts=r.attempts, history=tuple(history.get(r.seq, ())))
        after_seq = rows[-1].seq


def usage_of(row: AnyRow) -> Usage:
    return Usage(row.input_tokens, row.output_tokens, row.cached_tokens, row.reasoning_tokens,
                 row.cache_write_tokens, row.cache_write_1h_tokens)


def usd_of(pusd: int | None) -> Decimal | None:
    return None if pusd is None else from_pusd(pusd)
