"""Publishing a wake-up message without ever turning a stored job into a reported failure.

A task message only wakes a worker: the database holds the truth, and the scheduler tick
finds committed work without any message (``service_layer.scheduler``). So once a job is
committed, a broker that cannot be reached must not make ``submit`` say it failed (a user who
resubmits pays twice): the publish error is logged and remembered for the caller to explain.

``DeferredPublisher`` builds the real publisher when the first message goes out: a command
that publishes once, after its work (``submit``), does not hold the broker client (Celery:
~15 MB of imports) while it reads the file, and one that ends up publishing nothing never
loads it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from llmbatch.service_layer.unit_of_work import Message, Publisher

__all__ = ["DeferredPublisher", "TolerantPublisher"]

log = structlog.get_logger(__name__)

# The first failures are kept for the caller to explain; a long-lived process (the API) whose
# broker stays down keeps no more than these.
_KEPT_FAILURES = 10


class TolerantPublisher:
    """Publishes through ``inner``; a failure is kept in ``failures`` (the first
    ``_KEPT_FAILURES``), not raised, and logged unless ``quiet`` (a caller that tells the user
    itself, like ``submit``)."""

    def __init__(self, inner: Publisher, *, quiet: bool = False) -> None:
        self._inner = inner
        self._quiet = quiet
        self.failures: list[str] = []

    def publish(self, task: str, *args: Any, countdown: float | None = None) -> None:
        self.publish_many([(task, args, countdown)])

    def publish_many(self, messages: Sequence[Message]) -> None:
        try:
            self._inner.publish_many(messages)
        except Exception as exc:  # any broker or transport error: the tick recovers
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            if len(self.failures) < _KEPT_FAILURES:
                self.failures.append(reason)
            if not self._quiet:
                log.warning("llmbatch.publish.failed", tasks=sorted({m[0] for m in messages}),
                            error=reason)


class DeferredPublisher:
    """Publishes through the publisher ``build`` returns, built on the first message."""

    def __init__(self, build: Callable[[], Publisher]) -> None:
        self._build = build
        self._inner: Publisher | None = None
        self._lock = threading.Lock()

    def _publisher(self) -> Publisher:
        with self._lock:
            if self._inner is None:
                self._inner = self._build()
            return self._inner

    def publish(self, task: str, *args: Any, countdown: float | None = None) -> None:
        self._publisher().publish(task, *args, countdown=countdown)

    def publish_many(self, messages: Sequence[Message]) -> None:
        if messages:
            self._publisher().publish_many(messages)
