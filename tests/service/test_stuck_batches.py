"""Repair: a batch still running well past the provider's own deadline is stuck."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus
from llmbatch.service_layer.jobs import create_job

from .harness import MODEL, Driver

Writer = Callable[..., Path]


def test_a_batch_stuck_past_the_deadline_is_cancelled_and_its_unfinished_items_rebatched(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.polls_to_finish = None  # the provider never finishes it on its own
    driver.fake.cancel_keeps = 2
    job_id, _ = create_job(driver.rt, write_jsonl(5), provider="fake", model=MODEL)
    driver.drain()
    driver.tick()
    driver.tick(advance_s=3600)
    assert driver.batches(job_id)[0].status is BatchStatus.IN_PROGRESS
    assert not [e for e in driver.events(job_id) if e == "batch.stuck"]

    deadline = driver.fake.deadline_s + driver.rt.config.provider("fake").stuck_grace_s
    driver.fake.polls_to_finish = 0  # the re-batch completes normally
    driver.tick(advance_s=deadline)  # now 1 h past deadline + grace since submission
    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert job.counts == {ItemStatus.SUCCEEDED: 5}
    first, second = driver.batches(job_id)
    assert first.cancel_reason == "deadline_exceeded"
    assert first.status is BatchStatus.FETCHED and first.provider_status == "cancelled"
    assert second.item_count == 3  # only the items the stuck batch had not finished
    assert driver.events(job_id).count("batch.stuck") == 1
