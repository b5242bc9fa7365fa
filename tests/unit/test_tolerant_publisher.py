"""``TolerantPublisher``: a failed wake-up call is kept and logged, never raised, and a
long-lived process whose broker stays down keeps a bounded number of them."""

from __future__ import annotations

from collections.abc import Sequence

from structlog.testing import capture_logs

from llmbatch.service_layer.unit_of_work import Message
from llmbatch.service_layer.wakeups import _KEPT_FAILURES, TolerantPublisher


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
