"""A user-started re-run of a finished job's failed items (``retry_job``): a child job with
only those items, in their input order, leaving the parent untouched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.errors import ConflictError, NotFoundError
from llmbatch.service_layer.jobs import create_job, retry_job

from .harness import MODEL, Driver, result_lines, row_counts

Writer = Callable[..., Path]


def test_retry_runs_the_failed_items_again_as_a_child_job(driver: Driver,
                                                           write_jsonl: Writer) -> None:
    driver.fake.outcomes.update({"q-1": ["permanent", "ok"], "q-3": ["permanent", "ok"]})
    parent_id, _ = create_job(driver.rt, write_jsonl(5), provider="fake", model=MODEL,
                              name="nightly")
    assert driver.run(parent_id).status is JobStatus.COMPLETED_WITH_FAILURES
    parent_records = list(result_lines(driver.rt, parent_id))

    child_id, count = retry_job(driver.rt, parent_id)
    child = driver.run(child_id)

    assert count == 2
    assert child.status is JobStatus.SUCCEEDED
    assert (child.parent_job_id, child.item_count, child.name) == (parent_id, 2,
                                                                   "retry of nightly")
    child_records = list(result_lines(driver.rt, child_id))
    assert [r["custom_id"] for r in child_records] == ["q-1", "q-3"]
    assert [r["attempts"] for r in child_records] == [1, 1]
    assert driver.fake.batch_keys()[-1] == ["q-1", "q-3"]
    # The parent is a finished record: retrying it changes nothing there.
    assert list(result_lines(driver.rt, parent_id)) == parent_records
    assert driver.job(parent_id).status is JobStatus.COMPLETED_WITH_FAILURES
    assert "job.retried" in driver.events(parent_id)


def test_retry_refuses_a_job_still_running(driver: Driver, write_jsonl: Writer) -> None:
    parent_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    before = row_counts(driver.rt.engine)

    with pytest.raises(ConflictError, match="pending"):
        retry_job(driver.rt, parent_id)
    assert row_counts(driver.rt.engine) == before


def test_retry_refuses_a_job_with_nothing_failed(driver: Driver, write_jsonl: Writer) -> None:
    parent_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    driver.run(parent_id)
    before = row_counts(driver.rt.engine)

    with pytest.raises(ConflictError, match="no failed or expired items"):
        retry_job(driver.rt, parent_id)
    assert row_counts(driver.rt.engine) == before


def test_retry_of_an_unknown_job_is_not_found(driver: Driver) -> None:
    with pytest.raises(NotFoundError):
        retry_job(driver.rt, "job_missing")


def test_cancelled_items_are_not_retried(driver: Driver, write_jsonl: Writer) -> None:
    from llmbatch.service_layer.jobs import cancel_job

    driver.fake.outcomes["q-0"] = ["permanent"]
    driver.fake.polls_to_finish = None
    driver.fake.cancel_keeps = 1
    parent_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    driver.drain()
    cancel_job(driver.rt, parent_id)
    parent = driver.run(parent_id)
    assert parent.counts == {ItemStatus.FAILED: 1, ItemStatus.CANCELLED: 2}

    child_id, count = retry_job(driver.rt, parent_id)

    assert count == 1
    assert [r["custom_id"] for r in result_lines(driver.rt, child_id)] == ["q-0"]
