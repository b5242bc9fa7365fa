"""The synchronous lifecycle harness: a hand-moved clock and a ``Driver`` that plays the part
of the Celery worker and beat by calling the services, message by message."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select

from fakes import FakeProvider
from llmbatch.bootstrap import Runtime
from llmbatch.config import AppConfig
from llmbatch.db import tables
from llmbatch.db.engine import make_engine
from llmbatch.db.item_view import ITEMS_WITH_RESULTS, settled
from llmbatch.db.migrate import upgrade
from llmbatch.domain.batch import ProviderBatch
from llmbatch.domain.job import Job
from llmbatch.domain.states import is_terminal
from llmbatch.providers.registry import ProviderRegistry
from llmbatch.service_layer import tasks
from llmbatch.service_layer.progress import fetch_batch, finalize_job, poll_batch
from llmbatch.service_layer.provider_data import delete_provider_data
from llmbatch.service_layer.read_models import EventRecord, iter_job_events, job_results
from llmbatch.service_layer.scheduler import tick
from llmbatch.service_layer.submission import plan_job, submit_batch
from llmbatch.service_layer.unit_of_work import RecordingPublisher
from llmbatch.webhooks.delivery import deliver_due

MODEL = "fake-model"
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

SERVICES: dict[str, Callable[[Runtime, str], Any]] = {
    tasks.PLAN: plan_job, tasks.SUBMIT: submit_batch, tasks.POLL: poll_batch,
    tasks.FETCH: fetch_batch, tasks.FINALIZE: finalize_job, tasks.CLEANUP: delete_provider_data,
    tasks.WEBHOOKS: lambda rt: deliver_due(rt),
}


class Clock:
    """A clock that moves only when the test says so."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Driver:
    """Runs the lifecycle the way a worker and a beat would, one message at a time.

    ``fake`` is the injected ``FakeProvider`` (absent when the registry builds real adapters
    from config); ``provider_clock`` moves the provider's own clock (an emulator's) on with
    ours at every tick.
    """

    rt: Runtime
    publisher: RecordingPublisher
    clock: Clock
    fake: FakeProvider | None = None
    deliveries: int = 1  # how many times each message is delivered
    handled: list[str] = field(default_factory=list)
    provider_clock: Callable[[float], Any] | None = None

    def drain(self, max_messages: int = 500) -> None:
        """Deliver published messages (each ``deliveries`` times) until none are left."""
        for _ in range(max_messages):
            if not self.publisher.messages:
                return
            task, args = self.publisher.messages.pop(0)
            for _ in range(self.deliveries):
                if not args:  # a task about no one entity (webhook delivery)
                    SERVICES[task](self.rt)
                for entity_id in args:  # a tick's message may name several (as the worker)
                    SERVICES[task](self.rt, entity_id)
            self.handled.append(task)
        raise AssertionError(f"still busy after {max_messages} messages")

    def tick(self, advance_s: float = 0.0) -> None:
        """Move the clock, run the beat tick and deliver what it enqueued."""
        self.clock.advance(advance_s)
        if self.provider_clock is not None:
            self.provider_clock(advance_s)
        for _ in range(self.deliveries):
            tick(self.rt)
        self.drain()

    def run(self, job_id: str, max_ticks: int = 50) -> Job:
        """Drive ``job_id`` to a terminal status, ticking (400 s apart) when idle."""
        self.drain()
        for _ in range(max_ticks):
            job = self.job(job_id)
            if is_terminal(job.status):
                return job
            self.tick(400)
        provider = self.fake.describe() if self.fake else self.batches(job_id)
        raise AssertionError(f"job {job_id} not finished: {self.job(job_id).status}, "
                             f"provider: {provider}")

    def job(self, job_id: str) -> Job:
        with self.rt.uow() as uow:
            return uow.repo.get_job(job_id)

    def batches(self, job_id: str) -> list[ProviderBatch]:
        with self.rt.uow() as uow:
            return uow.repo.batches_of_job(job_id)

    def events(self, job_id: str) -> list[str]:
        return [e.type for e in self.event_rows(job_id)]

    def event_rows(self, job_id: str) -> list[EventRecord]:
        return list(iter_job_events(self.rt, job_id))

    def items(self, job_id: str) -> list[Any]:
        with self.rt.engine.connect() as conn:
            # As readers see them: the item rows with their stored results laid over.
            return list(conn.execute(select(*settled.all()).select_from(ITEMS_WITH_RESULTS)
                                     .where(tables.items.c.job_id == job_id)
                                     .order_by(tables.items.c.seq)).all())


def result_lines(rt: Runtime, job_id: str) -> Iterator[dict[str, Any]]:
    """A job's results as ``llmbatch results`` writes them: one JSON object per input line."""
    return (record.as_dict() for record in job_results(rt, job_id))


def real_provider_driver(config: AppConfig, *,
                         provider_clock: Callable[[float], Any] | None = None) -> Driver:
    """A driver whose registry builds adapters from ``config`` through the entry-point group,
    as a worker's does (no fake injected), on a database migrated here. Dispose of
    ``driver.rt.engine`` when done."""
    engine = make_engine(config.database)
    upgrade(engine)
    publisher = RecordingPublisher()
    clock = Clock()
    rt = Runtime(config=config, engine=engine, registry=ProviderRegistry(config),
                 publisher=publisher, clock=clock, worker_id="test-worker")
    return Driver(rt=rt, publisher=publisher, clock=clock, provider_clock=provider_clock)


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per table: what "nothing was stored" is checked against."""
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in tables.metadata.sorted_tables}


def orphan_items(engine: Engine) -> int:
    """Items naming no job: none may exist (``items`` has no foreign key to ``jobs`` since
    migration 0015; whoever writes items writes their job first)."""
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(tables.items).where(
            tables.items.c.job_id.not_in(select(tables.jobs.c.id)))).scalar_one()


def chat_line(custom_id: str | None, text: str = "hello", **extra: Any) -> str:
    line: dict[str, Any] = {"body": {"messages": [{"role": "user", "content": text}],
                                     "max_tokens": 20}, **extra}
    if custom_id is not None:
        line["custom_id"] = custom_id
    return json.dumps(line)
