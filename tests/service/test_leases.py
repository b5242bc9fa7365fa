"""Leases: a submission slower than the lease keeps it, a lease belongs to one task execution,
and a change made without the lease is reported, not written."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from fakes import FakeBatch, FakeProvider
from llmbatch.config import ModelConfig, ProviderConfig, ProviderLimits, WorkerConfig
from llmbatch.domain.events import EventType
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.scheduler import tick
from llmbatch.service_layer.submission import plan_job, submit_batch

from .harness import MODEL, Driver, chat_line, result_lines

Writer = Callable[..., Path]
LEASE_S = 0.3  # real seconds: the heartbeat renews every 0.1 s


def wait_until(condition: Callable[[], bool], cap_s: float = 20.0) -> None:
    deadline = time.monotonic() + cap_s
    while not condition():
        assert time.monotonic() < deadline, "no progress within the cap"
        time.sleep(0.02)


def test_a_create_slower_than_the_lease_keeps_it_and_is_never_sent_twice(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(worker=WorkerConfig(lease_s=LEASE_S))
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    (batch_id,) = plan_job(driver.rt, job_id)
    driver.publisher.messages.clear()
    ticks: list[dict[str, int]] = []

    def slow_create(_: FakeBatch) -> None:
        # The provider takes ten leases to answer. The heartbeat must renew the lease against
        # the moved clock before the tick looks, or the tick declares the submission dead.
        lease_at_start = driver.batches(job_id)[0].lease_until
        driver.clock.advance(LEASE_S * 10)
        wait_until(lambda: driver.batches(job_id)[0].lease_until != lease_at_start)
        ticks.append(dict(tick(driver.rt)))
        assert submit_batch(driver.rt, batch_id) is None  # a redelivery finds it held

    driver.fake.on_created = slow_create
    assert submit_batch(driver.rt, batch_id) is BatchStatus.IN_PROGRESS

    assert ticks and ticks[0]["repaired"] == 0
    assert driver.run(job_id).status is JobStatus.SUCCEEDED
    assert len(driver.fake.batches) == 1
    events = driver.events(job_id)
    assert EventType.BATCH_SUBMIT_INTERRUPTED not in events
    assert events.count(EventType.BATCH_SUBMITTED) == 1


def test_two_threads_of_one_process_never_hold_the_same_batch(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver()
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    (batch_id,) = plan_job(driver.rt, job_id)
    driver.publisher.messages.clear()
    inside = threading.Event()
    release = threading.Event()
    second: list[BatchStatus | None] = []

    def hold_the_call(_: FakeBatch) -> None:
        inside.set()
        assert release.wait(20)

    driver.fake.on_created = hold_the_call
    first = threading.Thread(target=submit_batch, args=(driver.rt, batch_id))
    first.start()
    assert inside.wait(20)
    # Same process, same worker id: the second task still needs the lease the first holds.
    second.append(submit_batch(driver.rt, batch_id))
    release.set()
    first.join(20)

    assert second == [None]
    assert len(driver.fake.batches) == 1
    assert driver.batches(job_id)[0].status is BatchStatus.IN_PROGRESS


def test_a_change_decided_under_a_lease_someone_else_took_is_not_written(
        driver: Driver, write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    (batch_id,) = plan_job(driver.rt, job_id)
    with driver.rt.uow() as uow:
        mine = uow.repo.claim_batch(batch_id, [BatchStatus.PLANNED], "task-a", driver.clock(),
                                    1.0)
        uow.commit()
    assert mine is not None
    driver.clock.advance(2)  # task-a stalls past its lease; task-b takes the batch
    with driver.rt.uow() as uow:
        assert uow.repo.claim_batch(batch_id, [BatchStatus.PLANNED], "task-b", driver.clock(),
                                    60.0) is not None
        uow.commit()

    with driver.rt.uow() as uow:
        applied = uow.save(mine.start_submission(driver.clock()))
        uow.commit()

    assert applied is False
    (batch,) = driver.batches(job_id)
    assert (batch.status, batch.lease_owner, batch.submit_attempts) == (
        BatchStatus.PLANNED, "task-b", 0)


def test_items_above_a_lowered_byte_limit_fail_at_plan_and_the_rest_runs(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver()
    lines = [chat_line("small-1", "hi"), chat_line("big", "x" * 500), chat_line("small-2", "yo")]
    job_id, _ = create_job(driver.rt, write_jsonl(lines), provider="fake", model=MODEL)
    driver.publisher.messages.clear()
    # The operator lowers max_bytes below an item already stored.
    lowered = FakeProvider(config=ProviderConfig(models=(ModelConfig(name=MODEL),),
                                                 limits=ProviderLimits(max_bytes=300)))
    driver.rt.registry.register("fake", lowered)
    driver.fake = lowered

    job = driver.run(job_id)

    assert job.status is JobStatus.COMPLETED_WITH_FAILURES
    records = {r["custom_id"]: r for r in result_lines(driver.rt, job_id)}
    assert records["small-1"]["status"] == records["small-2"]["status"] == "succeeded"
    assert records["big"]["status"] == str(ItemStatus.FAILED)
    assert records["big"]["error"]["code"] == "item_too_large"
    assert "300-byte" in records["big"]["error"]["message"]
    assert EventType.ITEMS_TOO_LARGE in driver.events(job_id)
