"""Gemini Operations, result entries and errors in neutral terms."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from google.genai import errors as genai_errors

from llmbatch.domain.models import ProviderState
from llmbatch.domain.states import ItemStatus
from llmbatch.errors import (
    AuthenticationError,
    PermanentProviderError,
    RateLimitedError,
    TransientProviderError,
)
from llmbatch.providers.gemini.errors import translate_error
from llmbatch.providers.gemini.wire import (
    inline_entries,
    item_from_entry,
    progress_from_operation,
    short_state,
    split_lines,
)

OK = {"candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"},
                      "finishReason": "STOP"}],
      "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4,
                        "thoughtsTokenCount": 6, "cachedContentTokenCount": 2,
                        "toolUsePromptTokenCount": 1, "totalTokenCount": 21}}


def operation(state: str, **extra: Any) -> dict[str, Any]:
    return {"name": "batches/b1", "metadata": {
        "state": f"BATCH_STATE_{state}", "inputConfig": {"fileName": "files/in"},
        "batchStats": {"requestCount": "5", "successfulRequestCount": "3",
                       "failedRequestCount": "1", "pendingRequestCount": "1"}}, **extra}


def test_states() -> None:
    assert short_state("BATCH_STATE_RUNNING") == short_state("JOB_STATE_RUNNING") == "running"
    running = progress_from_operation(operation("RUNNING"))
    assert running.state is ProviderState.RUNNING
    assert (running.total, running.completed, running.failed) == (5, 3, 1)
    # SUCCEEDED without output yet: keep polling rather than read nothing.
    assert progress_from_operation(operation("SUCCEEDED")).state is ProviderState.RUNNING
    done = progress_from_operation(operation("SUCCEEDED", response={"responsesFile": "files/o"}))
    assert done.state is ProviderState.ENDED
    assert done.result_refs == {"responses_file": "files/o", "input_file": "files/in"}
    for state in ("FAILED", "CANCELLED", "EXPIRED"):
        assert progress_from_operation(operation(state)).state is ProviderState.ENDED


def test_a_failed_operation_reports_its_error_and_inline_responses_are_elided() -> None:
    failed = progress_from_operation(operation("FAILED", error={
        "code": 3, "message": "bad", "details": [{"reason": "TOKEN_LIMIT"}]}))
    assert (failed.error, failed.error_code) == ("bad", "TOKEN_LIMIT")
    inline = {"inlinedResponses": {"inlinedResponses": [{"response": OK}] * 3}}
    op = operation("SUCCEEDED", response=inline)
    op["metadata"]["output"] = inline
    progress = progress_from_operation(op)
    assert progress.result_refs["inline"] == "true"
    assert progress.raw["response"]["inlinedResponses"]["inlinedResponses"] == [
        {"llmbatch:elided": 3}]


def test_success_usage_and_text() -> None:
    result = item_from_entry("k", {"key": "k", "response": OK}, batch_status="succeeded")
    assert result.status is ItemStatus.SUCCEEDED and result.output_text == "hi"
    assert result.finish_reason == "stop"
    assert result.usage is not None
    assert result.usage.as_dict() == {"input_tokens": 11, "output_tokens": 10,
                                      "cached_tokens": 2, "reasoning_tokens": 6}


@pytest.mark.parametrize(("error", "retryable", "kind"), [
    ({"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}, False,
     "invalid_request_error"),
    ({"code": 3, "message": "bad"}, False, "invalid_request_error"),
    ({"code": 429, "message": "slow"}, True, "rate_limit_error"),
    ({"code": 8, "message": "slow"}, True, "rate_limit_error"),
    ({"code": 500, "message": "oops"}, True, "server_error"),
    ({"code": 14, "message": "down"}, True, "server_error"),
    ({"code": 403, "message": "no"}, False, "invalid_request_error"),
])
def test_item_errors_are_classified(error: dict[str, Any], retryable: bool, kind: str) -> None:
    result = item_from_entry("k", {"error": error}, batch_status="succeeded")
    assert result.status is ItemStatus.FAILED and result.error is not None
    assert (result.error.retryable, result.error.type) == (retryable, kind)


def test_blocked_output_is_a_permanent_content_filter_failure() -> None:
    blocked = {"candidates": [{"finishReason": "SAFETY"}], "usageMetadata": {}}
    result = item_from_entry("k", {"response": blocked}, batch_status="succeeded")
    assert result.status is ItemStatus.FAILED and result.error is not None
    assert (result.error.type, result.error.code, result.error.retryable) == (
        "content_filter", "SAFETY", False)
    prompt = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}
    assert item_from_entry("k", {"response": prompt}, batch_status="succeeded").error is not None


def test_unrun_requests_of_expired_and_cancelled_batches() -> None:
    expired = item_from_entry("k", {"error": {"code": 504, "message": "late"}},
                              batch_status="expired")
    assert expired.status is ItemStatus.EXPIRED and expired.error is not None
    assert (expired.error.code, expired.error.retryable) == ("batch_expired", True)
    cancelled = item_from_entry("k", {"error": {"code": 1, "message": "c"}},
                                batch_status="cancelled")
    assert cancelled.status is ItemStatus.CANCELLED
    garbled = item_from_entry("k", {"key": "k"}, batch_status="succeeded")
    assert garbled.error is not None and garbled.error.retryable


def test_split_lines_keeps_unicode_separators() -> None:
    chunks = [b'{"a": "x\xe2\x80\xa8', b'y"}\n{"b"', b": 1}\n"]
    assert list(split_lines(chunks)) == [b'{"a": "x\xe2\x80\xa8y"}', b'{"b": 1}']


def _api_error(code: int, body: dict[str, Any], headers: dict[str, str] | None = None
               ) -> genai_errors.APIError:
    response = httpx2.Response(code, json=body, headers=headers)
    with pytest.raises(genai_errors.APIError) as err:
        genai_errors.APIError.raise_for_response(response)
    return err.value


def test_error_translation() -> None:
    retry = {"error": {"code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED",
                       "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                    "retryDelay": "2.5s"}]}}
    limited = translate_error(_api_error(429, retry), operation="batches.get")
    assert isinstance(limited, RateLimitedError) and limited.retry_after == 2.5
    by_header = translate_error(_api_error(429, {"error": {"code": 429}},
                                           {"retry-after": "3"}), operation="x")
    assert isinstance(by_header, RateLimitedError) and by_header.retry_after == 3.0
    bad_key = {"error": {"code": 400, "message": "API key not valid", "details": [
        {"reason": "API_KEY_INVALID"}]}}
    assert isinstance(translate_error(_api_error(400, bad_key), operation="x"),
                      AuthenticationError)
    assert isinstance(translate_error(_api_error(403, {}), operation="x"), AuthenticationError)
    assert type(translate_error(_api_error(400, {}), operation="x")) is PermanentProviderError
    assert isinstance(translate_error(_api_error(503, {}), operation="x"),
                      TransientProviderError)
    timeout = translate_error(httpx2.ReadTimeout("slow"), operation="x")
    assert isinstance(timeout, TransientProviderError) and timeout.code == "timeout"
    assert isinstance(translate_error(httpx2.ConnectError("down"), operation="x"),
                      TransientProviderError)


VECTOR = {"embedding": {"values": [0.6, -0.8]}, "tokenCount": 3}


def test_embedding_results_keep_the_vector_and_count_tokens_as_input() -> None:
    result = item_from_entry("e", {"key": "e", "response": VECTOR}, batch_status="succeeded")
    assert result.status is ItemStatus.SUCCEEDED and result.response == VECTOR
    assert result.output_text is None and result.finish_reason is None
    assert result.usage is not None and result.usage.as_dict() == {
        "input_tokens": 3, "output_tokens": 0, "cached_tokens": 0, "reasoning_tokens": 0}
    bare = item_from_entry("e", {"response": {"embedding": {"values": [1.0]}}},
                           batch_status="succeeded")
    assert bare.usage is not None and bare.usage.input_tokens == 0  # not reported: zero
    broken = item_from_entry("e", {"response": {"embedding": {}}}, batch_status="succeeded")
    assert broken.status is ItemStatus.FAILED and broken.error is not None
    assert broken.error.retryable


@pytest.mark.parametrize("key", ["inlinedResponses", "inlinedEmbedContentResponses"])
def test_inline_embedding_outputs_are_read_under_either_name(key: str) -> None:
    entries = [{"metadata": {"key": "e"}, "response": VECTOR}]
    op = operation("SUCCEEDED", done=True)
    op["metadata"]["output"] = {key: {"inlinedResponses": entries}}
    progress = progress_from_operation(op)
    assert progress.state is ProviderState.ENDED and progress.result_refs["inline"] == "true"
    assert inline_entries(op) == entries
    assert progress.raw["metadata"]["output"][key]["inlinedResponses"] == [
        {"llmbatch:elided": 1}]
    assert inline_entries(operation("RUNNING")) == []
