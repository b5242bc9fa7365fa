"""From what a unit of work committed to the metrics: one place, instead of counters sprinkled
over the services.

The unit of work hands over the changes ``save`` applied and the events it is about to write;
``observe`` reads what the labels and durations need (a few indexed lookups, only for the rare
transitions that need them) inside the same transaction, and returns the updates, which the
unit of work applies after the commit succeeded: a rolled-back change is never counted, and a
change saved twice (a redelivered task) is applied only once by the database, so counted once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, func, select

from llmbatch.db.result_totals import batch_totals
from llmbatch.db.tables import jobs, provider_batches
from llmbatch.domain.changes import BatchChange, JobChange
from llmbatch.domain.events import Event, EventType
from llmbatch.domain.states import ItemStatus, is_terminal
from llmbatch.observability.metrics import Metrics, metrics
from llmbatch.pricing import from_pusd

__all__ = ["observe"]

Update = Callable[[], None]

_CACHE_SIZE = 4096
_job_labels: OrderedDict[str, tuple[str, str]] = OrderedDict()
_batch_labels: OrderedDict[str, tuple[str, str]] = OrderedDict()
_TOKEN_KINDS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")


def _remember(cache: OrderedDict[str, tuple[str, str]], key: str,
              value: tuple[str, str]) -> tuple[str, str]:
    cache[key] = value
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def _labels_of_job(conn: Connection, job_id: str) -> tuple[str, str]:
    known = _job_labels.get(job_id)
    if known is not None:
        return known
    row = conn.execute(select(jobs.c.provider, jobs.c.model).where(jobs.c.id == job_id)).first()
    return _remember(_job_labels, job_id, (row.provider, row.model) if row else ("", ""))


def _labels_of_batch(conn: Connection, batch_id: str) -> tuple[str, str]:
    known = _batch_labels.get(batch_id)
    if known is not None:
        return known
    b = provider_batches.c
    row = conn.execute(select(b.provider, b.model).where(b.id == batch_id)).first()
    return _remember(_batch_labels, batch_id, (row.provider, row.model) if row else ("", ""))


def _utc(moment: Any) -> datetime | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    value: datetime = moment
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _seconds(later: datetime, earlier: Any) -> float | None:
    start = _utc(earlier)
    return None if start is None else max((_utc(later) or later) - start, _ZERO).total_seconds()


_ZERO = datetime(2000, 1, 1, tzinfo=UTC) - datetime(2000, 1, 1, tzinfo=UTC)


def observe(conn: Connection, changes: Sequence[BatchChange | JobChange],
            events: Sequence[Event]) -> list[Update]:
    """The metric updates for one committed unit of work (apply them after the commit)."""
    m = metrics()
    updates: list[Update] = []
    for change in changes:
        if isinstance(change, BatchChange) and change.to is None:
            provider, _ = _labels_of_batch(conn, change.batch_id)
            if "poll_count" in change.values:
                updates.append(m.polls.labels(provider).inc)
            elif change.values.get("call_failures", 0):
                updates.append(m.retries.labels(provider, "call").inc)
    for event in events:
        updates.extend(_for_event(conn, m, event))
    return updates


def _for_event(conn: Connection, m: Metrics, event: Event) -> list[Update]:
    provider, model = _labels_of_job(conn, event.job_id)
    updates: list[Update] = [m.batch_events.labels(provider, str(event.type)).inc]
    kind = event.type
    if kind is EventType.JOB_CREATED:
        updates.append(m.jobs_created.labels(provider, model).inc)
    elif kind is EventType.JOB_COMPLETED and event.to_status:
        updates.extend(_job_finished(conn, m, event, provider, model))
    elif kind is EventType.BATCH_ADOPTED:
        updates.append(m.adoptions.labels(provider).inc)
    elif kind is EventType.BATCH_SUBMIT_RETRY:
        updates.append(m.retries.labels(provider, "submit").inc)
    elif kind is EventType.BATCH_PLANNED and int(event.data.get("attempt", 1)) > 1:
        updates.append(m.rebatches.labels(provider).inc)
    elif kind is EventType.BATCH_ENDED and event.batch_id:
        submitted = conn.execute(select(provider_batches.c.submitted_at).where(
            provider_batches.c.id == event.batch_id)).scalar()
        took = _seconds(event.at, submitted)
        if took is not None:
            updates.append(lambda: m.batch_turnaround.labels(provider, model).observe(took))
    elif kind is EventType.BATCH_FETCHED and event.batch_id:
        updates.extend(_usage(conn, m, event.batch_id, provider, model))
    return updates


def _job_finished(conn: Connection, m: Metrics, event: Event, provider: str,
                  model: str) -> list[Update]:
    status = str(event.to_status)
    updates: list[Update] = [m.jobs_finished.labels(provider, model, status).inc]
    for item_status, count in event.data.items():
        if item_status in ItemStatus.__members__.values() and count and \
                is_terminal(ItemStatus(item_status)):
            updates.append(partial(m.items_finished.labels(provider, model, item_status).inc,
                                   count))
    created = conn.execute(select(jobs.c.created_at).where(jobs.c.id == event.job_id)).scalar()
    took = _seconds(event.at, created)
    if took is not None:
        updates.append(lambda: m.job_duration.labels(provider, model, status).observe(took))
    fetched = conn.execute(select(func.max(provider_batches.c.fetched_at)).where(
        provider_batches.c.job_id == event.job_id)).scalar()
    lag = _seconds(event.at, fetched)
    if lag is not None:
        updates.append(lambda: m.fetch_to_finalize.labels(provider).observe(lag))
    return updates


def _usage(conn: Connection, m: Metrics, batch_id: str, provider: str,
           model: str) -> list[Update]:
    """Tokens and cost of what this batch settled (``db.result_totals.batch_totals``)."""
    totals = batch_totals(conn, batch_id)
    row = (*(totals[kind] for kind in _TOKEN_KINDS), totals["cost_pusd"])
    updates: list[Update] = []
    for kind, value in zip(_TOKEN_KINDS, row[:4], strict=True):
        if value:
            updates.append(partial(m.tokens.labels(provider, model,
                                                   kind.removesuffix("_tokens")).inc,
                                   int(value)))
    if row[4]:
        cost = float(from_pusd(int(row[4])))
        updates.append(lambda: m.cost.labels(provider, model).inc(cost))
    return updates
