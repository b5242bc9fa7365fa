"""Timing provider operations: ``limits.provider_call`` wraps every one in ``timed_call``.

The outcome label is a small fixed set, from the kind of error (never its text): ``ok``,
``deferred`` (our own call limits said not now), ``rate_limited``, ``quota``, ``transient``,
``auth``, ``gone``, ``permanent``, ``error`` (anything else: a bug, the database).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from llmbatch.errors import (
    AuthenticationError,
    ProviderError,
    QuotaExceededError,
    RateLimitedError,
    ResourceGoneError,
    TransientProviderError,
)
from llmbatch.observability.metrics import metrics

__all__ = ["call_outcome", "timed_call"]

_KINDS: tuple[tuple[type[ProviderError], str], ...] = (
    (QuotaExceededError, "quota"), (RateLimitedError, "rate_limited"),
    (TransientProviderError, "transient"), (AuthenticationError, "auth"),
    (ResourceGoneError, "gone"), (ProviderError, "permanent"))


def call_outcome(exc: BaseException | None) -> str:
    """The bounded outcome label of a call that raised ``exc`` (None: it succeeded)."""
    if exc is None:
        return "ok"
    if type(exc).__name__ == "CallDeferred":  # service_layer.limits, which imports us
        return "deferred"
    for kind, label in _KINDS:
        if isinstance(exc, kind):
            return label
    return "error"


@contextmanager
def timed_call(provider: str, operation: str) -> Iterator[None]:
    """Count the operation by outcome; time it unless it was deferred before it started."""
    m = metrics()
    started = time.perf_counter()
    try:
        yield
    except BaseException as exc:
        outcome = call_outcome(exc)
        m.provider_calls.labels(provider, operation, outcome).inc()
        if outcome != "deferred":
            m.provider_call_duration.labels(provider, operation).observe(
                time.perf_counter() - started)
        raise
    m.provider_calls.labels(provider, operation, "ok").inc()
    m.provider_call_duration.labels(provider, operation).observe(time.perf_counter() - started)
