"""Cancelling a job at each point of its life."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fakes import WorkerCrashed
from llmbatch.config import ModelConfig, ProviderConfig
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus
from llmbatch.service_layer.jobs import cancel_job, create_job
from llmbatch.service_layer.submission import plan_job, submit_batch

from .harness import MODEL, Driver, result_lines, row_counts

Writer = Callable[..., Path]


def statuses(driver: Driver, job_id: str) -> list[str]:
    return [r["status"] for r in result_lines(driver.rt, job_id)]


def test_cancelling_a_running_job_keeps_the_results_the_provider_finished(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.polls_to_finish = None  # runs until cancelled
    driver.fake.cancel_keeps = 2
    job_id, _ = create_job(driver.rt, write_jsonl(5), provider="fake", model=MODEL)
    driver.drain()
    driver.tick()
    assert driver.batches(job_id)[0].status is BatchStatus.IN_PROGRESS

    assert cancel_job(driver.rt, job_id) is JobStatus.CANCELLING
    job = driver.run(job_id)

    assert job.status is JobStatus.CANCELLED
    assert job.counts == {ItemStatus.SUCCEEDED: 2, ItemStatus.CANCELLED: 3}
    records = list(result_lines(driver.rt, job_id))
    assert [r["status"] for r in records] == ["succeeded"] * 2 + ["cancelled"] * 3
    assert [r["output_text"] for r in records[:2]] == ["answer to q-0", "answer to q-1"]
    assert records[4]["error"]["code"] == "batch_cancelled"
    assert [b.status for b in driver.fake.batches.values()] == ["cancelled"]
    (batch,) = driver.batches(job_id)
    assert batch.status is BatchStatus.FETCHED
    events = driver.events(job_id)
    assert events.index("job.cancel_requested") < events.index("batch.cancel_sent")
    assert events[-1] == "job.completed"


def test_a_retryable_failure_of_a_cancelled_job_is_not_sent_again(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.polls_to_finish = None
    driver.fake.cancel_keeps = 2
    driver.fake.outcomes["q-1"] = ["retryable"]
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    driver.drain()
    cancel_job(driver.rt, job_id)

    assert driver.run(job_id).status is JobStatus.CANCELLED
    assert statuses(driver, job_id) == ["succeeded", "cancelled", "cancelled"]
    assert len(driver.fake.batches) == 1


def test_cancelling_before_submission_sends_nothing(make_driver: Callable[..., Driver],
                                                    write_jsonl: Writer) -> None:
    driver = make_driver(ProviderConfig(models=(ModelConfig(name=MODEL, max_requests=2),)))
    job_id, _ = create_job(driver.rt, write_jsonl(5), provider="fake", model=MODEL)
    plan_job(driver.rt, job_id)
    driver.publisher.messages.clear()  # the submit messages arrive after the cancel

    cancel_job(driver.rt, job_id)
    job = driver.run(job_id)

    assert job.status is JobStatus.CANCELLED
    assert job.counts == {ItemStatus.CANCELLED: 5}
    assert {b.status for b in driver.batches(job_id)} == {BatchStatus.CANCELLED}
    assert driver.fake.batches == {}


def test_a_batch_held_by_a_worker_during_the_cancel_is_cancelled_by_its_submit(
        driver: Driver, write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    (batch_id,) = plan_job(driver.rt, job_id)
    with driver.rt.uow() as uow:  # another worker holds the planned batch right now
        uow.repo.claim_batch(batch_id, [BatchStatus.PLANNED], "other-worker", driver.clock(), 5)
        uow.commit()

    cancel_job(driver.rt, job_id)
    assert driver.batches(job_id)[0].status is BatchStatus.PLANNED  # cancel could not take it
    driver.clock.advance(6)
    job = driver.run(job_id)

    assert job.status is JobStatus.CANCELLED
    assert job.counts == {ItemStatus.CANCELLED: 2}
    assert driver.batches(job_id)[0].status is BatchStatus.CANCELLED
    assert driver.fake.batches == {}


def test_a_cancel_while_the_batch_is_being_submitted_cancels_it_at_the_provider(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.polls_to_finish = None
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    driver.fake.on_created = lambda _batch: cancel_job(driver.rt, job_id)

    job = driver.run(job_id)

    assert job.status is JobStatus.CANCELLED
    assert job.counts == {ItemStatus.CANCELLED: 3}
    assert [b.status for b in driver.fake.batches.values()] == ["cancelled"]


def test_cancelling_a_job_not_yet_planned(driver: Driver, write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)

    cancel_job(driver.rt, job_id)  # before the plan message is delivered
    job = driver.run(job_id)

    assert job.status is JobStatus.CANCELLED
    assert job.counts == {ItemStatus.CANCELLED: 3}
    assert driver.batches(job_id) == []


def test_cancelling_a_finished_job_changes_nothing(driver: Driver, write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    driver.run(job_id)
    before = row_counts(driver.rt.engine)

    assert cancel_job(driver.rt, job_id) is JobStatus.SUCCEEDED
    driver.drain()

    assert driver.job(job_id).status is JobStatus.SUCCEEDED
    assert statuses(driver, job_id) == ["succeeded"] * 2
    assert row_counts(driver.rt.engine) == before


def test_cancelling_twice_is_the_same_as_once(driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.polls_to_finish = None
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    driver.drain()

    assert cancel_job(driver.rt, job_id) is JobStatus.CANCELLING
    assert cancel_job(driver.rt, job_id) is JobStatus.CANCELLING
    assert driver.run(job_id).status is JobStatus.CANCELLED
    assert driver.events(job_id).count("job.cancel_requested") == 1


def test_a_provider_copy_left_by_a_dead_worker_is_cancelled_with_its_job(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.polls_to_finish = None
    driver.fake.crash_after_create = 1
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    (batch_id,) = plan_job(driver.rt, job_id)
    driver.publisher.messages.clear()
    with pytest.raises(WorkerCrashed):
        submit_batch(driver.rt, batch_id)

    cancel_job(driver.rt, job_id)  # the batch is still SUBMITTING under the dead worker's lease
    job = driver.run(job_id)

    assert job.status is JobStatus.CANCELLED
    assert job.counts == {ItemStatus.CANCELLED: 3}
    assert [b.status for b in driver.fake.batches.values()] == ["cancelled"]


def test_a_submission_interrupted_before_the_provider_got_it_is_not_sent_after_a_cancel(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.submit_errors.append(WorkerCrashed("killed before the upload"))
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    (batch_id,) = plan_job(driver.rt, job_id)
    driver.publisher.messages.clear()
    with pytest.raises(WorkerCrashed):
        submit_batch(driver.rt, batch_id)

    cancel_job(driver.rt, job_id)
    job = driver.run(job_id)

    assert job.status is JobStatus.CANCELLED
    assert job.counts == {ItemStatus.CANCELLED: 3}
    assert driver.fake.batches == {}
    assert driver.batches(job_id)[0].status is BatchStatus.CANCELLED
