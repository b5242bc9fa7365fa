"""Anthropic batch items, batch objects, result lines and SDK errors as neutral values."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pytest

from llmbatch.domain.models import BatchPhase, RequestLine
from llmbatch.domain.states import ItemStatus
from llmbatch.errors import (
    AuthenticationError,
    InputError,
    PermanentProviderError,
    RateLimitedError,
    ResourceGoneError,
    TransientProviderError,
)
from llmbatch.providers.anthropic.errors import translate_error
from llmbatch.providers.anthropic.provider import keys_digest
from llmbatch.providers.anthropic.wire import (
    encode_line,
    parse_result_line,
    progress_from_batch,
    provider_key,
    split_lines,
)


def encode(request: RequestLine) -> dict[str, Any]:
    line = encode_line(request, model="claude-x", api_version="2026-10-21",
                       default_max_tokens=100)
    obj: dict[str, Any] = json.loads(line.data)
    assert obj["custom_id"] == line.provider_key
    return obj


def test_valid_custom_ids_are_kept_and_others_mapped_deterministically() -> None:
    assert provider_key(RequestLine(0, "q-1_A", None)) == "q-1_A"
    mapped = provider_key(RequestLine(7, "has space/é", None))
    assert mapped.startswith("i7-") and mapped == provider_key(RequestLine(7, "has space/é", None))
    assert provider_key(RequestLine(8, "has space/é", None)) != mapped
    assert provider_key(RequestLine(0, "x" * 65, None)).startswith("i0-")


def test_native_bodies_pass_through_with_the_model_added() -> None:
    native = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "top_k": 3}
    obj = encode(RequestLine(0, "n", None, native=native))
    assert obj["params"] == {**native, "model": "claude-x"}
    with pytest.raises(InputError) as err:
        encode(RequestLine(0, "n", None, native={**native, "model": "other"}))
    assert err.value.field == "native.model"


def test_progress_uses_processing_until_the_end() -> None:
    running = progress_from_batch({"processing_status": "in_progress", "request_counts": {
        "processing": 7, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}})
    assert (running.phase, running.total, running.completed) == (BatchPhase.RUNNING, 7, 0)
    ended = progress_from_batch({"processing_status": "ended", "results_url": "http://r",
                                 "request_counts": {"processing": 0, "succeeded": 5,
                                                    "errored": 1, "canceled": 1, "expired": 0}})
    assert (ended.phase, ended.total, ended.completed, ended.failed) == (
        BatchPhase.ENDED, 7, 5, 1)
    assert ended.result_refs == {"results_url": "http://r"}
    assert ended.failure is None  # expiry and cancellation are per request at Anthropic


@pytest.mark.parametrize(("status", "phase"), [
    ("in_progress", BatchPhase.RUNNING), ("canceling", BatchPhase.CANCELLING),
    ("ended", BatchPhase.ENDED), ("some_future_status", BatchPhase.RUNNING),
])
def test_processing_statuses_map_to_neutral_phases(status: str, phase: BatchPhase) -> None:
    progress = progress_from_batch({"processing_status": status})
    assert (progress.phase, progress.provider_status) == (phase, status)


def test_a_success_has_text_finish_reason_and_full_input_usage() -> None:
    line = {"custom_id": "a", "result": {"type": "succeeded", "message": {
        "content": [{"type": "text", "text": "He"}, {"type": "tool_use"},
                    {"type": "text", "text": "llo"}],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 10, "cache_creation_input_tokens": 5,
                  "cache_read_input_tokens": 20, "output_tokens": 7}}}}
    result = parse_result_line(json.dumps(line).encode())
    assert result is not None and result.status is ItemStatus.SUCCEEDED
    assert (result.output_text, result.finish_reason) == ("Hello", "length")
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.cached_tokens,
            result.usage.output_tokens) == (35, 20, 7)


@pytest.mark.parametrize(("kind", "retryable"), [
    ("invalid_request_error", False), ("permission_error", False), ("not_found_error", False),
    ("overloaded_error", True), ("api_error", True), ("rate_limit_error", True)])
def test_errored_results_are_classified_by_error_type(kind: str, retryable: bool) -> None:
    line = {"custom_id": "e", "result": {"type": "errored", "error": {
        "type": "error", "error": {"type": kind, "message": "m"}}}}
    result = parse_result_line(json.dumps(line).encode())
    assert result is not None and result.error is not None
    assert (result.status, result.error.type, result.error.retryable) == (
        ItemStatus.FAILED, kind, retryable)


@pytest.mark.parametrize(("kind", "status"), [("canceled", ItemStatus.CANCELLED),
                                              ("expired", ItemStatus.EXPIRED)])
def test_canceled_and_expired_are_retryable(kind: str, status: ItemStatus) -> None:
    result = parse_result_line(json.dumps({"custom_id": "c", "result": {"type": kind}}).encode())
    assert result is not None and result.status is status
    assert result.error is not None and result.error.retryable


def test_unreadable_lines() -> None:
    assert parse_result_line(b"garbage") is None
    cut = parse_result_line(b'{"custom_id":"z","result":{"type":"succ')
    assert cut is not None and cut.error is not None and cut.error.retryable


def test_split_lines_keeps_unicode_separators_inside_lines() -> None:
    data = '{"a":"x\u2028y"}\n{"b":1}\r\n{"c":2}'.encode()
    assert list(split_lines([data[:5], data[5:17], data[17:]])) == [
        '{"a":"x\u2028y"}'.encode(), b'{"b":1}', b'{"c":2}']


def test_keys_digest_ignores_order() -> None:
    assert keys_digest(["a", "b", "c"]) == keys_digest(["c", "a", "b"])
    assert keys_digest(["a", "b"]) != keys_digest(["a", "c"])


def _status_error(status: int, kind: str, headers: dict[str, str] | None = None) -> Any:
    request = httpx2.Request("GET", "http://x/v1/messages/batches")
    body = {"type": "error", "error": {"type": kind, "message": "boom"}}
    response = httpx2.Response(status, json=body, headers=headers or {}, request=request)
    client = anthropic.Anthropic(api_key="k", base_url="http://x")
    try:
        return client._make_status_error_from_response(response)
    finally:
        client.close()


@pytest.mark.parametrize(("status", "kind", "expected"), [
    (400, "invalid_request_error", PermanentProviderError),
    (401, "authentication_error", AuthenticationError),
    (403, "permission_error", AuthenticationError),
    (404, "not_found_error", ResourceGoneError),
    (500, "api_error", TransientProviderError),
    (529, "overloaded_error", TransientProviderError),
])
def test_status_errors_translate(status: int, kind: str, expected: type) -> None:
    error = translate_error(_status_error(status, kind), operation="op")
    assert type(error) is expected
    assert (error.provider, error.status_code, error.code) == ("anthropic", status, kind)
    assert "boom" in error.message


def test_results_the_sdk_cannot_find_a_url_for_are_gone() -> None:
    # The SDK refuses results of a batch without a results_url itself (no HTTP status); the
    # adapter asks only for ended batches, so the results were archived.
    refusal = anthropic.AnthropicError("No `results_url` for the given batch; Has it "
                                       "finished processing? ended")
    gone = translate_error(refusal, operation="messages.batches.results")
    assert isinstance(gone, ResourceGoneError) and not gone.retryable
    elsewhere = translate_error(refusal, operation="messages.batches.retrieve")
    assert type(elsewhere) is PermanentProviderError


def test_a_429_carries_retry_after_and_connection_errors_are_transient() -> None:
    error = translate_error(_status_error(429, "rate_limit_error", {"retry-after": "3"}),
                            operation="op")
    assert isinstance(error, RateLimitedError) and error.retry_after == 3.0
    request = httpx2.Request("GET", "http://x")
    timeout = translate_error(anthropic.APITimeoutError(request), operation="op")
    assert isinstance(timeout, TransientProviderError) and timeout.code == "timeout"
