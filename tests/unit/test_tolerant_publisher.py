"""``TolerantPublisher``: a failed wake-up call is kept and logged, never raised, and a
long-lived process whose broker stays down keeps a bounded number of them.
``BackgroundPublisher``: the same from a thread of its own, the caller never waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from structlog.testing import capture_logs

from llmbatch.service_layer.unit_of_work import Message
from llmbatch.service_layer.wakeups import _KEPT_FAILURES, BackgroundPublisher, TolerantPublisher

CAP_S = 60  # a generous cap on waiting for the sending thread


class _Down:
    def publish(self, task: str, *args: object, countdown: float | None = None) -> None:
        raise ConnectionRefusedError("refused")

    def publish_many(self, messages: Sequence[Message]) -> None:
        raise ConnectionRefusedError(f"refused {len(messages)}")


def test_failures_are_logged_and_kept_up_to_a_bound() -> None:
    publisher = TolerantPublisher(_Down())
    with capture_logs() as logs:
        for attempt in range(_KEPT_FAILURES + 5):
            publisher.publish_many([("llmbatch.plan", (f"job-{attempt}",), None)])
    assert publisher.failures == ["refused 1"] * _KEPT_FAILURES
    assert [log["event"] for log in logs] == ["llmbatch.publish.failed"] * (_KEPT_FAILURES + 5)
    assert logs[0]["tasks"] == ["llmbatch.plan"]


def test_a_quiet_publisher_keeps_the_failure_for_its_caller_to_tell() -> None:
    publisher = TolerantPublisher(_Down(), quiet=True)
    with capture_logs() as logs:
        publisher.publish("llmbatch.tick")
    assert (publisher.failures, logs) == (["refused 1"], [])


class _Held:
    """A broker that takes messages only once ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sent: list[Message] = []

    def publish(self, task: str, *args: object, countdown: float | None = None) -> None:
        self.publish_many([(task, args, countdown)])

    def publish_many(self, messages: Sequence[Message]) -> None:
        assert self.release.wait(CAP_S)
        self.sent.extend(messages)


def test_a_background_publisher_queues_at_once_and_sends_in_order() -> None:
    """The caller (a request that committed) never waits for the broker; the thread sends
    every message, in the order they were queued, once the broker takes them."""
    broker = _Held()
    publisher = BackgroundPublisher(broker)
    for n in range(5):
        publisher.publish_many([("llmbatch.plan", (f"job-{n}",), None)])
    assert broker.sent == []  # all five queued while the broker holds the first
    broker.release.set()
    publisher.close(timeout_s=CAP_S)
    assert [m[1] for m in broker.sent] == [(f"job-{n}",) for n in range(5)]


def test_a_full_queue_drops_with_a_warning_and_a_failure_is_logged() -> None:
    broker = _Held()
    publisher = BackgroundPublisher(broker, capacity=1)
    with capture_logs() as logs:
        publisher.publish_many([("llmbatch.plan", ("a",), None)])  # taken by the thread
        _wait_until(lambda: publisher._queue.empty())
        publisher.publish_many([("llmbatch.plan", ("b",), None)])  # queued
        publisher.publish_many([("llmbatch.cancel", ("c",), None)])  # no room: dropped
        broker.release.set()
        publisher.close(timeout_s=CAP_S)
    assert [m[1] for m in broker.sent] == [("a",), ("b",)]
    assert [(log["event"], log.get("tasks")) for log in logs] == [
        ("llmbatch.publish.dropped", ["llmbatch.cancel"])]

    down = BackgroundPublisher(_Down())
    with capture_logs() as logs:
        down.publish("llmbatch.tick")
        down.close(timeout_s=CAP_S)
    assert down.failures == ["refused 1"]
    assert [log["event"] for log in logs] == ["llmbatch.publish.failed"]


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + CAP_S
    while not condition():
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.01)
