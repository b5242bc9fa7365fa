"""Repository: intention-named queries over the tables, in bulk where items are concerned.

Jobs and batches change through one ``save`` each, which persists a change value decided in
the domain (``domain.changes``): a conditional UPDATE whose ``WHERE status IN (<allowed
sources>)`` comes from the transition table and whose lease condition is the holder's token,
so a late or duplicated task cannot move anything backwards, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    func,
    insert,
    or_,
    select,
    update,
)

from llmbatch.db.item_queries import AnyRow, ItemQueries
from llmbatch.db.tables import events, jobs, provider_batches
from llmbatch.domain.batch import ProviderBatch
from llmbatch.domain.changes import BatchChange, JobChange, LeaseRule
from llmbatch.domain.events import Event
from llmbatch.domain.job import Job
from llmbatch.domain.models import BatchFailure, Endpoint
from llmbatch.domain.states import BatchStatus, JobStatus, sources_of
from llmbatch.errors import NotFoundError

__all__ = ["AnyRow", "Repository"]


OPEN_BATCH_STATES = (BatchStatus.PLANNED, BatchStatus.SUBMITTING, BatchStatus.IN_PROGRESS,
                     BatchStatus.CANCELLING, BatchStatus.ENDED)

_BATCH_FIELDS = [c.name for c in provider_batches.columns if c.name not in {
    "fetched_at", "updated_at", "cleanup_state", "cleanup_attempts", "result_totals"}]


def _job_from_row(row: AnyRow) -> Job:
    m = row._mapping
    return Job(
        id=m["id"], name=m["name"], provider=m["provider"], model=m["model"],
        endpoint=Endpoint(m["endpoint"]), status=JobStatus(m["status"]),
        item_count=m["item_count"], created_at=m["created_at"], tenant=m["tenant"],
        idempotency_key=m["idempotency_key"], parent_job_id=m["parent_job_id"],
        submitted_at=m["submitted_at"], completed_at=m["completed_at"], error=m["error"],
        metadata=dict(m["metadata"] or {}),
    )


def _batch_from_row(row: AnyRow) -> ProviderBatch:
    m = row._mapping
    values = {k: m[k] for k in _BATCH_FIELDS}
    values["status"] = BatchStatus(values["status"])
    values["result_refs"] = dict(values["result_refs"] or {})
    values["request_counts"] = dict(values["request_counts"] or {})
    values["failure"] = BatchFailure.from_dict(values["failure"]) if values["failure"] else None
    return ProviderBatch(**values)


def _stored(values: dict[str, Any]) -> dict[str, Any]:
    """Column values as stored: a ``BatchFailure`` as its dict."""
    failure = values.get("failure")
    if isinstance(failure, BatchFailure):
        values["failure"] = failure.as_dict()
    return values


class Repository(ItemQueries):
    """Queries and bulk writes on one connection, inside the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # ---- jobs -----------------------------------------------------------------------------
    def add_job(self, job: Job, *, content_hash: str | None,
                config_snapshot: dict[str, Any]) -> None:
        self.conn.execute(insert(jobs).values(
            id=job.id, tenant=job.tenant, name=job.name, provider=job.provider, model=job.model,
            endpoint=str(job.endpoint), status=str(job.status), item_count=job.item_count,
            idempotency_key=job.idempotency_key, content_hash=content_hash,
            parent_job_id=job.parent_job_id, config_snapshot=config_snapshot,
            metadata=job.metadata, created_at=job.created_at, updated_at=job.created_at,
        ))

    def finish_ingest(self, job_id: str, *, item_count: int, content_hash: str,
                      idempotency_key: str | None = None) -> None:
        """Totals known only once the whole input was read, and the idempotency key that
        names them."""
        self.conn.execute(update(jobs).where(jobs.c.id == job_id)
                          .values(item_count=item_count, content_hash=content_hash,
                                  idempotency_key=idempotency_key))

    def lock_job(self, job_id: str) -> None:
        """Hold the job's row until the transaction ends, so that the job-level steps of one
        job (plan, finalize) run one at a time even when their messages arrive together.
        PostgreSQL: ``SELECT ... FOR UPDATE``; SQLite renders no lock clause and needs none,
        since ``BEGIN IMMEDIATE`` already serialises writers."""
        self.conn.execute(select(jobs.c.id).where(jobs.c.id == job_id).with_for_update())

    def get_job(self, job_id: str, *, totals: bool = True) -> Job:
        """The job with its item counts and usage totals; ``NotFoundError`` if absent.
        With totals it aggregates over every item of the job: lifecycle steps pass
        ``totals=False`` (or read ``job_status``), and what people read comes from the read
        models (``service_layer.read_models``)."""
        row = self.conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFoundError(f"no job {job_id!r}")
        job = _job_from_row(row)
        if not totals:
            return job
        job.counts = self.item_counts(job_id)
        job.usage = self.usage_totals(job_id)
        job.cost_usd = self.cost_total(job_id)
        return job

    def job_status(self, job_id: str) -> JobStatus:
        """Only the job's status, one column of one row: what a hot path (poll, fetch) needs
        to know, without ``get_job``'s aggregation over every item of the job."""
        status = self.conn.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
        if status is None:
            raise NotFoundError(f"no job {job_id!r}")
        return JobStatus(status)

    def job_status_and_tenant(self, job_id: str) -> tuple[JobStatus, str]:
        """The job's status and tenant, two columns of one row: what poll and fetch need (the
        tenant goes on their log lines) at the cost of ``job_status``."""
        row = self.conn.execute(select(jobs.c.status, jobs.c.tenant)
                                .where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFoundError(f"no job {job_id!r}")
        return JobStatus(row.status), str(row.tenant)

    def find_job_by_idempotency_key(self, tenant: str, key: str) -> tuple[str, str | None] | None:
        """``(job_id, content_hash)`` of the job created with this key, if any."""
        row = self.conn.execute(select(jobs.c.id, jobs.c.content_hash).where(
            jobs.c.tenant == tenant, jobs.c.idempotency_key == key)).first()
        return (row.id, row.content_hash) if row else None

    def save_job(self, change: JobChange) -> bool:
        """Persist a job transition; False if the job is no longer in a status that may make
        it (another step got there first)."""
        sources = [str(s) for s in sources_of(change.to)]
        res = self.conn.execute(update(jobs).where(jobs.c.id == change.job_id,
                                                   jobs.c.status.in_(sources))
                                .values(status=str(change.to), updated_at=change.at,
                                        **change.values))
        return res.rowcount == 1

    def config_snapshot(self, job_id: str) -> dict[str, Any]:
        snap = self.conn.execute(select(jobs.c.config_snapshot).where(jobs.c.id == job_id))
        return dict(snap.scalar_one() or {})

    def idle_running_jobs(self, limit: int) -> list[str]:
        """Running or cancelling jobs with no open batch: finalize should look at them."""
        b = provider_batches.c
        open_states = [str(s) for s in OPEN_BATCH_STATES]
        busy = select(b.id).where(b.job_id == jobs.c.id, b.status.in_(open_states)).exists()
        query = select(jobs.c.id).where(
            jobs.c.status.in_([str(JobStatus.RUNNING), str(JobStatus.CANCELLING)]), ~busy)
        return list(self.conn.execute(query.limit(limit)).scalars())

    def jobs_in_status(self, statuses: Iterable[JobStatus], limit: int) -> list[str]:
        query = select(jobs.c.id).where(jobs.c.status.in_([str(s) for s in statuses]))
        return list(self.conn.execute(query.order_by(jobs.c.created_at).limit(limit)).scalars())

    # ---- provider batches -----------------------------------------------------------------
    def add_batches(self, batches: Sequence[ProviderBatch]) -> None:
        """Many new batches in one executemany (a plan may make thousands)."""
        rows = []
        for batch in batches:
            values = _stored({k: getattr(batch, k) for k in _BATCH_FIELDS})
            values["status"] = str(batch.status)
            rows.append({"updated_at": batch.created_at, **values})
        if rows:
            self.conn.execute(insert(provider_batches), rows)

    def get_batch(self, batch_id: str) -> ProviderBatch:
        row = self.conn.execute(select(provider_batches)
                                .where(provider_batches.c.id == batch_id)).first()
        if row is None:
            raise NotFoundError(f"no provider batch {batch_id!r}")
        return _batch_from_row(row)

    def batches_of_job(self, job_id: str) -> list[ProviderBatch]:
        query = (select(provider_batches).where(provider_batches.c.job_id == job_id)
                 .order_by(provider_batches.c.created_at, provider_batches.c.id))
        return [_batch_from_row(r) for r in self.conn.execute(query).all()]

    def claim_batch(self, batch_id: str, statuses: Iterable[BatchStatus], owner: str,
                    now: datetime, lease_s: float) -> ProviderBatch | None:
        """Take the lease on a batch in one of ``statuses`` whose lease is free or expired.

        A single conditional UPDATE: atomic on SQLite and PostgreSQL, so two workers can never
        both own a batch.
        """
        res = self.conn.execute(update(provider_batches).where(
            provider_batches.c.id == batch_id,
            provider_batches.c.status.in_([str(s) for s in statuses]),
            or_(provider_batches.c.lease_until.is_(None), provider_batches.c.lease_until < now),
        ).values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s),
                 updated_at=now))
        return self.get_batch(batch_id) if res.rowcount == 1 else None

    def save_batch(self, change: BatchChange) -> bool:
        """Persist a batch change made under the lease ``change.owner`` holds (see
        ``domain.changes``); False if the batch moved on or its lease was taken."""
        b = provider_batches.c
        conds = [b.id == change.batch_id, b.lease_owner == change.owner]
        values = dict(change.values)
        if change.to is not None:
            conds.append(b.status.in_([str(s) for s in sources_of(change.to)]))
            values["status"] = str(change.to)
        for column, expected in change.expect.items():
            conds.append(b[column].is_(None) if expected is None else b[column] == expected)
        if change.lease is LeaseRule.RELEASE:
            # The step is over: free the lease and let the tick dispatch the batch again when
            # it is due (the message that brought us here has been consumed).
            values.update(lease_owner=None, lease_until=None, dispatched_at=None)
        res = self.conn.execute(update(provider_batches).where(and_(*conds))
                                .values(updated_at=change.at, **_stored(values)))
        return res.rowcount == 1

    def renew_lease(self, batch_id: str, owner: str, until: datetime) -> bool:
        """Extend a lease its holder still has; False if it was taken."""
        b = provider_batches.c
        res = self.conn.execute(update(provider_batches)
                                .where(b.id == batch_id, b.lease_owner == owner)
                                .values(lease_until=until))
        return res.rowcount == 1

    def planned_batches_of_job(self, job_id: str) -> list[str]:
        b = provider_batches.c
        query = select(b.id).where(b.job_id == job_id, b.status == str(BatchStatus.PLANNED))
        return list(self.conn.execute(query).scalars())

    def due_batches(self, now: datetime, redispatch_before: datetime,
                    limit: int) -> list[tuple[str, BatchStatus]]:
        """Batches some task should act on now, lease free and not dispatched recently:
        planned (submit), in progress or cancelling and due for a poll, ended (fetch)."""
        b = provider_batches.c
        free = or_(b.lease_until.is_(None), b.lease_until < now)
        not_dispatched = or_(b.dispatched_at.is_(None), b.dispatched_at < redispatch_before)
        due = or_(b.next_poll_at.is_(None), b.next_poll_at <= now)
        query = select(b.id, b.status).where(free, not_dispatched, due, b.status.in_([
            str(BatchStatus.PLANNED), str(BatchStatus.IN_PROGRESS), str(BatchStatus.CANCELLING),
            str(BatchStatus.ENDED)])).order_by(b.next_poll_at).limit(limit)
        return [(r.id, BatchStatus(r.status)) for r in self.conn.execute(query).all()]

    def mark_dispatched(self, batch_ids: Sequence[str], now: datetime) -> None:
        """Remember that work was enqueued, so the next tick does not enqueue it again."""
        if batch_ids:
            self.conn.execute(update(provider_batches)
                              .where(provider_batches.c.id.in_(list(batch_ids)))
                              .values(dispatched_at=now))

    def providers_in_flight(self) -> list[str]:
        b = provider_batches.c
        query = select(b.provider).where(b.status == str(BatchStatus.IN_PROGRESS)).distinct()
        return list(self.conn.execute(query).scalars())

    def overdue_batches(self, provider: str, submitted_before: datetime,
                        limit: int) -> list[tuple[str, str]]:
        """``(batch id, job id)`` of a provider's running batches submitted before the cutoff
        that llmbatch has not already decided to cancel."""
        b = provider_batches.c
        query = select(b.id, b.job_id).where(
            b.provider == provider, b.status == str(BatchStatus.IN_PROGRESS),
            b.submitted_at < submitted_before, b.cancel_reason.is_(None))
        return [(r.id, r.job_id) for r in self.conn.execute(query.limit(limit)).all()]

    def stale_submissions(self, now: datetime, limit: int) -> list[str]:
        """Batches left in SUBMITTING by a worker whose lease ran out (it probably died)."""
        b = provider_batches.c
        query = select(b.id).where(b.status == str(BatchStatus.SUBMITTING),
                                   or_(b.lease_until.is_(None), b.lease_until < now))
        return list(self.conn.execute(query.limit(limit)).scalars())

    def open_batch_count(self, job_id: str) -> int:
        b = provider_batches.c
        open_states = [str(s) for s in OPEN_BATCH_STATES]
        query = select(func.count()).where(b.job_id == job_id, b.status.in_(open_states))
        return int(self.conn.execute(query).scalar_one())

    # ---- events ---------------------------------------------------------------------------
    def add_events(self, evs: Sequence[Event]) -> None:
        if evs:
            self.conn.execute(insert(events), [
                {"job_id": e.job_id, "batch_id": e.batch_id, "type": str(e.type),
                 "from_status": e.from_status, "to_status": e.to_status, "at": e.at,
                 "data": e.data} for e in evs])
