"""Retries that never pay twice: a retry takes only the input lines whose latest attempt in
the lineage (the job and every retry made from it) did not succeed, and the lineage's
results merge into one answer per input line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.errors import ConflictError
from llmbatch.service_layer.jobs import cancel_job, create_job, retry_lineage
from llmbatch.service_layer.read_models import lineage_results

from .harness import MODEL, Driver, orphan_items, row_counts

Writer = Callable[..., Path]


def sent_keys(driver: Driver) -> list[str]:
    """Every request the provider was sent, over all batches (repeats included)."""
    assert driver.fake is not None
    return [key for batch in driver.fake.batch_keys() for key in batch]


def test_retrying_the_same_parent_twice_sends_no_item_again(driver: Driver,
                                                           write_jsonl: Writer) -> None:
    driver.fake.outcomes.update({"q-1": ["permanent", "ok"],
                                 "q-3": ["permanent", "permanent", "ok"]})
    parent_id, _ = create_job(driver.rt, write_jsonl(5), provider="fake", model=MODEL)
    driver.run(parent_id)

    first = retry_lineage(driver.rt, parent_id)
    driver.run(first.child_id)
    second = retry_lineage(driver.rt, parent_id)
    driver.run(second.child_id)
    before = row_counts(driver.rt.engine)
    with pytest.raises(ConflictError, match="2 already succeeded in a later retry"):
        retry_lineage(driver.rt, parent_id)

    assert (first.count, second.count, second.already_succeeded) == (2, 1, 1)
    assert row_counts(driver.rt.engine) == before
    keys = sent_keys(driver)
    assert sorted(keys) == ["q-0", "q-1", "q-1", "q-2", "q-3", "q-3", "q-3", "q-4"]
    assert driver.fake.batch_keys()[-1] == ["q-3"]


def test_a_retry_still_running_is_not_doubled(driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.outcomes["q-0"] = ["permanent", "ok"]
    parent_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    driver.run(parent_id)
    retry_lineage(driver.rt, parent_id)  # its plan message is not delivered: still pending

    with pytest.raises(ConflictError, match="1 still running in a later retry"):
        retry_lineage(driver.rt, parent_id)


def test_retrying_a_retry_follows_the_whole_lineage(driver: Driver,
                                                    write_jsonl: Writer) -> None:
    driver.fake.outcomes.update({"q-0": ["permanent", "permanent", "ok"]})
    parent_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    driver.run(parent_id)
    child = retry_lineage(driver.rt, parent_id)
    driver.run(child.child_id)
    grandchild = retry_lineage(driver.rt, child.child_id)
    driver.run(grandchild.child_id)

    # The parent's q-0 is done now, through its grandchild.
    with pytest.raises(ConflictError, match="1 already succeeded"):
        retry_lineage(driver.rt, parent_id)
    merged = [r.as_dict() for r in lineage_results(driver.rt, parent_id)]
    assert [(r["custom_id"], r["status"], r["job_id"]) for r in merged] == [
        ("q-0", "succeeded", grandchild.child_id), ("q-1", "succeeded", parent_id)]
    assert orphan_items(driver.rt.engine) == 0


def test_cancelled_items_are_retried_only_when_asked(driver: Driver,
                                                     write_jsonl: Writer) -> None:
    driver.fake.polls_to_finish = None
    driver.fake.cancel_keeps = 1
    parent_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    driver.drain()
    cancel_job(driver.rt, parent_id)
    assert driver.run(parent_id).counts == {ItemStatus.SUCCEEDED: 1, ItemStatus.CANCELLED: 2}

    with pytest.raises(ConflictError, match="--include-cancelled"):
        retry_lineage(driver.rt, parent_id)
    driver.fake.polls_to_finish = 1
    outcome = retry_lineage(driver.rt, parent_id, include_cancelled=True)

    assert outcome.count == 2
    assert driver.run(outcome.child_id).status is JobStatus.SUCCEEDED
    merged = list(lineage_results(driver.rt, parent_id))
    assert [r.status for r in merged] == [ItemStatus.SUCCEEDED] * 3
