"""Gemini Operations, result entries and errors in neutral terms."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from google.genai import errors as genai_errors

from llmbatch.domain.models import BatchPhase, FailureKind
from llmbatch.domain.states import ItemStatus
from llmbatch.errors import (
    AuthenticationError,
    PermanentProviderError,
    QuotaExceededError,
    RateLimitedError,
    ResourceGoneError,
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


def test_states_map_to_neutral_phases() -> None:
    assert short_state("BATCH_STATE_RUNNING") == short_state("JOB_STATE_RUNNING") == "running"
    running = progress_from_operation(operation("RUNNING"))
    assert running.phase is BatchPhase.RUNNING
    assert (running.total, running.completed, running.failed) == (5, 3, 1)
    assert progress_from_operation(operation("PENDING")).phase is BatchPhase.QUEUED
    assert progress_from_operation(operation("UNSPECIFIED")).phase is BatchPhase.RUNNING
    # SUCCEEDED without output yet: keep polling (finalizing) rather than read nothing.
    assert progress_from_operation(operation("SUCCEEDED")).phase is BatchPhase.FINALIZING
    done = progress_from_operation(operation("SUCCEEDED", response={"responsesFile": "files/o"}))
    assert done.ended and done.failure is None
    assert done.result_refs == {"responses_file": "files/o", "input_file": "files/in"}
    for state in ("FAILED", "CANCELLED", "EXPIRED"):
        assert progress_from_operation(operation(state)).phase is BatchPhase.ENDED
    assert progress_from_operation(operation("CANCELLED")).failure is None


@pytest.mark.parametrize(("code", "kind", "retryable"), [
    (3, FailureKind.INVALID_INPUT, False),  # INVALID_ARGUMENT
    (400, FailureKind.INVALID_INPUT, False),
    (8, FailureKind.QUOTA, True),  # RESOURCE_EXHAUSTED
    (429, FailureKind.QUOTA, True),
    (13, FailureKind.OTHER, True),  # INTERNAL
    (7, FailureKind.OTHER, False),  # PERMISSION_DENIED
])
def test_a_failed_operation_reports_a_neutral_failure(code: int, kind: FailureKind,
                                                       retryable: bool) -> None:
    failed = progress_from_operation(operation("FAILED", error={
        "code": code, "message": "bad", "details": [{"reason": "SOME_REASON"}]}))
    assert failed.ended and failed.failure is not None
    assert (failed.failure.kind, failed.failure.retryable, failed.failure.items_ran) == (
        kind, retryable, False)
    assert (failed.failure.message, failed.failure.code) == ("bad", "SOME_REASON")


def test_failed_without_an_error_and_expired_have_failures_too() -> None:
    bare = progress_from_operation(operation("FAILED")).failure
    assert bare is not None and (bare.kind, bare.retryable) == (FailureKind.OTHER, False)
    expired = progress_from_operation(operation("EXPIRED")).failure
    assert expired is not None and expired.kind is FailureKind.EXPIRED
    assert (expired.retryable, expired.items_ran) == (True, False)  # 48 h, no results


def test_inline_responses_are_elided() -> None:
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
                                      "cached_tokens": 2, "reasoning_tokens": 6,
                                      "cache_write_tokens": 0, "cache_write_1h_tokens": 0}


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


NO_FILE = {"error": {"code": 403, "status": "PERMISSION_DENIED", "message":
                     "You do not have permission to access the File x or it may not exist."}}


@pytest.mark.parametrize("operation", ["files.download", "files.delete", "files.get"])
def test_a_file_that_no_longer_exists_is_gone_even_as_a_403(operation: str) -> None:
    gone = translate_error(_api_error(403, NO_FILE), operation=operation)
    assert isinstance(gone, ResourceGoneError) and not gone.retryable
    assert gone.status_code == 403
    missing_key = {"error": {"code": 403, "details": [{"reason": "CREDENTIALS_MISSING"}]}}
    assert type(translate_error(_api_error(403, missing_key), operation=operation)) is (
        AuthenticationError)


def test_a_404_is_gone_and_a_403_on_a_batch_is_still_authentication() -> None:
    assert isinstance(translate_error(_api_error(404, {}), operation="batches.get"),
                      ResourceGoneError)
    assert type(translate_error(_api_error(403, NO_FILE), operation="batches.get")) is (
        AuthenticationError)


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
    quota = translate_error(_api_error(429, {"error": {"code": 429}}), operation="batches.create")
    assert isinstance(quota, QuotaExceededError)  # batch limits refuse a create with 429
    # A 429 at create that says when to come back is the per-minute rate limit, not the quota.
    throttled = translate_error(_api_error(429, retry), operation="batches.create")
    assert type(throttled) is RateLimitedError and throttled.retry_after == 2.5
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
        "input_tokens": 3, "output_tokens": 0, "cached_tokens": 0, "reasoning_tokens": 0,
        "cache_write_tokens": 0, "cache_write_1h_tokens": 0}
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
    assert progress.ended and progress.result_refs["inline"] == "true"
    assert inline_entries(op) == entries
    assert progress.raw["metadata"]["output"][key]["inlinedResponses"] == [
        {"llmbatch:elided": 1}]
    assert inline_entries(operation("RUNNING")) == []
