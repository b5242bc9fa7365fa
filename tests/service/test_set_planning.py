"""Planning in a few statements on SQLite and on PostgreSQL: every batch of a plan is written
at once and every pending item is put into its batch by one joined UPDATE; the wake-up calls
are grouped as the tick groups them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from llmbatch.config import ModelConfig, ProviderConfig, ProviderLimits, WorkerConfig
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus
from llmbatch.service_layer import tasks
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.submission import plan_job

from .harness import MODEL, Driver, chat_line

Writer = Callable[..., Path]


@pytest.fixture
def driver(make_driver: Callable[..., Driver], database_url: str) -> Driver:
    """Batches of at most three items, at most four submit messages per plan."""
    return make_driver(ProviderConfig(models=(ModelConfig(name=MODEL),),
                                      limits=ProviderLimits(max_requests=3)),
                       database_url=database_url, worker=WorkerConfig(dispatch_messages=4))


def test_every_pending_item_goes_into_the_batch_its_run_names(driver: Driver,
                                                              write_jsonl: Writer) -> None:
    lines = [chat_line(f"q-{i}", "x" * (1 + i % 5)) for i in range(20)]
    job_id, _ = create_job(driver.rt, write_jsonl(lines), provider="fake", model=MODEL)
    driver.publisher.messages.clear()

    batch_ids = plan_job(driver.rt, job_id)

    batches = {b.id: b for b in driver.batches(job_id)}
    assert list(batches) and set(batches) == set(batch_ids) and len(batch_ids) == 7
    assert {b.status for b in batches.values()} == {BatchStatus.PLANNED}
    items = driver.items(job_id)
    assert {i.status for i in items} == {str(ItemStatus.QUEUED)}
    per_batch = Counter(i.batch_id for i in items)
    assert [per_batch[b] for b in batch_ids] == [3, 3, 3, 3, 3, 3, 2]
    # Runs follow the input order: batch k holds seq 3k..3k+2, and its byte count is theirs.
    assert [i.batch_id for i in items] == [batch_ids[i.seq // 3] for i in items]
    for batch_id, batch in batches.items():
        assert batch.byte_count == sum(i.wire_bytes + 1 for i in items if i.batch_id == batch_id)
    submits = [args for task, args in driver.publisher.messages if task == tasks.SUBMIT]
    assert len(submits) == 4 and sorted(b for args in submits for b in args) == sorted(batch_ids)
    assert driver.job(job_id).status is JobStatus.RUNNING
    assert driver.events(job_id).count("batch.planned") == 7


def test_only_pending_items_are_queued(driver: Driver, write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(6), provider="fake", model=MODEL)
    first = plan_job(driver.rt, job_id)

    assert plan_job(driver.rt, job_id) == []  # nothing pending is left
    assert Counter(i.batch_id for i in driver.items(job_id)) == {b: 3 for b in first}
    assert driver.run(job_id).status is JobStatus.SUCCEEDED
