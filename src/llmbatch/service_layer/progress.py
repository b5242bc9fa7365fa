"""Poll, fetch and finalize: from a batch at the provider to final items and a final job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import structlog

from llmbatch import json_text
from llmbatch.bootstrap import Runtime
from llmbatch.db.result_stage import ResultRow
from llmbatch.db.result_totals import counts_of, merged, tally
from llmbatch.domain.batch import ProviderBatch
from llmbatch.domain.limits import WAITING_CODES
from llmbatch.domain.models import (
    BatchFailure,
    BatchPhase,
    BatchProgress,
    FailureKind,
    ItemResult,
    Usage,
    new_tuple,
)
from llmbatch.domain.outcomes import job_outcome, settle_result
from llmbatch.domain.polling import next_poll_delay
from llmbatch.domain.retry import (
    AfterCallFailure,
    after_call_failure,
    retry_delay,
)
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus, is_terminal
from llmbatch.domain.storable import StorableResult, storable_result
from llmbatch.errors import ProviderError, ResourceGoneError, TransientProviderError
from llmbatch.observability.logging import bind_tenant
from llmbatch.observability.redaction import Redactor
from llmbatch.pausable import Pausable
from llmbatch.pricing import ModelPrices
from llmbatch.service_layer import budgets, tasks
from llmbatch.service_layer.chunk_writes import ChunkWrites
from llmbatch.service_layer.giving_up import abandon_batch, fetch_given_up
from llmbatch.service_layer.leases import held_lease
from llmbatch.service_layer.limits import CallDeferred, provider_call
from llmbatch.service_layer.open_items import OpenItems
from llmbatch.service_layer.pricing import item_cost, model_prices
from llmbatch.service_layer.provider_data import on_fetched
from llmbatch.service_layer.result_storage import repair_events, unstorable_summary
from llmbatch.service_layer.unit_of_work import UnitOfWork

__all__ = ["fetch_batch", "finalize_job", "poll_batch"]

log = structlog.get_logger("llmbatch.progress")
_NO_USAGE: Final = Usage()  # the counts of a result without usage: all zero
_TEXT: Final = {status: status.value for status in ItemStatus}  # a dict, not enum's property


def poll_batch(rt: Runtime, batch_id: str) -> BatchStatus | None:
    """Ask the provider how a batch is doing; cancel it there first if its job is cancelling."""
    now = rt.clock()
    with rt.uow() as uow:
        batch = uow.repo.claim_batch(batch_id, [BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING],
                                     rt.new_lease_owner(), now, rt.config.worker.lease_s)
        if batch is None:
            return None
        job_status, tenant = uow.repo.job_status_and_tenant(batch.job_id)
        bind_tenant(tenant, job_id=batch.job_id)
        cancelling = job_status is JobStatus.CANCELLING
        uow.commit()
    provider_batch_id = batch.provider_batch_id
    assert provider_batch_id is not None
    adapter = rt.registry.get(batch.provider)
    owner = batch.lease_owner or ""
    try:
        if (cancelling or batch.cancel_reason) and batch.status is BatchStatus.IN_PROGRESS:
            with (provider_call(rt, batch.provider, "cancel") as call,
                  held_lease(rt, batch.id, owner, call.renew)):
                progress = adapter.cancel(provider_batch_id)
            batch = _record_cancel_sent(rt, batch)
        else:
            with (provider_call(rt, batch.provider, "poll") as call,
                  held_lease(rt, batch.id, owner, call.renew)):
                progress = adapter.poll(provider_batch_id)
    except CallDeferred as exc:
        return _call_deferred(rt, batch, exc)
    except ProviderError as exc:
        if not isinstance(exc, ResourceGoneError):
            # Includes 401/403: the batch still runs at the provider, so never re-send it;
            # back off and keep asking (the error is on the batch for an operator to see).
            return _poll_failed(rt, batch, exc)
        # The provider no longer knows the batch: end it; its items are re-batched.
        progress = BatchProgress(phase=BatchPhase.ENDED,
                                 provider_status=batch.provider_status or "",
                                 failure=BatchFailure.lost(str(exc)))
    except Exception as exc:  # a bug or an unexpected failure: counted like a failed call
        log.exception("llmbatch.batch.poll_crashed", batch_id=batch.id)
        return _poll_failed(rt, batch, _internal_error(batch, "polling", exc))
    return _record_progress(rt, batch, progress)


def _internal_error(batch: ProviderBatch, step: str, exc: Exception) -> ProviderError:
    return TransientProviderError(f"unexpected error while {step}: {exc!r}",
                                  provider=batch.provider, code="internal_error")


def _poll_failed(rt: Runtime, batch: ProviderBatch, exc: ProviderError) -> BatchStatus:
    """A poll or cancel call failed: back off, or abandon the batch after
    ``retry.max_call_failures`` failures in a row (``domain.retry.after_call_failure``)."""
    verdict = after_call_failure(batch.call_failures + 1, batch_ended=False,
                                 policy=rt.config.retry)
    if verdict is AfterCallFailure.BACK_OFF:
        return _call_failed(rt, batch, exc)
    return abandon_batch(rt, batch, exc)


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


def _record_cancel_sent(rt: Runtime, batch: ProviderBatch) -> ProviderBatch:
    change = batch.cancel_sent(rt.clock())
    with rt.uow() as uow:
        uow.save(change)
        uow.commit()
    return batch.after(change)


def _call_deferred(rt: Runtime, batch: ProviderBatch, exc: CallDeferred) -> BatchStatus:
    """Our own call limits said "not now": no failure, just come back a little later."""
    with rt.uow() as uow:
        uow.save(batch.come_back_at(rt.clock(), exc.retry_after_s))
        uow.commit()
    return batch.status


def _call_failed(rt: Runtime, batch: ProviderBatch, exc: ProviderError) -> BatchStatus:
    """A poll, cancel or fetch call failed: keep the status, back off (growing with the
    failures in a row, Retry-After honoured) and let the tick try again."""
    now = rt.clock()
    failures = batch.call_failures + 1
    delay = retry_delay(exc, failures, rt.config.retry)
    with rt.uow() as uow:
        uow.save(batch.call_failed(now, error=str(exc), failures=failures, delay_s=delay))
        uow.commit()
    log.warning("llmbatch.batch.call_failed", batch_id=batch.id, status=str(batch.status),
                failures=failures, retry_in_s=round(delay, 3), error=str(exc))
    return batch.status


def _record_progress(rt: Runtime, batch: ProviderBatch,
                     progress: BatchProgress) -> BatchStatus | None:
    now = rt.clock()
    with rt.uow() as uow:
        if not progress.ended:
            elapsed = (now - (batch.submitted_at or batch.created_at)).total_seconds()
            delay = _poll_delay(rt, batch, progress, elapsed)
            uow.save(batch.polled(now, progress, delay_s=delay))
            uow.commit()
            return batch.status
        if not uow.save(batch.ended(now, progress)):
            return None
        uow.publish_after_commit(tasks.FETCH, batch.id)
        # Its place in the provider's queue is free: batches waiting for room may go now.
        uow.limits.wake_waiting(batch.provider, WAITING_CODES, now)
        uow.commit()
    log.info("llmbatch.batch.ended", batch_id=batch.id, provider_status=progress.provider_status)
    return BatchStatus.ENDED


def _stored_error(result: ItemResult, redactor: Redactor) -> str | None:
    """A failed item's error as ``items.error`` and ``item_attempts.error`` keep it (JSON
    text): the provider wrote its text and may quote the prompt (an email address, a key),
    so type, code and message go through the redaction step. The response stays as it came."""
    error = result.error
    if error is None:
        return None
    stored = error.as_dict()
    for field in ("type", "code", "message"):
        if stored[field]:
            stored[field] = redactor.text(stored[field])
    return json_text.dumps(stored)


def _result_row(result: ItemResult, status: ItemStatus, prices: ModelPrices | None,
                redactor: Redactor) -> ResultRow:
    """The row ``result`` writes, built once as the database takes it (JSON as text)."""
    usage, response = result.usage, result.response_json
    if response is None and result.response is not None:
        response = json_text.dumps(result.response)
    cost = item_cost(usage, prices)
    return new_tuple(ResultRow, (
        result.provider_key, _TEXT[result.status], _TEXT[status], response,
        result.output_text, result.finish_reason, *(_NO_USAGE if usage is None else usage),
        _stored_error(result, redactor),
        None if cost is None else cost.batch_pusd, None if cost is None else cost.sync_pusd))


def fetch_batch(rt: Runtime, batch_id: str) -> BatchStatus | None:
    """Stream an ended batch's results into the store, a chunk per transaction.

    Re-running after a crash is harmless: a result already stored is kept, and only items
    still submitted without one take a result.
    """
    now = rt.clock()
    with rt.uow() as uow:
        batch = uow.repo.claim_batch(batch_id, [BatchStatus.ENDED], rt.new_lease_owner(), now,
                                     rt.config.worker.lease_s)
        if batch is None:
            return None
        job_status, tenant = uow.repo.job_status_and_tenant(batch.job_id)
        bind_tenant(tenant, job_id=batch.job_id)
        cancelling = job_status is JobStatus.CANCELLING
        totals = uow.repo.stored_totals(batch_id)  # kept running, written with each chunk
        uow.commit()
    provider_batch_id = batch.provider_batch_id
    assert provider_batch_id is not None
    claimed = batch  # the batch as claimed, for the closures below
    adapter = rt.registry.get(batch.provider)
    progress = BatchProgress(phase=BatchPhase.ENDED, provider_status=batch.provider_status or "",
                             result_refs=batch.result_refs, failure=batch.failure)
    max_attempts = rt.config.retry.item_max_attempts
    pending = str(ItemStatus.PENDING)
    # The prices in force when the requests were sent (the catalogue keeps price history).
    prices = model_prices(rt, batch.provider, batch.model, batch.submitted_at or now)
    # Error text quoted from the provider is redacted with this runtime's patterns.
    redactor = Redactor(rt.config.privacy.patterns)
    chunk: list[StorableResult] = []
    rebatched = 0  # items a result sent back to pending (counted here: they leave the batch)
    problems: list[str] = []  # results that could not be stored as they came
    open_items = OpenItems(batch_id, batch.item_count)

    def write_steps(part: Sequence[StorableResult]) -> Pausable[int]:
        """One transaction, pausing while the server takes the rows in (``ChunkWrites``);
        rolled back if the database refuses a value (then bisected)."""
        nonlocal rebatched, totals
        # A key the provider answered twice takes its first answer (the second would find
        # its result already stored).
        results = list({s.result.provider_key: s.result for s in reversed(part)}.values())
        moment = rt.clock()
        with rt.uow() as uow:
            # The batches each item has ridden, for the keys still open: a key stored already
            # (a re-run, or answered again in a later chunk) or naming no item is not stored.
            open_keys = open_items.take(uow.repo, [r.provider_key for r in results])
            try:
                rows = []
                for r in results:
                    attempts = open_keys.get(r.provider_key)
                    if attempts is None:
                        continue
                    status = settle_result(r, attempts=attempts, max_attempts=max_attempts,
                                           cancelling=cancelling)
                    rows.append(_result_row(r, status, prices, redactor))
                after = merged(totals, tally(row for row in rows if row.status != pending))
                applied = yield from uow.repo.recording_results(batch_id, rows, moment, after)
                for event in repair_events(claimed, part, moment):
                    uow.record(event)
                uow.commit()
            except BaseException:  # rolled back (refused, failed, abandoned): still open
                open_items.give_back(open_keys)
                raise
        totals = after
        rebatched += applied.rebatched
        problems.extend(f"result line {s.result.line}: {s.problem}" for s in part if s.problem)
        return applied.inserted + applied.rebatched

    writes = ChunkWrites(write_steps)

    def flush() -> None:
        writes.write(list(chunk))  # its own list: the chunk may stay paused while read on
        chunk.clear()

    def store_the_rest() -> None:
        """The lines read since the last chunk, then nothing left paused."""
        if chunk:
            flush()
        writes.finish()

    if batch.failure is None or batch.failure.kind is not FailureKind.LOST:
        try:
            with (provider_call(rt, batch.provider, "fetch") as call,
                  held_lease(rt, batch.id, batch.lease_owner or "", call.renew)):
                try:
                    chunk_size = rt.config.worker.fetch_chunk_size
                    for result in adapter.iter_results(provider_batch_id, progress):
                        chunk.append(storable_result(result, json_text.dumps_shallow))
                        if len(chunk) >= chunk_size:
                            flush()
                    store_the_rest()
                finally:  # however the reading ended, the chunks read before it are kept
                    writes.finish()
        except CallDeferred as exc:
            return _call_deferred(rt, batch, exc)
        except ProviderError as exc:
            if isinstance(exc, ResourceGoneError):
                # The results are gone: keep the lines already read; the rest counts as
                # unreported below.
                log.warning("llmbatch.batch.results_gone", batch_id=batch_id, error=str(exc))
            else:
                given_up = fetch_given_up(rt, batch, exc)
                if given_up is None:
                    return _call_failed(rt, batch, exc)  # lease released; the tick retries
                batch = given_up
            store_the_rest()  # read before the download broke off: kept, not billed again
        except Exception as exc:  # a bug, or the database failing: counted like a failed call
            log.exception("llmbatch.batch.fetch_crashed", batch_id=batch_id)
            internal = _internal_error(batch, "fetching", exc)
            given_up = fetch_given_up(rt, batch, internal)
            if given_up is None:
                return _call_failed(rt, batch, internal)
            batch = given_up
    now = rt.clock()
    with rt.uow() as uow:
        # Counted from what is stored (a run after a crash stores only what the first did not).
        stored = sum(counts_of(totals).values()) + rebatched
        # Every item took a result (the usual case): no need to look for the others.
        unreported = (0 if stored >= batch.item_count else
                      _settle_unreported(uow, batch, cancelling, max_attempts, now))
        fetched = batch.fetched(now, results=stored, without_result=unreported,
                                unstorable=unstorable_summary(problems) if problems else None)
        if not uow.save(on_fetched(uow, rt, batch, fetched)):
            return None  # another task took the batch over; it finishes the fetch
        budgets.settle(uow, batch.id, now)  # the reservation becomes the actual cost
        uow.publish_after_commit(tasks.FINALIZE, batch.job_id)
        uow.commit()
    log.info("llmbatch.batch.fetched", batch_id=batch_id, results=stored,
             without_result=unreported)
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
        job = uow.repo.get_job(job_id, totals=False)
        bind_tenant(job.tenant)
        if is_terminal(job.status) or uow.repo.open_batch_count(job_id):
            return None
        cancelling = job.status is JobStatus.CANCELLING
        counts = uow.repo.item_counts(job_id)
        if cancelling:
            uow.repo.cancel_unsent_items(job_id, now)
        elif counts.get(ItemStatus.PENDING, 0) or counts.get(ItemStatus.QUEUED, 0):
            uow.publish_after_commit(tasks.PLAN, job_id)
            uow.commit()
            return None
        counts = uow.repo.item_counts(job_id)
        batches = uow.repo.batches_of_job(job_id)
        never_accepted = bool(batches) and all(b.provider_batch_id is None for b in batches)
        outcome = job_outcome(counts, cancelling=cancelling, never_accepted=never_accepted)
        failed = [b.error for b in batches if b.status is BatchStatus.FAILED and b.error]
        error = failed[0] if outcome is JobStatus.FAILED and failed else None
        if not uow.save(job.complete(now, outcome, counts=counts, error=error)):
            return None
        uow.commit()
    log.info("llmbatch.job.completed", job_id=job_id, status=str(outcome))
    # A finished job is read back whole next (results, exports): let the planner see it.
    with rt.uow() as uow:
        uow.repo.refresh_item_statistics()
        uow.commit()
    return outcome
