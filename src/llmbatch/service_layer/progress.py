"""Poll, fetch and finalize: from a batch at the provider to final items and a final job."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog

from llmbatch.bootstrap import Runtime
from llmbatch.config import ModelConfig
from llmbatch.domain.limits import WAITING_CODES
from llmbatch.domain.models import (
    BatchFailure,
    BatchPhase,
    BatchProgress,
    Event,
    FailureKind,
    ItemResult,
    ProviderBatch,
)
from llmbatch.domain.outcomes import job_outcome, settle_result
from llmbatch.domain.polling import next_poll_delay
from llmbatch.domain.pricing import item_cost_usd
from llmbatch.domain.retry import retry_delay
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus, is_terminal
from llmbatch.errors import ProviderError, ResourceGoneError
from llmbatch.service_layer import tasks
from llmbatch.service_layer.limits import CallDeferred, provider_call
from llmbatch.service_layer.unit_of_work import UnitOfWork

__all__ = ["fetch_batch", "finalize_job", "poll_batch"]

log = structlog.get_logger("llmbatch.progress")


def poll_batch(rt: Runtime, batch_id: str) -> BatchStatus | None:
    """Ask the provider how a batch is doing; cancel it there first if its job is cancelling."""
    now = rt.clock()
    with rt.uow() as uow:
        batch = uow.repo.claim_batch(batch_id, [BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING],
                                     rt.worker_id, now, rt.config.worker.lease_s)
        if batch is None:
            return None
        cancelling = uow.repo.get_job(batch.job_id).status is JobStatus.CANCELLING
        uow.commit()
    assert batch.provider_batch_id is not None
    adapter = rt.registry.get(batch.provider)
    try:
        if (cancelling or batch.cancel_reason) and batch.status is BatchStatus.IN_PROGRESS:
            with provider_call(rt, batch.provider, "cancel"):
                progress = adapter.cancel(batch.provider_batch_id)
            _record_cancel_sent(rt, batch)
            batch.status = BatchStatus.CANCELLING
        else:
            with provider_call(rt, batch.provider, "poll"):
                progress = adapter.poll(batch.provider_batch_id)
    except CallDeferred as exc:
        return _call_deferred(rt, batch, exc)
    except ProviderError as exc:
        if not isinstance(exc, ResourceGoneError):
            # Includes 401/403: the batch still runs at the provider, so never re-send it;
            # back off and keep asking (the error is on the batch for an operator to see).
            return _call_failed(rt, batch, exc)
        # The provider no longer knows the batch: end it; its items are re-batched.
        progress = BatchProgress(phase=BatchPhase.ENDED,
                                 provider_status=batch.provider_status or "",
                                 failure=BatchFailure.lost(str(exc)))
    return _record_progress(rt, batch, progress)


def _poll_delay(rt: Runtime, batch: ProviderBatch, progress: BatchProgress,
                elapsed_s: float) -> float:
    """When to poll a running batch again, on its provider's latency prior (or the one
    configured for it). A batch we asked to cancel follows the cancel latency even where
    the provider has no word for cancelling."""
    own = rt.registry.get(batch.provider).latency_prior
    phase = (BatchPhase.CANCELLING if batch.status is BatchStatus.CANCELLING
             else progress.phase)
    return next_poll_delay(rt.config.polling, elapsed_s=elapsed_s,
                           done=progress.completed + progress.failed, total=progress.total,
                           prior=rt.config.polling.prior(batch.provider, own), phase=phase)


def _record_cancel_sent(rt: Runtime, batch: ProviderBatch) -> None:
    now = rt.clock()
    with rt.uow() as uow:
        uow.repo.update_batch(batch.id, rt.worker_id, now, to=BatchStatus.CANCELLING,
                              release=False)
        uow.record(Event(job_id=batch.job_id, batch_id=batch.id, type="batch.cancel_sent",
                         at=now, from_status=str(BatchStatus.IN_PROGRESS),
                         to_status=str(BatchStatus.CANCELLING)))
        uow.commit()


def _call_deferred(rt: Runtime, batch: ProviderBatch, exc: CallDeferred) -> BatchStatus:
    """Our own call limits said "not now": no failure, just come back a little later."""
    now = rt.clock()
    with rt.uow() as uow:
        uow.repo.update_batch(batch.id, rt.worker_id, now,
                              next_poll_at=now + timedelta(seconds=exc.retry_after_s),
                              dispatched_at=None)
        uow.commit()
    return batch.status


def _call_failed(rt: Runtime, batch: ProviderBatch, exc: ProviderError) -> BatchStatus:
    """A poll, cancel or fetch call failed: keep the status, back off (growing with the
    failures in a row, Retry-After honoured) and let the tick try again."""
    now = rt.clock()
    failures = batch.call_failures + 1
    delay = retry_delay(exc, failures, rt.config.retry)
    with rt.uow() as uow:
        uow.repo.update_batch(batch.id, rt.worker_id, now, error=str(exc),
                              call_failures=failures,
                              next_poll_at=now + timedelta(seconds=delay), dispatched_at=None)
        uow.commit()
    log.warning("llmbatch.batch.call_failed", batch_id=batch.id, status=str(batch.status),
                failures=failures, retry_in_s=round(delay, 3), error=str(exc))
    return batch.status


def _record_progress(rt: Runtime, batch: ProviderBatch, progress: BatchProgress) -> BatchStatus:
    now = rt.clock()
    counts = {"total": progress.total, "completed": progress.completed, "failed": progress.failed}
    with rt.uow() as uow:
        if not progress.ended:
            elapsed = (now - (batch.submitted_at or batch.created_at)).total_seconds()
            delay = _poll_delay(rt, batch, progress, elapsed)
            uow.repo.update_batch(batch.id, rt.worker_id, now,
                                  provider_status=progress.provider_status,
                                  request_counts=counts, poll_count=batch.poll_count + 1,
                                  next_poll_at=now + timedelta(seconds=delay),
                                  dispatched_at=None, call_failures=0)
            uow.commit()
            return batch.status
        failure = progress.failure
        uow.repo.update_batch(batch.id, rt.worker_id, now, to=BatchStatus.ENDED,
                              provider_status=progress.provider_status, request_counts=counts,
                              result_refs=progress.result_refs,
                              error=failure.message if failure else None,
                              error_code=failure.code if failure else None, failure=failure,
                              poll_count=batch.poll_count + 1,
                              ended_at=now, dispatched_at=None, call_failures=0,
                              next_poll_at=now)
        uow.record(Event(job_id=batch.job_id, batch_id=batch.id, type="batch.ended", at=now,
                         from_status=str(batch.status), to_status=str(BatchStatus.ENDED),
                         data={"provider_status": progress.provider_status, **counts,
                               **_failure_data(failure)}))
        uow.publish_after_commit(tasks.FETCH, batch.id)
        # Its place in the provider's queue is free: batches waiting for room may go now.
        uow.limits.wake_waiting(batch.provider, WAITING_CODES, now)
        uow.commit()
    log.info("llmbatch.batch.ended", batch_id=batch.id, provider_status=progress.provider_status)
    return BatchStatus.ENDED


def _failure_data(failure: BatchFailure | None) -> dict[str, Any]:
    """What an event says of a batch-level failure (nothing when there was none)."""
    if failure is None:
        return {}
    return {"error": failure.message, "failure": str(failure.kind),
            "retryable": failure.retryable}


def _result_row(result: ItemResult, status: ItemStatus, batch_id: str, now: Any,
                model: ModelConfig | None) -> dict[str, Any]:
    usage = result.usage
    return {
        "b_provider_key": result.provider_key,
        "status": str(status),
        "batch_id": None if status is ItemStatus.PENDING else batch_id,
        "response": result.response,
        "output_text": result.output_text,
        "finish_reason": result.finish_reason,
        "input_tokens": usage.input_tokens if usage else 0,
        "output_tokens": usage.output_tokens if usage else 0,
        "cached_tokens": usage.cached_tokens if usage else 0,
        "reasoning_tokens": usage.reasoning_tokens if usage else 0,
        "error": result.error.as_dict() if result.error else None,
        "cost_usd": item_cost_usd(usage, model),
        "completed_at": None if status is ItemStatus.PENDING else now,
    }


def fetch_batch(rt: Runtime, batch_id: str) -> BatchStatus | None:
    """Stream an ended batch's results into its items, a chunk per transaction.

    Re-running after a crash is harmless: only items still SUBMITTED take a result.
    """
    now = rt.clock()
    lease_s = rt.config.worker.lease_s
    with rt.uow() as uow:
        batch = uow.repo.claim_batch(batch_id, [BatchStatus.ENDED], rt.worker_id, now, lease_s)
        if batch is None:
            return None
        cancelling = uow.repo.get_job(batch.job_id).status is JobStatus.CANCELLING
        # Usually every item of a batch has ridden the same number of batches: then one
        # number serves every result and no per-chunk lookup is needed.
        span = uow.repo.attempt_range(batch_id)
        uniform = span[0] if span is not None and span[0] == span[1] else None
        uow.commit()
    assert batch.provider_batch_id is not None
    adapter = rt.registry.get(batch.provider)
    progress = BatchProgress(phase=BatchPhase.ENDED, provider_status=batch.provider_status or "",
                             result_refs=batch.result_refs, failure=batch.failure)
    max_attempts = rt.config.retry.item_max_attempts
    prices = rt.config.provider(batch.provider).model(batch.model)
    chunk: list[ItemResult] = []
    stored = 0
    renew: list[Callable[[], None]] = []  # the call lease's renew, once the download has one

    def flush() -> None:
        nonlocal stored
        moment = rt.clock()
        with rt.uow() as uow:
            keys = [r.provider_key for r in chunk]
            attempts = (dict.fromkeys(keys, uniform) if uniform is not None
                        else uow.repo.attempts_of(batch_id, keys))
            # Rows for keys no longer submitted (a re-run after a crash) match no item.
            rows = [_result_row(r, settle_result(r, attempts=attempts[r.provider_key],
                                                 max_attempts=max_attempts,
                                                 cancelling=cancelling), batch_id, moment,
                                    prices)
                    for r in chunk if r.provider_key in attempts]
            uow.history.record_results(batch_id, [
                {"b_key": r.provider_key, "b_outcome": str(r.status),
                 "b_error": r.error.as_dict() if r.error else None}
                for r in chunk if r.status is not ItemStatus.SUCCEEDED], moment)
            stored += uow.repo.record_results(batch_id, rows)
            uow.repo.update_batch(batch_id, rt.worker_id, moment, release=False,
                                  lease_until=moment + timedelta(seconds=lease_s))
            uow.commit()
        chunk.clear()
        for keep_slot in renew:
            keep_slot()

    if batch.failure is None or batch.failure.kind is not FailureKind.LOST:
        try:
            with provider_call(rt, batch.provider, "fetch") as lease:
                renew.append(lease.renew)
                for result in adapter.iter_results(batch.provider_batch_id, progress):
                    chunk.append(result)
                    if len(chunk) >= rt.config.worker.fetch_chunk_size:
                        flush()
            if chunk:
                flush()
        except CallDeferred as exc:
            return _call_deferred(rt, batch, exc)
        except ProviderError as exc:
            if not isinstance(exc, ResourceGoneError):
                return _call_failed(rt, batch, exc)  # lease released; the tick retries
            # The results are gone: keep the lines already read; the rest counts as
            # unreported below.
            log.warning("llmbatch.batch.results_gone", batch_id=batch_id, error=str(exc))
            renew.clear()  # the call's slot is already released
            if chunk:
                flush()
    now = rt.clock()
    with rt.uow() as uow:
        unreported = _settle_unreported(uow, batch, cancelling, max_attempts, now)
        uow.repo.update_batch(batch_id, rt.worker_id, now, to=BatchStatus.FETCHED,
                              fetched_at=now)
        uow.record(Event(job_id=batch.job_id, batch_id=batch_id, type="batch.fetched", at=now,
                         from_status=str(BatchStatus.ENDED), to_status=str(BatchStatus.FETCHED),
                         data={"results": stored, "without_result": unreported}))
        uow.publish_after_commit(tasks.FINALIZE, batch.job_id)
        uow.commit()
    if rt.config.provider(batch.provider).delete_files_after_fetch:
        try:
            with provider_call(rt, batch.provider, "cleanup"):
                adapter.cleanup(batch.provider_batch_id, progress)
        except (ProviderError, CallDeferred) as exc:  # best effort: files expire anyway
            log.warning("llmbatch.batch.cleanup_failed", batch_id=batch_id, error=str(exc))
    return BatchStatus.FETCHED


def _settle_unreported(uow: UnitOfWork, batch: ProviderBatch, cancelling: bool,
                       max_attempts: int, now: datetime) -> int:
    """Items with no result line: cancelled, re-batched, or failed with the batch's error."""
    history = uow.history
    if cancelling:
        error = {"type": "cancelled", "code": "batch_cancelled",
                 "message": "cancelled before the provider ran it", "retryable": False}
        history.record_unreported(batch.id, "no_result", error, now)
        return uow.repo.settle_unreported_items(batch.id, ItemStatus.CANCELLED, error, now)
    failure = batch.failure
    retryable = failure is None or failure.retryable
    message = (failure.message if failure else
               f"the provider returned no result (status {batch.provider_status})")
    error = {"type": "batch_failed" if failure else "missing_result",
             "code": failure.code if failure else None, "message": message,
             "retryable": retryable}
    history.record_unreported(batch.id, "no_result", error, now)
    if failure is not None and failure.refunds_attempts:
        # The provider refused the whole batch for quota before running anything: every
        # item goes back to pending with its attempt given back (the quota hold paces it).
        return uow.limits.requeue_unrun_items(batch.id, error)
    return uow.repo.settle_unreported_items(
        batch.id, ItemStatus.FAILED, error, now,
        retry_below_attempts=max_attempts if retryable else None)


def finalize_job(rt: Runtime, job_id: str) -> JobStatus | None:
    """Close a job whose items are all final; send pending ones back to plan."""
    now = rt.clock()
    with rt.uow() as uow:
        uow.repo.lock_job(job_id)  # one finalize (or plan) of a job at a time
        job = uow.repo.get_job(job_id)
        if is_terminal(job.status) or uow.repo.open_batch_count(job_id):
            return None
        cancelling = job.status is JobStatus.CANCELLING
        if cancelling:
            uow.repo.cancel_unsent_items(job_id, now)
        elif job.counts.get(ItemStatus.PENDING, 0) or job.counts.get(ItemStatus.QUEUED, 0):
            uow.publish_after_commit(tasks.PLAN, job_id)
            uow.commit()
            return None
        counts = uow.repo.item_counts(job_id)
        batches = uow.repo.batches_of_job(job_id)
        never_accepted = bool(batches) and all(b.provider_batch_id is None for b in batches)
        outcome = job_outcome(counts, cancelling=cancelling, never_accepted=never_accepted)
        failed = [b.error for b in batches if b.status is BatchStatus.FAILED and b.error]
        error = failed[0] if outcome is JobStatus.FAILED and failed else None
        if not uow.repo.move_job(job_id, outcome, now, completed_at=now, error=error):
            return None
        uow.record(Event(job_id=job_id, type="job.completed", at=now,
                         from_status=str(job.status), to_status=str(outcome),
                         data={str(k): v for k, v in counts.items()}))
        uow.commit()
    log.info("llmbatch.job.completed", job_id=job_id, status=str(outcome))
    return outcome
