"""When to poll a provider batch next.

``fixed``: every ``interval_s``. ``adaptive``: a quarter of the time elapsed since submission
(fast at first, slower as a batch proves long), shortened towards the completion the observed
progress predicts, clamped to ``[min_s, max_s]``, with ±10% jitter (kept inside those bounds)
so polls of batches submitted together spread out.
"""

from __future__ import annotations

import random

from llmbatch.config import PollingConfig

__all__ = ["next_poll_delay"]


def next_poll_delay(policy: PollingConfig, *, elapsed_s: float, done: int, total: int,
                    rng: random.Random | None = None) -> float:
    """Seconds to wait before the next poll."""
    rng = rng or random.Random()
    if policy.strategy == "fixed":
        return policy.interval_s
    delay = max(elapsed_s, 0.0) * 0.25
    if total > 0 and 0 < done < total:
        rate = done / max(elapsed_s, 1e-3)
        remaining = (total - done) / rate
        delay = min(delay, remaining / 2) if remaining > 0 else delay
    delay = min(max(delay, policy.min_s), policy.max_s)
    # Jitter inside the bounds: they are limits the operator set, not suggestions.
    return rng.uniform(max(delay * 0.9, policy.min_s), min(delay * 1.1, policy.max_s))
