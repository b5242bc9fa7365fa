"""The neutral (OpenAI chat) body as Anthropic Messages params: every mapping and refusal."""

from __future__ import annotations

from typing import Any

import pytest

from llmbatch.errors import InputError
from llmbatch.providers.anthropic.translate import (
    DEFAULT_API_VERSION,
    LEGACY_API_VERSION,
    to_anthropic_params,
)


def tr(body: dict[str, Any], version: str = DEFAULT_API_VERSION) -> dict[str, Any]:
    return to_anthropic_params(body, model="claude-x", api_version=version,
                               default_max_tokens=321)


def refused(body: dict[str, Any], field: str, version: str = DEFAULT_API_VERSION) -> str:
    with pytest.raises(InputError) as err:
        tr(body, version)
    assert err.value.field == field, err.value
    return err.value.message


USER = [{"role": "user", "content": "hi"}]


def test_a_plain_request_gets_model_and_the_default_max_tokens() -> None:
    assert tr({"messages": USER}) == {"model": "claude-x", "max_tokens": 321,
                                      "messages": [{"role": "user", "content": "hi"}]}


def test_max_completion_tokens_is_max_tokens_and_a_conflict_is_refused() -> None:
    assert tr({"messages": USER, "max_completion_tokens": 9})["max_tokens"] == 9
    assert tr({"messages": USER, "max_tokens": 9, "max_completion_tokens": 9})["max_tokens"] == 9
    refused({"messages": USER, "max_tokens": 9, "max_completion_tokens": 8},
            "body.max_completion_tokens")
    refused({"messages": USER, "max_tokens": "9"}, "body.max_tokens")


def test_system_and_developer_messages_become_the_system_prompt() -> None:
    params = tr({"messages": [{"role": "system", "content": "be brief"},
                              {"role": "developer", "content": [{"type": "text", "text": "x"}]},
                              *USER]})
    assert params["system"] == "be brief\n\nx"
    refused({"messages": [*USER, {"role": "system", "content": "late"}]}, "body.messages[1]")


def test_roles_merge_and_the_conversation_must_start_with_user() -> None:
    params = tr({"messages": [*USER, {"role": "user", "content": "again"},
                              {"role": "assistant", "content": "ok"}]})
    assert params["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"},
                                     {"type": "text", "text": "again"}]},
        {"role": "assistant", "content": "ok"}]
    refused({"messages": [{"role": "assistant", "content": "x"}]}, "body.messages[0].role")
    refused({"messages": [{"role": "user", "content": "x", "name": "bob"}]},
            "body.messages[0].name")


def test_tool_calls_and_results_map_to_tool_use_and_tool_result() -> None:
    params = tr({"messages": [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "t1", "type": "function",
             "function": {"name": "f", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "42"}],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d",
                                                    "parameters": {"type": "object"}}}],
        "tool_choice": "required", "parallel_tool_calls": False})
    assert params["messages"][1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]}
    assert params["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1",
         "content": [{"type": "text", "text": "42"}]}]}
    assert params["tools"] == [{"name": "f", "description": "d",
                                "input_schema": {"type": "object"}}]
    assert params["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", {"type": "auto"}), ("none", {"type": "none"}),
    ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
])
def test_tool_choice(choice: Any, expected: dict[str, Any]) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert tr({"messages": USER, "tools": tools, "tool_choice": choice})["tool_choice"] == expected


def test_images_by_url_and_data_url() -> None:
    params = tr({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what?"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]})
    blocks = params["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
    assert blocks[2]["source"] == {"type": "base64", "media_type": "image/png", "data": "AAAA"}
    refused({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AA"}}]}]},
        "body.messages[0].content[0].image_url")
    refused({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "body.messages[0].content[0]")


def test_stop_user_and_json_schema_output() -> None:
    params = tr({"messages": USER, "stop": "END", "user": "u1", "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}})
    assert params["stop_sequences"] == ["END"]
    assert params["metadata"] == {"user_id": "u1"}
    assert params["output_config"] == {"format": {"type": "json_schema",
                                                  "schema": {"type": "object"}}}
    assert "output_config" not in tr({"messages": USER, "response_format": {"type": "text"}})
    assert "no bare JSON mode" in refused(
        {"messages": USER, "response_format": {"type": "json_object"}}, "body.response_format")


def test_sampling_depends_on_the_api_version() -> None:
    assert "rejects 'temperature'" in refused({"messages": USER, "temperature": 1},
                                             "body.temperature")
    refused({"messages": USER, "top_p": 0.5}, "body.top_p")
    legacy = tr({"messages": USER, "temperature": 0.2, "top_p": 0.9}, LEGACY_API_VERSION)
    assert (legacy["temperature"], legacy["top_p"]) == (0.2, 0.9)
    refused({"messages": USER, "temperature": 1.5}, "body.temperature", LEGACY_API_VERSION)


@pytest.mark.parametrize("field", ["n", "logprobs", "presence_penalty", "frequency_penalty",
                                   "seed", "logit_bias", "top_logprobs", "service_tier",
                                   "reasoning_effort", "store", "whatever"])
def test_fields_without_an_equivalent_are_refused_by_name(field: str) -> None:
    value: Any = {"n": 2, "logprobs": True, "presence_penalty": 0.5, "frequency_penalty": 1,
                  "store": True, "logit_bias": {"1": 2}}.get(field, 3)
    refused({"messages": USER, field: value}, f"body.{field}")


def test_neutral_values_are_dropped_harmlessly() -> None:
    params = tr({"messages": USER, "n": 1, "logprobs": False, "presence_penalty": 0,
                 "frequency_penalty": 0.0, "store": False, "seed": None})
    assert set(params) == {"model", "max_tokens", "messages"}
