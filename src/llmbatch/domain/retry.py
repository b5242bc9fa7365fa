"""Retry policy for provider API calls made by tasks: exponential backoff with jitter,
a provider's Retry-After honoured, permanent errors never retried, and no step retried
forever."""

from __future__ import annotations

import random
from enum import StrEnum
from typing import Final

from llmbatch.config import RetryConfig
from llmbatch.errors import ProviderError, RateLimitedError

__all__ = [
    "PROVIDER_UNREACHABLE_CODE",
    "RESULTS_UNAVAILABLE_CODE",
    "AfterCallFailure",
    "after_call_failure",
    "keep_trying_submit",
    "retry_delay",
]

# Why a batch was given up after ``retry.max_call_failures`` failed calls in a row.
RESULTS_UNAVAILABLE_CODE: Final = "results_unavailable"
PROVIDER_UNREACHABLE_CODE: Final = "provider_unreachable"


class AfterCallFailure(StrEnum):
    """What a batch does after one of its poll, cancel or fetch calls failed."""

    BACK_OFF = "back_off"  # keep the status; the tick tries again after ``retry_delay``
    # Fetch only: stop downloading; items without a stored result are settled like items the
    # provider returned no line for (re-batched while attempts remain, else failed).
    SETTLE_WITHOUT_RESULTS = "settle_without_results"
    # Poll or cancel: the batch may still run (and bill) at the provider, so its items are
    # never sent again: they fail for good, and the batch ends with the reason.
    ABANDON = "abandon"


def after_call_failure(failures: int, *, batch_ended: bool,
                       policy: RetryConfig) -> AfterCallFailure:
    """After ``failures`` failed calls in a row (this one included): try again, or give up.

    Every kind of failure counts (network, 5xx, 429, 401/403, our own bugs): each waits out
    its backoff first, so the bound is a number of tries, not a time, and an outage must last
    about ``max_call_failures`` backoff steps before work is given up. Giving up differs by
    what is at stake: the results of an ended batch can be settled without them (its items
    re-batched), but a batch that may still run must not be sent again, or it is billed twice.
    """
    if failures < policy.max_call_failures:
        return AfterCallFailure.BACK_OFF
    return AfterCallFailure.SETTLE_WITHOUT_RESULTS if batch_ended else AfterCallFailure.ABANDON


def keep_trying_submit(*, retryable: bool, internal: bool, copy_may_exist: bool,
                       failures: int, policy: RetryConfig) -> bool:
    """After a failed submission: back to PLANNED (True) or fail the batch (False)?

    - Nothing retries forever: at ``policy.max_call_failures`` failures in a row the batch
      fails, like a poll that keeps failing (the bound is a number of backed-off tries, so an
      outage of about 40-55 min with the defaults is waited out first).
    - A copy may exist at the provider (an earlier attempt may have created it and the lookup
      by tag did not finish): keep trying until that bound, or a billed batch is abandoned;
      at the bound its items fail rather than being sent again blind.
    - The provider said "later" (network, 5xx, 429): keep trying with backoff, as polls do; an
      outage must delay work, not fail it.
    - An error in our own code: up to ``policy.max_attempts`` failures in a row.
    - The provider refused the request: fail now.
    """
    if failures >= policy.max_call_failures:
        return False
    if copy_may_exist:
        return True
    if internal:
        return failures < policy.max_attempts
    return retryable


def retry_delay(error: ProviderError, attempt: int, policy: RetryConfig,
                rng: random.Random | None = None) -> float:
    """Seconds before the next try: Retry-After when given, else capped exponential backoff
    with "equal jitter" (uniform in the upper half of the step), so retries spread out but
    still grow."""
    if isinstance(error, RateLimitedError) and error.retry_after is not None:
        # The provider said how long; waiting less only earns another 429.
        return max(error.retry_after, 0.0)
    rng = rng or random.Random()
    ceiling = min(policy.max_delay_s, policy.base_delay_s * 2 ** max(attempt - 1, 0))
    return rng.uniform(ceiling / 2, ceiling)
