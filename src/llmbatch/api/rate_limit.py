"""The per-key rate limit: a token bucket per key kept in this process (``rate_limit_per_s``
refill, ``rate_limit_burst`` capacity).

With several API processes each has its own buckets, so the limit a key sees is per process.
That keeps a request free of a shared-store round trip; a deployment that needs one global
limit puts it in its gateway. Kept apart from ``auth`` (which takes from the buckets) and
``state`` (which holds them), so neither has to import the other.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

__all__ = ["TokenBuckets"]


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """One token bucket per key; ``take`` answers how long to wait (0: go ahead)."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.setdefault(key, _Bucket(self._burst, now))
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
            bucket.at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self._rate
