"""Provider limits in the lifecycle: the enqueued-token quota and batches in flight gate
submission, ``token_limit_exceeded`` re-queues without spending attempts, and call slots and
the calls-per-minute bucket hold across threads (and, being rows in the database, processes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fakes import FakeBatch
from llmbatch.bootstrap import utcnow
from llmbatch.config import ModelConfig, ProviderConfig, RateLimits, RetryConfig
from llmbatch.db.limits import LimitsRepository
from llmbatch.domain.models import BatchFailure, FailureKind
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus
from llmbatch.errors import InputError, QuotaExceededError
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.limits import CallDeferred, provider_call
from llmbatch.service_layer.progress import poll_batch

from .harness import MODEL, Driver, chat_line, result_lines

Writer = Callable[..., Path]
ITEM_TOKENS = 10  # "question N": ceil(10 / 4) + 4 (message) + 3 (reply priming)


def quota_config(limit: int, **rate: object) -> ProviderConfig:
    return ProviderConfig(models=(ModelConfig(name=MODEL, enqueued_token_limit=limit),),
                          rate_limits=RateLimits.model_validate(rate))


def running_when_created(driver: Driver) -> list[int]:
    """For every batch the fake provider creates: how many others were still running."""
    seen: list[int] = []

    def record(batch: FakeBatch) -> None:
        seen.append(sum(1 for b in driver.fake.batches.values()
                        if b is not batch and not b.ended))

    driver.fake.on_created = record
    return seen


def test_items_are_estimated_at_create_and_batches_packed_within_the_quota(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(quota_config(3 * ITEM_TOKENS))
    job_id, _ = create_job(driver.rt, write_jsonl(7), provider="fake", model=MODEL)
    driver.drain()

    assert [row.estimated_tokens for row in driver.items(job_id)] == [ITEM_TOKENS] * 7
    batches = driver.batches(job_id)
    assert sorted((b.item_count, b.estimated_tokens) for b in batches) == [(1, 10), (3, 30),
                                                                             (3, 30)]


def test_an_item_larger_than_the_quota_is_refused_at_create_naming_its_line(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(quota_config(50))
    path = write_jsonl([chat_line("ok", "short"), chat_line("big", "x" * 400)])

    with pytest.raises(InputError) as info:
        create_job(driver.rt, path, provider="fake", model=MODEL)

    assert info.value.line == 2
    assert "over the 50-token enqueued limit" in str(info.value)


def test_a_batch_over_the_quota_waits_and_goes_once_the_earlier_one_finished(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(quota_config(3 * ITEM_TOKENS))
    driver.fake.polls_to_finish = None  # batches run until the test finishes them
    running = running_when_created(driver)
    job_id, _ = create_job(driver.rt, write_jsonl(6), provider="fake", model=MODEL)
    driver.drain()

    statuses = {b.status: b for b in driver.batches(job_id)}
    assert set(statuses) == {BatchStatus.IN_PROGRESS, BatchStatus.PLANNED}
    assert statuses[BatchStatus.PLANNED].error_code == "waiting_for_token_quota"
    for _ in range(3):  # rechecks while the quota is full submit nothing and say nothing new
        driver.tick(30)
    assert len(driver.fake.batches) == 1

    driver.fake.finish()
    driver.fake.polls_to_finish = 0  # from now on, batches complete at their first poll
    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert running == [0, 0]  # the second was created only after the first had ended
    assert driver.events(job_id).count("batch.waiting_for_quota") == 1
    assert all(r["attempts"] == 1 for r in result_lines(driver.rt, job_id))


def test_max_batches_in_flight_holds_the_rest_back(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(ProviderConfig(models=(ModelConfig(name=MODEL, max_requests=2),),
                                        rate_limits=RateLimits(max_batches_in_flight=1)))
    driver.fake.polls_to_finish = 1
    running = running_when_created(driver)
    job_id, _ = create_job(driver.rt, write_jsonl(6), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert running == [0, 0, 0]


def test_token_limit_exceeded_requeues_without_spending_attempts_and_holds_the_model(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    # One attempt per item: spending it on a quota refusal would fail every item.
    driver = make_driver(quota_config(1000, quota_hold_s=300),
                         retry=RetryConfig(item_max_attempts=1))
    refusal = BatchFailure(kind=FailureKind.QUOTA, retryable=True, items_ran=False,
                           message="Enqueued token limit reached for fake-model",
                           code="token_limit_exceeded")
    driver.fake.batch_failures += [refusal, refusal]
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    driver.drain()
    driver.tick(1)  # the poll sees the failure; fetch re-queues; plan makes a new batch

    waiting = [b for b in driver.batches(job_id) if b.status is BatchStatus.PLANNED]
    assert [b.error_code for b in waiting] == ["waiting_after_token_limit"]
    driver.tick(60)
    assert len(driver.fake.batches) == 1  # still inside the hold

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert len(driver.fake.batches) == 3
    assert [r["attempts"] for r in result_lines(driver.rt, job_id)] == [1, 1, 1]


def test_a_synchronous_token_limit_refusal_waits_without_spending_submit_attempts(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(quota_config(1000), retry=RetryConfig(max_attempts=1))
    driver.fake.submit_errors += [QuotaExceededError("Enqueued token limit reached",
                                                     provider="fake", code="queue_full")
                                  for _ in range(3)]
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert job.counts == {ItemStatus.SUCCEEDED: 2}
    assert driver.events(job_id).count("batch.waiting_for_quota") == 3


def test_a_call_slot_held_by_a_dead_worker_is_reclaimed_when_its_lease_expires(
        make_driver: Callable[..., Driver]) -> None:
    driver = make_driver(ProviderConfig(rate_limits=RateLimits(max_concurrent_calls=1,
                                                               max_wait_s=0)))
    rt = driver.rt
    with rt.engine.begin() as conn:  # a worker took the only slot and was killed
        assert LimitsRepository(conn).take_slot("fake", 1, "dead", rt.clock(), 60) == 0

    with pytest.raises(CallDeferred), provider_call(rt, "fake", "poll"):
        pytest.fail("the call ran while the only slot was held")

    driver.clock.advance(61)
    with provider_call(rt, "fake", "poll") as lease:
        assert lease.slot == 0
    with rt.engine.begin() as conn:
        assert LimitsRepository(conn).slots_held("fake", rt.clock()) == 0  # released


def test_a_poll_deferred_by_the_limiter_is_not_a_failure_and_runs_later(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(ProviderConfig(models=(ModelConfig(name=MODEL),),
                                        rate_limits=RateLimits(max_concurrent_calls=1,
                                                               max_wait_s=0)))
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    driver.drain()
    (batch,) = driver.batches(job_id)
    with driver.rt.engine.begin() as conn:
        LimitsRepository(conn).take_slot("fake", 1, "busy", driver.clock(), 30)

    assert poll_batch(driver.rt, batch.id) is BatchStatus.IN_PROGRESS
    (deferred,) = driver.batches(job_id)
    assert deferred.call_failures == 0 and deferred.poll_count == 0
    assert deferred.next_poll_at is not None and deferred.next_poll_at > driver.clock()

    assert driver.run(job_id).status is JobStatus.SUCCEEDED


def test_concurrent_calls_from_many_threads_never_exceed_the_cap(
        make_driver: Callable[..., Driver]) -> None:
    driver = make_driver(ProviderConfig(rate_limits=RateLimits(max_concurrent_calls=2,
                                                               max_wait_s=20)))
    driver.rt.clock = utcnow
    lock = threading.Lock()
    inside = peak = done = 0

    def call() -> None:
        nonlocal inside, peak, done
        with provider_call(driver.rt, "fake", "poll"):
            with lock:
                inside += 1
                peak = max(peak, inside)
            time.sleep(0.05)
            with lock:
                inside -= 1
                done += 1

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert (peak, done) == (2, 8)


def test_calls_per_minute_admit_a_tenth_at_once_and_defer_the_rest(
        make_driver: Callable[..., Driver]) -> None:
    driver = make_driver(ProviderConfig(rate_limits=RateLimits(calls_per_minute=60,
                                                               max_wait_s=0)))
    driver.rt.clock = utcnow
    outcomes: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            with provider_call(driver.rt, "fake", "poll"):
                result = "ran"
        except CallDeferred:
            result = "deferred"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=call) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes) == ["deferred"] * 4 + ["ran"] * 6


def test_items_over_a_quota_lowered_after_create_fail_instead_of_blocking_the_job(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(quota_config(1000))
    job_id, _ = create_job(driver.rt, write_jsonl(
        [chat_line("small", "hi"), chat_line("large", "x" * 200)]), provider="fake", model=MODEL)
    # The operator lowers the quota before the job was planned.
    lowered = quota_config(20)
    driver.rt.config = driver.rt.config.model_copy(update={"providers": {"fake": lowered}})
    driver.fake.config = lowered

    job = driver.run(job_id)

    assert job.status is JobStatus.COMPLETED_WITH_FAILURES
    records = {r["custom_id"]: r for r in result_lines(driver.rt, job_id)}
    assert records["small"]["status"] == "succeeded"
    assert records["large"]["error"]["code"] == "over_enqueued_token_limit"
