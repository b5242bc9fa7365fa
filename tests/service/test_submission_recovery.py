"""Submitting to a provider that fails, throttles, or outlives the worker that called it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from fakes import WorkerCrashed
from llmbatch.config import RetryConfig
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus
from llmbatch.errors import (
    AuthenticationError,
    PermanentProviderError,
    RateLimitedError,
    TransientProviderError,
)
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.scheduler import tick
from llmbatch.service_layer.submission import plan_job, submit_batch

from .harness import MODEL, Driver, result_lines

Writer = Callable[..., Path]


def planned_batch(driver: Driver, write_jsonl: Writer, items: int = 3) -> tuple[str, str]:
    """A job with one PLANNED batch; messages so far dropped (the test delivers by hand)."""
    job_id, _ = create_job(driver.rt, write_jsonl(items), provider="fake", model=MODEL)
    (batch_id,) = plan_job(driver.rt, job_id)
    driver.publisher.messages.clear()
    return job_id, batch_id


@pytest.mark.parametrize("error", [
    PermanentProviderError("bad request", provider="fake", status_code=400, code="invalid"),
    AuthenticationError("invalid api key", provider="fake", status_code=401),
], ids=["permanent", "auth"])
def test_a_permanent_submit_failure_fails_the_job(driver: Driver, write_jsonl: Writer,
                                                  error: PermanentProviderError) -> None:
    driver.fake.submit_errors.append(error)
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.FAILED
    assert job.error is not None and error.message in job.error
    assert job.counts == {ItemStatus.FAILED: 3}
    (batch,) = driver.batches(job_id)
    assert (batch.status, batch.provider_batch_id) == (BatchStatus.FAILED, None)
    record = next(result_lines(driver.rt, job_id))
    assert record["error"]["type"] == type(error).__name__
    assert record["error"]["retryable"] is False
    assert driver.fake.batches == {}
    assert "batch.submit_failed" in driver.events(job_id)


def test_a_transient_submit_error_backs_off_then_succeeds(driver: Driver,
                                                          write_jsonl: Writer) -> None:
    driver.fake.submit_errors.append(TransientProviderError("502 bad gateway", provider="fake",
                                                            status_code=502))
    job_id, batch_id = planned_batch(driver, write_jsonl)

    assert submit_batch(driver.rt, batch_id) is BatchStatus.PLANNED

    (batch,) = driver.batches(job_id)
    assert batch.status is BatchStatus.PLANNED
    assert batch.lease_owner is None
    assert batch.error is not None and "502 bad gateway" in batch.error
    assert batch.next_poll_at is not None
    backoff = (batch.next_poll_at - driver.clock()).total_seconds()
    assert 0.5 <= backoff <= 1.0  # base_delay_s=1, first retry: jittered in [base/2, base]
    # A message delivered before the backoff ran out changes nothing.
    assert submit_batch(driver.rt, batch_id) is None
    assert driver.batches(job_id)[0].status is BatchStatus.PLANNED
    assert driver.fake.batches == {}

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert len(driver.fake.batches) == 1
    assert "batch.submit_retry" in driver.events(job_id)


def test_retry_after_from_a_rate_limit_sets_the_next_attempt(driver: Driver,
                                                             write_jsonl: Writer) -> None:
    driver.fake.submit_errors.append(RateLimitedError("slow down", provider="fake",
                                                      retry_after=30))
    job_id, batch_id = planned_batch(driver, write_jsonl)

    submit_batch(driver.rt, batch_id)

    (batch,) = driver.batches(job_id)
    assert batch.status is BatchStatus.PLANNED
    assert batch.next_poll_at == driver.clock() + timedelta(seconds=30)
    driver.tick(29)
    assert driver.batches(job_id)[0].status is BatchStatus.PLANNED
    driver.tick(2)
    assert driver.batches(job_id)[0].status is not BatchStatus.PLANNED
    assert driver.run(job_id).status is JobStatus.SUCCEEDED


def test_repeated_transient_errors_retry_at_their_backoff_not_a_lease_later(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.submit_errors += [TransientProviderError("timeout", provider="fake")] * 2
    job_id, batch_id = planned_batch(driver, write_jsonl)

    submit_batch(driver.rt, batch_id)  # fails; retry within 1 s
    driver.tick(2)  # dispatched by the tick, fails again; retry within 2 s
    assert driver.batches(job_id)[0].submit_attempts == 2
    driver.tick(3)  # the third attempt is due: it must be dispatched

    (batch,) = driver.batches(job_id)
    assert batch.submit_attempts == 3
    assert batch.status is not BatchStatus.PLANNED


def test_a_batch_submitted_from_a_tick_is_polled_at_the_next_tick(
        driver: Driver, write_jsonl: Writer) -> None:
    job_id, _ = planned_batch(driver, write_jsonl)
    driver.tick()  # the submit message was lost; the tick dispatches it
    assert driver.batches(job_id)[0].status is BatchStatus.IN_PROGRESS

    driver.tick(1)  # the first poll is due at once

    assert driver.batches(job_id)[0].status is BatchStatus.FETCHED


def test_transient_errors_never_fail_a_submission_they_only_delay_it(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(retry=RetryConfig(max_attempts=2, base_delay_s=1, max_delay_s=8))
    outage = [TransientProviderError("503", provider="fake", status_code=503)] * 6
    driver.fake.submit_errors += outage  # well past retry.max_attempts
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    (batch,) = driver.batches(job_id)
    assert batch.submit_attempts == 7 and batch.call_failures == 0
    assert len(driver.fake.batches) == 1
    retries = [e for e in driver.event_rows(job_id) if e.type == "batch.submit_retry"]
    assert [e.data["failures_in_a_row"] for e in retries] == [1, 2, 3, 4, 5, 6]
    assert max(e.data["retry_in_s"] for e in retries) <= 8  # backoff grows, capped


def test_a_batch_whose_copy_may_exist_is_never_failed_while_the_lookup_by_tag_fails(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.crash_after_create = 1
    job_id, batch_id = planned_batch(driver, write_jsonl)
    with pytest.raises(WorkerCrashed):
        submit_batch(driver.rt, batch_id)
    driver.clock.advance(driver.rt.config.worker.lease_s + 1)
    tick(driver.rt)  # repair: back to PLANNED, the next submit must look for the copy
    # The lookup keeps failing, even permanently (e.g. a revoked key while it is fixed).
    driver.fake.lookup_errors += [AuthenticationError("revoked", provider="fake",
                                                      status_code=401)] * 8

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert len(driver.fake.batches) == 1  # adopted in the end, never sent a second time
    assert "batch.adopted" in driver.events(job_id)


def test_a_lookup_by_tag_failing_past_the_bound_fails_the_batch_and_never_sends_it_again(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(retry=RetryConfig(max_call_failures=4))
    driver.fake.crash_after_create = 1
    job_id, batch_id = planned_batch(driver, write_jsonl)
    with pytest.raises(WorkerCrashed):
        submit_batch(driver.rt, batch_id)
    driver.clock.advance(driver.rt.config.worker.lease_s + 1)
    tick(driver.rt)
    driver.fake.lookup_errors += [AuthenticationError("revoked", provider="fake",
                                                      status_code=401)] * 50

    job = driver.run(job_id)

    assert job.status is JobStatus.FAILED
    assert len(driver.fake.batches) == 1  # the copy made before the crash, never a second
    assert len(driver.fake.lookup_errors) == 50 - 4
    (batch,) = driver.batches(job_id)
    assert batch.status is BatchStatus.FAILED
    assert batch.error is not None and "may exist at the provider" in batch.error
    assert batch_id in batch.error
    assert {r["status"] for r in result_lines(driver.rt, job_id)} == {"failed"}


def test_a_batch_created_by_a_worker_that_then_died_is_adopted_not_sent_twice(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.crash_after_create = 1
    job_id, batch_id = planned_batch(driver, write_jsonl)

    with pytest.raises(WorkerCrashed):
        submit_batch(driver.rt, batch_id)

    (batch,) = driver.batches(job_id)
    assert batch.status is BatchStatus.SUBMITTING
    assert len(driver.fake.batches) == 1
    # While the dead worker's lease runs, neither the tick nor a redelivery touches the batch.
    driver.tick(60)
    assert submit_batch(driver.rt, batch_id) is None
    assert driver.batches(job_id)[0].status is BatchStatus.SUBMITTING

    # Past the lease, the tick hands it back to PLANNED and the next submit adopts the copy.
    driver.tick(61)

    (batch,) = driver.batches(job_id)
    assert batch.status is BatchStatus.IN_PROGRESS
    assert batch.provider_batch_id == "fb_1"
    assert len(driver.fake.batches) == 1
    events = driver.events(job_id)
    assert "batch.submit_interrupted" in events and "batch.adopted" in events
    assert "batch.submitted" not in events
    assert driver.run(job_id).status is JobStatus.SUCCEEDED
    assert len(driver.fake.batches) == 1
    assert [r["attempts"] for r in result_lines(driver.rt, job_id)] == [1, 1, 1]


def test_a_worker_that_died_before_the_provider_got_anything_is_resubmitted_once(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.submit_errors.append(WorkerCrashed("killed before the upload"))
    job_id, batch_id = planned_batch(driver, write_jsonl)
    with pytest.raises(WorkerCrashed):
        submit_batch(driver.rt, batch_id)

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert len(driver.fake.batches) == 1
    assert "batch.submitted" in driver.events(job_id)


def test_the_tick_repairs_a_stale_submission_only_once(driver: Driver,
                                                       write_jsonl: Writer) -> None:
    driver.fake.crash_after_create = 1
    job_id, batch_id = planned_batch(driver, write_jsonl)
    with pytest.raises(WorkerCrashed):
        submit_batch(driver.rt, batch_id)
    driver.clock.advance(121)

    reports = [tick(driver.rt), tick(driver.rt)]

    assert [r["repaired"] for r in reports] == [1, 0]
    assert driver.events(job_id).count("batch.submit_interrupted") == 1


def test_an_unexpected_error_in_submit_is_retried_and_then_fails_the_batch_with_the_reason(
        driver: Driver, write_jsonl: Writer) -> None:
    attempts = driver.rt.config.retry.max_attempts
    driver.fake.submit_errors.extend(ValueError("bug in an adapter") for _ in range(attempts))
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.FAILED
    (batch,) = driver.batches(job_id)
    assert batch.status is BatchStatus.FAILED
    assert batch.submit_attempts == attempts
    assert "bug in an adapter" in (batch.error or "")
    assert driver.fake.batches == {}  # nothing ever reached the provider
