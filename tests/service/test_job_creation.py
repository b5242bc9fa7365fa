"""Creating a job: bad input is refused with its line and field and stores nothing; an
idempotency key returns the same job for the same content and refuses other content."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from llmbatch.config import ModelConfig, ProviderConfig, ProviderLimits
from llmbatch.domain.models import Endpoint
from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.errors import ConflictError, InputError
from llmbatch.service_layer.jobs import create_job

from .harness import MODEL, Driver, chat_line, result_lines, row_counts

Writer = Callable[..., Path]
GOOD = [chat_line(f"q-{i}", f"question {i}") for i in range(5)]


def lines_with(line_no: int, bad: str) -> list[str]:
    """Five good lines with line ``line_no`` (1-based) replaced by ``bad``."""
    lines = list(GOOD)
    lines[line_no - 1] = bad
    return lines


@pytest.fixture
def seeded(driver: Driver, write_jsonl: Writer) -> Driver:
    """A database that already holds one finished job, which bad input must not disturb."""
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    driver.run(job_id)
    driver.publisher.messages.clear()
    return driver


@pytest.mark.parametrize(("lines", "line", "field", "words"), [
    (lines_with(3, '{"custom_id": "q-2", "body": '), 3, None, "not valid JSON"),
    (lines_with(4, "[1, 2]"), 4, None, "JSON object"),
    (lines_with(5, chat_line("q-0")), 5, "custom_id", "duplicate custom_id 'q-0'"),
    (lines_with(2, '{"custom_id": "x", "body": {"messages": []}}'), 2, "body.messages",
     "at least 1 item"),
    (lines_with(3, chat_line("x", model="other")), 3, "model", "unknown key"),
], ids=["malformed-json", "not-an-object", "duplicate-custom-id", "empty-messages",
        "unknown-key"])
def test_a_bad_line_in_the_middle_stores_nothing(seeded: Driver, write_jsonl: Writer,
                                                 lines: list[str], line: int,
                                                 field: str | None, words: str) -> None:
    path = write_jsonl(lines, name="bad.jsonl")
    before = row_counts(seeded.rt.engine)

    with pytest.raises(InputError) as caught:
        create_job(seeded.rt, path, provider="fake", model=MODEL)

    assert (caught.value.file, caught.value.line, caught.value.field) == (str(path), line, field)
    assert words in caught.value.message
    assert str(caught.value).startswith(f"{path}:{line}:")
    assert row_counts(seeded.rt.engine) == before
    assert seeded.publisher.messages == []


@pytest.mark.parametrize(("provider", "model", "field"), [
    ("nope", MODEL, "provider"),
    ("fake", "no-such-model", "model"),
], ids=["unknown-provider", "unknown-model"])
def test_an_unknown_provider_or_model_stores_nothing(seeded: Driver, write_jsonl: Writer,
                                                     provider: str, model: str,
                                                     field: str) -> None:
    before = row_counts(seeded.rt.engine)

    with pytest.raises(InputError) as caught:
        create_job(seeded.rt, write_jsonl(GOOD), provider=provider, model=model)

    assert caught.value.field == field
    assert repr(model if field == "model" else provider) in caught.value.message
    assert row_counts(seeded.rt.engine) == before


def test_a_disabled_provider_is_refused(make_driver: Callable[..., Driver],
                                        write_jsonl: Writer) -> None:
    driver = make_driver(ProviderConfig(enabled=False, models=(ModelConfig(name=MODEL),)))

    with pytest.raises(InputError, match=r"disabled .*providers\.fake\.enabled"):
        create_job(driver.rt, write_jsonl(GOOD), provider="fake", model=MODEL)
    assert set(row_counts(driver.rt.engine).values()) == {0}


@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["empty", "blank-lines"])
def test_a_file_without_requests_is_refused(driver: Driver, tmp_path: Path,
                                            content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content)

    with pytest.raises(InputError, match="no requests"):
        create_job(driver.rt, path, provider="fake", model=MODEL)
    assert set(row_counts(driver.rt.engine).values()) == {0}


def test_a_missing_file_is_an_input_error(driver: Driver, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read input") as caught:
        create_job(driver.rt, tmp_path / "absent.jsonl", provider="fake", model=MODEL)
    assert caught.value.file == str(tmp_path / "absent.jsonl")


def test_a_line_over_the_byte_limit_is_refused_at_create(make_driver: Callable[..., Driver],
                                                         write_jsonl: Writer) -> None:
    driver = make_driver(ProviderConfig(models=(ModelConfig(name=MODEL),),
                                        limits=ProviderLimits(max_bytes=200)))
    lines = lines_with(2, chat_line("big", "x" * 300))

    with pytest.raises(InputError, match="200-byte batch limit") as caught:
        create_job(driver.rt, write_jsonl(lines), provider="fake", model=MODEL)
    assert (caught.value.line, caught.value.field) == (2, "body")
    assert set(row_counts(driver.rt.engine).values()) == {0}


def test_invalid_utf8_is_refused_with_its_line(driver: Driver, tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes((GOOD[0] + "\n").encode() + b'{"custom_id": "caf\xe9"}\n')

    with pytest.raises(InputError, match="UTF-8") as caught:
        create_job(driver.rt, path, provider="fake", model=MODEL)
    assert caught.value.line == 2


def test_blank_lines_are_skipped_and_missing_custom_ids_are_named_after_their_line(
        driver: Driver, write_jsonl: Writer) -> None:
    path = write_jsonl([chat_line(None, "first"), "", chat_line("named"), "   ",
                        chat_line(None, "last")])

    job_id, _ = create_job(driver.rt, path, provider="fake", model=MODEL)

    assert driver.job(job_id).item_count == 3
    assert [i.custom_id for i in driver.items(job_id)] == ["line-1", "named", "line-5"]
    assert [i.seq for i in driver.items(job_id)] == [0, 1, 2]


def test_an_openai_batch_file_runs_unchanged(driver: Driver, write_jsonl: Writer) -> None:
    lines = [json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                         "body": {"model": MODEL, "messages": [
                             {"role": "system", "content": "Be brief."},
                             {"role": "user", "content": f"q{i}"}], "max_tokens": 5}})
             for i in range(3)]
    job_id, _ = create_job(driver.rt, write_jsonl(lines), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert [r["custom_id"] for r in result_lines(driver.rt, job_id)] == ["r0", "r1", "r2"]


def test_the_same_idempotency_key_and_content_returns_the_same_job(
        driver: Driver, write_jsonl: Writer) -> None:
    path = write_jsonl(GOOD)
    job_id, created = create_job(driver.rt, path, provider="fake", model=MODEL,
                                 idempotency_key="nightly-2026-01-01")
    before = row_counts(driver.rt.engine)
    driver.publisher.messages.clear()

    again, created_again = create_job(driver.rt, write_jsonl(GOOD), provider="fake",
                                      model=MODEL, idempotency_key="nightly-2026-01-01")

    assert (created, created_again) == (True, False)
    assert again == job_id
    assert row_counts(driver.rt.engine) == before
    assert driver.publisher.messages == []


def test_the_same_idempotency_key_with_other_content_is_a_conflict(
        driver: Driver, write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(GOOD), provider="fake", model=MODEL,
                           idempotency_key="k")
    before = row_counts(driver.rt.engine)

    with pytest.raises(ConflictError, match=job_id):
        create_job(driver.rt, write_jsonl(GOOD[:4]), provider="fake", model=MODEL,
                   idempotency_key="k")
    # The content hash covers the endpoint too, not only the lines.
    with pytest.raises(ConflictError):
        create_job(driver.rt, write_jsonl(['{"custom_id": "e", "body": {"input": "x"}}']),
                   provider="fake", model=MODEL, endpoint=Endpoint.EMBEDDINGS,
                   idempotency_key="k")
    assert row_counts(driver.rt.engine) == before


def test_idempotency_keys_are_per_tenant(driver: Driver, write_jsonl: Writer) -> None:
    path = write_jsonl(GOOD)
    first, _ = create_job(driver.rt, path, provider="fake", model=MODEL, idempotency_key="k",
                          tenant="team-a")

    second, created = create_job(driver.rt, path, provider="fake", model=MODEL,
                                 idempotency_key="k", tenant="team-b")

    assert created and second != first


def test_a_created_job_is_pending_with_its_items_stored(driver: Driver,
                                                        write_jsonl: Writer) -> None:
    job_id, _ = create_job(driver.rt, write_jsonl(GOOD), provider="fake", model=MODEL,
                           name="nightly", metadata={"team": "search"})

    job = driver.job(job_id)
    assert (job.status, job.item_count, job.name, job.metadata) == (
        JobStatus.PENDING, 5, "nightly", {"team": "search"})
    assert job.counts == {ItemStatus.PENDING: 5}
    assert driver.events(job_id) == ["job.created"]
