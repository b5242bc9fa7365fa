"""Retry policy for provider API calls made by tasks: exponential backoff with full jitter,
a provider's Retry-After honoured, permanent errors never retried."""

from __future__ import annotations

import random

from llmbatch.config import RetryConfig
from llmbatch.errors import ProviderError, RateLimitedError

__all__ = ["retry_delay", "should_retry"]


def should_retry(error: ProviderError, attempt: int, policy: RetryConfig) -> bool:
    """``attempt`` counts calls made so far (1 after the first failure)."""
    return error.retryable and attempt < policy.max_attempts


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
