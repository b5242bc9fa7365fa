"""Ingest in bulk on SQLite and on PostgreSQL: the items are written with executemany / COPY,
duplicate ids are left to the database's unique constraint (nothing per item is held in
memory), and a refusal still names every problem by file, line and field, in line order, with
nothing stored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from llmbatch.db.tables import items
from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.domain.tokens import estimate_tokens
from llmbatch.errors import InputError, InputProblems
from llmbatch.providers.base import EncodedLine
from llmbatch.service_layer import jobs as jobs_service
from llmbatch.service_layer.intake import check_file
from llmbatch.service_layer.jobs import create_job

from .harness import MODEL, Driver, chat_line, orphan_items, row_counts

Writer = Callable[..., Path]


@pytest.fixture
def driver(make_driver: Callable[..., Driver], database_url: str,
           monkeypatch: pytest.MonkeyPatch) -> Driver:
    """A driver on each database in turn, writing items three at a time (so that a
    duplicate meets its first use in an earlier chunk)."""
    monkeypatch.setattr(jobs_service, "INSERT_CHUNK", 3)
    return make_driver(database_url=database_url)


def problems_of(error: InputError) -> list[tuple[int | None, str | None, str]]:
    listed = error.problems if isinstance(error, InputProblems) else [error]
    return [(p.line, p.field, p.message) for p in listed]


def test_a_good_file_is_stored_whole_and_in_order(driver: Driver, write_jsonl: Writer) -> None:
    path = write_jsonl([chat_line(f"q-{i}", f"question {i}") for i in range(8)])

    job_id, created = create_job(driver.rt, path, provider="fake", model=MODEL)

    assert created and driver.job(job_id).item_count == 8
    with driver.rt.engine.connect() as conn:
        rows = conn.execute(select(items.c.seq, items.c.custom_id, items.c.provider_key,
                                   items.c.request, items.c.status, items.c.input_tokens,
                                   items.c.wire_bytes, items.c.estimated_tokens,
                                   items.c.cost_bound_pusd)
                            .where(items.c.job_id == job_id).order_by(items.c.seq)).all()
    assert [(r.seq, r.custom_id, r.provider_key) for r in rows] == [
        (i, f"q-{i}", f"q-{i}") for i in range(8)]
    # Each value as the intake gave it.
    request = RequestLine(5, "q-5", rows[5].request["body"])
    encoded = driver.fake.encode(request, endpoint=Endpoint.CHAT, model=MODEL)
    assert (rows[5].wire_bytes, rows[5].estimated_tokens, rows[5].cost_bound_pusd) == (
        len(encoded.data), estimate_tokens(request), None)  # the fake model has no price
    assert rows[5].request == {"body": {"messages": [{"role": "user", "content": "question 5"}],
                                        "max_tokens": 20}}
    assert {(r.status, r.input_tokens) for r in rows} == {("pending", 0)}
    assert orphan_items(driver.rt.engine) == 0


def test_duplicates_across_chunks_are_named_with_every_other_problem(
        driver: Driver, write_jsonl: Writer) -> None:
    seed, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    lines = [chat_line(f"q-{i}") for i in range(9)]
    lines[6] = chat_line("q-1")          # line 7 repeats line 2, two chunks later
    lines[7] = "not json"                # line 8: after the write that met the duplicate
    lines[8] = chat_line("q-1")          # line 9 repeats it again
    path = write_jsonl(lines, name="dups.jsonl")
    before, sent = row_counts(driver.rt.engine), list(driver.publisher.messages)

    with pytest.raises(InputError) as caught:
        create_job(driver.rt, path, provider="fake", model=MODEL)

    found = problems_of(caught.value)
    assert [(line, field) for line, field, _ in found] == [
        (7, "custom_id"), (8, None), (9, "custom_id")]
    assert found[0][2] == "duplicate custom_id 'q-1'"
    assert str(caught.value).splitlines()[1] == (
        f"{path}:7: field 'custom_id': duplicate custom_id 'q-1'")
    assert row_counts(driver.rt.engine) == before  # the seeded job alone
    assert driver.job(seed).item_count == 2
    assert driver.publisher.messages == sent


def test_a_duplicate_in_the_last_chunk_is_refused(driver: Driver, write_jsonl: Writer) -> None:
    path = write_jsonl([chat_line("a"), chat_line("b"), chat_line("c"), chat_line("d"),
                        chat_line("a")])

    with pytest.raises(InputError) as caught:
        create_job(driver.rt, path, provider="fake", model=MODEL)

    assert problems_of(caught.value) == [(5, "custom_id", "duplicate custom_id 'a'")]
    assert set(row_counts(driver.rt.engine).values()) == {0}


def test_two_ids_the_adapter_maps_to_one_provider_key_are_refused(
        driver: Driver, write_jsonl: Writer, monkeypatch: pytest.MonkeyPatch) -> None:
    original = driver.fake.encode

    def lower_keys(request: RequestLine, *, endpoint: Endpoint, model: str) -> EncodedLine:
        encoded = original(request, endpoint=endpoint, model=model)
        return EncodedLine(provider_key=request.custom_id.lower(), data=encoded.data)

    monkeypatch.setattr(driver.fake, "encode", lower_keys)
    path = write_jsonl([chat_line("x"), chat_line("Key"), chat_line("y"), chat_line("KEY")])

    with pytest.raises(InputError) as caught:
        create_job(driver.rt, path, provider="fake", model=MODEL)

    assert problems_of(caught.value) == [
        (4, "custom_id", "two lines map to the provider id 'key'")]
    assert set(row_counts(driver.rt.engine).values()) == {0}


def test_the_spilled_check_finds_what_the_database_finds(driver: Driver,
                                                         write_jsonl: Writer) -> None:
    """``validate`` / ``--dry-run`` store nothing: their duplicates come from disk."""
    path = write_jsonl([chat_line("a"), chat_line("b"), chat_line("a"), chat_line("c"),
                        chat_line("b")])

    report = check_file(driver.fake, path, endpoint=Endpoint.CHAT, model=MODEL)

    assert (report.requests, report.problem_count) == (5, 2)
    assert [(p.line, p.message) for p in report.problems] == [
        (3, "duplicate custom_id 'a'"), (5, "duplicate custom_id 'b'")]
    assert set(row_counts(driver.rt.engine).values()) == {0}


def test_an_error_while_the_items_stream_stores_nothing_and_the_database_goes_on(
        driver: Driver, write_jsonl: Writer, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL the items go down one ``COPY`` as they are checked: an error between two
    rows abandons it (nothing stored), and the next job is written as if nothing happened."""
    from llmbatch.service_layer.estimates import BoundPricer

    original = BoundPricer.batch_pusd
    calls = 0

    def fails_at_the_fifth(self: BoundPricer, tokens: int, output_limit: int | None) -> Any:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise RuntimeError("disk on fire")
        return original(self, tokens, output_limit)

    monkeypatch.setattr(BoundPricer, "batch_pusd", fails_at_the_fifth)
    with pytest.raises(RuntimeError, match="disk on fire"):
        create_job(driver.rt, write_jsonl(8), provider="fake", model=MODEL)
    assert calls == 5
    assert set(row_counts(driver.rt.engine).values()) == {0}

    job_id, _ = create_job(driver.rt, write_jsonl(8, name="again.jsonl"), provider="fake",
                           model=MODEL)
    assert driver.job(job_id).item_count == 8
    with driver.rt.engine.connect() as conn:
        stored = conn.execute(select(items.c.custom_id).where(items.c.job_id == job_id)
                              .order_by(items.c.seq)).scalars().all()
    assert stored == [f"q-{i}" for i in range(8)]
