"""The redaction step: each sensitive shape masked, ordinary text left alone, configured
patterns added; log lines pass through it as JSON with ids bound and no SDK request bodies."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
import yaml

from llmbatch.config import load_config
from llmbatch.domain.batch import ProviderBatch
from llmbatch.domain.models import BatchFailure, BatchPhase, BatchProgress, FailureKind
from llmbatch.domain.states import BatchStatus
from llmbatch.errors import ConfigError
from llmbatch.observability.logging import bind_tenant, bound_ids
from llmbatch.observability.redaction import (
    Redactor,
    configure_redaction,
    luhn_ok,
    redact,
    redact_value,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("write to jane.doe+tag@mail.example.co.uk today", "write to [email] today"),
    ("call +1 415 555 0133 now", "call [phone] now"),
    ("call +44 20 7946 0958", "call [phone]"),
    ("or (555) 123-4567", "or [phone]"),
    ("card 4111 1111 1111 1111 ok", "card [card] ok"),
    ("card 5500-0000-0000-0004", "card [card]"),
    ("key sk-proj-AbC123dEf456gHi789", "key [api-key]"),
    ("key sk-ant-api03-abcdefghijklmnop", "key [api-key]"),
    ("Authorization: Bearer abc.def-ghi_jkl", "Authorization: Bearer [token]"),
    ("g AIzaSyA1234567890abcdefghijklmnopqrstu", "g [api-key]"),
    ("postgresql+psycopg://llm:s3cret@db:5432/x", "postgresql+psycopg://llm:***@db:5432/x"),
])
def test_each_shape_is_masked(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


@pytest.mark.parametrize("text", [
    "request is 209715200 bytes, over the limit",
    "4111111111111112 fails the Luhn check",
    "batch pb_1a22c6855205e2a20b96a9d at 2026-11-30T12:00:00+00:00 from 127.0.0.1",
    "HTTP 500 after 3 tries; retry in 1.5 s",
    "",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor()(text) == text


@pytest.mark.parametrize(("text", "expected"), [
    ("sk-proj-AbC123dEf456gHi789 leaked", "[api-key] leaked"),  # at the start
    ("OPENAI_API_KEY=sk-proj-AbC123dEf456gHi789", "OPENAI_API_KEY=[api-key]"),
    ("api_key_sk-proj-AbC123dEf456gHi789", "api_key_[api-key]"),
    ('{"key":"sk-ant-api03-abcdefghijklmnop"}', '{"key":"[api-key]"}'),
    ("(AIzaSyA1234567890abcdefghijklmnopqrstu)", "([api-key])"),
    ("token:ghp_abcdefghijklmnopqrstuvwxyz0123", "token:[api-key]"),
    ("id=AKIAABCDEFGHIJKLMNOP;", "id=[api-key];"),
])
def test_keys_are_masked_where_a_word_would_start(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


@pytest.mark.parametrize("text", [
    "the task-scheduler-queue-2 runs the risk-assessment-v2-model",
    "see flask-sqlalchemy-extension3 and whisk-abcdefghijklm4",
    "sk-learn-compatible-pipeline is a library name",  # no digit: not a random key
    "xAIzaSyA1234567890abcdefghijklmnopqrstu and aghp_abcdefghijklmnopqrstuvwxyz0123",
    "rüsk-abcdefghijklmnop1234 in a word of another script",
    "BAKIAABCDEFGHIJKLMNOP",
])
def test_keys_are_not_masked_inside_ordinary_words(text: str) -> None:
    assert Redactor()(text) == text


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_configured_patterns_are_masked_too() -> None:
    try:
        configure_redaction([r"EMP-\d{6}"])
        assert redact("employee EMP-123456, mail a@b.io") == "employee [redacted], mail [email]"
        assert redact_value({"k a@b.io": ["EMP-000001", 3]}) == {"k [email]": ["[redacted]", 3]}
    finally:
        configure_redaction()


def test_a_pattern_that_does_not_compile_is_a_config_error(tmp_path: Path) -> None:
    for pattern, why in (("(unclosed", "not a regular expression"),
                         (".*", "matches the empty string")):
        config = tmp_path / "llm_config.yaml"
        config.write_text(yaml.safe_dump({"privacy": {"patterns": [pattern]}}),
                          encoding="utf-8")
        with pytest.raises(ConfigError) as err:
            load_config(config, env={})
        assert any(p.startswith("privacy.patterns: ") and why in p for p in err.value.problems)


def test_a_batch_change_redacts_provider_text_before_it_is_stored() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    batch = ProviderBatch(id="pb_1", job_id="job_1", provider="p", model="m",
                          status=BatchStatus.IN_PROGRESS, attempt=1, item_count=1,
                          byte_count=1, created_at=at, lease_owner="me")
    said = "bad input from jane@example.org, key sk-abcdefghijklmnop1234"
    failure = BatchFailure(kind=FailureKind.INVALID_INPUT, message=said, retryable=False,
                           items_ran=False)
    change = batch.ended(at, BatchProgress(phase=BatchPhase.ENDED, provider_status="failed",
                                           failure=failure))
    assert change.values["error"] == "bad input from [email], key [api-key]"
    assert change.values["failure"].message == "bad input from [email], key [api-key]"
    assert change.event is not None
    assert change.event.data["error"] == "bad input from [email], key [api-key]"


def test_log_lines_are_json_redacted_with_ids_bound_and_no_sdk_bodies(
        captured_logs: io.StringIO) -> None:
    log = structlog.get_logger("llmbatch.test")
    with bound_ids(job_id="job_1", batch_id="pb_1", task="llmbatch.poll", task_id="t-1"):
        log.warning("llmbatch.batch.call_failed", error="echo: jane@example.org +1 415 555 0133")
        logging.getLogger("celery.worker").info("card %s seen", "4111 1111 1111 1111")
    logging.getLogger("openai._base_client").debug("Request options: %s", {"files": "prompt"})
    try:
        raise RuntimeError("failed for sk-abcdefghijklmnop1234")
    except RuntimeError:
        log.exception("llmbatch.batch.poll_crashed")
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    assert lines[0]["event"] == "llmbatch.batch.call_failed"
    assert lines[0]["error"] == "echo: [email] [phone]"
    assert {k: lines[0][k] for k in ("job_id", "batch_id", "task", "task_id", "level")} == {
        "job_id": "job_1", "batch_id": "pb_1", "task": "llmbatch.poll", "task_id": "t-1",
        "level": "warning"}
    assert lines[1]["event"] == "card [card] seen" and lines[1]["job_id"] == "job_1"
    assert not any("Request options" in str(line) for line in lines)
    assert "sk-abcdef" not in json.dumps(lines[-1]) and "[api-key]" in lines[-1]["exception"]


def test_a_tenant_bound_by_a_task_ends_with_the_task(captured_logs: io.StringIO) -> None:
    log = structlog.get_logger("llmbatch.test")
    bind_tenant("outside")  # no task under way: nothing to take it off later, so not bound
    log.info("llmbatch.before")
    with bound_ids(job_id="job_1", task="llmbatch.finalize"):
        bind_tenant("acme")
        log.info("llmbatch.job.completed")
    log.info("llmbatch.after")
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    assert "tenant_id" not in lines[0]
    assert lines[1]["tenant_id"] == "acme" and lines[1]["job_id"] == "job_1"
    assert "tenant_id" not in lines[2] and "job_id" not in lines[2]
