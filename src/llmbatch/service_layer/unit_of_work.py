"""Unit of work: one transaction, a repository on it, events and messages collected.

Events are written in the same transaction as the change they describe; task messages are
published only after the commit succeeded, so a worker never wakes up to state it cannot see.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol

import structlog
from sqlalchemy import Connection, Engine

from llmbatch.db.budgets import BudgetRepository
from llmbatch.db.history import HistoryRepository
from llmbatch.db.limits import LimitsRepository
from llmbatch.db.repository import Repository
from llmbatch.domain.changes import BatchChange, JobChange
from llmbatch.domain.events import Event

__all__ = ["NullPublisher", "Publisher", "RecordingPublisher", "UnitOfWork"]

log = structlog.get_logger("llmbatch.uow")


class Publisher(Protocol):
    """Sends a task message (a wake-up call: the database holds the truth)."""

    def publish(self, task: str, *args: Any, countdown: float | None = None) -> None: ...


class NullPublisher:
    """For processes that only read or that rely on the beat tick to pick work up."""

    def publish(self, task: str, *args: Any, countdown: float | None = None) -> None:
        return None


class RecordingPublisher:
    """Keeps messages in a list: for tests and for driving the lifecycle synchronously."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple[Any, ...]]] = []

    def publish(self, task: str, *args: Any, countdown: float | None = None) -> None:
        self.messages.append((task, args))


class UnitOfWork:
    """``with uow: ...; uow.commit()`` - anything not committed is rolled back."""

    repo: Repository
    limits: LimitsRepository
    history: HistoryRepository
    budgets: BudgetRepository

    def __init__(self, engine: Engine, publisher: Publisher | None = None) -> None:
        self._engine = engine
        self._publisher = publisher or NullPublisher()
        self._conn: Connection | None = None
        self._events: list[Event] = []
        self._messages: list[tuple[str, tuple[Any, ...], float | None]] = []

    def __enter__(self) -> UnitOfWork:
        self._conn = self._engine.connect()
        self._conn.begin()
        self.repo = Repository(self._conn)
        self.limits = LimitsRepository(self._conn)
        self.history = HistoryRepository(self._conn)
        self.budgets = BudgetRepository(self._conn)
        self._events = []
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
        self.repo.add_events(self._events)
        self._events = []
        self._conn.commit()
        messages, self._messages = self._messages, []
        for task, args, countdown in messages:
            self._publisher.publish(task, *args, countdown=countdown)
        # No eager BEGIN: the connection begins on its next statement, so a unit of work
        # that committed holds no (SQLite write) lock while it does other things.

    def rollback(self) -> None:
        assert self._conn is not None
        self._conn.rollback()
        self._events = []
        self._messages = []
