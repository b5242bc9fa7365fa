"""The read models: what people read about jobs, read from real databases (SQLite and
PostgreSQL) after the lifecycle has run through the services."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, update
from sqlalchemy.exc import OperationalError

from llmbatch.config import DatabaseConfig, ModelConfig, ProviderConfig
from llmbatch.db import tables
from llmbatch.db.engine import make_engine
from llmbatch.domain.models import Endpoint, Usage
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus
from llmbatch.errors import InputError, NotFoundError
from llmbatch.service_layer.jobs import cancel_job, create_job, retry_job
from llmbatch.service_layer.read_models import (
    MAX_PAGE_SIZE,
    EventRecord,
    iter_job_events,
    job_detail,
    job_events,
    job_items,
    job_results,
    job_summary,
    list_jobs,
)
from llmbatch.service_layer.submission import plan_job, submit_batch

from .harness import MODEL, Driver

Writer = Callable[..., Path]
PRICED = ProviderConfig(models=(ModelConfig(name=MODEL, max_requests=3, input_usd_per_mtok=1.0,
                                            output_usd_per_mtok=4.0),))


def finished_job_with_failures(driver: Driver, write_jsonl: Writer) -> str:
    """Six items in two provider batches (and a third for a re-batched item): q-1 fails for
    good, q-4 fails once then succeeds, the rest succeed."""
    driver.fake.outcomes.update({"q-1": ["permanent"], "q-4": ["retryable", "ok"]})
    job_id, _ = create_job(driver.rt, write_jsonl(6), provider="fake", model=MODEL,
                           name="nightly", metadata={"team": "search"})
    assert driver.run(job_id).status is JobStatus.COMPLETED_WITH_FAILURES
    return job_id


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements sent to the database inside the block."""
    sent: list[str] = []

    def record(conn: object, cursor: object, sql: str, *args: object) -> None:
        sent.append(sql)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


# ---- job status ------------------------------------------------------------------------------

def test_a_jobs_detail_has_its_counts_usage_cost_and_provider_batches(
        make_driver: Callable[..., Driver], database_url: str, write_jsonl: Writer) -> None:
    driver = make_driver(PRICED, database_url=database_url)
    job_id = finished_job_with_failures(driver, write_jsonl)

    detail = job_detail(driver.rt, job_id)

    assert (detail.id, detail.name, detail.provider, detail.model, detail.endpoint) == (
        job_id, "nightly", "fake", MODEL, Endpoint.CHAT)
    assert (detail.status, detail.item_count, detail.tenant) == (
        JobStatus.COMPLETED_WITH_FAILURES, 6, "default")
    assert detail.counts == {ItemStatus.SUCCEEDED: 5, ItemStatus.FAILED: 1}
    assert detail.usage == Usage(input_tokens=50, output_tokens=25)
    per_item = (10 * Decimal("1.0") + 5 * Decimal("4.0")) / 1_000_000 * Decimal("0.5")
    assert detail.cost_usd == 5 * per_item  # exact: Decimal end to end
    assert detail.sync_cost_usd == 2 * detail.cost_usd
    assert detail.metadata == {"team": "search"}
    assert detail.completed_at is not None and detail.submitted_at is not None
    assert detail.ended and detail.finished_items == 6
    assert [(b.id, b.status, b.item_count, b.attempt) for b in detail.batches] == [
        (b.id, b.status, b.item_count, b.attempt) for b in driver.batches(job_id)]
    assert {b.status for b in detail.batches} == {BatchStatus.FETCHED}
    assert all(b.provider_batch_id and b.poll_count >= 1 for b in detail.batches)


def test_a_jobs_detail_agrees_with_the_repositorys_totals(
        make_driver: Callable[..., Driver], database_url: str, write_jsonl: Writer) -> None:
    driver = make_driver(PRICED, database_url=database_url)
    job_id = finished_job_with_failures(driver, write_jsonl)

    detail, job = job_detail(driver.rt, job_id), driver.job(job_id)

    assert (detail.counts, detail.usage) == (job.counts, job.usage)
    assert detail.cost_usd == job.cost_usd


def test_a_jobs_detail_aggregates_its_items_in_one_query(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver(PRICED)
    job_id = finished_job_with_failures(driver, write_jsonl)

    with statements(driver.rt.engine) as sent:
        job_detail(driver.rt, job_id)

    assert len([sql for sql in sent if "FROM items" in sql]) == 1


def test_a_job_without_prices_has_no_cost(driver: Driver, write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    driver.run(job_id)

    assert job_detail(driver.rt, job_id).cost_usd is None


def test_a_pending_job_has_zero_usage_and_no_batches(driver: Driver,
                                                     write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)

    detail = job_detail(driver.rt, job_id)

    assert (detail.status, detail.counts) == (JobStatus.PENDING, {ItemStatus.PENDING: 3})
    assert (detail.usage, detail.cost_usd, detail.batches) == (Usage(), None, ())
    assert not detail.ended and detail.finished_items == 0


def test_a_running_jobs_summary_counts_its_items_per_status(driver: Driver,
                                                            write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(4), provider="fake", model=MODEL)
    plan_job(driver.rt, job_id)
    (batch,) = driver.batches(job_id)
    submit_batch(driver.rt, batch.id)

    summary = job_summary(driver.rt, job_id)

    assert (summary.status, summary.counts) == (JobStatus.RUNNING, {ItemStatus.SUBMITTED: 4})
    assert summary.finished_items == 0 and not summary.ended


def test_an_unknown_job_is_not_found_by_every_read(driver: Driver) -> None:
    reads: list[Callable[[], object]] = [
        lambda: job_detail(driver.rt, "job_nope"), lambda: job_summary(driver.rt, "job_nope"),
        lambda: job_events(driver.rt, "job_nope"), lambda: job_items(driver.rt, "job_nope"),
        lambda: iter_job_events(driver.rt, "job_nope"),
        lambda: job_results(driver.rt, "job_nope"),  # before the first record is asked for
    ]
    for read in reads:
        with pytest.raises(NotFoundError, match="no job 'job_nope'"):
            read()


def test_another_tenants_job_is_not_found_and_its_own_tenant_reads_it(
        make_driver: Callable[..., Driver], database_url: str, write_jsonl: Writer) -> None:
    driver = make_driver(database_url=database_url)
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL,
                           tenant="acme")
    driver.run(job_id)

    for read in (job_detail, job_summary, job_events, job_items, job_results):
        with pytest.raises(NotFoundError):
            read(driver.rt, job_id, tenant="globex")  # type: ignore[operator]
    assert job_detail(driver.rt, job_id, tenant="acme").tenant == "acme"
    assert len(list(job_results(driver.rt, job_id, tenant="acme"))) == 2
    assert list_jobs(driver.rt, tenant="globex").entries == ()
    assert [j.id for j in list_jobs(driver.rt, tenant="acme").entries] == [job_id]


# ---- job lists -------------------------------------------------------------------------------

def test_job_lists_page_newest_first_without_showing_a_job_twice(
        make_driver: Callable[..., Driver], database_url: str, write_jsonl: Writer) -> None:
    driver = make_driver(database_url=database_url)
    created = []
    for i in range(7):
        if i % 3 == 0:  # three jobs at a time share a created_at: the id breaks the tie
            driver.clock.advance(1)
        created.append(create_job(driver.rt, write_jsonl(1), provider="fake", model=MODEL)[0])
    newest_first = sorted(created, key=lambda job_id: (
        job_summary(driver.rt, job_id).created_at, job_id), reverse=True)

    seen, cursor, pages = [], None, 0
    while True:
        page = list_jobs(driver.rt, limit=3, cursor=cursor)
        seen += [j.id for j in page.entries]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert seen == newest_first
    assert pages == 3
    assert [j.id for j in list_jobs(driver.rt, limit=7).entries] == newest_first
    assert list_jobs(driver.rt, limit=7).next_cursor is None


def test_a_job_created_while_paging_appears_on_no_later_page(driver: Driver,
                                                             write_jsonl: Writer) -> None:
    older = [create_job(driver.rt, write_jsonl(1), provider="fake", model=MODEL)[0]
             for _ in range(4)]
    first = list_jobs(driver.rt, limit=2)
    driver.clock.advance(1)
    newer, _ = create_job(driver.rt, write_jsonl(1), provider="fake", model=MODEL)

    rest = list_jobs(driver.rt, limit=10, cursor=first.next_cursor)

    assert newer not in [j.id for j in rest.entries]
    assert sorted(j.id for j in first.entries + rest.entries) == sorted(older)


def test_job_lists_filter_by_status_provider_and_parent_and_carry_item_counts(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.outcomes["q-1"] = ["permanent"]
    parent, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    driver.run(parent)
    cancelled, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    cancel_job(driver.rt, cancelled)
    driver.drain()
    child, _ = retry_job(driver.rt, parent)  # left pending: its plan message is not delivered

    def ids(**filters: object) -> list[str]:
        return [j.id for j in list_jobs(driver.rt, **filters).entries]  # type: ignore[arg-type]

    assert ids(status=JobStatus.PENDING) == [child]
    assert set(ids(status=[JobStatus.CANCELLED, JobStatus.COMPLETED_WITH_FAILURES])) == {
        cancelled, parent}
    assert ids(parent_job_id=parent) == [child]
    assert ids(provider="elsewhere") == []
    counts = {j.id: j.counts for j in list_jobs(driver.rt).entries}
    assert counts == {parent: {ItemStatus.SUCCEEDED: 2, ItemStatus.FAILED: 1},
                      child: {ItemStatus.PENDING: 1}, cancelled: {ItemStatus.CANCELLED: 2}}


@pytest.mark.parametrize("cursor", [
    "", "not-a-cursor", "W10", "WyJ4IiwieSJd", "MTIz",
    "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwiam9iX3giXQ",  # a time without its zone
])
def test_a_job_list_cursor_that_cannot_be_read_is_an_input_error(driver: Driver,
                                                                 cursor: str) -> None:
    with pytest.raises(InputError) as caught:
        list_jobs(driver.rt, cursor=cursor)
    assert caught.value.field == "cursor"


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE_SIZE + 1])
def test_a_page_size_out_of_bounds_is_an_input_error(driver: Driver, write_jsonl: Writer,
                                                     limit: int) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(1), provider="fake", model=MODEL)
    for read in (lambda: list_jobs(driver.rt, limit=limit),
                 lambda: job_events(driver.rt, job_id, limit=limit),
                 lambda: job_items(driver.rt, job_id, limit=limit)):
        with pytest.raises(InputError) as caught:
            read()
        assert caught.value.field == "limit"


# ---- events ----------------------------------------------------------------------------------

def test_events_page_after_an_event_id_oldest_first(
        make_driver: Callable[..., Driver], database_url: str, write_jsonl: Writer) -> None:
    driver = make_driver(database_url=database_url)
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    driver.run(job_id)

    pages, cursor = [], None
    while True:
        page = job_events(driver.rt, job_id, cursor=cursor, limit=3)
        pages.append(page.entries)
        if page.next_cursor is None:
            break
        assert page.next_cursor == str(page.entries[-1].id)
        cursor = page.next_cursor
    every = [e for entries in pages for e in entries]

    assert [e.type for e in every] == driver.events(job_id)
    assert [len(entries) for entries in pages] == [3, 3, 1]
    assert [e.id for e in every] == sorted({e.id for e in every})
    assert every == list(iter_job_events(driver.rt, job_id))
    assert all(isinstance(e, EventRecord) and e.job_id == job_id for e in every)
    assert every[0].type == "job.created" and every[0].data["items"] == 2
    assert job_events(driver.rt, job_id, cursor=str(every[-1].id)).entries == ()


def test_a_reader_following_a_job_gets_only_the_events_after_the_last_one_it_has(
        driver: Driver, write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    seen = job_events(driver.rt, job_id).entries

    cancel_job(driver.rt, job_id)
    driver.drain()
    later = job_events(driver.rt, job_id, cursor=str(seen[-1].id)).entries

    assert [e.type for e in seen] == ["job.created"]
    assert later[0].type == "job.cancel_requested"
    assert [e.type for e in seen + later] == driver.events(job_id)


@pytest.mark.parametrize("cursor", ["", "-1", "1.5", "abc", "١٢", "9" * 19])
def test_an_event_or_item_cursor_that_is_not_a_position_is_an_input_error(
        driver: Driver, write_jsonl: Writer, cursor: str) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(1), provider="fake", model=MODEL)
    for read in (job_events, job_items):
        with pytest.raises(InputError) as caught:
            read(driver.rt, job_id, cursor=cursor)  # type: ignore[operator]
        assert caught.value.field == "cursor"


# ---- items and results -----------------------------------------------------------------------

def test_items_page_in_input_order_and_filter_by_status(
        make_driver: Callable[..., Driver], database_url: str, write_jsonl: Writer) -> None:
    driver = make_driver(PRICED, database_url=database_url)
    driver.fake.outcomes.update({"q-0": ["permanent"], "q-3": ["permanent"],
                                 "q-5": ["permanent"]})
    job_id, _ = create_job(driver.rt, write_jsonl(6), provider="fake", model=MODEL)
    driver.run(job_id)

    first = job_items(driver.rt, job_id, limit=4)
    rest = job_items(driver.rt, job_id, limit=4, cursor=first.next_cursor)
    failed = job_items(driver.rt, job_id, status=ItemStatus.FAILED, limit=2)
    failed_rest = job_items(driver.rt, job_id, status=[ItemStatus.FAILED], limit=2,
                            cursor=failed.next_cursor)

    assert [i.custom_id for i in first.entries + rest.entries] == [f"q-{n}" for n in range(6)]
    assert [i.seq for i in first.entries] == [0, 1, 2, 3] and first.next_cursor == "3"
    assert rest.next_cursor is None
    assert [i.custom_id for i in failed.entries + failed_rest.entries] == ["q-0", "q-3", "q-5"]
    assert failed_rest.next_cursor is None
    q0, q1 = first.entries[:2]
    assert (q0.status, q0.error and q0.error["retryable"], q0.cost_usd) == (
        ItemStatus.FAILED, False, None)
    assert (q1.status, q1.attempts, q1.finish_reason, q1.usage) == (
        ItemStatus.SUCCEEDED, 1, "stop", Usage(input_tokens=10, output_tokens=5))
    assert q1.batch_id == driver.batches(job_id)[0].id and q1.completed_at is not None


def test_results_come_one_per_input_line_in_order_with_each_items_history(
        make_driver: Callable[..., Driver], database_url: str, write_jsonl: Writer) -> None:
    driver = make_driver(PRICED, database_url=database_url)
    job_id = finished_job_with_failures(driver, write_jsonl)

    records = list(job_results(driver.rt, job_id))
    in_chunks_of_two = list(job_results(driver.rt, job_id, chunk=2))

    assert in_chunks_of_two == records
    assert [r.custom_id for r in records] == [f"q-{n}" for n in range(6)]
    assert [r.status for r in records] == [ItemStatus.SUCCEEDED, ItemStatus.FAILED] + [
        ItemStatus.SUCCEEDED] * 4
    assert [r.attempts for r in records] == [1, 1, 1, 1, 2, 1]
    assert {(r.provider, r.model) for r in records} == {("fake", MODEL)}
    assert records[0].output_text == "answer to q-0" and records[0].response is not None
    assert records[0].usage == Usage(input_tokens=10, output_tokens=5)
    assert [h.outcome for h in records[1].history] == ["failed"]
    assert not records[0].history
    (earlier,) = records[4].history
    first_ride = next(b.id for b in driver.fake.batches.values() if "q-4" in b.keys)
    ours = {b.provider_batch_id: b.id for b in driver.batches(job_id)}
    assert (earlier.attempt, earlier.batch_id, earlier.outcome) == (1, ours[first_ride],
                                                                    "failed")
    assert earlier.error is not None and earlier.error["retryable"] is True


def test_a_result_record_is_the_json_object_llmbatch_results_writes(
        driver: Driver, write_jsonl: Writer) -> None:
    driver.fake.outcomes["q-1"] = ["retryable", "ok"]
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    driver.run(job_id)

    record = list(job_results(driver.rt, job_id))[1]
    line = record.as_dict()

    assert list(line) == ["custom_id", "status", "output_text", "finish_reason", "response",
                          "usage", "cost_usd", "error", "provider", "model", "attempts",
                          "history"]
    assert (line["custom_id"], line["status"], line["attempts"]) == ("q-1", "succeeded", 2)
    assert line["usage"] == {"input_tokens": 10, "output_tokens": 5, "cached_tokens": 0,
                             "reasoning_tokens": 0, "cache_write_tokens": 0,
                             "cache_write_1h_tokens": 0}
    (earlier,) = record.history
    assert line["history"] == [{"attempt": 1, "batch_id": earlier.batch_id, "outcome": "failed",
                                "error": earlier.error, "at": earlier.at.isoformat()}]
    assert json.loads(json.dumps(line)) == line


# ---- reading never holds up the lifecycle ----------------------------------------------------

def test_a_read_is_answered_while_a_writer_holds_the_sqlite_write_lock(
        driver: Driver, write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL, name="old")
    impatient = make_engine(DatabaseConfig(url=driver.rt.config.database.url,
                                           busy_timeout_ms=50))
    reader = replace(driver.rt, engine=impatient)
    try:
        with driver.rt.uow() as writer:
            writer.repo.conn.execute(update(tables.jobs).where(tables.jobs.c.id == job_id)
                                     .values(name="new"))
            with pytest.raises(OperationalError, match="locked"), reader.uow() as other:
                other.repo.job_status(job_id)  # another writer waits for the lock, and gives up

            seen = job_detail(reader, job_id)
            events = job_events(reader, job_id).entries

        assert seen.name == "old"  # the last committed state, not the writer's
        assert [e.type for e in events] == ["job.created"]
    finally:
        impatient.dispose()


def test_the_repository_reads_a_jobs_status_alone_without_its_items(
        make_driver: Callable[..., Driver], database_url: str, write_jsonl: Writer) -> None:
    driver = make_driver(database_url=database_url)
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    plan_job(driver.rt, job_id)

    with statements(driver.rt.engine) as sent, driver.rt.uow() as uow:
        status = uow.repo.job_status(job_id)
    with driver.rt.uow() as uow, pytest.raises(NotFoundError, match="no job 'job_nope'"):
        uow.repo.job_status("job_nope")

    assert status is JobStatus.RUNNING
    queries = [sql for sql in sent if sql.lstrip().upper().startswith("SELECT")]
    assert len(queries) == 1 and "items" not in queries[0]
