"""Pure rules behind the provider limits: the shape of the calls-per-minute bucket and whether
a planned batch may be submitted now.

Rate: a token bucket of capacity ``C`` refilled at ``r`` per second admits at most
``C + r * w`` calls in any window of ``w`` seconds. Choosing ``C = N / 10`` and
``r = (N - C) / 60`` makes that exactly ``N`` for ``w = 60``: *no* 60-second window (not only
calendar minutes) sees more than ``calls_per_minute`` calls, while short bursts of a tenth of
the budget still go out at once.

Submission: a batch goes to the provider only if the model's enqueued-token quota has room
for all of it next to the batches already there, the provider's cap on batches in flight is
not reached, and no recent quota failure (``FailureKind.QUOTA``) asked us to hold off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["WAITING_CODES", "BucketShape", "SubmissionBlock", "WaitReason", "bucket_shape",
           "submission_block"]


@dataclass(frozen=True)
class BucketShape:
    """Capacity (calls) and refill rate (calls per second) of a calls-per-minute bucket."""

    capacity: float
    rate_per_s: float

    def charge(self, cost: int) -> float:
        """What one operation of ``cost`` requests takes from the bucket: never more than the
        capacity, so that every operation can eventually go (for tiny caps this undercounts
        multi-request operations)."""
        return float(min(cost, self.capacity))


def bucket_shape(calls_per_minute: int) -> BucketShape:
    """The bucket that admits at most ``calls_per_minute`` calls in any 60 s window (for caps
    of 2 and more; a cap of 1 admits 2 in the worst window)."""
    capacity = max(1.0, calls_per_minute / 10)
    refill = max(calls_per_minute - capacity, 1.0)
    return BucketShape(capacity=capacity, rate_per_s=refill / 60.0)


class WaitReason(StrEnum):
    """Why a planned batch is not submitted yet; also stored as the batch's ``error_code``."""

    ENQUEUED_TOKENS = "waiting_for_token_quota"
    BATCHES_IN_FLIGHT = "waiting_for_batch_slot"
    QUOTA_HOLD = "waiting_after_token_limit"
    BUDGET = "waiting_for_budget"  # a job's or tenant's budget has no room (budgets.reserve)


WAITING_CODES = frozenset(str(r) for r in WaitReason)


@dataclass(frozen=True)
class SubmissionBlock:
    """A planned batch must wait: why, and the numbers an operator needs to see."""

    reason: WaitReason
    detail: dict[str, int | str]


def submission_block(*, batch_tokens: int, tokens_in_flight: int, token_limit: int | None,
                     batches_in_flight: int, max_batches_in_flight: int | None,
                     hold_until: datetime | None, now: datetime) -> SubmissionBlock | None:
    """``None`` if the batch may be submitted now, else why it waits.

    ``tokens_in_flight`` counts this provider+model's batches submitting, in progress or
    cancelling; ``batches_in_flight`` counts the provider's (all models). A batch larger than
    the quota on its own is never planned (see ``planning.pack_items``), so waiting always
    ends once earlier batches finish.
    """
    if hold_until is not None and now < hold_until:
        return SubmissionBlock(WaitReason.QUOTA_HOLD, {"until": hold_until.isoformat()})
    if max_batches_in_flight is not None and batches_in_flight >= max_batches_in_flight:
        return SubmissionBlock(WaitReason.BATCHES_IN_FLIGHT,
                               {"batches_in_flight": batches_in_flight,
                                "max_batches_in_flight": max_batches_in_flight})
    if token_limit is not None and tokens_in_flight + batch_tokens > token_limit:
        return SubmissionBlock(WaitReason.ENQUEUED_TOKENS,
                               {"tokens_in_flight": tokens_in_flight, "batch_tokens": batch_tokens,
                                "enqueued_token_limit": token_limit})
    return None
