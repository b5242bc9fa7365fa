"""A job from create to a terminal status, driven message by message through the services,
with the fake provider deciding each item's fate."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from fakes import WorkerCrashed
from llmbatch.config import (
    ModelConfig,
    ProviderConfig,
    ProviderLimits,
    RetryConfig,
    WorkerConfig,
)
from llmbatch.db.item_queries import ItemQueries
from llmbatch.db.result_stage import ResultRow
from llmbatch.db.result_totals import tally
from llmbatch.db.tables import item_results, provider_batches
from llmbatch.domain.models import BatchFailure, Endpoint, FailureKind, RequestLine
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus
from llmbatch.errors import AuthenticationError, ResourceGoneError, TransientProviderError
from llmbatch.service_layer import open_items
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.open_items import KEYS_HELD_UP_TO
from llmbatch.service_layer.progress import poll_batch
from llmbatch.service_layer.submission import plan_job, submit_batch

from .harness import MODEL, Driver, chat_line, result_lines

Writer = Callable[..., Path]


def ids(n: int) -> list[str]:
    return [f"q-{i}" for i in range(n)]


def test_a_job_succeeds_with_one_result_per_line_in_input_order(
        driver: Driver, write_jsonl: Writer) -> None:
    custom_ids = ["zeta", "alpha", "mid-7", "beta", "10", "2"]
    path = write_jsonl([chat_line(c, f"question {c}") for c in custom_ids])

    job_id, created = create_job(driver.rt, path, provider="fake", model=MODEL)
    job = driver.run(job_id)

    assert created
    assert job.status is JobStatus.SUCCEEDED
    assert job.counts == {ItemStatus.SUCCEEDED: 6}
    assert job.completed_at is not None and job.submitted_at is not None
    assert (job.usage.input_tokens, job.usage.output_tokens) == (60, 30)
    records = list(result_lines(driver.rt, job_id))
    assert [r["custom_id"] for r in records] == custom_ids
    assert [r["output_text"] for r in records] == [f"answer to {c}" for c in custom_ids]
    assert {r["status"] for r in records} == {"succeeded"}
    assert all(r["attempts"] == 1 and r["error"] is None for r in records)
    assert records[0]["usage"] == {"input_tokens": 10, "output_tokens": 5, "cached_tokens": 0,
                                   "reasoning_tokens": 0, "cache_write_tokens": 0,
                                   "cache_write_1h_tokens": 0}
    assert (records[0]["provider"], records[0]["model"]) == ("fake", MODEL)
    assert [b.status for b in driver.batches(job_id)] == [BatchStatus.FETCHED]
    assert driver.events(job_id) == ["job.created", "batch.planned", "job.running",
                                     "batch.submitted", "batch.ended", "batch.fetched",
                                     "job.completed"]


def test_the_provider_receives_the_requests_it_was_given(driver: Driver,
                                                         write_jsonl: Writer) -> None:
    line = chat_line("only", "what is 2+2?", method="POST", url="/v1/chat/completions")
    job_id, _ = create_job(driver.rt, write_jsonl([line]), provider="fake", model=MODEL)
    driver.run(job_id)

    stored = driver.items(job_id)[0].request
    assert stored == {"body": {"messages": [{"role": "user", "content": "what is 2+2?"}],
                               "max_tokens": 20}}
    assert driver.fake.batch_keys() == [["only"]]


def test_items_are_split_into_batches_of_at_most_max_requests(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(ProviderConfig(models=(ModelConfig(name=MODEL, max_requests=3),)))
    job_id, _ = create_job(driver.rt, write_jsonl(8), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert driver.fake.batch_keys() == [ids(8)[0:3], ids(8)[3:6], ids(8)[6:8]]
    batches = driver.batches(job_id)
    # Batches planned together share a timestamp; their listing order is not the plan order.
    assert sorted(b.item_count for b in batches) == [2, 3, 3]
    assert {b.status for b in batches} == {BatchStatus.FETCHED}
    assert [r["custom_id"] for r in result_lines(driver.rt, job_id)] == ids(8)


def test_items_are_split_by_the_byte_limit_too(make_driver: Callable[..., Driver],
                                               write_jsonl: Writer) -> None:
    probe = make_driver().fake
    line_bytes = len(probe.encode(RequestLine(0, "q-0", {"messages": [
        {"role": "user", "content": "question 0"}], "max_tokens": 20}),
        endpoint=Endpoint.CHAT, model=MODEL).data) + 1
    driver = make_driver(ProviderConfig(models=(ModelConfig(name=MODEL),),
                                        limits=ProviderLimits(max_bytes=2 * line_bytes + 1)))
    job_id, _ = create_job(driver.rt, write_jsonl(5), provider="fake", model=MODEL)

    assert driver.run(job_id).status is JobStatus.SUCCEEDED
    assert [len(k) for k in driver.fake.batch_keys()] == [2, 2, 1]


def test_a_permanent_item_failure_completes_the_job_with_failures(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.outcomes["q-2"] = ["permanent"]
    job_id, _ = create_job(driver.rt, write_jsonl(4), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.COMPLETED_WITH_FAILURES
    assert job.counts == {ItemStatus.SUCCEEDED: 3, ItemStatus.FAILED: 1}
    records = {r["custom_id"]: r for r in result_lines(driver.rt, job_id)}
    assert records["q-2"]["status"] == "failed"
    assert records["q-2"]["output_text"] is None
    assert records["q-2"]["error"] == {"type": "invalid_request_error", "code": "invalid_value",
                                       "message": "the request is invalid", "retryable": False}
    assert records["q-2"]["attempts"] == 1
    assert len(driver.fake.batches) == 1  # a permanent failure is never re-sent


def test_a_chunk_whose_every_result_goes_back_to_be_rebatched_is_stored(
        make_driver: Callable[..., Driver], database_url: str, write_jsonl: Writer) -> None:
    """The first chunk holds only retryable failures (nothing to insert, two items to send
    back): it is stored like any other (SQLite ran its empty insert once, with no values, and
    the fetch failed until it gave up and re-sent every item), the next chunk's successes are
    kept, and only the two failures ride again."""
    driver = make_driver(database_url=database_url, worker=WorkerConfig(fetch_chunk_size=2))
    driver.fake.outcomes["q-0"] = ["retryable", "ok"]
    driver.fake.outcomes["q-1"] = ["retryable", "ok"]
    job_id, _ = create_job(driver.rt, write_jsonl(4), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert driver.fake.batch_keys() == [ids(4), ["q-0", "q-1"]]
    assert [b.call_failures for b in driver.batches(job_id)] == [0, 0]


def test_a_retryable_item_failure_is_rebatched_and_then_succeeds(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.outcomes["q-1"] = ["retryable", "ok"]
    job_id, _ = create_job(driver.rt, write_jsonl(4), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert driver.fake.batch_keys() == [ids(4), ["q-1"]]
    attempts = {r["custom_id"]: r["attempts"] for r in result_lines(driver.rt, job_id)}
    assert attempts == {"q-0": 1, "q-1": 2, "q-2": 1, "q-3": 1}
    batches = driver.batches(job_id)
    assert [(b.status, b.item_count) for b in batches] == [(BatchStatus.FETCHED, 4),
                                                           (BatchStatus.FETCHED, 1)]
    assert [r["custom_id"] for r in result_lines(driver.rt, job_id)] == ids(4)
    history = {r["custom_id"]: r["history"] for r in result_lines(driver.rt, job_id)}
    assert history["q-0"] == [] and history["q-2"] == []
    (failed_attempt,) = history["q-1"]
    assert failed_attempt["attempt"] == 1 and failed_attempt["batch_id"] == batches[0].id
    assert failed_attempt["outcome"] == "failed" and failed_attempt["error"]["retryable"] is True


def test_a_retryable_failure_becomes_final_when_attempts_run_out(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(retry=RetryConfig(item_max_attempts=2))
    driver.fake.outcomes["q-0"] = ["retryable"]
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.COMPLETED_WITH_FAILURES
    assert driver.fake.batch_keys() == [["q-0", "q-1"], ["q-0"]]
    first = next(result_lines(driver.rt, job_id))
    assert (first["status"], first["attempts"]) == ("failed", 2)
    assert first["error"]["retryable"] is True


def test_items_the_provider_returned_no_line_for_are_rebatched(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.outcomes["q-2"] = ["missing", "ok"]
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)

    assert driver.run(job_id).status is JobStatus.SUCCEEDED
    assert driver.fake.batch_keys() == [ids(3), ["q-2"]]
    records = {r["custom_id"]: r for r in result_lines(driver.rt, job_id)}
    assert [h["outcome"] for h in records["q-2"]["history"]] == ["no_result"]
    assert records["q-2"]["history"][0]["error"]["code"] is None
    assert records["q-2"]["status"] == "succeeded" and records["q-2"]["attempts"] == 2


def test_a_batch_failed_for_quota_is_rebatched(driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.batch_failures.append(BatchFailure(
        kind=FailureKind.QUOTA, retryable=True, items_ran=False,
        message="Enqueued token limit reached", code="token_limit_exceeded"))
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert driver.fake.batch_keys() == [ids(3), ids(3)]
    # The quota refusal ran nothing: the attempt it charged is given back.
    assert [r["attempts"] for r in result_lines(driver.rt, job_id)] == [1, 1, 1]


def test_a_batch_the_provider_refused_fails_its_items_with_the_reason(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.batch_failures.append(BatchFailure(
        kind=FailureKind.INVALID_INPUT, retryable=False, items_ran=False,
        message="line 1: bad body", code="invalid_file"))
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)

    job = driver.run(job_id)

    # The provider accepted the batch, then failed it: a job of failed items, not a job-level
    # failure (that is reserved for jobs no provider batch was ever accepted for).
    assert job.status is JobStatus.COMPLETED_WITH_FAILURES
    assert job.counts == {ItemStatus.FAILED: 2}
    errors = [r["error"] for r in result_lines(driver.rt, job_id)]
    assert errors == [{"type": "batch_failed", "code": "invalid_file",
                       "message": "line 1: bad body", "retryable": False}] * 2
    assert len(driver.fake.batches) == 1


def test_a_batch_the_provider_lost_is_sent_again(driver: Driver, write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    plan_job(driver.rt, job_id)
    (batch,) = driver.batches(job_id)
    submit_batch(driver.rt, batch.id)
    driver.fake.batches.clear()  # the provider forgot it: polls now answer 404
    driver.publisher.messages.clear()

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert driver.fake.batch_keys() == [ids(2)]  # the second submission
    lost, again = driver.batches(job_id)
    assert [lost.status, again.status] == [BatchStatus.FETCHED] * 2
    assert lost.failure is not None and lost.failure.kind is FailureKind.LOST
    assert (lost.failure.retryable, lost.error_code) == (True, "provider_lost_batch")
    ended = next(e for e in driver.event_rows(job_id) if e.type == "batch.ended")
    assert (ended.data["failure"], ended.data["retryable"]) == ("lost", True)


def test_results_gone_midway_keep_what_was_stored_and_send_the_rest_again(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(worker=WorkerConfig(fetch_chunk_size=2))
    driver.fake.fetch_errors.append((3, ResourceGoneError("the result file expired",
                                                          provider="fake", status_code=404)))
    job_id, _ = create_job(driver.rt, write_jsonl(5), provider="fake", model=MODEL)
    driver.drain()

    driver.tick()  # poll, then the fetch finds the results gone after three lines

    first = driver.batches(job_id)[0]
    assert first.status is BatchStatus.FETCHED  # ended, not retried: gone stays gone
    fetched = next(e for e in driver.event_rows(job_id) if e.type == "batch.fetched")
    assert fetched.data == {"results": 3, "without_result": 2}  # every line read is kept
    job = driver.run(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert driver.fake.batch_keys() == [ids(5), ["q-3", "q-4"]]


def test_a_transient_poll_error_is_retried_later(driver: Driver, write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    plan_job(driver.rt, job_id)
    (batch,) = driver.batches(job_id)
    submit_batch(driver.rt, batch.id)
    driver.fake.poll_errors.append(TransientProviderError("connection reset", provider="fake"))

    assert poll_batch(driver.rt, batch.id) is BatchStatus.IN_PROGRESS

    (after,) = driver.batches(job_id)
    assert after.status is BatchStatus.IN_PROGRESS
    assert after.error is not None and "connection reset" in after.error
    assert after.next_poll_at is not None and after.next_poll_at > driver.clock()
    assert after.lease_owner is None
    driver.publisher.messages.clear()
    assert driver.run(job_id).status is JobStatus.SUCCEEDED


def test_a_batch_still_running_is_polled_again_later(driver: Driver,
                                                     write_jsonl: Writer) -> None:
    driver.fake.polls_to_finish = 2
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    driver.drain()
    driver.tick()  # the first poll is due at once

    (batch,) = driver.batches(job_id)
    assert batch.status is BatchStatus.IN_PROGRESS
    assert batch.poll_count == 1
    assert batch.next_poll_at is not None and batch.next_poll_at > driver.clock()
    assert driver.run(job_id).status is JobStatus.SUCCEEDED
    (batch,) = driver.batches(job_id)
    assert batch.poll_count == 3
    assert batch.request_counts == {"total": 2, "completed": 2, "failed": 0}


def test_embeddings_jobs_run_like_chat_jobs(driver: Driver, write_jsonl: Writer) -> None:
    path = write_jsonl(['{"custom_id": "e-1", "body": {"input": "some text"}}',
                        '{"custom_id": "e-2", "method": "POST", "url": "/v1/embeddings", '
                        '"body": {"input": ["a", "b"]}}'])
    job_id, _ = create_job(driver.rt, path, provider="fake", model=MODEL,
                           endpoint=Endpoint.EMBEDDINGS)

    assert driver.run(job_id).status is JobStatus.SUCCEEDED
    assert driver.fake.batch_keys() == [["e-1", "e-2"]]


@pytest.mark.parametrize("keys_held_up_to", [KEYS_HELD_UP_TO, 0],
                         ids=["open-keys-read-whole", "open-keys-asked-per-chunk"])
def test_a_key_answered_twice_or_naming_no_item_is_not_stored(
        make_driver: Callable[..., Driver], database_url: str, write_jsonl: Writer,
        keys_held_up_to: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider answers q-0 again in a later chunk and a key of no item: the batch's
    five results are stored once each, the counts and totals say five, the job succeeds;
    whether the batch's open keys are read whole or asked chunk by chunk (a large batch)."""
    monkeypatch.setattr(open_items, "KEYS_HELD_UP_TO", keys_held_up_to)
    driver = make_driver(database_url=database_url, worker=WorkerConfig(fetch_chunk_size=2))
    driver.fake.stray_keys = ["q-0", "nobody", "q-4"]
    job_id, _ = create_job(driver.rt, write_jsonl(5), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert job.counts == {ItemStatus.SUCCEEDED: 5}
    assert [(i.custom_id, i.status) for i in driver.items(job_id)] == [
        (f"q-{n}", "succeeded") for n in range(5)]
    with driver.rt.engine.connect() as conn:
        stored = conn.execute(select(item_results.c.provider_key)
                              .order_by(item_results.c.provider_key)).scalars().all()
        (totals,) = conn.execute(select(provider_batches.c.result_totals)).scalars().all()
    assert stored == [f"q-{n}" for n in range(5)]
    assert totals["succeeded"]["items"] == 5
    assert totals["succeeded"]["input_tokens"] == 50  # the fake bills 10 a result


def test_a_result_stored_already_is_refused_not_stored_twice(
        make_driver: Callable[..., Driver], database_url: str, write_jsonl: Writer) -> None:
    """The fetch stores a result only for a key still open; should a second writer of the
    same batch get past that (a lease taken over mid-fetch), the results table's primary key
    fails its chunk whole: the first results and the batch's totals stay as they were."""
    driver = make_driver(database_url=database_url)
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    (batch_id,) = plan_job(driver.rt, job_id)
    with driver.rt.uow() as uow:
        assert uow.repo.mark_items_submitted(batch_id) == 3
        uow.commit()
    rows = [ResultRow(f"q-{n}", "succeeded", "succeeded", f'{{"n": {n}}}', "text", "stop",
                      10, 5, 0, 0, 0, 0, None, 7, 14) for n in range(3)]
    moment = driver.rt.clock()
    with driver.rt.uow() as uow:
        uow.repo.record_results(batch_id, rows[:2], moment, tally(rows[:2]))
        uow.commit()
    # A second writer, with one of its keys stored already:
    # (SQLAlchemy's IntegrityError on SQLite; psycopg's own from PostgreSQL's COPY)
    with pytest.raises(Exception, match=r"pk_item_results|UNIQUE constraint failed: item_res"),\
            driver.rt.uow() as uow:
        uow.repo.record_results(batch_id, rows[1:], moment, tally(rows))
        uow.commit()

    with driver.rt.uow() as uow:
        assert uow.repo.item_counts(job_id) == {ItemStatus.SUCCEEDED: 2,
                                                ItemStatus.SUBMITTED: 1}
        assert uow.repo.open_attempts(batch_id, ["q-0", "q-2", "nobody"]) == {"q-2": 1}
        assert uow.repo.stored_totals(batch_id) == {"succeeded": {
            "items": 2, "input_tokens": 20, "output_tokens": 10, "cached_tokens": 0,
            "reasoning_tokens": 0, "cache_write_tokens": 0, "cache_write_1h_tokens": 0,
            "cost_pusd": 14, "sync_cost_pusd": 28}}
    assert [i.response for i in driver.items(job_id)] == [{"n": 0}, {"n": 1}, None]


@pytest.mark.parametrize("error", [
    TransientProviderError("connection reset while downloading", provider="fake"),
    WorkerCrashed("worker killed while downloading"),
], ids=["transient", "crash"])
def test_a_fetch_broken_off_midway_resumes_without_losing_or_doubling_results(
        make_driver: Callable[..., Driver], write_jsonl: Writer, error: Exception) -> None:
    driver = make_driver(worker=WorkerConfig(fetch_chunk_size=2))
    driver.fake.fetch_errors.append((3, error))
    driver.fake.outcomes["q-1"] = ["retryable", "ok"]
    job_id, _ = create_job(driver.rt, write_jsonl(5), provider="fake", model=MODEL)
    driver.drain()

    with contextlib.suppress(WorkerCrashed):
        driver.tick()  # poll, then the fetch breaks off after three lines
    (batch,) = driver.batches(job_id)
    assert batch.status is BatchStatus.ENDED
    counts = driver.job(job_id).counts
    assert counts[ItemStatus.SUCCEEDED] == 1  # the first chunk (q-0, q-1) was stored
    assert counts[ItemStatus.PENDING] == 1  # q-1, to be re-batched

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert driver.fake.batch_keys() == [ids(5), ["q-1"]]
    attempts = [r["attempts"] for r in result_lines(driver.rt, job_id)]
    assert attempts == [1, 2, 1, 1, 1]
    assert driver.events(job_id).count("batch.fetched") == 2


def test_a_write_failing_mid_fetch_keeps_the_chunks_before_it_and_the_fetch_runs_again(
        make_driver: Callable[..., Driver], write_jsonl: Writer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The database failing on the second chunk's write (not a refused value): the first
    chunk stays stored, nothing after it is written, the failure counts like a failed call,
    and the next fetch stores the rest without sending anything again."""
    driver = make_driver(worker=WorkerConfig(fetch_chunk_size=2))
    job_id, _ = create_job(driver.rt, write_jsonl(5), provider="fake", model=MODEL)
    driver.drain()
    original = ItemQueries.recording_results
    writes = 0

    def failing_once(self: ItemQueries, batch_id: str, rows: Any, now: Any,
                     totals: Any) -> Any:
        nonlocal writes
        writes += 1
        if writes == 2:
            raise OperationalError("INSERT INTO item_results", {}, Exception("disk I/O error"))
        return original(self, batch_id, rows, now, totals)

    monkeypatch.setattr(ItemQueries, "recording_results", failing_once)

    driver.tick()  # poll, then a fetch whose second write fails

    (batch,) = driver.batches(job_id)
    assert batch.status is BatchStatus.ENDED
    assert batch.call_failures == 1
    counts = driver.job(job_id).counts
    assert counts[ItemStatus.SUCCEEDED] == 2  # the first chunk (q-0, q-1)
    assert counts[ItemStatus.SUBMITTED] == 3  # nothing written after the failed chunk

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert driver.fake.batch_keys() == [ids(5)]  # fetched again, never sent again
    assert [r["attempts"] for r in result_lines(driver.rt, job_id)] == [1] * 5


def test_a_key_answered_again_in_a_later_chunk_keeps_its_first_answer(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    """An item takes one result per batch: the provider's second answer for q-0 (in the third
    chunk, where q-4's line should be) is dropped, not a failed fetch (a write scheme that
    inserts result rows must not trip over it), and q-4 is left without a result."""
    driver = make_driver(worker=WorkerConfig(fetch_chunk_size=2))
    driver.fake.result_lines["q-4"] = '{"custom_id": "q-0", "text": "a second answer"}'
    job_id, _ = create_job(driver.rt, write_jsonl(5), provider="fake", model=MODEL)
    driver.drain()

    driver.tick()  # poll, then fetch

    assert driver.batches(job_id)[0].status is BatchStatus.FETCHED
    fetched = next(e for e in driver.event_rows(job_id) if e.type == "batch.fetched")
    assert fetched.data == {"results": 4, "without_result": 1}
    texts = {r.custom_id: r.output_text for r in driver.items(job_id)}
    assert texts == {**{f"q-{n}": f"answer to q-{n}" for n in range(4)}, "q-4": None}


def test_an_authentication_error_on_poll_does_not_send_the_batch_again(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.poll_errors.append(AuthenticationError("key revoked", provider="fake",
                                                       status_code=401))
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)

    driver.run(job_id)

    assert len(driver.fake.batches) == 1  # the first batch was never lost


def test_each_result_is_priced_at_the_batch_rate_and_the_job_sums_them(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    priced = ModelConfig(name=MODEL, input_usd_per_mtok=1.0, output_usd_per_mtok=4.0)
    driver = make_driver(ProviderConfig(models=(priced,)))
    driver.fake.outcomes["q-2"] = ["permanent"]
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)

    job = driver.run(job_id)

    # 10 input and 5 output tokens per success, half the synchronous price, exactly.
    per_item = (10 * Decimal(1) + 5 * Decimal(4)) / 1_000_000 / 2
    costs = [r["cost_usd"] for r in result_lines(driver.rt, job_id)]
    assert [Decimal(c) for c in costs[:2]] == [per_item] * 2  # exact decimal strings
    assert costs[2] is None or Decimal(costs[2]) == 0  # a failure without usage costs nothing
    assert job.cost_usd == 2 * per_item


def test_without_prices_nothing_is_priced(driver: Driver, write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)

    assert driver.run(job_id).cost_usd is None
    assert [r["cost_usd"] for r in result_lines(driver.rt, job_id)] == [None, None]


def test_reading_and_writing_in_small_chunks_keeps_every_item_in_order(
        make_driver: Callable[..., Driver], write_jsonl: Writer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import llmbatch.service_layer.jobs as jobs_service

    monkeypatch.setattr(jobs_service, "INSERT_CHUNK", 3)
    driver = make_driver(worker=WorkerConfig(build_chunk_size=2, fetch_chunk_size=3))
    driver.fake.outcomes["q-5"] = ["retryable", "ok"]
    job_id, _ = create_job(driver.rt, write_jsonl(11), provider="fake", model=MODEL)

    assert driver.run(job_id).status is JobStatus.SUCCEEDED
    assert driver.fake.batch_keys() == [ids(11), ["q-5"]]
    assert [r["custom_id"] for r in result_lines(driver.rt, job_id)] == ids(11)
