"""Unit of work: one transaction, a repository on it, events and messages collected.

Events are written in the same transaction as the change they describe; task messages are
published only after the commit succeeded, so a worker never wakes up to state it cannot see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Protocol

import structlog
from sqlalchemy import Connection, Engine

from llmbatch.db.budgets import BudgetRepository
from llmbatch.db.history import HistoryRepository
from llmbatch.db.limits import LimitsRepository
from llmbatch.db.repository import Repository
from llmbatch.db.retention import drop_requests
from llmbatch.domain.changes import BatchChange, JobChange
from llmbatch.domain.events import Event, EventType
from llmbatch.observability.recorder import observe
from llmbatch.observability.redaction import redact_value
from llmbatch.service_layer import tasks
from llmbatch.webhooks.outbox import WebhookOutbox

__all__ = ["Message", "NullPublisher", "Publisher", "RecordingPublisher", "UnitOfWork"]

log = structlog.get_logger("llmbatch.uow")


# A task message: the task's name, its arguments, and the delay before it may run.
Message = tuple[str, tuple[Any, ...], float | None]


class Publisher(Protocol):
    """Sends task messages (wake-up calls: the database holds the truth).

    ``publish_many`` sends a unit of work's messages together, which a broker may do in one
    round trip (the embedded SQLite broker in one transaction instead of one per message).
    """

    def publish(self, task: str, *args: Any, countdown: float | None = None) -> None: ...

    def publish_many(self, messages: Sequence[Message]) -> None: ...


class NullPublisher:
    """For processes that only read or that rely on the beat tick to pick work up."""

    def publish(self, task: str, *args: Any, countdown: float | None = None) -> None:
        return None

    def publish_many(self, messages: Sequence[Message]) -> None:
        return None


class RecordingPublisher:
    """Keeps messages in a list: for tests and for driving the lifecycle synchronously."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple[Any, ...]]] = []

    def publish(self, task: str, *args: Any, countdown: float | None = None) -> None:
        self.messages.append((task, args))

    def publish_many(self, messages: Sequence[Message]) -> None:
        self.messages.extend((task, args) for task, args, _ in messages)


class UnitOfWork:
    """``with uow: ...; uow.commit()`` - anything not committed is rolled back."""

    repo: Repository
    limits: LimitsRepository
    history: HistoryRepository
    budgets: BudgetRepository

    def __init__(self, engine: Engine, publisher: Publisher | None = None, *,
                 webhook_batch_events: bool = False, retain_requests: bool = True) -> None:
        self._engine = engine
        self._publisher = publisher or NullPublisher()
        self._webhook_batch_events = webhook_batch_events
        self._retain_requests = retain_requests
        self._conn: Connection | None = None
        self._events: list[Event] = []
        self._changes: list[BatchChange | JobChange] = []
        self._messages: list[Message] = []

    def __enter__(self) -> UnitOfWork:
        self._conn = self._engine.connect()
        self._conn.begin()
        self.repo = Repository(self._conn)
        self.limits = LimitsRepository(self._conn)
        self.history = HistoryRepository(self._conn)
        self.budgets = BudgetRepository(self._conn)
        self._events = []
        self._changes = []
        self._messages = []
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._conn is not None
        try:
            if self._conn.in_transaction():
                self._conn.rollback()
        finally:
            self._conn.close()
            self._conn = None

    def save(self, change: BatchChange | JobChange) -> bool:
        """Persist one transition decided in the domain, with its event; False (and a log
        line) when it no longer applies: the row moved on, or another task holds the lease."""
        if isinstance(change, BatchChange):
            applied = self.repo.save_batch(change)
            subject = {"batch_id": change.batch_id}
        else:
            applied = self.repo.save_job(change)
            subject = {"job_id": change.job_id}
        if applied:
            self._changes.append(change)
        if applied and change.event is not None:
            self.record(change.event)
        if not applied:
            log.info("llmbatch.change.lost_race", to=str(change.to) if change.to else None,
                     **subject)
        return applied

    def record(self, event: Event) -> None:
        """Add an event to the timeline, written at commit."""
        self._events.append(event)

    def publish_after_commit(self, task: str, *args: Any, countdown: float | None = None) -> None:
        self._messages.append((task, args, countdown))

    def commit(self) -> None:
        assert self._conn is not None
        # The timeline is read by people and sent in webhooks: redacted like the logs.
        self._events = [replace(e, data=redact_value(e.data)) if e.data else e
                        for e in self._events]
        self.repo.add_events(self._events)
        # Notifications go out from an outbox written in this same transaction: committed
        # together with the change they announce, or not at all.
        if WebhookOutbox(self._conn).enqueue(self._events,
                                             batch_events=self._webhook_batch_events):
            self._messages.append((tasks.WEBHOOKS, (), None))
        if not self._retain_requests:
            drop_requests(self._conn, {e.job_id for e in self._events
                                       if e.type is EventType.JOB_COMPLETED})
        measured = observe(self._conn, self._changes, self._events)
        self._events, self._changes = [], []
        self._conn.commit()
        for update in measured:  # counted only once the change is durable
            update()
        messages, self._messages = self._messages, []
        if messages:
            self._publisher.publish_many(messages)
        # No eager BEGIN: the connection begins on its next statement, so a unit of work
        # that committed holds no (SQLite write) lock while it does other things.

    def rollback(self) -> None:
        assert self._conn is not None
        self._conn.rollback()
        self._events = []
        self._messages = []
