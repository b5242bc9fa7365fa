"""Use cases a user starts: create a job from a JSONL file, cancel it, retry it. (What they
read, results included, comes from the read models: ``service_layer.read_models``.)"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog

from llmbatch.bootstrap import Runtime
from llmbatch.db.item_ingest import ItemWriter, duplicate_provider_keys
from llmbatch.db.lineage_queries import (
    copy_latest_for_retry,
    latest_status_counts,
    lineage_job_ids,
)
from llmbatch.db.retention import requests_dropped
from llmbatch.domain.events import Event, EventType
from llmbatch.domain.ids import new_id
from llmbatch.domain.job import Job
from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus, is_terminal
from llmbatch.errors import ConflictError, InputError, NotFoundError
from llmbatch.service_layer import tasks
from llmbatch.service_layer.budgets import budgets_apply, check_new_job
from llmbatch.service_layer.estimates import BoundPricer
from llmbatch.service_layer.intake import Intake, check_file, preflight
from llmbatch.service_layer.model_checks import JOB_OPTIONS_KEY, job_adapter
from llmbatch.service_layer.pricing import model_prices, unpriced_hint
from llmbatch.service_layer.provider_data import retention_for_job
from llmbatch.service_layer.unit_of_work import UnitOfWork
from llmbatch.webhooks.outbox import WebhookOutbox
from llmbatch.webhooks.urls import check_webhook_url

log = structlog.get_logger(__name__)

__all__ = [
    "RetryOutcome",
    "cancel_job",
    "create_job",
    "request_from_stored",
    "retry_job",
    "retry_lineage",
]

INSERT_CHUNK = 5000  # rows a SQLite write takes at once (PostgreSQL streams one COPY)


def request_from_stored(index: int, custom_id: str, stored: dict[str, Any]) -> RequestLine:
    """Rebuild a ``RequestLine`` from the ``request`` column."""
    return RequestLine(index=index, custom_id=custom_id, body=stored.get("body"),
                       native=stored.get("native"))


def create_job(rt: Runtime, path: Path, *, provider: str, model: str,
               endpoint: Endpoint = Endpoint.CHAT, name: str | None = None,
               idempotency_key: str | None = None, tenant: str = "default",
               metadata: dict[str, Any] | None = None, strict_model: bool = False,
               warn: Callable[[str], None] | None = None, webhook_url: str | None = None,
               max_cost: Decimal | None = None,
               retention: Mapping[str, Any] | None = None,
               job_options: dict[str, Any] | None = None) -> tuple[str, bool]:
    """Validate and store a job from a JSONL file in one transaction; plan it.

    One pass (``service_layer.intake``) checks every line and streams the good ones into the
    database in bulk chunks (``db.item_ingest``: COPY / executemany), so memory does not grow
    with the file; duplicate ids are the items table's unique constraint to find. Any problem
    raises ``InputProblems`` listing them all (file, line, field; a second, spilled pass names
    duplicates) and rolls everything back: nothing is stored. ``warn`` receives one line per
    thing done unasked (a ``body.model`` ignored for the job's model, unless ``strict_model``
    refuses it). Returns ``(job_id, created)``;
    ``created`` is False when the idempotency key named an existing job with the same content.

    ``webhook_url`` (checked against ``webhooks.allowed_hosts`` first) receives a signed event
    when the job ends (``llmbatch.webhooks``). Each item keeps the batch price of its upper
    bound (``estimates.item_bound``, priced by ``BoundPricer``), what budgets reserve;
    ``max_cost`` (USD) caps the job, and a job that cannot fit its budgets is refused here
    with the figures
    (``budgets.check_new_job``). ``retention`` overrides the provider's ``retention``
    settings for this job (stored in its config snapshot; ``provider_data``).
    ``job_options`` are the provider's per-job options (e.g. betas), checked and stored
    with the job (``model_checks.job_adapter``).
    """
    if webhook_url is not None:
        check_webhook_url(rt.config.webhooks, webhook_url)
    adapter, options = job_adapter(preflight(rt, provider=provider, model=model,
                                             endpoint=endpoint),
                                   model=model, endpoint=endpoint, job_options=job_options)
    file = str(path)
    intake = Intake(adapter, file=file, endpoint=endpoint, model=model,
                    limits=adapter.effective_limits(model), strict_model=strict_model)
    now = rt.clock()
    job = Job(id=new_id("job"), name=name, provider=provider, model=model, endpoint=endpoint,
              status=JobStatus.PENDING, item_count=0, created_at=now, tenant=tenant,
              idempotency_key=idempotency_key, metadata=metadata or {})
    provider_config = rt.config.provider(provider)
    snapshot = provider_config.model_dump(mode="json", exclude={"api_key"})
    if retention:
        snapshot["retention"] = retention_for_job(adapter, provider_config.retention,
                                                  retention).model_dump(mode="json")
    if options:
        snapshot[JOB_OPTIONS_KEY] = options
    prices = model_prices(rt, provider, model, now)
    if prices is None and budgets_apply(rt, tenant, max_cost):
        raise InputError(f"a budget applies but {unpriced_hint(provider, model)}",
                         field="max_cost" if max_cost is not None else "model")
    bound_total = 0
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read input: {exc.strerror}", file=file) from exc
    with rt.uow() as uow, handle:
        # The key is set only once the content hash is known (``finish_ingest``): stored now,
        # the lookup below would find this very job, and a second create would hit the unique
        # constraint before it could compare contents.
        uow.repo.add_job(replace(job, idempotency_key=None), content_hash=None,
                         config_snapshot=snapshot)
        if webhook_url is not None:
            WebhookOutbox(uow.repo.conn).set_url(job.id, webhook_url)
        conn = uow.repo.conn
        pricer = BoundPricer(rt, prices)
        with ItemWriter(conn, job.id, chunk=INSERT_CHUNK) as writer:
            for req, encoded, tokens, _, output_limit, stored in intake.scan(handle):
                if not (intake.report.ok and writer.ok):
                    continue  # refused in the end: the rest is only checked
                bound_pusd = pricer.batch_pusd(tokens, output_limit)
                bound_total += bound_pusd or 0
                writer.add((req.index, req.custom_id, encoded.provider_key, stored,
                            len(encoded.data), tokens, bound_pusd))
            # A refused file's last rows are not written only to be rolled back.
            stored_all = intake.report.ok and writer.finish()
        if intake.report.ok and stored_all:
            stored_all = not (intake.mapped_keys and duplicate_provider_keys(conn, job.id))
        if not (intake.report.ok and stored_all):
            # Nothing is stored; the full check names every problem, duplicate ids included
            # (found on disk: the database stopped at the first one, or never saw the rest).
            uow.rollback()
            report = check_file(adapter, path, endpoint=endpoint, model=model,
                                strict_model=strict_model)
            raise report.error() or InputError("duplicate custom_id", file=file)
        count = intake.report.requests
        if count == 0:
            raise InputError("the file holds no requests", file=file)
        content_hash = intake.content_hash
        if idempotency_key is not None:
            existing = uow.repo.find_job_by_idempotency_key(tenant, idempotency_key)
            if existing is not None:
                uow.rollback()
                if existing[1] != content_hash:
                    raise ConflictError(f"idempotency key {idempotency_key!r} was used for job "
                                        f"{existing[0]} with different content")
                return existing[0], False
        if budgets_apply(rt, tenant, max_cost):
            check_new_job(uow, rt, job_id=job.id, tenant=tenant, bound_pusd=bound_total,
                          max_cost=max_cost, now=now)
        uow.repo.finish_ingest(job.id, item_count=count, content_hash=content_hash,
                               idempotency_key=idempotency_key)
        uow.record(Event(job_id=job.id, type=EventType.JOB_CREATED, at=now,
                         to_status=str(job.status),
                         data={"items": count, "provider": provider, "model": model}))
        uow.publish_after_commit(tasks.PLAN, job.id)
        uow.commit()
    for warning in intake.report.warnings():
        (warn or _log_warning)(warning)
    return job.id, True


def _log_warning(text: str) -> None:
    log.warning("llmbatch.submit.warning", message=text)


def _job_of(uow: UnitOfWork, job_id: str, tenant: str | None) -> Job:
    """The job, or ``NotFoundError`` when there is none or it belongs to another tenant than
    ``tenant`` (None: any tenant): another tenant's job is never told apart from no job."""
    job = uow.repo.get_job(job_id, totals=False)
    if tenant is not None and job.tenant != tenant:
        raise NotFoundError(f"no job {job_id!r}")
    return job


def cancel_job(rt: Runtime, job_id: str, *, tenant: str | None = None) -> JobStatus:
    """Cancel a job: unsent work is cancelled now; batches at the provider are cancelled by
    their next poll, which then fetches the partial results the provider keeps. ``tenant``
    scopes it like the read models do."""
    now = rt.clock()
    with rt.uow() as uow:
        job = _job_of(uow, job_id, tenant)
        if is_terminal(job.status) or job.status is JobStatus.CANCELLING:
            return job.status
        # Planned batches nobody is submitting are dropped now; one being submitted right now
        # is seen by its submitter (it adopts and cancels, or drops it unsent).
        for batch_id in uow.repo.planned_batches_of_job(job_id):
            batch = uow.repo.claim_batch(batch_id, [BatchStatus.PLANNED], rt.new_lease_owner(),
                                         now, rt.config.worker.lease_s)
            if batch is not None and uow.save(batch.cancel_unsent(now)):
                uow.repo.release_queued_items(batch_id)
        cancelled = uow.repo.cancel_unsent_items(job_id, now)
        uow.save(job.request_cancel(now, unsent_items_cancelled=cancelled))
        for batch in uow.repo.batches_of_job(job_id):
            if batch.status is BatchStatus.IN_PROGRESS:
                uow.publish_after_commit(tasks.POLL, batch.id)
        uow.publish_after_commit(tasks.FINALIZE, job_id)
        uow.commit()
    return JobStatus.CANCELLING


RETRYABLE_BY_USER = (ItemStatus.FAILED, ItemStatus.EXPIRED)


@dataclass(frozen=True)
class RetryOutcome:
    """What ``retry_lineage`` did. ``already_succeeded`` and ``in_flight`` count the job's
    failed items left out because a later retry already carried them (to success, or still
    running): sending them again would pay twice."""

    child_id: str | None
    count: int
    already_succeeded: int = 0
    in_flight: int = 0


def retry_job(rt: Runtime, job_id: str, *, name: str | None = None,
              include_cancelled: bool = False, tenant: str | None = None) -> tuple[str, int]:
    """``retry_lineage`` for callers that only need ``(child_job_id, item_count)``;
    ``ConflictError`` when there is nothing to retry."""
    outcome = retry_lineage(rt, job_id, name=name, include_cancelled=include_cancelled,
                            tenant=tenant)
    assert outcome.child_id is not None  # retry_lineage raises when it creates no child
    return outcome.child_id, outcome.count


def retry_lineage(rt: Runtime, job_id: str, *, name: str | None = None,
                  include_cancelled: bool = False, tenant: str | None = None) -> RetryOutcome:
    """Start a child job of the items that ended failed or expired (and cancelled, with
    ``include_cancelled``), for when the user fixed the cause.

    Only items whose *latest* attempt in the job's lineage (the job, its retries and theirs)
    did not succeed are taken: retrying the same parent twice sends nothing the first retry
    already did or is still doing. ``ConflictError`` if the job is still running or nothing
    is left to retry (the message says why). ``tenant`` scopes it like the read models do
    (another tenant's job is not found)."""
    statuses = RETRYABLE_BY_USER + ((ItemStatus.CANCELLED,) if include_cancelled else ())
    now = rt.clock()
    with rt.uow() as uow:
        parent = _job_of(uow, job_id, tenant)
        if not is_terminal(parent.status):
            raise ConflictError(f"job {job_id} is {parent.status}; retry it once it has ended")
        if requests_dropped(uow.repo.conn, job_id):
            raise ConflictError(f"job {job_id}'s requests were dropped when it ended "
                                "(privacy.retain_requests: false); submit the input again")
        conn = uow.repo.conn
        lineage = lineage_job_ids(conn, job_id)
        latest = latest_status_counts(conn, lineage, job_id, statuses)
        done = latest.get(ItemStatus.SUCCEEDED, 0)
        running = sum(n for s, n in latest.items() if not is_terminal(s))
        if sum(n for s, n in latest.items() if s in statuses) == 0:
            raise ConflictError(_nothing_to_retry(job_id, statuses, done, running))
        child = Job(id=new_id("job"), name=name or f"retry of {parent.name or parent.id}",
                    provider=parent.provider, model=parent.model, endpoint=parent.endpoint,
                    status=JobStatus.PENDING, item_count=0, created_at=now,
                    tenant=parent.tenant, parent_job_id=parent.id, metadata=parent.metadata)
        uow.repo.add_job(child, content_hash=None,
                         config_snapshot=uow.repo.config_snapshot(parent.id))
        count = copy_latest_for_retry(conn, lineage, parent.id, child.id, statuses)
        uow.repo.finish_ingest(child.id, item_count=count, content_hash="")
        uow.record(Event(job_id=child.id, type=EventType.JOB_CREATED, at=now,
                         to_status=str(JobStatus.PENDING),
                         data={"items": count, "parent_job_id": parent.id}))
        uow.record(Event(job_id=parent.id, type=EventType.JOB_RETRIED, at=now,
                         data={"child_job_id": child.id, "items": count,
                               "already_succeeded": done, "in_flight": running}))
        uow.publish_after_commit(tasks.PLAN, child.id)
        uow.commit()
    return RetryOutcome(child.id, count, already_succeeded=done, in_flight=running)


def _nothing_to_retry(job_id: str, statuses: tuple[ItemStatus, ...], done: int,
                      running: int) -> str:
    kinds = " or ".join(str(s) for s in statuses)
    if not done and not running:
        hint = "" if ItemStatus.CANCELLED in statuses else \
            " (cancelled items are retried with --include-cancelled)"
        return f"job {job_id} has no {kinds} items to retry{hint}"
    parts = [f"{n} already succeeded in a later retry" for n in (done,) if n]
    parts += [f"{n} still running in a later retry" for n in (running,) if n]
    return f"nothing to retry in job {job_id}: of its {kinds} items, {', '.join(parts)}"
