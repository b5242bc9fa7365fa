"""Retry policy for provider API calls made by tasks: exponential backoff with jitter,
a provider's Retry-After honoured, permanent errors never retried."""

from __future__ import annotations

import random

from llmbatch.config import RetryConfig
from llmbatch.errors import ProviderError, RateLimitedError

__all__ = ["keep_trying_submit", "retry_delay"]


def keep_trying_submit(*, retryable: bool, internal: bool, copy_may_exist: bool,
                       failures: int, policy: RetryConfig) -> bool:
    """After a failed submission: back to PLANNED (True) or fail the batch (False)?

    - A copy may exist at the provider (an earlier attempt may have created it and the lookup
      by tag did not finish): never give up, or a billed batch would be abandoned.
    - The provider said "later" (network, 5xx, 429): keep trying with backoff, as polls do; an
      outage must delay work, not fail it.
    - An error in our own code: up to ``policy.max_attempts`` failures in a row.
    - The provider refused the request: fail now.
    """
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
