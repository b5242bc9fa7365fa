"""The provider's copy of a job's data after its results are stored: deleted by default, kept
when the job says so, each outcome on the timeline, and a failing deletion tried a bounded
number of times by the tick without ever touching the job's outcome (docs/privacy.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from llmbatch.cli.reading import _provider_data
from llmbatch.config import ModelConfig, ProviderConfig, RetentionConfig
from llmbatch.db import tables
from llmbatch.domain.models import BatchProgress
from llmbatch.domain.retention import Deletion, DeletionOutcome
from llmbatch.domain.states import JobStatus
from llmbatch.errors import InputError
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.read_models import job_detail

from .harness import MODEL, Driver

pytestmark = pytest.mark.service

Writer = Callable[..., Path]


class Deleter:
    """Stands in for the fake provider's ``cleanup``: fails the first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[str] = []

    def __call__(self, provider_batch_id: str, progress: BatchProgress) -> list[Deletion]:
        self.calls.append(provider_batch_id)
        if len(self.calls) <= self.failures:
            return [Deletion("batch", provider_batch_id, DeletionOutcome.FAILED,
                             error="503 service unavailable")]
        return [Deletion("batch", provider_batch_id, DeletionOutcome.DELETED),
                Deletion("result_file", f"{provider_batch_id}-out", DeletionOutcome.GONE)]


def _deleter(driver: Driver, failures: int = 0) -> Deleter:
    deleter = Deleter(failures)
    assert driver.fake is not None
    driver.fake.cleanup = deleter  # type: ignore[method-assign]
    return deleter


def _states(driver: Driver, job_id: str) -> list[tuple[str | None, int]]:
    b = tables.provider_batches.c
    with driver.rt.engine.connect() as conn:
        return [(r.cleanup_state, r.cleanup_attempts) for r in conn.execute(
            select(b.cleanup_state, b.cleanup_attempts).where(b.job_id == job_id)
            .order_by(b.created_at, b.id))]


def _shown(driver: Driver, job_id: str) -> list[tuple[str | None, int, str]]:
    """Each batch's deletion state as the job's detail (``status``, ``GET /v1/jobs/{id}``)
    has it, and the word ``llmbatch status`` prints for it."""
    return [(b.cleanup_state and str(b.cleanup_state), b.cleanup_attempts, _provider_data(b))
            for b in job_detail(driver.rt, job_id).batches]


def _data(driver: Driver, job_id: str, event: str) -> list[dict[str, Any]]:
    return [e.data for e in driver.event_rows(job_id) if e.type == event]


def test_by_default_each_batch_is_deleted_once_its_results_are_stored(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(ProviderConfig(models=(ModelConfig(name=MODEL, max_requests=2),)))
    deleter = _deleter(driver)
    job_id, _ = create_job(driver.rt, write_jsonl(4), provider="fake", model=MODEL)

    assert driver.run(job_id).status is JobStatus.SUCCEEDED
    batches = driver.batches(job_id)
    assert sorted(deleter.calls) == sorted(b.provider_batch_id for b in batches)
    assert _states(driver, job_id) == [("deleted", 1), ("deleted", 1)]
    deleted = _data(driver, job_id, "batch.provider_data_deleted")
    assert len(deleted) == 2
    assert {o["kind"]: o["outcome"] for o in deleted[0]["objects"]} == {
        "batch": "deleted", "result_file": "gone"}
    types = driver.events(job_id)
    assert types.index("batch.fetched") < types.index("batch.provider_data_deleted")
    driver.tick(7200)  # nothing left to do: no further attempt
    assert len(deleter.calls) == 2


def test_a_job_that_keeps_its_data_is_not_deleted_and_says_so(
        driver: Driver, write_jsonl: Writer) -> None:
    deleter = _deleter(driver)
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL,
                           retention={"delete_when_stored": False})

    assert driver.run(job_id).status is JobStatus.SUCCEEDED
    driver.tick(7200)
    assert deleter.calls == []
    assert _states(driver, job_id) == [("kept", 0)]
    assert _shown(driver, job_id) == [("kept", 0, "kept")]
    assert _data(driver, job_id, "batch.provider_data_kept") == [{"expires_after_s": {}}]


def test_the_provider_setting_applies_and_a_job_overrides_it(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(ProviderConfig(models=(ModelConfig(name=MODEL),),
                                        retention=RetentionConfig(delete_when_stored=False)))
    deleter = _deleter(driver)
    kept, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    deleted, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL,
                            retention={"delete_when_stored": True})
    driver.run(kept)
    driver.run(deleted)
    assert (_states(driver, kept), _states(driver, deleted)) == ([("kept", 0)],
                                                                 [("deleted", 1)])
    assert len(deleter.calls) == 1


def test_a_failing_deletion_is_retried_a_bounded_number_of_times_and_never_fails_the_job(
        make_driver: Callable[..., Driver], write_jsonl: Writer, database_url: str) -> None:
    driver = make_driver(ProviderConfig(models=(ModelConfig(name=MODEL),),
                                        retention=RetentionConfig(delete_attempts=3)),
                         database_url=database_url)
    deleter = _deleter(driver, failures=100)
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)

    assert driver.run(job_id).status is JobStatus.SUCCEEDED
    assert len(deleter.calls) == 1 and _states(driver, job_id) == [("pending", 1)]
    assert _shown(driver, job_id) == [("pending", 1, "pending, 1 failed")]
    driver.tick(30)  # the backoff (60 s) has not passed: not yet
    assert len(deleter.calls) == 1
    for _ in range(10):  # far more ticks than attempts, hours apart
        driver.tick(3600)
    assert len(deleter.calls) == 3
    assert _states(driver, job_id) == [("failed", 3)]
    assert _shown(driver, job_id) == [("failed", 3, "failed, 3 attempts")]
    failed = _data(driver, job_id, "batch.provider_data_delete_failed")
    assert [(f["attempt"], f["will_retry"]) for f in failed] == [(1, True), (2, True),
                                                                  (3, False)]
    assert failed[0]["error"] == "503 service unavailable" and failed[0]["kind"] == "batch"
    assert driver.job(job_id).status is JobStatus.SUCCEEDED


def test_a_deletion_that_succeeds_on_a_retry_ends_deleted(
        driver: Driver, write_jsonl: Writer) -> None:
    deleter = _deleter(driver, failures=1)
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    driver.run(job_id)
    driver.tick(120)
    assert len(deleter.calls) == 2 and _states(driver, job_id) == [("deleted", 2)]
    types = driver.events(job_id)
    assert types.index("batch.provider_data_delete_failed") < types.index(
        "batch.provider_data_deleted")


def test_expiry_settings_a_provider_cannot_honour_are_refused_at_submit(
        driver: Driver, write_jsonl: Writer) -> None:
    before = driver.fake.describe() if driver.fake else None
    for overrides, field in (({"output_expires_after_s": 3600},
                              "retention.output_expires_after_s"),
                             ({"delete_after": True}, "retention.delete_after"),
                             ({"input_expires_after_s": 0}, "retention.input_expires_after_s")):
        with pytest.raises(InputError) as err:
            create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL,
                       retention=overrides)
        assert err.value.field == field
    assert driver.fake is not None and driver.fake.describe() == before
    with driver.rt.engine.connect() as conn:
        assert conn.execute(select(tables.jobs.c.id)).first() is None


def test_the_old_delete_files_after_fetch_key_still_reads() -> None:
    assert ProviderConfig.model_validate(
        {"delete_files_after_fetch": False}).retention.delete_when_stored is False
    assert ProviderConfig.model_validate(
        {"delete_files_after_fetch": False, "retention": {"delete_when_stored": True}}
    ).retention.delete_when_stored is True
    assert ProviderConfig().retention.delete_when_stored is True
