"""Structured outputs satisfy the requested schema (bounds, enums, required, $defs), and
requests offering tools sometimes get tool calls, in each provider's wire shape, deterministically.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from llmbatch.emulator import synth
from llmbatch.emulator.anthropic import messages as anthropic_messages
from llmbatch.emulator.gemini import generate
from llmbatch.emulator.openai.endpoints import ENDPOINTS
from llmbatch.emulator.store import IdFactory

CHAT = ENDPOINTS["/v1/chat/completions"]

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "additionalProperties": False, "required": ["age", "score", "tags"],
     "properties": {
         "age": {"type": "integer", "minimum": 18, "maximum": 21},
         "score": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
         "step": {"type": "integer", "minimum": 10, "maximum": 40, "multipleOf": 7},
         "tags": {"type": "array", "minItems": 4, "maxItems": 5,
                  "items": {"type": "string", "enum": ["a", "b"]}},
         "code": {"type": "string", "minLength": 30, "maxLength": 32},
         "short": {"type": "string", "maxLength": 2},
         "when": {"type": "string", "format": "date-time"},
         "maybe": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 5}]},
         "kind": {"const": "fixed"}}},
    {"type": "object", "$defs": {"item": {"type": "object", "required": ["n"], "properties": {
        "n": {"type": "integer", "minimum": -3, "maximum": -1}}}},
     "required": ["items"],
     "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"},
                              "minItems": 2}}},
    {"allOf": [{"type": "object", "properties": {"x": {"type": "boolean"}}, "required": ["x"]},
               {"properties": {"y": {"type": ["null", "number"], "minimum": 100}}}]},
]


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("salt", range(12))
def test_json_instances_satisfy_their_schema(schema: dict[str, Any], salt: int) -> None:
    value = synth.json_instance(schema, synth.digest({"salt": salt}))
    jsonschema.Draft202012Validator(schema).validate(value)


def test_gemini_schemas_in_capitals_with_string_bounds_are_satisfied() -> None:
    schema = {"type": "OBJECT", "required": ["n", "list"], "properties": {
        "n": {"type": "INTEGER", "minimum": 3, "maximum": 4},
        "list": {"type": "ARRAY", "minItems": "3", "maxItems": "3",
                 "items": {"type": "STRING", "enum": ["x", "y"]}}}}
    for salt in range(10):
        value = synth.json_instance(schema, synth.digest(salt))
        assert value["n"] in (3, 4) and len(value["list"]) == 3
        assert set(value["list"]) <= {"x", "y"}


def test_openai_json_schema_responses_validate() -> None:
    schema = SCHEMAS[0]
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "s", "schema": schema}}}
    response, _ = CHAT.respond(body, created=1, response_id="r", default_dim=8)
    jsonschema.validate(json.loads(response["choices"][0]["message"]["content"]), schema)


WEATHER = {"type": "object", "required": ["city", "days"], "additionalProperties": False,
           "properties": {"city": {"type": "string", "enum": ["Oslo", "Lima"]},
                          "days": {"type": "integer", "minimum": 1, "maximum": 7}}}


def _openai(i: int, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"weather {i}"}],
            "tools": [{"type": "function", "function": {"name": "weather",
                                                        "parameters": WEATHER}}], **extra}


def test_openai_tool_requests_sometimes_get_tool_calls_deterministically() -> None:
    replies = [CHAT.respond(_openai(i), created=1, response_id=f"r{i}", default_dim=8)[0]
               for i in range(40)]
    calls = [r["choices"][0] for r in replies if r["choices"][0]["finish_reason"] == "tool_calls"]
    assert 5 < len(calls) < 35
    for choice in calls:
        call = choice["message"]["tool_calls"][0]
        assert choice["message"]["content"] is None and call["type"] == "function"
        assert call["id"].startswith("call_") and call["function"]["name"] == "weather"
        jsonschema.validate(json.loads(call["function"]["arguments"]), WEATHER)
    again = CHAT.respond(_openai(0), created=1, response_id="r0", default_dim=8)[0]
    assert again == replies[0]
    forced = [CHAT.respond(_openai(i, tool_choice="required"), created=1, response_id="f",
                           default_dim=8)[0]["choices"][0]["finish_reason"] for i in range(10)]
    never = [CHAT.respond(_openai(i, tool_choice="none"), created=1, response_id="n",
                          default_dim=8)[0]["choices"][0]["finish_reason"] for i in range(10)]
    assert set(forced) == {"tool_calls"} and "tool_calls" not in never


def test_anthropic_tool_requests_sometimes_get_tool_use_blocks() -> None:
    def params(i: int, **extra: Any) -> dict[str, Any]:
        return {"model": "claude-haiku-4-5", "max_tokens": 50,
                "messages": [{"role": "user", "content": f"weather {i}"}],
                "tools": [{"name": "weather", "input_schema": WEATHER}], **extra}

    replies = [anthropic_messages.message(params(i), f"msg_{i:024d}") for i in range(40)]
    used = [r for r in replies if r["stop_reason"] == "tool_use"]
    assert 5 < len(used) < 35
    for reply in used:
        block = reply["content"][0]
        assert block["type"] == "tool_use" and block["name"] == "weather"
        assert block["id"].startswith("toolu_") and block["caller"] == {"type": "direct"}
        jsonschema.validate(block["input"], WEATHER)
    forced = {anthropic_messages.message(params(i, tool_choice={"type": "tool",
                                                                "name": "weather"}),
                                         "msg_x")["stop_reason"] for i in range(10)}
    never = {anthropic_messages.message(params(i, tool_choice={"type": "none"}),
                                        "msg_x")["stop_reason"] for i in range(10)}
    assert forced == {"tool_use"} and "tool_use" not in never


def test_gemini_function_declarations_sometimes_get_function_calls() -> None:
    gemini_schema = {"type": "OBJECT", "required": ["city", "days"], "properties": {
        "city": {"type": "STRING", "enum": ["Oslo", "Lima"]},
        "days": {"type": "INTEGER", "minimum": 1, "maximum": 7}}}

    def request(i: int, mode: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": [{"text": f"weather {i}"}]}],
            "tools": [{"functionDeclarations": [{"name": "weather",
                                                 "parameters": gemini_schema}]}]}
        if mode:
            body["toolConfig"] = {"functionCallingConfig": {"mode": mode}}
        return body

    replies = [generate.respond(request(i), model="models/gemini-2.5-flash", response_id="r")
               for i in range(40)]
    calls = [part["functionCall"] for r in replies
             for part in r["candidates"][0]["content"]["parts"] if "functionCall" in part]
    assert 5 < len(calls) < 35
    for call in calls:
        assert call["name"] == "weather"
        jsonschema.validate(call["args"], WEATHER)
    forced = [generate.respond(request(i, "ANY"), model="m", response_id="r")
              for i in range(10)]
    assert all("functionCall" in r["candidates"][0]["content"]["parts"][0] for r in forced)
    never = [generate.respond(request(i, "NONE"), model="m", response_id="r")
             for i in range(10)]
    assert all("text" in r["candidates"][0]["content"]["parts"][0] for r in never)


def test_ids_differ_across_restarts_unless_asked_to_repeat() -> None:
    first, second = IdFactory(7), IdFactory(7)
    assert first.new("batch_") != second.new("batch_")
    same_a, same_b = IdFactory(7, reproducible=True), IdFactory(7, reproducible=True)
    assert [same_a.new("batch_") for _ in range(3)] == [same_b.new("batch_") for _ in range(3)]


def test_tool_call_replies_validate_against_the_provider_descriptions() -> None:
    from contract.spec_support import FIXTURES, assert_no_errors, schema_validator

    openai_doc = json.loads((FIXTURES / "openai_batch_schemas.json").read_text())
    anthropic_doc = json.loads((FIXTURES / "anthropic_batch_schemas.json").read_text())
    gemini_doc = json.loads((FIXTURES / "gemini_batch_schemas.json").read_text())["google"]
    reply = CHAT.respond(_openai(0, tool_choice="required"), created=1, response_id="r",
                         default_dim=8)[0]
    assert_no_errors(schema_validator(openai_doc, "urn:o", "CreateChatCompletionResponse"),
                     reply, "openai")
    message = anthropic_messages.message(
        {"model": "claude-haiku-4-5", "max_tokens": 50, "tool_choice": {"type": "any"},
         "messages": [{"role": "user", "content": "x"}],
         "tools": [{"name": "weather", "input_schema": WEATHER}]}, "msg_1")
    assert_no_errors(schema_validator(anthropic_doc, "urn:a", "Message"), message, "anthropic")
    answer = generate.respond({
        "contents": [{"parts": [{"text": "x"}]}],
        "tools": [{"functionDeclarations": [{"name": "weather", "parametersJsonSchema": WEATHER}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}, model="m", response_id="r")
    assert "functionCall" in answer["candidates"][0]["content"]["parts"][0]
    assert_no_errors(schema_validator(gemini_doc, "urn:g", "GenerateContentResponse"), answer,
                     "gemini")
