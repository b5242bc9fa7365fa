"""Celery messages are only wake-up calls: delivering each twice, replaying them after the job
ended, or losing them all must leave the same job behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from llmbatch.config import ModelConfig, ProviderConfig, WorkerConfig
from llmbatch.db import tables
from llmbatch.domain.states import JobStatus, is_terminal
from llmbatch.service_layer import tasks
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.scheduler import tick
from llmbatch.service_layer.submission import plan_job

from .harness import MODEL, SERVICES, Driver, result_lines

Writer = Callable[..., Path]
SPLIT = ProviderConfig(models=(ModelConfig(name=MODEL, max_requests=2),))
# The job's own tasks (webhook delivery runs only for jobs that asked for notifications).
LIFECYCLE = set(SERVICES) - {tasks.WEBHOOKS}


def scripted(driver: Driver) -> Driver:
    """The same story for every run: one retryable and one permanent failure."""
    driver.fake.outcomes.update({"q-1": ["retryable", "ok"], "q-4": ["permanent"]})
    driver.fake.polls_to_finish = 1
    return driver


def without_ids(record: dict[str, Any]) -> dict[str, Any]:
    """A result record with the history's batch ids and times left out (they differ per run)."""
    history = [{k: v for k, v in h.items() if k not in {"batch_id", "at"}}
               for h in record["history"]]
    return {**record, "history": history}


def outcome(driver: Driver, job_id: str) -> dict[str, Any]:
    """Everything a user can see about a finished job, minus ids and times."""
    job = driver.job(job_id)
    events = driver.events(job_id)
    return {
        "status": job.status,
        "counts": job.counts,
        "usage": job.usage,
        "records": [without_ids(r) for r in result_lines(driver.rt, job_id)],
        "provider_batches": driver.fake.batch_keys(),
        "batches": sorted((str(b.status), b.item_count) for b in driver.batches(job_id)),
        "events": sorted(events),
    }


def test_every_message_delivered_twice_changes_nothing(make_driver: Callable[..., Driver],
                                                       write_jsonl: Writer) -> None:
    path = write_jsonl(5)
    runs = []
    for deliveries in (1, 2):
        driver = scripted(make_driver(SPLIT))
        driver.deliveries = deliveries
        job_id, _ = create_job(driver.rt, path, provider="fake", model=MODEL)
        driver.run(job_id)
        runs.append(outcome(driver, job_id))
        assert set(driver.handled) == LIFECYCLE  # every kind of task was delivered

    once, twice = runs
    assert once["status"] is JobStatus.COMPLETED_WITH_FAILURES
    assert twice == once


def test_replaying_every_message_after_the_job_ended_changes_no_row(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = scripted(make_driver(SPLIT))
    job_id, _ = create_job(driver.rt, write_jsonl(5), provider="fake", model=MODEL)
    driver.run(job_id)
    before = dump(driver)

    for batch in driver.batches(job_id):
        for task in (tasks.SUBMIT, tasks.POLL, tasks.FETCH):
            SERVICES[task](driver.rt, batch.id)
    for task in (tasks.PLAN, tasks.FINALIZE):
        SERVICES[task](driver.rt, job_id)
    driver.tick(400)

    assert dump(driver) == before
    assert len(driver.fake.batches) == 4


def test_a_job_finishes_when_every_message_is_lost_the_first_time_it_is_sent(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = scripted(make_driver(SPLIT))
    job_id, _ = create_job(driver.rt, write_jsonl(5), provider="fake", model=MODEL)
    lost: set[tuple[str, tuple[Any, ...]]] = set()

    for _ in range(40):
        while driver.publisher.messages:
            message = driver.publisher.messages.pop(0)
            if message in lost:
                task, args = message
                SERVICES[task](driver.rt, *args)
            else:
                lost.add(message)  # the tick has to send it again
        if is_terminal(driver.job(job_id).status):
            break
        driver.clock.advance(400)
        tick(driver.rt)

    assert driver.job(job_id).status is JobStatus.COMPLETED_WITH_FAILURES
    statuses = [r["status"] for r in result_lines(driver.rt, job_id)]
    assert statuses == ["succeeded"] * 4 + ["failed"]
    assert {task for task, _ in lost} == LIFECYCLE


def dump(driver: Driver) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for before/after comparisons."""
    with driver.rt.engine.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key))]
                for t in tables.metadata.sorted_tables}


def test_messages_naming_several_batches_run_the_job_like_one_message_per_batch(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    """With few messages allowed per tick, each names several batches; the job ends the same
    as with one message per batch, and no tick publishes more than allowed per kind."""
    path = write_jsonl(12)
    runs = []
    for per_kind in (200, 2):
        driver = scripted(make_driver(SPLIT, worker=WorkerConfig(dispatch_messages=per_kind)))
        job_id, _ = create_job(driver.rt, path, provider="fake", model=MODEL)
        plan_job(driver.rt, job_id)  # six batches of two; the messages plan sent are lost
        driver.publisher.messages.clear()
        driver.clock.advance(driver.rt.config.worker.lease_s + 1)
        tick(driver.rt)
        published = [(task, args) for task, args in driver.publisher.messages]
        assert len([1 for task, _ in published if task == tasks.SUBMIT]) == min(per_kind, 6)
        assert sorted(i for _, args in published for i in args) == sorted(
            b.id for b in driver.batches(job_id))
        driver.run(job_id)
        result = outcome(driver, job_id)
        result["provider_batches"].sort()  # sent in another order: the same batches
        runs.append(result)
    assert runs[1] == runs[0]
