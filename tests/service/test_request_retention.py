"""``privacy.retain_requests: false``: request bodies are dropped in the transaction that ends
the job; results stay, and a retry of such a job is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from llmbatch.domain.states import JobStatus
from llmbatch.errors import ConflictError
from llmbatch.observability.privacy import PrivacyConfig
from llmbatch.service_layer.jobs import create_job, retry_job

from .harness import MODEL, Driver, result_lines


def test_requests_are_dropped_when_the_job_ends_and_results_are_kept(
        make_driver: Callable[..., Driver], database_url: str,
        write_jsonl: Callable[..., Path]) -> None:
    driver = make_driver(database_url=database_url,
                         privacy=PrivacyConfig(retain_requests=False))
    assert driver.fake is not None
    driver.fake.outcomes = {"q-1": ["permanent"]}
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    driver.drain()
    assert all(item.request for item in driver.items(job_id))  # kept while it runs

    job = driver.run(job_id)

    assert job.status is JobStatus.COMPLETED_WITH_FAILURES
    assert [item.request for item in driver.items(job_id)] == [{}, {}, {}]
    records = list(result_lines(driver.rt, job_id))
    assert [r["output_text"] for r in records] == ["answer to q-0", None, "answer to q-2"]
    with pytest.raises(ConflictError, match="retain_requests"):
        retry_job(driver.rt, job_id)


def test_requests_are_kept_by_default(driver: Driver, write_jsonl: Callable[..., Path]) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    driver.run(job_id)
    assert all(item.request.get("body") for item in driver.items(job_id))
