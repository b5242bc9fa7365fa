"""What happens to an item after its provider batch ended: kept, re-batched or final.

Pure rules, used by fetch. Retryable failures (expiry, provider-side cancel, 429/5xx inside the
batch, quota) go back to pending while attempts remain; permanent ones are final. A job being
cancelled re-batches nothing.
"""

from __future__ import annotations

from llmbatch.domain.models import ItemResult
from llmbatch.domain.states import ItemStatus, JobStatus

__all__ = ["job_outcome", "settle_result"]


def settle_result(result: ItemResult, *, attempts: int, max_attempts: int,
                  cancelling: bool) -> ItemStatus:
    """The item's next status given one result line."""
    if result.status is ItemStatus.SUCCEEDED:
        return ItemStatus.SUCCEEDED
    retryable = bool(result.error and result.error.retryable)
    if cancelling:
        return ItemStatus.CANCELLED if retryable else result.status
    if retryable and attempts < max_attempts:
        return ItemStatus.PENDING
    return result.status


def job_outcome(counts: dict[ItemStatus, int], *, cancelling: bool,
                never_accepted: bool) -> JobStatus:
    """The terminal status of a job whose items are all final.

    ``never_accepted``: no provider batch was ever accepted (a job-level failure, e.g. bad
    credentials), which is reported as FAILED rather than as a job of failed items.
    """
    total = sum(counts.values())
    succeeded = counts.get(ItemStatus.SUCCEEDED, 0)
    if cancelling:
        return JobStatus.CANCELLED
    if total and succeeded == total:
        return JobStatus.SUCCEEDED
    if succeeded == 0 and never_accepted:
        return JobStatus.FAILED
    return JobStatus.COMPLETED_WITH_FAILURES
