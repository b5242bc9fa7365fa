"""Publishing a wake-up message without ever turning a stored job into a reported failure.

A task message only wakes a worker: the database holds the truth, and the scheduler tick
finds committed work without any message (``service_layer.scheduler``). So once a job is
committed, a broker that cannot be reached must not make ``submit`` say it failed (a user who
resubmits pays twice): the publish error is logged and remembered for the caller to explain.

``BackgroundPublisher`` sends from a thread of its own, so that a request that committed work
answers at once, whatever the broker does (the API).

``DeferredPublisher`` builds the real publisher when the first message goes out: a command
that publishes once, after its work (``submit``), does not hold the broker client (Celery:
~15 MB of imports) while it reads the file, and one that ends up publishing nothing never
loads it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from llmbatch.service_layer.unit_of_work import Message, Publisher

__all__ = ["BackgroundPublisher", "DeferredPublisher", "TolerantPublisher"]

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


# Commits whose messages wait for the sending thread, at most; beyond, they are dropped.
_QUEUED_COMMITS = 10_000


class BackgroundPublisher(TolerantPublisher):
    """Publishes tolerantly from one thread of its own: ``publish_many`` only queues.

    Why: the API publishes inside the request that committed the work, still holding its
    database connection. A broker that refuses costs ~6 s a publish in kombu's connection
    retries, one that never answers several ``broker.socket_timeout_s``; meanwhile the request
    waits, and a few such requests held every connection of the pool, failing the requests
    behind them. Queued, a request answers at once; the thread sends in commit order. When
    ``_QUEUED_COMMITS`` wait (the broker is gone for long), more are dropped with a warning:
    the scheduler tick finds the work without them."""

    def __init__(self, inner: Publisher, *, capacity: int = _QUEUED_COMMITS) -> None:
        super().__init__(inner)
        self._queue: queue.Queue[Sequence[Message] | None] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def publish_many(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._send, name="llmbatch-publisher",
                                                daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(list(messages))
        except queue.Full:
            log.warning("llmbatch.publish.dropped", tasks=sorted({m[0] for m in messages}),
                        queued=self._queue.maxsize)

    def _send(self) -> None:
        while (messages := self._queue.get()) is not None:
            super().publish_many(messages)

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued, for ``timeout_s`` at most (what is left, the tick finds), and
        stop the thread; a later message starts a new one."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        thread.join(timeout_s)


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
