"""Who is calling: ``Authorization: Bearer <key>`` resolved to a tenant, and the per-key rate
limit.

The rate limit is a token bucket per key kept in this process (``rate_limit_per_s`` refill,
``rate_limit_burst`` capacity): with several API processes each has its own buckets, so the
limit a key sees is per process. That keeps a request free of a shared-store round trip; a
deployment that needs one global limit puts it in its gateway.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from fastapi import Request

from llmbatch.api.problems import ApiProblem
from llmbatch.api.state import api_state
from llmbatch.service_layer.api_keys import Principal, authenticate

__all__ = ["TokenBuckets", "caller"]

LOCAL_USER = Principal(tenant="default", admin=True)


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


def caller(request: Request) -> Principal:
    """The dependency every job route takes: the authenticated, rate-limited caller."""
    state = api_state(request)
    if not state.config.auth:
        return LOCAL_USER
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    principal = authenticate(state.runtime, key.strip()) if scheme.lower() == "bearer" else None
    if principal is None:
        raise ApiProblem(401, "a valid API key is required: 'Authorization: Bearer <key>' "
                              "(create one with: llmbatch keys create --tenant T)",
                         headers={"WWW-Authenticate": 'Bearer realm="llmbatch"'})
    wait = state.buckets.take(principal.key_id or principal.tenant)
    if wait > 0:
        raise ApiProblem(429, "rate limit exceeded for this API key",
                         headers={"Retry-After": str(max(1, math.ceil(wait)))})
    return principal
