"""Plan and submit: from pending items to provider batches the provider has accepted.

Submission is crash-safe and never bills twice. The batch moves to SUBMITTING (committed)
before any provider call, and its lease is renewed (``leases.held_lease``) for as long as the
upload and create run, so no one else submits it while its owner lives, however slow the
provider is. Every later attempt first asks the provider for a batch carrying our tag and
adopts it, so a worker killed between "provider created it" and "we recorded it" never causes
a second batch, and neither does a create whose outcome is unknown (a timeout).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import structlog

from llmbatch.bootstrap import Runtime
from llmbatch.domain.batch import ProviderBatch
from llmbatch.domain.budgets import BudgetShortfall
from llmbatch.domain.events import Event, EventType
from llmbatch.domain.ids import new_id
from llmbatch.domain.limits import SubmissionBlock, WaitReason
from llmbatch.domain.models import SubmittedBatch
from llmbatch.domain.planning import pack_items
from llmbatch.domain.retry import keep_trying_submit, retry_delay
from llmbatch.domain.states import BatchStatus, JobStatus
from llmbatch.errors import ProviderError, QuotaExceededError, TransientProviderError
from llmbatch.observability.logging import bind_tenant
from llmbatch.observability.redaction import redact
from llmbatch.service_layer import budgets, tasks
from llmbatch.service_layer.jobs import request_from_stored
from llmbatch.service_layer.leases import held_lease
from llmbatch.service_layer.limits import CallDeferred, provider_call, submission_gate
from llmbatch.service_layer.model_checks import stored_job_adapter
from llmbatch.service_layer.provider_data import job_retention
from llmbatch.service_layer.unit_of_work import UnitOfWork

__all__ = ["plan_job", "submit_batch"]

log = structlog.get_logger("llmbatch.submission")


def _fail_unsendable(uow: UnitOfWork, job_id: str, model: str, max_bytes: int,
                     max_tokens: int | None, now: datetime) -> None:
    """Items above a limit lowered after the job was created can never be sent: they fail
    with the reason, instead of blocking every plan of the job."""
    over_bytes = uow.repo.fail_items_over_bytes(job_id, max_bytes, {
        "type": "invalid_request_error", "code": "item_too_large",
        "message": f"request above the {max_bytes}-byte batch limit (lowered after the job "
                   "was created)", "retryable": False}, now)
    over_tokens = 0
    if max_tokens is not None:
        over_tokens = uow.limits.fail_items_over_tokens(job_id, max_tokens, {
            "type": "invalid_request_error", "code": "over_enqueued_token_limit",
            "message": f"estimated tokens above the {max_tokens}-token enqueued limit of "
                       f"{model}", "retryable": False}, now)
    if over_bytes or over_tokens:
        uow.record(Event(job_id=job_id, type=EventType.ITEMS_TOO_LARGE, at=now,
                         data={"over_bytes": over_bytes, "max_bytes": max_bytes,
                               "over_tokens": over_tokens, "max_tokens": max_tokens}))
        log.warning("llmbatch.job.items_too_large", job_id=job_id, over_bytes=over_bytes,
                    over_tokens=over_tokens)


def plan_job(rt: Runtime, job_id: str) -> list[str]:
    """Pack the job's pending items into new PLANNED batches; returns their ids."""
    now = rt.clock()
    with rt.uow() as uow:
        # Two plans of one job at once (the create's message and a tick's, or a redelivery)
        # would both pack the same pending items into batches, one of them left empty.
        uow.repo.lock_job(job_id)
        job = uow.repo.get_job(job_id, totals=False)
        bind_tenant(job.tenant)
        if job.status not in (JobStatus.PENDING, JobStatus.RUNNING):
            return []
        adapter = rt.registry.get(job.provider)
        limits = adapter.effective_limits(job.model)
        _fail_unsendable(uow, job_id, job.model, limits.max_bytes, limits.max_tokens, now)
        plans = list(pack_items(uow.repo.iter_pending_sizes(job_id),
                                max_requests=limits.max_requests, max_bytes=limits.max_bytes,
                                max_tokens=limits.max_tokens))
        # Batches planned together form one round; a re-batch of failures is the next.
        attempt = max((b.attempt for b in uow.repo.batches_of_job(job_id)), default=0) + 1
        batch_ids = []
        for plan in plans:
            batch = ProviderBatch(
                id=new_id("pb"), job_id=job_id, provider=job.provider, model=job.model,
                status=BatchStatus.PLANNED, attempt=attempt, item_count=plan.item_count,
                byte_count=plan.byte_count, estimated_tokens=plan.token_count, created_at=now)
            uow.repo.add_batch(batch)
            uow.repo.queue_items(job_id, batch.id, plan.first_seq, plan.last_seq)
            uow.record(Event(job_id=job_id, batch_id=batch.id, type=EventType.BATCH_PLANNED,
                             at=now, to_status=str(BatchStatus.PLANNED),
                             data={"items": plan.item_count, "bytes": plan.byte_count,
                                   "estimated_tokens": plan.token_count,
                                   "attempt": attempt}))
            uow.publish_after_commit(tasks.SUBMIT, batch.id)
            batch_ids.append(batch.id)
        if job.status is JobStatus.PENDING:
            uow.save(job.start_running(now, batches=len(plans)))
        if not plans:
            uow.publish_after_commit(tasks.FINALIZE, job_id)
        uow.commit()
    return batch_ids


def _encoded_lines(rt: Runtime, batch: ProviderBatch) -> Iterator[bytes]:
    """The batch's requests in the provider's format, read in short transactions."""
    with rt.uow() as uow:
        job = uow.repo.get_job(batch.job_id, totals=False)
        adapter = stored_job_adapter(rt.registry.get(batch.provider),
                                     uow.repo.config_snapshot(batch.job_id))
    last = -1
    chunk = rt.config.worker.build_chunk_size
    while True:
        with rt.uow() as uow:
            rows = uow.repo.batch_requests_after(batch.id, last, chunk)
        if not rows:
            return
        for row in rows:
            req = request_from_stored(row.seq, row.custom_id, row.request)
            yield adapter.encode(req, endpoint=job.endpoint, model=job.model).data
        last = rows[-1].seq


def submit_batch(rt: Runtime, batch_id: str) -> BatchStatus | None:
    """Send one PLANNED batch to its provider (or adopt the copy an earlier attempt made).

    The batch goes only when the provider's limits have room (``limits.submission_gate``);
    otherwise it stays PLANNED and the tick looks at it again (sooner when a batch ends). The
    provider calls run inside ``limits.provider_call`` and ``leases.held_lease``.
    """
    now = rt.clock()
    with rt.uow() as uow:
        batch = uow.repo.claim_batch(batch_id, [BatchStatus.PLANNED], rt.new_lease_owner(), now,
                                     rt.config.worker.lease_s)
        if batch is None:
            return None
        if batch.next_poll_at is not None and batch.next_poll_at > now:
            uow.save(batch.release(now))  # backing off: not yet
            uow.commit()
            return None
        job = uow.repo.get_job(batch.job_id, totals=False)
        bind_tenant(job.tenant)
        retention = job_retention(rt, uow.repo.config_snapshot(job.id), job.provider)
        cancelling = job.status is JobStatus.CANCELLING
        # An earlier attempt may have left a copy at the provider: look for it (below) even
        # when cancelling, so that it is adopted and then cancelled, not left running.
        adopting = batch.submit_attempts > 0
        if cancelling and not adopting:
            _cancel_unsent(uow, batch, now)
            uow.commit()
            return BatchStatus.CANCELLED
        if not adopting:  # a re-submission may adopt its copy whatever the room
            block = submission_gate(uow, rt, batch, now)
            if block is not None:
                _wait_for_room(uow, rt, batch, block, now)
                uow.commit()
                return BatchStatus.PLANNED
            short = budgets.reserve(uow, rt, batch, job.tenant, now)
            if short is not None:
                status = _over_budget(uow, rt, batch, short, now)
                uow.commit()
                return status
        # Same transaction as the gate: the next decision sees this batch at the provider.
        start = batch.start_submission(now)
        uow.save(start)
        snapshot = uow.repo.config_snapshot(batch.job_id)
        uow.commit()
    batch = batch.after(start)
    adapter = stored_job_adapter(rt.registry.get(batch.provider), snapshot)
    log.info("llmbatch.batch.submitting", batch_id=batch_id, job_id=batch.job_id,
             attempt=batch.submit_attempts)
    searched = False  # the lookup by tag answered: a copy exists (adopted) or none does
    try:
        with provider_call(rt, batch.provider, "submit",
                           extra_cost=adapter.call_cost("find_by_tag") if adopting else 0
                           ) as call, held_lease(rt, batch.id, start.owner or "", call.renew):
            found = adapter.find_by_tag(batch_id) if adopting else None
            searched = True
            if found is None and cancelling:
                with rt.uow() as uow:
                    _cancel_unsent(uow, batch, rt.clock())
                    uow.commit()
                return BatchStatus.CANCELLED
            submitted = found or adapter.submit_for_job(
                _encoded_lines(rt, batch), tag=batch_id, endpoint=job.endpoint,
                model=job.model, retention=retention)
    except CallDeferred as exc:
        return _submit_deferred(rt, batch, exc)
    except ProviderError as exc:
        return _submit_failed(rt, batch, exc, copy_may_exist=adopting and not searched)
    except Exception as exc:  # a bug or an unexpected failure: see keep_trying_submit
        log.exception("llmbatch.batch.submit_crashed", batch_id=batch_id)
        return _submit_failed(rt, batch, TransientProviderError(
            f"unexpected error while submitting: {exc!r}", provider=batch.provider,
            code="internal_error"), copy_may_exist=adopting and not searched, internal=True)
    return _submit_succeeded(rt, batch, submitted, adopted=found is not None)


def _submit_deferred(rt: Runtime, batch: ProviderBatch, exc: CallDeferred) -> BatchStatus:
    """No call slot came free in time: nothing was sent, so back to PLANNED as it was."""
    with rt.uow() as uow:
        uow.save(batch.submission_deferred(rt.clock(), exc.retry_after_s))
        uow.commit()
    return BatchStatus.PLANNED


def _wait_for_room(uow: UnitOfWork, rt: Runtime, batch: ProviderBatch, block: SubmissionBlock,
                   now: datetime) -> None:
    """Leave the batch PLANNED and due again later; say so once per wait, not every recheck."""
    change = batch.wait_for_room(
        now, reason=str(block.reason), detail=block.detail,
        recheck_s=rt.config.provider(batch.provider).rate_limits.recheck_s)
    if uow.save(change) and change.event is not None:
        log.info("llmbatch.batch.waiting_for_quota", batch_id=batch.id,
                 reason=str(block.reason))


def _over_budget(uow: UnitOfWork, rt: Runtime, batch: ProviderBatch, short: BudgetShortfall,
                 now: datetime) -> BatchStatus:
    """The batch's upper bound does not fit a budget: it waits for reservations to settle (or
    the month to turn) when so configured and it could ever fit; otherwise it fails, and its
    items with it, saying which budget and by how much."""
    if rt.config.cost.budgets.on_exceed == "wait" and short.needed_usd <= short.limit_usd:
        change = batch.wait_for_room(
            now, reason=str(WaitReason.BUDGET), detail=short.as_dict(),
            recheck_s=rt.config.provider(batch.provider).rate_limits.recheck_s)
        if uow.save(change) and change.event is not None:
            log.info("llmbatch.batch.waiting_for_budget", batch_id=batch.id,
                     detail=short.message)
        return BatchStatus.PLANNED
    error = f"not sent: {short.message}"
    start = batch.start_submission(now)  # planned -> failed goes through submitting
    if uow.save(start) and uow.save(batch.after(start).submission_failed(
            now, error=error, code="over_budget")):
        uow.repo.fail_unsent_items(batch.id, {"type": "budget_exceeded", "code": "over_budget",
                                              "message": error, "retryable": False}, now)
    uow.publish_after_commit(tasks.FINALIZE, batch.job_id)
    log.warning("llmbatch.batch.over_budget", batch_id=batch.id, detail=short.message)
    return BatchStatus.FAILED


def _cancel_unsent(uow: UnitOfWork, batch: ProviderBatch, now: datetime) -> None:
    """The job is being cancelled and the provider has nothing of this batch: drop it."""
    if uow.save(batch.cancel_unsent(now)):
        budgets.release(uow, batch.id, now)
        uow.repo.release_queued_items(batch.id)
        uow.repo.cancel_unsent_items(batch.job_id, now)
    uow.publish_after_commit(tasks.FINALIZE, batch.job_id)


def _submit_succeeded(rt: Runtime, batch: ProviderBatch, submitted: SubmittedBatch, *,
                      adopted: bool) -> BatchStatus:
    now = rt.clock()
    with rt.uow() as uow:
        if not uow.save(batch.accepted(now, submitted, adopted=adopted)):
            # Our lease was taken (our heartbeat could not renew it: this process stalled
            # past the lease). The provider copy carries our tag, so whoever holds the batch
            # now adopts it; say so on the timeline.
            uow.record(Event(job_id=batch.job_id, batch_id=batch.id,
                             type=EventType.BATCH_LEASE_LOST, at=now,
                             data={"provider_batch_id": submitted.provider_batch_id}))
            uow.commit()
            log.warning("llmbatch.batch.lease_lost", batch_id=batch.id)
            return BatchStatus.SUBMITTING
        uow.repo.mark_items_submitted(batch.id)
        uow.commit()
    log.info("llmbatch.batch.submitted", batch_id=batch.id,
             provider_batch_id=submitted.provider_batch_id, adopted=adopted)
    return BatchStatus.IN_PROGRESS


def _submit_failed(rt: Runtime, batch: ProviderBatch, exc: ProviderError, *,
                   copy_may_exist: bool, internal: bool = False) -> BatchStatus:
    now = rt.clock()
    failures = batch.call_failures + 1
    with rt.uow() as uow:
        if isinstance(exc, QuotaExceededError):
            hold = rt.config.provider(batch.provider).rate_limits.quota_hold_s
            uow.save(batch.wait_for_quota(now, error=str(exc), code=exc.code, hold_s=hold))
            uow.commit()
            return BatchStatus.PLANNED
        if keep_trying_submit(retryable=exc.retryable, internal=internal,
                              copy_may_exist=copy_may_exist, failures=failures,
                              policy=rt.config.retry):
            delay = retry_delay(exc, failures, rt.config.retry)
            uow.save(batch.retry_submission(now, error=str(exc), code=exc.code,
                                            failures=failures, delay_s=delay))
            uow.commit()
            return BatchStatus.PLANNED
        error = redact(str(exc))
        if copy_may_exist:  # given up at the bound: say what may be left at the provider
            error = (f"gave up after {failures} failed tries in a row; a copy of this batch may "
                     f"exist at the provider (tag {batch.id}), so its items are not sent again "
                     f"(last error: {redact(str(exc))})")
        if uow.save(batch.submission_failed(now, error=error, code=exc.code)):
            if not copy_may_exist:  # a copy at the provider may still bill: kept reserved
                budgets.release(uow, batch.id, now)
            uow.repo.fail_unsent_items(batch.id, {
                "type": type(exc).__name__, "code": exc.code, "message": error,
                "retryable": exc.retryable}, now)
        uow.publish_after_commit(tasks.FINALIZE, batch.job_id)
        uow.commit()
    log.warning("llmbatch.batch.submit_failed", batch_id=batch.id, error=error)
    return BatchStatus.FAILED
