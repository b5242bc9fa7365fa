"""The OpenAI adapter without a network: line encoding, result parsing in both error shapes,
usage mapping, batch status mapping and the translation of SDK exceptions."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
import structlog.testing

pytest.importorskip("openai")  # the llmbatch[openai] extra

import httpx2
import openai

from llmbatch.config import ProviderConfig, ProviderLimits
from llmbatch.domain.models import BatchPhase, Endpoint, FailureKind, RequestLine, Usage
from llmbatch.domain.states import ItemStatus
from llmbatch.errors import (
    AuthenticationError,
    ConfigError,
    InputError,
    PermanentProviderError,
    ProviderError,
    QuotaExceededError,
    RateLimitedError,
    ResourceGoneError,
    TransientProviderError,
)
from llmbatch.providers.openai import OpenAIProvider, parse_retry_after, translate_error
from llmbatch.providers.openai.errors import calling
from llmbatch.providers.openai.provider import DEFAULT_BASE_URL
from llmbatch.providers.openai.wire import (
    classify_item_failure,
    parse_result_line,
    progress_from_batch,
    split_lines,
    usage_from_body,
)
from llmbatch.providers.registry import available_providers

CHAT = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 20}


def provider(**config: Any) -> OpenAIProvider:
    return OpenAIProvider(ProviderConfig(**config))


def encode(request: RequestLine, endpoint: Endpoint = Endpoint.CHAT, model: str = "gpt-4o-mini",
           **config: Any) -> dict[str, Any]:
    line = provider(**config).encode(request, endpoint=endpoint, model=model)
    assert line.provider_key == request.custom_id
    assert b"\n" not in line.data
    decoded: dict[str, Any] = json.loads(line.data)
    return decoded


# --- class attributes, registration, client construction -------------------------------------


def test_limits_and_endpoints_are_declared_conservatively() -> None:
    assert OpenAIProvider.name == "openai"
    assert OpenAIProvider.max_requests == 50_000
    assert OpenAIProvider.max_bytes == 200_000_000  # "200 MB" read as decimal: the smaller one
    assert OpenAIProvider.endpoints == set(Endpoint)  # every JSON batch endpoint (A.8)


def test_the_adapter_is_registered_through_the_entry_point_group() -> None:
    assert available_providers()["openai"] == "llmbatch.providers.openai:OpenAIProvider"


def test_constructing_the_adapter_builds_no_client_and_needs_no_key() -> None:
    adapter = provider()
    with pytest.raises(AuthenticationError):  # the key is needed only now, at first use
        _ = adapter.client


def test_options_take_the_completion_window_and_refuse_unknown_keys() -> None:
    assert provider(options={"completion_window": "24h"}).options.completion_window == "24h"
    with pytest.raises(ConfigError) as err:
        provider(options={"completion_window": "48h", "api_version": "v1"})
    assert sorted(p.split(":")[0] for p in err.value.problems) == [
        "providers.openai.options.api_version", "providers.openai.options.completion_window"]


def test_a_missing_key_fails_on_first_use_naming_the_config_setting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMBATCH_TEST_OPENAI_KEY", raising=False)
    with pytest.raises(AuthenticationError) as err:
        _ = provider(api_key_env="LLMBATCH_TEST_OPENAI_KEY").client
    assert "LLMBATCH_TEST_OPENAI_KEY" in str(err.value)
    assert "providers.openai.api_key_env" in str(err.value)
    assert err.value.provider == "openai"
    with pytest.raises(AuthenticationError, match=r"providers\.openai\.api_key_env"):
        _ = provider().client


def test_the_client_follows_the_config_and_not_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://elsewhere.invalid/v1")
    monkeypatch.setenv("LLMBATCH_TEST_OPENAI_KEY", "sk-from-env")
    adapter = provider(api_key_env="LLMBATCH_TEST_OPENAI_KEY", timeout_s=12, connect_timeout_s=3)
    client = adapter.client
    assert adapter.client is client  # built once
    assert str(client.base_url).rstrip("/") == DEFAULT_BASE_URL
    assert client.api_key == "sk-from-env"
    assert client.max_retries == 0
    assert isinstance(client.timeout, httpx2.Timeout)
    assert (client.timeout.read, client.timeout.connect) == (12, 3)
    adapter.close()
    assert client.is_closed()
    rebuilt = adapter.client  # closing is not the end: the next use builds a new client
    assert rebuilt is not client and not rebuilt.is_closed()
    adapter.close()

    custom = provider(api_key="sk-literal", base_url="http://127.0.0.1:1/openai/v1",
                      sdk_max_retries=2)
    assert str(custom.client.base_url) == "http://127.0.0.1:1/openai/v1/"
    assert custom.client.max_retries == 2
    custom.close()


def test_closing_leaves_an_injected_client_to_its_owner() -> None:
    with openai.OpenAI(api_key="sk-x", base_url="http://127.0.0.1:9/v1") as client:
        adapter = OpenAIProvider(ProviderConfig(), client=client)
        adapter.close()
        assert adapter.client is client
        assert not client.is_closed()


# --- encode ----------------------------------------------------------------------------------


def test_a_chat_request_becomes_a_compact_openai_batch_line() -> None:
    line = provider().encode(RequestLine(0, "q-1", dict(CHAT)), endpoint=Endpoint.CHAT,
                             model="gpt-4o-mini")
    assert line.data == (b'{"custom_id":"q-1","method":"POST","url":"/v1/chat/completions",'
                         b'"body":{"messages":[{"role":"user","content":"Hi"}],"max_tokens":20,'
                         b'"model":"gpt-4o-mini"}}')


def test_an_embeddings_request_targets_the_embeddings_url() -> None:
    obj = encode(RequestLine(0, "e-1", {"input": ["a", "b"]}), Endpoint.EMBEDDINGS,
                 "text-embedding-3-small")
    assert obj["url"] == "/v1/embeddings"
    assert obj["body"] == {"input": ["a", "b"], "model": "text-embedding-3-small"}


def test_encoding_does_not_mutate_the_request() -> None:
    body = dict(CHAT)
    encode(RequestLine(0, "q", body))
    assert body == CHAT


def test_a_native_body_passes_through_untouched_with_only_the_model_added() -> None:
    native = {"messages": [{"role": "user", "content": "x"}], "logit_bias": {"50256": -100},
              "service_tier": "flex", "n": 2}
    assert encode(RequestLine(0, "n", None, native))["body"] == {**native, "model": "gpt-4o-mini"}
    with_model = {**native, "model": "gpt-4o-mini"}
    assert encode(RequestLine(0, "n", None, with_model))["body"] == with_model


@pytest.mark.parametrize(("request_line", "field"), [
    (RequestLine(0, "n", None, {"model": "gpt-4o", "messages": []}), "native.model"),
    (RequestLine(0, "b", {"model": "gpt-4o", **CHAT}), "body.model"),
    (RequestLine(0, "s", {**CHAT, "stream": True}), "body.stream"),
    (RequestLine(0, "s", None, {**CHAT, "stream": True}), "native.stream"),
    (RequestLine(0, "nan", {**CHAT, "temperature": float("nan")}), "body"),
    (RequestLine(0, "obj", {**CHAT, "seed": object()}), "body"),
    (RequestLine(0, "none", None, None), "body"),
    (RequestLine(0, "", dict(CHAT)), "custom_id"),
])
def test_requests_that_cannot_be_sent_faithfully_are_input_errors_naming_the_field(
        request_line: RequestLine, field: str) -> None:
    with pytest.raises(InputError) as err:
        provider().encode(request_line, endpoint=Endpoint.CHAT, model="gpt-4o-mini")
    assert err.value.field == field


def test_non_ascii_text_is_sent_as_utf8_and_a_lone_surrogate_stays_escaped() -> None:
    text = "caf\u00e9 \u2028 \U0001f600"
    line = provider().encode(RequestLine(0, "u", {"messages": [{"role": "user", "content": text}]}),
                             endpoint=Endpoint.CHAT, model="m")
    assert text.encode() in line.data
    lone = provider().encode(RequestLine(0, "u", {"messages": [{"role": "user",
                                                                "content": "a\ud800b"}]}),
                             endpoint=Endpoint.CHAT, model="m")
    assert b"\\ud800" in lone.data
    assert json.loads(lone.data)["body"]["messages"][0]["content"] == "a\ud800b"


def test_a_line_larger_than_the_batch_file_limit_is_refused() -> None:
    big = RequestLine(0, "big", {"messages": [{"role": "user", "content": "x" * 500}]})
    with pytest.raises(InputError, match="at most 400") as err:
        encode(big, limits=ProviderLimits(max_bytes=400))
    assert err.value.field == "body"


def test_submit_refuses_a_malformed_batch_before_any_network_call() -> None:
    # port 9 (discard) is never answered: reaching the network would fail differently
    with openai.OpenAI(api_key="sk-x", base_url="http://127.0.0.1:9/v1", max_retries=0) as client:
        adapter = OpenAIProvider(ProviderConfig(limits=ProviderLimits(max_requests=2)),
                                 client=client)
        with pytest.raises(ValueError, match="at least one line"):
            adapter.submit([], tag="t", endpoint=Endpoint.CHAT, model="m")
        with pytest.raises(ValueError, match="newline"):
            adapter.submit([b'{"a":1}\n{"b":2}'], tag="t", endpoint=Endpoint.CHAT, model="m")
        with pytest.raises(ValueError, match="exceeds"):
            adapter.submit([b"{}"] * 3, tag="t", endpoint=Endpoint.CHAT, model="m")
        with pytest.raises(ValueError, match="512"):
            adapter.submit([b"{}"], tag="t" * 513, endpoint=Endpoint.CHAT, model="m")


# --- result lines ----------------------------------------------------------------------------


def result_line(custom_id: str = "r-1", *, status: int | None = 200, body: Any = None,
                error: Any = None) -> bytes:
    response = None if status is None else {"status_code": status, "request_id": "req_1",
                                            "body": body}
    return json.dumps({"id": "batch_req_1", "custom_id": custom_id, "response": response,
                       "error": error}).encode()


CHAT_BODY = {
    "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 22, "completion_tokens": 9, "total_tokens": 31,
              "prompt_tokens_details": {"cached_tokens": 16, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 4}},
}


def test_a_2xx_chat_line_is_a_success_with_text_finish_reason_and_usage() -> None:
    result = parse_result_line(result_line(body=CHAT_BODY))
    assert result is not None
    assert result.provider_key == "r-1"
    assert result.status is ItemStatus.SUCCEEDED
    assert result.output_text == "Hello."
    assert result.finish_reason == "stop"
    assert result.usage == Usage(input_tokens=22, output_tokens=9, cached_tokens=16,
                                 reasoning_tokens=4)
    assert result.response == CHAT_BODY
    assert result.error is None


def test_an_embeddings_line_keeps_the_vectors_in_the_response_and_has_no_text() -> None:
    body = {"object": "list", "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]}],
            "usage": {"prompt_tokens": 5, "total_tokens": 5}}
    result = parse_result_line(result_line(body=body))
    assert result is not None and result.status is ItemStatus.SUCCEEDED
    assert result.output_text is None and result.finish_reason is None
    assert result.response is not None and result.response["data"][0]["embedding"] == [0.1, -0.2]
    assert result.usage == Usage(input_tokens=5)


def test_a_tool_call_answer_succeeds_without_text() -> None:
    body = {"choices": [{"message": {"role": "assistant", "content": None,
                                     "tool_calls": [{"id": "c", "type": "function"}]},
                         "finish_reason": "tool_calls"}]}
    result = parse_result_line(result_line(body=body))
    assert result is not None and result.status is ItemStatus.SUCCEEDED
    assert (result.output_text, result.finish_reason, result.usage) == (None, "tool_calls", None)


def test_an_http_error_inside_the_response_is_a_permanent_failure_for_a_bad_request() -> None:
    body = {"error": {"message": "Invalid 'max_tokens': integer below minimum value.",
                      "type": "invalid_request_error", "param": "max_tokens",
                      "code": "integer_below_min_value"}}
    result = parse_result_line(result_line(status=400, body=body))
    assert result is not None and result.status is ItemStatus.FAILED
    assert result.error is not None
    assert result.error.as_dict() == {
        "type": "invalid_request_error", "code": "integer_below_min_value",
        "message": "Invalid 'max_tokens': integer below minimum value.", "retryable": False}
    assert result.response == body
    assert result.output_text is None and result.usage is None


@pytest.mark.parametrize(("status", "body", "kind", "retryable"), [
    (429, {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}},
     "requests", True),
    (500, {"error": {"message": "boom", "type": "server_error", "code": None}},
     "server_error", True),
    (503, None, "server_error", True),
    (429, None, "rate_limit_error", True),
    (404, None, "invalid_request_error", False),
    (429, {"error": {"message": "pay", "type": "insufficient_quota",
                     "code": "insufficient_quota"}}, "insufficient_quota", False),
])
def test_http_failures_are_classified_by_status_and_code(
        status: int, body: Any, kind: str, retryable: bool) -> None:
    result = parse_result_line(result_line(status=status, body=body))
    assert result is not None and result.status is ItemStatus.FAILED
    assert result.error is not None
    assert (result.error.type, result.error.retryable) == (kind, retryable)
    assert result.error.message


@pytest.mark.parametrize(("code", "status", "kind"), [
    ("batch_expired", ItemStatus.EXPIRED, "expired"),
    ("batch_cancelled", ItemStatus.CANCELLED, "cancelled"),
    ("server_error", ItemStatus.FAILED, "batch_error"),
])
def test_a_top_level_error_is_a_retryable_non_http_failure(
        code: str, status: ItemStatus, kind: str) -> None:
    line = result_line(status=None, error={"code": code, "message": "not run in time"})
    result = parse_result_line(line)
    assert result is not None
    assert result.status is status
    assert result.error is not None
    assert result.error.as_dict() == {"type": kind, "code": code, "message": "not run in time",
                                      "retryable": True}


def test_a_top_level_error_wins_over_a_2xx_response() -> None:
    line = result_line(body=CHAT_BODY, error={"code": "invalid_request", "message": "no"})
    result = parse_result_line(line)
    assert result is not None and result.status is ItemStatus.FAILED
    assert result.error is not None and not result.error.retryable
    assert result.output_text is None


@pytest.mark.parametrize(("raw", "reason"), [
    (result_line(body=None), "without a JSON body"),
    (result_line(body=[1]), "without a JSON body"),
    (b'{"custom_id": "r-1", "response": null, "error": null}', "neither"),
    (b'{"custom_id": "r-1", "response": {"status_code": "200", "body": {}}}', "not an integer"),
    (b'{"custom_id": "r-1", "error": "broken"}', "not an object"),
    (b'{"id": "batch_req_1", "custom_id": "r-1", "response": {"status_code": 2', "not valid JSON"),
])
def test_a_malformed_line_with_a_readable_custom_id_fails_its_item_as_retryable(
        raw: bytes, reason: str) -> None:
    result = parse_result_line(raw)
    assert result is not None
    assert result.provider_key == "r-1"
    assert result.status is ItemStatus.FAILED
    assert result.error is not None
    assert result.error.code == "malformed_result_line"
    assert result.error.retryable
    assert reason in result.error.message


@pytest.mark.parametrize("raw", [b"garbage", b"[1, 2]", b'{"custom_id": 7}', b'{"id": "x"}',
                                 b'{"custom_id": ""}', b"\xff\xfe{"])
def test_a_line_without_a_readable_custom_id_is_reported_as_unreadable(raw: bytes) -> None:
    assert parse_result_line(raw) is None


def test_a_custom_id_with_escapes_is_recovered_from_a_cut_line() -> None:
    result = parse_result_line(b'{"custom_id": "a\\"b\\u00e9", "response": {')
    assert result is not None and result.provider_key == 'a"b\u00e9'


@pytest.mark.parametrize(("status", "code", "retryable"), [
    (None, "batch_expired", True), (None, "batch_cancelled", True), (None, "mystery", True),
    (None, "invalid_request", False), (None, None, True),
    (408, None, True), (409, None, True), (429, None, True), (429, "insufficient_quota", False),
    (500, None, True), (502, None, True), (400, None, False), (400, "rate_limit_exceeded", True),
    (401, None, False), (404, None, False), (422, None, False),
    (400, "content_policy_violation", False),
])
def test_item_failure_classification_table(status: int | None, code: str | None,
                                           retryable: bool) -> None:
    assert classify_item_failure(status, code) is retryable


def test_usage_tolerates_missing_and_null_details() -> None:
    assert usage_from_body({}) is None
    assert usage_from_body({"usage": {"prompt_tokens": 3, "completion_tokens": None,
                                      "prompt_tokens_details": None}}) == Usage(input_tokens=3)
    assert usage_from_body({"usage": {"input_tokens": 7, "output_tokens": 2,
                                      "input_tokens_details": {"cached_tokens": 1},
                                      "output_tokens_details": {"reasoning_tokens": 1}}}) == \
        Usage(7, 2, 1, 1)


# --- streaming lines -------------------------------------------------------------------------


def test_lines_are_split_on_newlines_only_so_unicode_separators_stay_inside_lines() -> None:
    text = json.dumps({"custom_id": "a", "t": "x\u2028y\x85z\x1c"}, ensure_ascii=False)
    data = (text + "\n" + text + "\r\n" + "{}").encode()
    for size in (1, 2, 7, len(data)):
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        assert list(split_lines(chunks)) == [text.encode(), text.encode(), b"{}"]
    assert list(split_lines([b"a\n", b"", b"\nb\n"])) == [b"a", b"", b"b"]
    assert list(split_lines([])) == []


# --- batch objects ---------------------------------------------------------------------------


def batch(**fields: Any) -> dict[str, Any]:
    return {"id": "batch_1", "object": "batch", "endpoint": "/v1/chat/completions",
            "input_file_id": "file-in", "completion_window": "24h", "created_at": 1,
            "status": "in_progress", **fields}


@pytest.mark.parametrize(("status", "phase"), [
    ("validating", BatchPhase.VALIDATING), ("in_progress", BatchPhase.RUNNING),
    ("finalizing", BatchPhase.FINALIZING), ("cancelling", BatchPhase.CANCELLING),
    ("completed", BatchPhase.ENDED), ("failed", BatchPhase.ENDED),
    ("expired", BatchPhase.ENDED), ("cancelled", BatchPhase.ENDED),
    ("some_future_status", BatchPhase.RUNNING),
])
def test_batch_statuses_map_to_neutral_phases(status: str, phase: BatchPhase) -> None:
    progress = progress_from_batch(batch(status=status))
    assert progress.phase is phase
    assert progress.provider_status == status


def test_progress_carries_counts_and_file_ids_treating_empty_ids_as_absent() -> None:
    progress = progress_from_batch(batch(
        status="completed", output_file_id="file-out", error_file_id="",
        request_counts={"total": 10, "completed": 9, "failed": 1}))
    assert (progress.total, progress.completed, progress.failed) == (10, 9, 1)
    assert progress.result_refs == {"input_file_id": "file-in", "output_file_id": "file-out"}
    assert progress.failure is None
    assert progress.raw["id"] == "batch_1"
    empty = progress_from_batch(batch(request_counts=None, output_file_id=None))
    assert (empty.total, empty.completed, empty.failed) == (0, 0, 0)


def test_a_failed_batch_reports_its_validation_errors_with_line_numbers() -> None:
    errors = {"object": "list", "data": [
        {"code": "token_limit_exceeded", "line": None, "param": None,
         "message": "Enqueued token limit reached for gpt-4o-mini."},
        {"code": "invalid_json_line", "line": 3, "param": None,
         "message": "This line is not parseable as valid JSON."},
    ]}
    progress = progress_from_batch(batch(status="failed", errors=errors))
    failure = progress.failure
    assert progress.ended and failure is not None
    # The token limit among them makes it a quota refusal: nothing ran, another batch may.
    assert (failure.kind, failure.retryable, failure.items_ran) == (FailureKind.QUOTA, True,
                                                                    False)
    assert failure.code == "token_limit_exceeded"
    assert "Enqueued token limit reached" in failure.message
    assert "line 3: This line is not parseable as valid JSON. (invalid_json_line)" in (
        failure.message)


def test_a_batch_that_failed_validation_otherwise_is_invalid_input() -> None:
    errors = {"data": [{"code": "invalid_json_line", "line": 3, "message": "bad line"}]}
    failure = progress_from_batch(batch(status="failed", errors=errors)).failure
    assert failure is not None
    assert (failure.kind, failure.retryable, failure.items_ran, failure.code) == (
        FailureKind.INVALID_INPUT, False, False, "invalid_json_line")
    bare = progress_from_batch(batch(status="failed", errors=None)).failure
    assert bare is not None and bare.kind is FailureKind.INVALID_INPUT and bare.code is None
    assert "gave no details" in bare.message


def test_an_expired_batch_ran_in_part_and_may_go_again() -> None:
    failure = progress_from_batch(batch(status="expired")).failure
    assert failure is not None
    assert (failure.kind, failure.retryable, failure.items_ran) == (FailureKind.EXPIRED, True,
                                                                    True)
    assert progress_from_batch(batch(status="cancelled")).failure is None


def test_a_long_list_of_validation_errors_is_summarised() -> None:
    data = [{"code": "duplicate_custom_id", "line": n, "message": "dup"} for n in range(1, 60)]
    failure = progress_from_batch(batch(status="failed", errors={"data": data})).failure
    assert failure is not None and failure.message.endswith("... and 39 more")


# --- SDK exceptions --------------------------------------------------------------------------

REQUEST = httpx2.Request("POST", "https://api.openai.com/v1/batches")


def status_error(cls: type[Any], status: int, *, code: str | None = None,
                 headers: dict[str, str] | None = None, message: str = "nope") -> Any:
    body = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    response = httpx2.Response(status, request=REQUEST, headers=headers or {},
                               json={"error": body})
    return cls(f"Error code: {status} - {body}", response=response, body=body)


@pytest.mark.parametrize(("exc", "expected", "status"), [
    (openai.APIConnectionError(request=REQUEST), TransientProviderError, None),
    (openai.APITimeoutError(request=REQUEST), TransientProviderError, None),
    (status_error(openai.InternalServerError, 500), TransientProviderError, 500),
    (status_error(openai.InternalServerError, 503), TransientProviderError, 503),
    (status_error(openai.APIStatusError, 408), TransientProviderError, 408),
    (status_error(openai.ConflictError, 409), TransientProviderError, 409),
    (status_error(openai.RateLimitError, 429), RateLimitedError, 429),
    (status_error(openai.AuthenticationError, 401), AuthenticationError, 401),
    (status_error(openai.PermissionDeniedError, 403), AuthenticationError, 403),
    (status_error(openai.BadRequestError, 400, code="invalid_value"), PermanentProviderError, 400),
    (status_error(openai.NotFoundError, 404), ResourceGoneError, 404),
    (status_error(openai.UnprocessableEntityError, 422), PermanentProviderError, 422),
    (status_error(openai.RateLimitError, 429, code="insufficient_quota"),
     PermanentProviderError, 429),
    (status_error(openai.RateLimitError, 429, code="token_limit_exceeded"),
     QuotaExceededError, 429),
    (httpx2.ReadError("peer closed", request=REQUEST), TransientProviderError, None),
    (openai.OpenAIError("something odd"), PermanentProviderError, None),
])
def test_sdk_exceptions_translate_into_the_error_tree(
        exc: Exception, expected: type[ProviderError], status: int | None) -> None:
    translated = translate_error(exc, operation="batches.create")
    assert type(translated) is expected
    assert translated.provider == "openai"
    assert translated.status_code == status
    assert translated.retryable is issubclass(expected, TransientProviderError)
    assert translated.message.startswith("batches.create: ")


def test_a_status_error_keeps_openais_code_and_message() -> None:
    exc = status_error(openai.BadRequestError, 400, code="invalid_value", message="bad window")
    translated = translate_error(exc, operation="batches.create")
    assert translated.code == "invalid_value"
    assert str(translated) == "[openai 400 invalid_value] batches.create: bad window"


@pytest.mark.parametrize(("headers", "retry_after"), [
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after": "7"}, 7.0),
    ({"retry-after": "0.25"}, 0.25),
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_rate_limits_carry_retry_after_from_the_headers(
        headers: dict[str, str], retry_after: float | None) -> None:
    translated = translate_error(status_error(openai.RateLimitError, 429, headers=headers,
                                              code="rate_limit_exceeded"), operation="files.create")
    assert isinstance(translated, RateLimitedError)
    assert translated.retry_after == retry_after
    assert translated.code == "rate_limit_exceeded"
    clone = pickle.loads(pickle.dumps(translated))
    assert type(clone) is RateLimitedError and clone.retry_after == retry_after


def test_retry_after_may_be_an_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after({"retry-after": later}, now=now.timestamp()) == 30.0
    assert parse_retry_after({"retry-after": later}, now=now.timestamp() + 60) == 0.0


def test_calling_raises_the_translation_from_the_sdk_exception() -> None:
    original = status_error(openai.InternalServerError, 502)
    with pytest.raises(TransientProviderError) as err, calling("batches.retrieve"):
        raise original
    assert err.value.__cause__ is original
    with pytest.raises(KeyError), calling("batches.retrieve"):
        raise KeyError("not an SDK error: left alone")


def test_cleanup_does_nothing_unless_configured() -> None:
    progress = progress_from_batch(batch(status="completed", output_file_id="file-out"))
    with openai.OpenAI(api_key="sk-x", base_url="http://127.0.0.1:9/v1", max_retries=0) as client:
        OpenAIProvider(ProviderConfig(), client=client).cleanup("batch_1", progress)


def test_a_result_file_with_damaged_lines_still_yields_every_readable_result() -> None:
    """Served through a mock transport: the SDK's streaming download, our line splitting and
    parsing, without a server. Unreadable lines are skipped (and logged), never fatal."""
    good = json.loads(result_line("ok-1", body=CHAT_BODY))
    good["response"]["body"]["choices"][0]["message"]["content"] = "line\u2028separator"
    output = (json.dumps(good, ensure_ascii=False).encode() + b"\n"
              + b"%%% not json at all %%%\n\n"
              + b'{"id": "batch_req_2", "custom_id": "cut-1", "response": {"status_co\n')
    errors = result_line("exp-1", status=None, error={"code": "batch_expired", "message": "late"})
    files = {"/v1/files/file-out/content": output, "/v1/files/file-err/content": errors}

    def serve(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=files[request.url.path])

    progress = progress_from_batch(batch(status="expired", output_file_id="file-out",
                                         error_file_id="file-err"))
    with openai.OpenAI(api_key="sk-x", base_url="http://openai.test/v1", max_retries=0,
                       http_client=httpx2.Client(transport=httpx2.MockTransport(serve))) as client:
        adapter = OpenAIProvider(ProviderConfig(), client=client)
        with structlog.testing.capture_logs() as logs:
            results = {r.provider_key: r for r in adapter.iter_results("batch_1", progress)}

    assert list(results) == ["ok-1", "cut-1", "exp-1"]
    assert [(e["event"], e["provider"], e["file"], e["line"])
            for e in logs if e["log_level"] == "error"] == [
        ("llmbatch.provider.result_line_unreadable", "openai", "file-out", 2)]
    assert results["ok-1"].output_text == "line\u2028separator"
    assert results["cut-1"].error is not None and results["cut-1"].error.retryable
    assert results["exp-1"].status is ItemStatus.EXPIRED
    # Lines are numbered within their file, blank and unreadable ones included.
    assert [r.line for r in results.values()] == [1, 4, 1]


def test_lines_the_database_cannot_store_arrive_as_sent_for_the_service_to_handle() -> None:
    """NUL, a lone surrogate and an absurd token count are valid JSON: the adapter reads them
    faithfully (``domain.storable`` decides later); JSON nested past the parser is a malformed
    line, not an exception that would stop the download."""
    body = json.loads(json.dumps(CHAT_BODY))
    body["choices"][0]["message"]["content"] = "nul\u0000 and \ud800"
    body["usage"]["prompt_tokens"] = 10**20
    deep = b'{"custom_id": "deep-1", "response": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    output = result_line("odd-1", body=body) + b"\n" + deep + b"\n"

    def serve(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=output)

    progress = progress_from_batch(batch(status="completed", output_file_id="file-out"))
    with openai.OpenAI(api_key="sk-x", base_url="http://openai.test/v1", max_retries=0,
                       http_client=httpx2.Client(transport=httpx2.MockTransport(serve))) as client:
        results = list(OpenAIProvider(ProviderConfig(), client=client)
                       .iter_results("batch_1", progress))

    odd, deep_result = results
    assert odd.output_text == "nul\x00 and \ud800" and odd.line == 1
    assert odd.usage is not None and odd.usage.input_tokens == 10**20
    assert deep_result.provider_key == "deep-1" and deep_result.line == 2
    assert deep_result.error is not None and deep_result.error.code == "malformed_result_line"


def test_a_batch_that_failed_validation_downloads_nothing() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise AssertionError(f"unexpected request {request.url}")

    progress = progress_from_batch(batch(status="failed", error_file_id="file-err"))
    with openai.OpenAI(api_key="sk-x", base_url="http://openai.test/v1", max_retries=0,
                       http_client=httpx2.Client(transport=httpx2.MockTransport(refuse))) as client:
        assert list(OpenAIProvider(ProviderConfig(), client=client)
                    .iter_results("batch_1", progress)) == []


def test_a_connection_that_breaks_mid_download_is_transient() -> None:
    def broken_stream() -> Iterator[bytes]:
        yield result_line("a-1", body=CHAT_BODY) + b"\n"
        raise httpx2.ReadError("connection reset by peer")

    def serve(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=broken_stream())

    progress = progress_from_batch(batch(status="completed", output_file_id="file-out"))
    with openai.OpenAI(api_key="sk-x", base_url="http://openai.test/v1", max_retries=0,
                       http_client=httpx2.Client(transport=httpx2.MockTransport(serve))) as client:
        stream = OpenAIProvider(ProviderConfig(), client=client).iter_results("b", progress)
        with pytest.raises(TransientProviderError) as err:
            list(stream)
    assert err.value.code == "connection_error"
    assert isinstance(err.value.__cause__, httpx2.ReadError)
