"""Responses, legacy completions and moderations jobs without a network: the neutral body
checked against the endpoint's schema, the OpenAI line and result record, and a Responses body
translated to Anthropic and Gemini (or refused, naming the Responses field)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmbatch.config import ProviderConfig
from llmbatch.domain.models import Endpoint, RequestLine, Usage
from llmbatch.domain.requests import parse_request_line
from llmbatch.domain.states import ItemStatus
from llmbatch.errors import InputError
from llmbatch.providers.anthropic import AnthropicProvider
from llmbatch.providers.gemini import GeminiProvider
from llmbatch.providers.openai import OpenAIProvider
from llmbatch.providers.openai.wire import parse_result_line
from llmbatch.providers.responses_body import chat_from_responses

pytestmark = pytest.mark.unit

RESPONSES_BODY: dict[str, Any] = {
    "instructions": "Answer in one word.",
    "input": [{"role": "user", "content": [{"type": "input_text", "text": "Capital of France?"}]}],
    "max_output_tokens": 256,
}


def parse(body: dict[str, Any], endpoint: Endpoint) -> RequestLine:
    return parse_request_line(json.dumps({"custom_id": "r-1", "body": body}), line=3, index=0,
                              file="in.jsonl", endpoint=endpoint, model="m")


# --- the neutral body ----------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "body"), [
    (Endpoint.RESPONSES, RESPONSES_BODY),
    (Endpoint.RESPONSES, {"input": "hi", "reasoning": {"effort": "low"},
                          "text": {"format": {"type": "json_schema", "name": "a",
                                              "schema": {"type": "object"}}}}),
    (Endpoint.COMPLETIONS, {"prompt": "Say hi", "max_tokens": 5}),
    (Endpoint.MODERATIONS, {"input": ["fine", "not fine"]}),
])
def test_bodies_of_each_endpoint_pass_their_own_schema(endpoint: Endpoint,
                                                       body: dict[str, Any]) -> None:
    assert parse(body, endpoint).body == body


@pytest.mark.parametrize(("endpoint", "body", "field"), [
    (Endpoint.RESPONSES, {"input": "hi", "max_tokens": 5}, "body.max_tokens"),
    (Endpoint.RESPONSES, {"input": [{"role": "user", "content": [
        {"type": "input_txt", "text": "hi"}]}]}, "body.input[0].content[0].type"),
    (Endpoint.RESPONSES, {"input": "hi", "max_output_tokens": 0}, "body.max_output_tokens"),
    (Endpoint.COMPLETIONS, {"messages": []}, "body"),
    (Endpoint.MODERATIONS, {"inputs": "x"}, "body"),
])
def test_a_body_for_another_endpoint_is_refused_naming_the_field(
        endpoint: Endpoint, body: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as info:
        parse(body, endpoint)
    assert info.value.field is not None and info.value.field.startswith(field)
    assert info.value.line == 3


def test_a_batch_file_line_for_the_responses_url_is_taken_unchanged() -> None:
    text = json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/responses",
                       "body": {"model": "m", "input": "hi"}})
    line = parse_request_line(text, line=1, index=0, file="f", endpoint=Endpoint.RESPONSES,
                              model="m")
    assert line.body == {"input": "hi"}
    with pytest.raises(InputError, match="must be /v1/chat/completions"):
        parse_request_line(text, line=1, index=0, file="f", endpoint=Endpoint.CHAT, model="m")


# --- OpenAI: the line and the result record ------------------------------------------------


@pytest.mark.parametrize(("endpoint", "url"), [
    (Endpoint.RESPONSES, "/v1/responses"), (Endpoint.COMPLETIONS, "/v1/completions"),
    (Endpoint.MODERATIONS, "/v1/moderations")])
def test_openai_lines_go_to_the_endpoints_url(endpoint: Endpoint, url: str) -> None:
    request = RequestLine(index=0, custom_id="a", body={"input": "hi"})
    line = OpenAIProvider(ProviderConfig()).encode(request, endpoint=endpoint, model="m")
    assert json.loads(line.data) == {"custom_id": "a", "method": "POST", "url": url,
                                     "body": {"input": "hi", "model": "m"}}


def result_line(body: dict[str, Any]) -> bytes:
    return json.dumps({"id": "batch_req_1", "custom_id": "r-1", "error": None,
                       "response": {"status_code": 200, "request_id": "req_1",
                                    "body": body}}).encode()


def response_body(**fields: Any) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "status": "completed", "output": [
        {"id": "rs_1", "type": "reasoning", "summary": []},
        {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Par", "annotations": []},
                     {"type": "output_text", "text": "is", "annotations": []}]}],
        "usage": {"input_tokens": 2000, "input_tokens_details": {
            "cached_tokens": 1024, "cache_write_tokens": 512},
            "output_tokens": 300, "output_tokens_details": {"reasoning_tokens": 200},
            "total_tokens": 2300}, **fields}


def test_a_response_is_a_success_with_its_text_and_every_token_class() -> None:
    result = parse_result_line(result_line(response_body()))
    assert result is not None and result.status is ItemStatus.SUCCEEDED
    assert result.output_text == "Paris"
    assert result.finish_reason == "stop"
    assert result.usage == Usage(input_tokens=2000, output_tokens=300, cached_tokens=1024,
                                 reasoning_tokens=200, cache_write_tokens=512)


def test_an_incomplete_response_is_a_truncated_success() -> None:
    result = parse_result_line(result_line(response_body(
        status="incomplete", incomplete_details={"reason": "max_output_tokens"})))
    assert result is not None and result.status is ItemStatus.SUCCEEDED
    assert result.finish_reason == "length"


def test_a_function_call_response_has_no_text() -> None:
    body = response_body(output=[{"type": "function_call", "call_id": "c", "name": "f",
                                  "arguments": "{}"}])
    result = parse_result_line(result_line(body))
    assert result is not None and result.output_text is None
    assert result.finish_reason == "tool_calls"


def test_a_failed_response_under_a_200_fails_its_item() -> None:
    body = response_body(status="failed", output=[],
                         error={"code": "server_error", "message": "boom"})
    result = parse_result_line(result_line(body))
    assert result is not None and result.status is ItemStatus.FAILED
    assert result.error is not None and result.error.message == "boom"
    assert result.error.retryable


def test_a_legacy_completion_and_a_moderation_become_result_records() -> None:
    completion = parse_result_line(result_line({
        "id": "cmpl-1", "object": "text_completion", "choices": [
            {"index": 0, "text": "hi there", "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}))
    assert completion is not None and completion.output_text == "hi there"
    assert completion.usage == Usage(input_tokens=3, output_tokens=2)
    verdict = {"id": "modr-1", "model": "omni-moderation-latest",
               "results": [{"flagged": True, "categories": {}, "category_scores": {},
                            "category_applied_input_types": {}}]}
    moderation = parse_result_line(result_line(verdict))
    assert moderation is not None and moderation.status is ItemStatus.SUCCEEDED
    assert moderation.output_text is None and moderation.usage is None
    assert moderation.response == verdict


# --- translation -----------------------------------------------------------------------------


def test_a_responses_body_means_a_chat_body() -> None:
    chat, _ = chat_from_responses({
        **RESPONSES_BODY, "temperature": 0.2,
        "input": [*RESPONSES_BODY["input"],
                  {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                  {"type": "function_call_output", "call_id": "c1", "output": "42"}],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"},
                   "strict": True}],
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}}})
    assert chat == {
        "temperature": 0.2, "max_completion_tokens": 256,
        "tools": [{"type": "function", "function": {"name": "f", "strict": True,
                                                    "parameters": {"type": "object"}}}],
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "object"}}},
        "messages": [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}]}


def anthropic_params(body: dict[str, Any]) -> dict[str, Any]:
    line = AnthropicProvider(ProviderConfig()).encode(
        RequestLine(index=0, custom_id="a", body=body), endpoint=Endpoint.RESPONSES,
        model="claude-x")
    params: dict[str, Any] = json.loads(line.data)["params"]
    return params


def test_a_responses_body_translates_to_anthropic() -> None:
    assert anthropic_params(RESPONSES_BODY) == {
        "model": "claude-x", "max_tokens": 256, "system": "Answer in one word.",
        "messages": [{"role": "user", "content": "Capital of France?"}]}


def test_a_responses_body_translates_to_gemini() -> None:
    line = GeminiProvider(ProviderConfig()).encode(
        RequestLine(index=0, custom_id="a", body=RESPONSES_BODY), endpoint=Endpoint.RESPONSES,
        model="gemini-2.5-flash")
    request = json.loads(line.data)["request"]
    assert request["systemInstruction"]["parts"] == [{"text": "Answer in one word."}]
    assert request["contents"] == [{"role": "user", "parts": [{"text": "Capital of France?"}]}]
    assert request["generationConfig"]["maxOutputTokens"] == 256


@pytest.mark.parametrize(("extra", "field"), [
    ({"previous_response_id": "resp_1"}, "body.previous_response_id"),
    ({"background": True}, "body.background"),
    ({"tools": [{"type": "web_search"}]}, "body.tools[0]"),
    ({"reasoning": {"effort": "high"}}, "body.reasoning.effort"),
    ({"text": {"format": {"type": "json_object"}}}, "body.text.format"),
    ({"text": {"verbosity": "low"}}, "body.text.verbosity"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "body.input[0].content[0]"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "body.input[0].type"),
    ({"input": [{"role": "user", "content": "a", "name": "x"}, {"role": "assistant",
                                                               "content": "b"}]}, None),
    ({"input": [{"role": "assistant", "content": "first"}]}, "body.input[0].role"),
    # the chat translator's own refusal, at chat message 2, is the Responses item 1
    ({"input": [{"role": "user", "content": "a"}, {"role": "developer", "content": "b"}]},
     "body.input[1]"),
])
def test_untranslatable_responses_fields_are_refused_by_name(extra: dict[str, Any],
                                                             field: str | None) -> None:
    body = {**RESPONSES_BODY, **extra}
    if field is None:  # a control: this one translates
        anthropic_params(body)
        return
    with pytest.raises(InputError) as info:
        anthropic_params(body)
    assert info.value.field == field


@pytest.mark.parametrize("provider", [AnthropicProvider, GeminiProvider])
@pytest.mark.parametrize("endpoint", [Endpoint.COMPLETIONS, Endpoint.MODERATIONS])
def test_completions_and_moderations_are_openai_only(provider: Any, endpoint: Endpoint) -> None:
    assert endpoint not in provider.endpoints
    with pytest.raises(InputError) as info:
        provider(ProviderConfig()).encode(RequestLine(index=0, custom_id="a", body={
            "input": "x"}), endpoint=endpoint, model="m")
    assert info.value.field == "endpoint"


def test_the_output_bound_of_a_responses_job_is_max_output_tokens() -> None:
    request = RequestLine(index=0, custom_id="a", body=RESPONSES_BODY)
    for provider in (OpenAIProvider, AnthropicProvider, GeminiProvider):
        assert provider(ProviderConfig()).max_output_tokens(
            request, endpoint=Endpoint.RESPONSES) == 256
    assert OpenAIProvider(ProviderConfig()).max_output_tokens(
        RequestLine(index=0, custom_id="a", body={"input": "x"}),
        endpoint=Endpoint.MODERATIONS) == 0


def test_a_responses_usage_prices_as_the_same_chat_usage() -> None:
    """Cost accounting is unchanged: a Response's usage is the chat usage with other names."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from llmbatch.pricing import price_usage, resolve_prices

    responses = parse_result_line(result_line(response_body()))
    chat = parse_result_line(result_line({"object": "chat.completion", "choices": [], "usage": {
        "prompt_tokens": 2000, "completion_tokens": 300,
        "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 512},
        "completion_tokens_details": {"reasoning_tokens": 200}}}))
    assert responses is not None and chat is not None
    assert responses.usage is not None and responses.usage == chat.usage
    prices = resolve_prices(catalogue_id="openai", batch_factor=Decimal("0.5"), model="gpt-5.4",
                            override=None, at=datetime(2026, 11, 30, tzinfo=UTC))
    assert prices is not None
    cost = price_usage(responses.usage, prices)
    assert 0 < cost.batch_usd < cost.sync_usd  # the batch rates of every token class


@pytest.mark.parametrize(("provider", "says"), [
    (AnthropicProvider, "thinking.budget_tokens"),
    (GeminiProvider, "thinkingConfig"),
])
@pytest.mark.parametrize("endpoint", [Endpoint.RESPONSES, Endpoint.CHAT])
def test_reasoning_effort_is_refused_with_why_and_what_to_send_instead(
        provider: Any, says: str, endpoint: Endpoint) -> None:
    """Not mapped: no faithful translation is documented (docs/providers/<name>.md)."""
    body = ({**RESPONSES_BODY, "reasoning": {"effort": "high"}} if endpoint is Endpoint.RESPONSES
            else {"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "high"})
    with pytest.raises(InputError) as info:
        provider(ProviderConfig()).encode(RequestLine(index=0, custom_id="a", body=body),
                                          endpoint=endpoint, model="some-model")
    assert info.value.field == ("body.reasoning.effort" if endpoint is Endpoint.RESPONSES
                                else "body.reasoning_effort")
    message = str(info.value)
    assert "reasoning effort has no faithful" in message and says in message
    assert "native" in message
