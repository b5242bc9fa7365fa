"""Scale-out mode end to end: PostgreSQL, a Redis broker, two prefork workers and one beat,
against the OpenAI emulator over HTTP."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus
from llmbatch.service_layer import tasks
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.read_models import iter_job_events, job_results

from .support import MODEL, Cluster, emulator_stats, write_prompts

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TAG = "llmbatch_batch_id"


def submit_prompts(cluster: Cluster, tmp_path: Path, prefix: str, count: int) -> str:
    path = write_prompts(tmp_path / f"{prefix}.jsonl", count, prefix=prefix)
    job_id, created = create_job(cluster.rt, path, provider="openai", model=MODEL, name=prefix)
    assert created
    return job_id


def creates_by_tag(stats: dict[str, Any]) -> Counter[str]:
    """How many provider batches the emulator created per llmbatch batch id."""
    tags = stats["creates_by_tag"].get("openai", {})
    return Counter({key.removeprefix(f"{TAG}="): n for key, n in tags.items()
                    if key.startswith(f"{TAG}=")})


def batches_created(stats: dict[str, Any]) -> int:
    return int(stats["batches_created"].get("openai", 0))


def job_state(cluster: Cluster, job_id: str) -> dict[str, Any]:
    """Everything a replayed message could change: job row, batches, events, results."""
    with cluster.rt.uow() as uow:
        job = uow.repo.get_job(job_id)
        batches = uow.repo.batches_of_job(job_id)
    return {"job": job, "batches": batches,
            "events": list(iter_job_events(cluster.rt, job_id)),
            "results": list(job_results(cluster.rt, job_id))}


def test_three_jobs_split_into_provider_batches_all_succeed_in_input_order(
        cluster: Cluster, tmp_path: Path) -> None:
    before = emulator_stats(cluster.emulator_url)
    sizes = {"alpha": 30, "beta": 120, "gamma": 45}
    job_ids = {prefix: submit_prompts(cluster, tmp_path, prefix, n)
               for prefix, n in sizes.items()}

    jobs = cluster.wait(list(job_ids.values()), timeout=45)

    after = emulator_stats(cluster.emulator_url)
    all_batches = []
    for prefix, count in sizes.items():
        job = jobs[job_ids[prefix]]
        assert job.status is JobStatus.SUCCEEDED, job
        assert job.counts == {ItemStatus.SUCCEEDED: count}
        assert job.usage.input_tokens > 0 and job.usage.output_tokens > 0
        records = list(job_results(cluster.rt, job.id))
        assert [r.custom_id for r in records] == [f"{prefix}-{i:05d}" for i in range(count)]
        assert all(r.status is ItemStatus.SUCCEEDED and r.output_text and r.response
                   and r.error is None and r.attempts == 1 for r in records)
        with cluster.rt.uow() as uow:
            batches = uow.repo.batches_of_job(job.id)
        full, rest = divmod(count, 50)
        assert sorted(b.item_count for b in batches) == sorted([50] * full + [rest] * bool(rest))
        assert {b.status for b in batches} == {BatchStatus.FETCHED}
        all_batches += batches

    created = creates_by_tag(after) - creates_by_tag(before)
    assert created == Counter({b.id: 1 for b in all_batches})
    assert batches_created(after) - batches_created(before) == len(all_batches) == 5
    assert len({b.provider_batch_id for b in all_batches}) == 5


def replay(cluster: Cluster, job_id: str) -> None:
    """Deliver every lifecycle message of the job once more."""
    publish = cluster.rt.publisher.publish
    with cluster.rt.uow() as uow:
        batch_ids = [b.id for b in uow.repo.batches_of_job(job_id)]
    publish(tasks.PLAN, job_id)
    for batch_id in batch_ids:
        publish(tasks.SUBMIT, batch_id)
        publish(tasks.POLL, batch_id)
        publish(tasks.FETCH, batch_id)
        publish(tasks.CLEANUP, batch_id)
    publish(tasks.FINALIZE, job_id)


def test_duplicated_task_messages_change_nothing(cluster: Cluster, tmp_path: Path) -> None:
    before = emulator_stats(cluster.emulator_url)
    job_id = submit_prompts(cluster, tmp_path, "dup", 100)
    stop = threading.Event()
    rounds = Counter[str]()

    def keep_replaying() -> None:
        while not stop.is_set():
            replay(cluster, job_id)
            rounds["during"] += 1
            stop.wait(0.05)

    replayer = threading.Thread(target=keep_replaying, name="replayer", daemon=True)
    replayer.start()
    try:
        job = cluster.wait([job_id], timeout=45)[job_id]
    finally:
        stop.set()
        replayer.join(timeout=10)
    cluster.wait_queue_idle()
    finished = job_state(cluster, job_id)

    for _ in range(3):
        replay(cluster, job_id)
    cluster.wait_queue_idle()
    replayed = job_state(cluster, job_id)

    assert rounds["during"] >= 3, "the job ended before duplicates were delivered"
    assert job.status is JobStatus.SUCCEEDED
    assert finished["job"].status is JobStatus.SUCCEEDED
    assert replayed == finished
    records = finished["results"]
    assert [r.custom_id for r in records] == [f"dup-{i:05d}" for i in range(100)]
    assert all(r.status is ItemStatus.SUCCEEDED and r.attempts == 1 for r in records)

    batches = finished["batches"]
    assert sorted(b.item_count for b in batches) == [50, 50]
    per_type = Counter(e.type for e in finished["events"])
    assert per_type == Counter({"job.created": 1, "job.running": 1, "batch.planned": 2,
                                "batch.submitted": 2, "batch.ended": 2, "batch.fetched": 2,
                                "batch.provider_data_deleted": 2, "job.completed": 1})
    per_batch = Counter((e.batch_id, e.type) for e in finished["events"] if e.batch_id)
    assert set(per_batch.values()) == {1}

    after = emulator_stats(cluster.emulator_url)
    assert creates_by_tag(after) - creates_by_tag(before) == Counter({b.id: 1 for b in batches})
    assert batches_created(after) - batches_created(before) == 2
