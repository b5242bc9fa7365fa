"""Poison never blocks: result lines the databases cannot store as they came, and provider
calls that fail again and again, end their job on SQLite and on PostgreSQL alike.

Every test runs on both databases (``database_url``). Good lines are stored, text the database
cannot hold is escaped (the item keeps its answer), values that cannot be represented fail
their item with ``result_unstorable`` naming the line, and an operator sees why on the batch
(``error``) and in the events. The fake provider reads raw result lines the way adapters do;
the last tests take the real path instead: the emulator's ``poison_output`` fault, the
official OpenAI SDK over HTTP, the OpenAI adapter.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import SecretStr

from fakes import FakeProvider
from llmbatch.bootstrap import Runtime
from llmbatch.config import (
    AppConfig,
    DatabaseConfig,
    ModelConfig,
    ProviderConfig,
    ProviderLimits,
    RetryConfig,
)
from llmbatch.db.engine import make_engine
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus, is_terminal
from llmbatch.domain.storable import StorableResult
from llmbatch.errors import AuthenticationError, TransientProviderError
from llmbatch.providers.registry import ProviderRegistry
from llmbatch.service_layer import progress
from llmbatch.service_layer.jobs import cancel_job, create_job
from llmbatch.service_layer.unit_of_work import RecordingPublisher

from .harness import MODEL, Clock, Driver, result_lines

if TYPE_CHECKING:
    from llmbatch.emulator.server import EmulatorServer

Writer = Callable[..., Path]
MakeDriver = Callable[..., Driver]

NUL_LINE = '{"custom_id": "q-1", "text": "before\\u0000after", "usage": {"input_tokens": 7}}'
SURROGATE_LINE = ('{"custom_id": "q-2", "text": "half a pair: \\ud83d!", '
                  '"note": {"key\\udc00": "\\u0000"}}')
HUGE_TOKENS_LINE = ('{"custom_id": "q-1", "text": "fine", '
                    '"usage": {"input_tokens": 100000000000000000000}}')
NAN_LINE = ('{"custom_id": "q-3", "text": "fine", "scores": [0.5, NaN], '
            '"usage": {"input_tokens": 9}}')
TOO_MANY_FOR_32_BITS_LINE = ('{"custom_id": "q-4", "text": "fine", '
                             '"usage": {"output_tokens": 3000000000}}')


def records(driver: Driver, job_id: str) -> dict[str, dict[str, Any]]:
    return {r["custom_id"]: r for r in result_lines(driver.rt, job_id)}


def event_data(driver: Driver, job_id: str, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in driver.event_rows(job_id) if e.type == kind]


def test_text_the_database_cannot_hold_is_escaped_and_the_item_keeps_its_answer(
        make_driver: MakeDriver, database_url: str | None, write_jsonl: Writer) -> None:
    driver = make_driver(database_url=database_url)
    driver.fake.result_lines.update({"q-1": NUL_LINE, "q-2": SURROGATE_LINE})
    job_id, _ = create_job(driver.rt, write_jsonl(4), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    stored = records(driver, job_id)
    assert stored["q-0"]["output_text"] == "answer to q-0"
    assert stored["q-1"]["output_text"] == "before\ufffdafter"
    assert stored["q-1"]["response"]["text"] == "before\ufffdafter"
    assert stored["q-1"]["usage"]["input_tokens"] == 7
    assert stored["q-2"]["output_text"] == "half a pair: \ufffd!"
    assert stored["q-2"]["response"]["note"] == {"key\ufffd": "\ufffd"}
    assert len(driver.fake.batches) == 1  # nothing was sent again
    (escaped,) = event_data(driver, job_id, "batch.results_escaped")
    assert escaped["count"] == 2 and escaped["lines"] == [2, 3]
    assert driver.batches(job_id)[0].error is None  # nothing failed


def test_values_that_cannot_be_represented_fail_only_their_item_naming_the_line(
        make_driver: MakeDriver, database_url: str | None, write_jsonl: Writer) -> None:
    driver = make_driver(database_url=database_url)
    driver.fake.result_lines.update({"q-1": HUGE_TOKENS_LINE, "q-3": NAN_LINE,
                                     "q-4": TOO_MANY_FOR_32_BITS_LINE})
    job_id, _ = create_job(driver.rt, write_jsonl(6), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.COMPLETED_WITH_FAILURES
    assert job.counts == {ItemStatus.SUCCEEDED: 3, ItemStatus.FAILED: 3}
    stored = records(driver, job_id)
    assert [stored[k]["output_text"] for k in ("q-0", "q-2", "q-5")] == [
        "answer to q-0", "answer to q-2", "answer to q-5"]
    assert stored["q-1"]["error"] == {
        "type": "result_unstorable", "code": "result_unstorable", "retryable": False,
        "message": "result line 2: usage.input_tokens is 100000000000000000000, "
                   "outside 0..2147483647"}
    assert stored["q-3"]["error"]["message"] == (
        "result line 4: response.scores[1] is nan, which JSON storage refuses")
    assert stored["q-4"]["error"]["message"].startswith(
        "result line 5: usage.output_tokens is 3000000000")
    assert all(stored[k]["response"] is None and stored[k]["output_text"] is None
               for k in ("q-1", "q-3", "q-4"))
    assert stored["q-3"]["usage"]["input_tokens"] == 9  # its usage was valid: kept
    assert len(driver.fake.batches) == 1  # a refused line is final: not sent again
    (batch,) = driver.batches(job_id)
    assert batch.status is BatchStatus.FETCHED
    assert batch.error_code == "result_unstorable"
    assert batch.error is not None and "3 result(s)" in batch.error
    assert "result line 2: usage.input_tokens" in batch.error
    (unstorable,) = event_data(driver, job_id, "batch.results_unstorable")
    assert unstorable["count"] == 3 and unstorable["lines"] == [2, 4, 5]


def test_a_value_the_database_refuses_is_isolated_and_the_rest_of_the_chunk_is_stored(
        make_driver: MakeDriver, database_url: str | None, write_jsonl: Writer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The last line of defence, tested by switching the first one off: results go to the
    # database as they came, and what it (or its driver) refuses is bisected out.
    monkeypatch.setattr(progress, "storable_result", StorableResult)
    driver = make_driver(database_url=database_url)
    driver.fake.result_lines.update({"q-2": SURROGATE_LINE, "q-5": HUGE_TOKENS_LINE.replace(
        '"q-1"', '"q-5"')})
    job_id, _ = create_job(driver.rt, write_jsonl(8), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.COMPLETED_WITH_FAILURES
    stored = records(driver, job_id)
    failed = {k for k, r in stored.items() if r["status"] == "failed"}
    assert failed == {"q-2", "q-5"}
    assert all(stored[k]["output_text"] == f"answer to {k}" for k in stored if k not in failed)
    for key, line in (("q-2", 3), ("q-5", 6)):
        error = stored[key]["error"]
        assert error["code"] == "result_unstorable" and error["retryable"] is False
        assert error["message"].startswith(f"result line {line}: the database refused it: ")
    (batch,) = driver.batches(job_id)
    assert batch.error_code == "result_unstorable"
    events = event_data(driver, job_id, "batch.results_unstorable")
    assert sorted(line for e in events for line in e["lines"]) == [3, 6]


def test_a_download_that_keeps_failing_ends_and_its_unstored_items_are_rebatched(
        make_driver: MakeDriver, database_url: str | None, write_jsonl: Writer) -> None:
    # Every download breaks off after two lines, inside the first chunk: those two are
    # stored when the download is given up, not re-batched.
    driver = make_driver(database_url=database_url, retry=RetryConfig(max_call_failures=3))
    broken = TransientProviderError("connection reset while downloading", provider="fake")
    driver.fake.fetch_errors.extend([(2, broken)] * 3)  # the first batch's downloads only
    job_id, _ = create_job(driver.rt, write_jsonl(5), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.SUCCEEDED
    assert driver.fake.batch_keys() == [[f"q-{i}" for i in range(5)], ["q-2", "q-3", "q-4"]]
    first = driver.batches(job_id)[0]
    assert first.status is BatchStatus.FETCHED
    assert first.error_code == "results_unavailable"
    assert first.error is not None and "3 tries failed in a row" in first.error
    assert "connection reset while downloading" in first.error
    (gave_up,) = event_data(driver, job_id, "batch.results_unavailable")
    assert gave_up["failures"] == 3
    assert [r["attempts"] for r in records(driver, job_id).values()] == [1, 1, 2, 2, 2]


def test_a_download_that_keeps_failing_fails_the_items_whose_attempts_ran_out(
        make_driver: MakeDriver, database_url: str | None, write_jsonl: Writer) -> None:
    driver = make_driver(database_url=database_url,
                         retry=RetryConfig(max_call_failures=2, item_max_attempts=1))
    driver.fake.fetch_errors.extend(
        [(0, ValueError("bug while reading the result file"))] * 10)
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.COMPLETED_WITH_FAILURES
    assert job.counts == {ItemStatus.FAILED: 3}
    error = records(driver, job_id)["q-0"]["error"]
    assert error["code"] == "results_unavailable"
    assert "2 tries failed in a row" in error["message"]
    assert "bug while reading the result file" in error["message"]
    assert len(driver.fake.batches) == 1


def test_a_poll_that_keeps_failing_abandons_the_batch_without_sending_its_items_again(
        make_driver: MakeDriver, database_url: str | None, write_jsonl: Writer) -> None:
    driver = make_driver(database_url=database_url, retry=RetryConfig(max_call_failures=4))
    driver.fake.poll_errors.extend(
        [AuthenticationError("key revoked", provider="fake", status_code=401)] * 50)
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)

    job = driver.run(job_id)

    assert job.status is JobStatus.COMPLETED_WITH_FAILURES
    assert job.counts == {ItemStatus.FAILED: 3}
    assert len(driver.fake.batches) == 1  # it may still run there: never billed twice
    assert len(driver.fake.poll_errors) == 50 - 4
    error = records(driver, job_id)["q-0"]["error"]
    assert error["code"] == "provider_unreachable" and error["retryable"] is False
    assert "key revoked" in error["message"] and "not sent again" in error["message"]
    (batch,) = driver.batches(job_id)
    assert batch.status is BatchStatus.FETCHED
    assert batch.error_code == "provider_unreachable"
    assert batch.error == error["message"]
    (abandoned,) = event_data(driver, job_id, "batch.abandoned")
    assert abandoned["failures"] == 4
    (fetched,) = event_data(driver, job_id, "batch.fetched")
    assert fetched["without_result"] == 3


def test_a_cancel_that_keeps_failing_abandons_the_batch_and_the_job_ends_cancelled(
        make_driver: MakeDriver, database_url: str | None, write_jsonl: Writer) -> None:
    driver = make_driver(database_url=database_url, retry=RetryConfig(max_call_failures=3))
    driver.fake.polls_to_finish = None  # runs until cancelled
    driver.fake.cancel_errors.extend(
        [TransientProviderError("503 from the provider", provider="fake")] * 50)
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    driver.drain()
    driver.tick()
    cancel_job(driver.rt, job_id)

    job = driver.run(job_id)

    assert job.status is JobStatus.CANCELLED
    assert len(driver.fake.cancel_errors) == 50 - 3
    assert all(r["error"]["code"] == "provider_unreachable"
               for r in records(driver, job_id).values())
    assert "batch.abandoned" in driver.events(job_id)


# ---- the real path: emulator, official SDK, OpenAI adapter ------------------------------------

OPENAI_MODEL = "gpt-4o-mini"


@pytest.fixture
def openai_driver(emu: EmulatorServer, database_url: str | None, migrated_template: Path,
                  tmp_path: Path, clock: Clock) -> Iterator[Driver]:
    """A ``Driver`` whose provider is the real OpenAI adapter on the session emulator, two
    requests per batch."""
    pytest.importorskip("openai")
    if database_url is None:
        shutil.copyfile(migrated_template, tmp_path / "openai.db")
        database_url = f"sqlite:///{tmp_path / 'openai.db'}"
    provider = ProviderConfig(base_url=emu.openai_base_url,
                              api_key=SecretStr("sk-emulator-test"), sdk_max_retries=0,
                              models=(ModelConfig(name=OPENAI_MODEL),),
                              limits=ProviderLimits(max_requests=2))
    config = AppConfig(database=DatabaseConfig(url=database_url),
                       providers={"openai": provider})
    engine = make_engine(config.database)
    publisher = RecordingPublisher()
    rt = Runtime(config=config, engine=engine, registry=ProviderRegistry(config),
                 publisher=publisher, clock=clock, worker_id="test-worker")
    try:
        yield Driver(rt=rt, publisher=publisher, clock=clock, fake=FakeProvider())
    finally:
        adapter = rt.registry.get("openai")
        close = getattr(adapter, "close", None)
        if close is not None:
            close()
        engine.dispose()


@pytest.mark.parametrize("poison", ["nul", "lone_surrogate", "huge_usage"])
def test_poisoned_answers_through_the_sdk_are_stored_or_fail_alone_and_the_job_ends(
        openai_driver: Driver, emu: EmulatorServer, write_jsonl: Writer, poison: str) -> None:
    driver = openai_driver
    emu.set_faults([{"kind": "poison_output", "provider": "openai", "poison": poison,
                     "times": 1}], mode="append")  # every answer of the first batch created
    job_id, _ = create_job(driver.rt, write_jsonl(4), provider="openai", model=OPENAI_MODEL)

    driver.drain()
    for _ in range(20):
        if is_terminal(driver.job(job_id).status):
            break
        emu.advance_clock(120)
        driver.tick(400)

    job = driver.job(job_id)
    items = driver.items(job_id)
    by_batch: dict[str, list[Any]] = {}
    for item in items:
        by_batch.setdefault(item.batch_id, []).append(item)
    assert len(by_batch) == 2
    poisoned, clean = sorted(by_batch.values(), key=lambda rows: any(
        r.status == "failed" or "\ufffd" in (r.output_text or "") for r in rows), reverse=True)
    assert all(r.status == "succeeded" and "\ufffd" not in r.output_text for r in clean)
    if poison == "huge_usage":
        assert job.status is JobStatus.COMPLETED_WITH_FAILURES
        for row in poisoned:
            assert row.status == "failed" and row.error["code"] == "result_unstorable"
            assert row.error["message"].startswith("result line ")
            assert "usage.input_tokens is 100000000000000000000" in row.error["message"]
        batch = next(b for b in driver.batches(job_id) if b.id == poisoned[0].batch_id)
        assert batch.error_code == "result_unstorable"
    else:
        assert job.status is JobStatus.SUCCEEDED
        assert all(r.output_text.endswith("\ufffd") for r in poisoned)
        assert len(event_data(driver, job_id, "batch.results_escaped")) == 1
