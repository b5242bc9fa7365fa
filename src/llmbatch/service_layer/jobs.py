"""Use cases a user starts: create a job from a JSONL file, cancel it, retry it. (What they
read, results included, comes from the read models: ``service_layer.read_models``.)"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from llmbatch.bootstrap import Runtime
from llmbatch.domain.events import Event, EventType
from llmbatch.domain.ids import new_id
from llmbatch.domain.job import Job
from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus, is_terminal
from llmbatch.errors import ConflictError, InputError
from llmbatch.service_layer import tasks
from llmbatch.service_layer.intake import Intake, preflight

log = structlog.get_logger(__name__)

__all__ = [
    "cancel_job",
    "create_job",
    "request_from_stored",
    "retry_job",
]

INSERT_CHUNK = 2000


def request_from_stored(index: int, custom_id: str, stored: dict[str, Any]) -> RequestLine:
    """Rebuild a ``RequestLine`` from the ``request`` column."""
    return RequestLine(index=index, custom_id=custom_id, body=stored.get("body"),
                       native=stored.get("native"))


def create_job(rt: Runtime, path: Path, *, provider: str, model: str,
               endpoint: Endpoint = Endpoint.CHAT, name: str | None = None,
               idempotency_key: str | None = None, tenant: str = "default",
               metadata: dict[str, Any] | None = None, strict_model: bool = False,
               warn: Callable[[str], None] | None = None) -> tuple[str, bool]:
    """Validate and store a job from a JSONL file in one transaction; plan it.

    One pass (``service_layer.intake``) checks every line and streams the good ones into the
    database in chunks, so memory does not grow with the file. Any problem raises
    ``InputProblems`` listing them all (file, line, field) and rolls everything back: nothing
    is stored. ``warn`` receives one line per thing done unasked (a ``body.model`` ignored for
    the job's model, unless ``strict_model`` refuses it). Returns ``(job_id, created)``;
    ``created`` is False when the idempotency key named an existing job with the same content.
    """
    adapter = preflight(rt, provider=provider, model=model, endpoint=endpoint)
    file = str(path)
    intake = Intake(adapter, file=file, endpoint=endpoint, model=model,
                    limits=adapter.effective_limits(model), strict_model=strict_model)
    now = rt.clock()
    job = Job(id=new_id("job"), name=name, provider=provider, model=model, endpoint=endpoint,
              status=JobStatus.PENDING, item_count=0, created_at=now, tenant=tenant,
              idempotency_key=idempotency_key, metadata=metadata or {})
    snapshot = rt.config.provider(provider).model_dump(mode="json", exclude={"api_key"})
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
        rows: list[dict[str, Any]] = []
        for line in intake.scan(handle):
            if not intake.report.ok:
                continue  # refused in the end: the rest is only checked
            req = line.request
            stored = {"native": req.native} if req.native is not None else {"body": req.body}
            rows.append({"job_id": job.id, "seq": req.index, "custom_id": req.custom_id,
                         "provider_key": line.encoded.provider_key, "request": stored,
                         "wire_bytes": len(line.encoded.data),
                         "estimated_tokens": line.tokens})
            if len(rows) >= INSERT_CHUNK:
                uow.repo.add_items(rows)
                rows = []
        refusal = intake.report.error()
        if refusal is not None:
            raise refusal
        uow.repo.add_items(rows)
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


def cancel_job(rt: Runtime, job_id: str) -> JobStatus:
    """Cancel a job: unsent work is cancelled now; batches at the provider are cancelled by
    their next poll, which then fetches the partial results the provider keeps."""
    now = rt.clock()
    with rt.uow() as uow:
        job = uow.repo.get_job(job_id, totals=False)
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


def retry_job(rt: Runtime, job_id: str, *, name: str | None = None) -> tuple[str, int]:
    """Start a child job of the items that ended failed or expired, for when the user fixed
    the cause. Returns ``(child_job_id, item_count)``; ``ConflictError`` if the job is still
    running or nothing failed."""
    now = rt.clock()
    with rt.uow() as uow:
        parent = uow.repo.get_job(job_id, totals=False)
        if not is_terminal(parent.status):
            raise ConflictError(f"job {job_id} is {parent.status}; retry it once it has ended")
        child = Job(id=new_id("job"), name=name or f"retry of {parent.name or parent.id}",
                    provider=parent.provider, model=parent.model, endpoint=parent.endpoint,
                    status=JobStatus.PENDING, item_count=0, created_at=now,
                    tenant=parent.tenant, parent_job_id=parent.id, metadata=parent.metadata)
        uow.repo.add_job(child, content_hash=None,
                         config_snapshot=uow.repo.config_snapshot(parent.id))
        count = uow.repo.copy_items_for_retry(parent.id, child.id, RETRYABLE_BY_USER)
        if count == 0:
            raise ConflictError(f"job {job_id} has no failed or expired items to retry")
        uow.repo.finish_ingest(child.id, item_count=count, content_hash="")
        uow.record(Event(job_id=child.id, type=EventType.JOB_CREATED, at=now,
                         to_status=str(JobStatus.PENDING),
                         data={"items": count, "parent_job_id": parent.id}))
        uow.record(Event(job_id=parent.id, type=EventType.JOB_RETRIED, at=now,
                         data={"child_job_id": child.id, "items": count}))
        uow.publish_after_commit(tasks.PLAN, child.id)
        uow.commit()
    return child.id, count
