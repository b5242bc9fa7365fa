"""Ending a step that fails again and again: nothing retries forever.

A poll, cancel or fetch call that fails backs off and is tried again by the tick; after
``retry.max_call_failures`` failures in a row (``domain.retry.after_call_failure``) the step
ends, visibly (the reason on the batch and in an event):

- a fetch stops downloading: the batch moves on with ``results_unavailable`` and its items
  without a stored result are settled like items the provider returned no line for;
- a poll or cancel abandons the batch: it may still run at the provider, so its items are not
  sent again (that could bill them twice) but fail for good with ``provider_unreachable``.
"""

from __future__ import annotations

import structlog

from llmbatch.bootstrap import Runtime
from llmbatch.domain.batch import ProviderBatch
from llmbatch.domain.limits import WAITING_CODES
from llmbatch.domain.retry import (
    PROVIDER_UNREACHABLE_CODE,
    AfterCallFailure,
    after_call_failure,
)
from llmbatch.domain.states import BatchStatus, ItemStatus
from llmbatch.domain.storable import escape_text
from llmbatch.errors import ProviderError
from llmbatch.observability.redaction import redact
from llmbatch.service_layer import tasks

__all__ = ["abandon_batch", "fetch_given_up"]

log = structlog.get_logger("llmbatch.progress")


def abandon_batch(rt: Runtime, batch: ProviderBatch, exc: ProviderError) -> BatchStatus:
    """Stop watching a batch the provider cannot be asked about. It may still run there, so
    its items are not sent again (that could bill them twice): they fail for good with
    ``provider_unreachable``, and the batch is closed with the reason."""
    now = rt.clock()
    failures = batch.call_failures + 1
    reason = redact(escape_text(
        f"gave up after {failures} failed calls in a row; the batch may still run at the "
        f"provider, so its items are not sent again (last error: {exc})"))
    error = {"type": "batch_abandoned", "code": PROVIDER_UNREACHABLE_CODE, "message": reason,
             "retryable": False}
    abandon = batch.abandon(now, reason=reason, failures=failures)
    with rt.uow() as uow:
        if not uow.save(abandon):
            return batch.status  # the lease was lost: whoever holds the batch decides
        uow.history.record_unreported(batch.id, "no_result", error, now)
        failed = uow.repo.settle_unreported_items(batch.id, ItemStatus.FAILED, error, now)
        uow.save(batch.after(abandon).fetched(now, results=0, without_result=failed))
        uow.publish_after_commit(tasks.FINALIZE, batch.job_id)
        uow.limits.wake_waiting(batch.provider, WAITING_CODES, now)
        uow.commit()
    log.error("llmbatch.batch.abandoned", batch_id=batch.id, failures=failures, error=str(exc))
    return BatchStatus.FETCHED


def fetch_given_up(rt: Runtime, batch: ProviderBatch,
                   exc: ProviderError) -> ProviderBatch | None:
    """After a failed download: None to back off and try again; once
    ``retry.max_call_failures`` downloads failed in a row, the batch with the reason on it
    (saved), whose items still without a result are then settled as re-batchable."""
    failures = batch.call_failures + 1
    if after_call_failure(failures, batch_ended=True,
                          policy=rt.config.retry) is AfterCallFailure.BACK_OFF:
        return None
    reason = redact(escape_text(
        f"results could not be downloaded: {failures} tries failed in a row "
        f"(last error: {exc})"))
    change = batch.results_unavailable(rt.clock(), reason=reason, failures=failures)
    with rt.uow() as uow:
        uow.save(change)
        uow.commit()
    log.error("llmbatch.batch.results_unavailable", batch_id=batch.id, failures=failures,
              error=str(exc))
    return batch.after(change)
