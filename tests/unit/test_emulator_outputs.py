"""Deterministic outputs: same body, same answer; plausible usage; JSON when asked."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import jsonschema
import pytest

from llmbatch.emulator import synth
from llmbatch.emulator.faults import ItemErrorsFault
from llmbatch.emulator.openai.endpoints import ENDPOINTS
from llmbatch.emulator.openai.lines import line_failure

CHAT = ENDPOINTS["/v1/chat/completions"]
EMBED = ENDPOINTS["/v1/embeddings"]


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Name three rivers in Europe."}], **extra}


def respond(endpoint: Any, body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    result: tuple[dict[str, Any], Any] = endpoint.respond(body, created=1, response_id="x",
                                                          default_dim=8)
    return result


def test_the_digest_ignores_key_order() -> None:
    assert synth.digest({"a": 1, "b": [1, 2]}) == synth.digest({"b": [1, 2], "a": 1})
    assert synth.digest({"a": 1}) != synth.digest({"a": 2})


def test_the_same_body_always_gets_the_same_reply() -> None:
    first, usage1 = respond(CHAT, chat_body())
    second, usage2 = respond(CHAT, dict(reversed(list(chat_body().items()))))
    assert first["choices"] == second["choices"]
    assert usage1 == usage2
    other, _ = respond(CHAT, chat_body(temperature=0.5))
    assert other["choices"][0]["message"]["content"] != first["choices"][0]["message"]["content"]


def test_chat_usage_is_plausible_and_consistent() -> None:
    body, usage = respond(CHAT, chat_body())
    tokens = body["usage"]
    assert tokens["total_tokens"] == tokens["prompt_tokens"] + tokens["completion_tokens"]
    assert tokens["prompt_tokens"] == synth.chat_prompt_tokens(chat_body()["messages"])
    assert 8 <= tokens["completion_tokens"] <= 64
    words = body["choices"][0]["message"]["content"].split()
    assert len(words) == tokens["completion_tokens"]
    assert (usage.input, usage.output) == (tokens["prompt_tokens"], tokens["completion_tokens"])
    assert tokens["prompt_tokens_details"]["cached_tokens"] == 0


@pytest.mark.parametrize("limit", [1, 5, 12])
def test_replies_respect_max_tokens_and_say_length_when_cut(limit: int) -> None:
    for i in range(20):
        body, _ = respond(CHAT, chat_body(max_tokens=limit, seed=i))
        assert body["usage"]["completion_tokens"] <= limit
        reason = body["choices"][0]["finish_reason"]
        if body["usage"]["completion_tokens"] < limit:
            assert reason == "stop"
        elif limit < 8:  # every reply is at least 8 tokens long, so these are all cut
            assert reason == "length"


def test_max_completion_tokens_is_honoured_too() -> None:
    body, _ = respond(CHAT, chat_body(max_completion_tokens=3))
    assert body["usage"]["completion_tokens"] <= 3


def test_n_gives_that_many_distinct_choices() -> None:
    body, usage = respond(CHAT, chat_body(n=3))
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert len({c["message"]["content"] for c in body["choices"]}) == 3
    assert usage.output == body["usage"]["completion_tokens"]


def test_reasoning_models_report_reasoning_tokens() -> None:
    body, usage = respond(CHAT, chat_body(model="o4-mini"))
    reasoning = body["usage"]["completion_tokens_details"]["reasoning_tokens"]
    assert 0 < reasoning < body["usage"]["completion_tokens"]
    assert usage.reasoning == reasoning


def test_long_prompts_may_hit_the_prompt_cache_in_128_token_blocks() -> None:
    cached = []
    for i in range(10):
        long = chat_body(messages=[{"role": "user", "content": f"{i} " + "x" * 8000}])
        body, _ = respond(CHAT, long)
        cached.append(body["usage"]["prompt_tokens_details"]["cached_tokens"])
    assert any(cached) and all(c % 128 == 0 for c in cached)


def test_json_schema_requests_get_json_matching_the_schema() -> None:
    schema = {"type": "object", "additionalProperties": False,
              "required": ["name", "count", "tags", "kind", "note"],
              "properties": {"name": {"type": "string"}, "count": {"type": "integer"},
                             "tags": {"type": "array", "items": {"type": "string"}},
                             "kind": {"enum": ["a", "b"]},
                             "note": {"anyOf": [{"type": "number"}, {"type": "null"}]}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    body, _ = respond(CHAT, chat_body(response_format=fmt))
    jsonschema.validate(json.loads(body["choices"][0]["message"]["content"]), schema)
    plain, _ = respond(CHAT, chat_body(response_format={"type": "json_object"}))
    assert isinstance(json.loads(plain["choices"][0]["message"]["content"]), dict)


def test_embeddings_are_unit_vectors_of_the_requested_size() -> None:
    body, usage = respond(EMBED, {"model": "e", "input": ["a", "b"], "dimensions": 16})
    vectors = [d["embedding"] for d in body["data"]]
    assert [len(v) for v in vectors] == [16, 16]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-6) for v in vectors)
    assert vectors[0] != vectors[1]
    assert usage.input == body["usage"]["prompt_tokens"] > 0
    again, _ = respond(EMBED, {"model": "e", "input": "a", "dimensions": 16})
    assert again["data"][0]["embedding"] == vectors[0]


def test_embeddings_can_be_base64_float32() -> None:
    body, _ = respond(EMBED, {"model": "e", "input": [1, 2, 3], "encoding_format": "base64"})
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert len(struct.unpack("<8f", raw)) == 8
    assert body["usage"]["prompt_tokens"] == 3


@pytest.mark.parametrize(
    ("endpoint", "body", "code"),
    [
        (CHAT, {"model": "m"}, "missing_required_parameter"),
        (CHAT, chat_body(max_tokens=0), "integer_below_min_value"),
        (CHAT, chat_body(n="2"), "invalid_type"),
        (CHAT, chat_body(stream=True), "invalid_value"),
        (EMBED, {"model": "m"}, "missing_required_parameter"),
        (EMBED, {"model": "m", "input": ""}, "invalid_value"),
        (EMBED, {"model": "m", "input": "a", "dimensions": 0}, "integer_below_min_value"),
    ],
)
def test_endpoints_reject_bodies_the_real_ones_would(
    endpoint: Any, body: dict[str, Any], code: str
) -> None:
    rejection = endpoint.reject(body)
    assert rejection is not None and rejection.status == 400 and rejection.code == code


@pytest.mark.parametrize(
    ("endpoint", "body", "param", "code"),
    [
        (CHAT, {"model": "m", "messages": [{"role": "bogus", "content": "x"}]},
         "messages[0].role", "invalid_value"),
        (CHAT, {"model": "m", "messages": [{"role": "user", "content": 5}]},
         "messages[0].content", "invalid_value"),
        (CHAT, {"model": "m", "messages": [{"role": "user",
                                            "content": [{"type": "text", "txt": "x"}]}]},
         "messages[0].content[0].text", "missing_required_parameter"),
        (CHAT, chat_body(tools=[{"type": "function", "function": {}}]),
         "tools[0].function.name", "missing_required_parameter"),
        (CHAT, chat_body(response_format={"type": "json_schema"}),
         "response_format.json_schema", "missing_required_parameter"),
        (CHAT, chat_body(temperature="hot"), "temperature", "invalid_value"),
        (EMBED, {"model": "m", "input": "a", "encoding_format": "hex"}, "encoding_format",
         "invalid_value"),
    ],
)
def test_nested_fields_are_checked_against_the_request_schema(
    endpoint: Any, body: dict[str, Any], param: str, code: str
) -> None:
    """Not only the top-level names: the body as a whole, as the real endpoint parses it."""
    rejection = endpoint.reject(body)
    assert rejection is not None, body
    assert (rejection.status, rejection.param, rejection.code) == (400, param, code)
    assert f"'{param}'" in rejection.message


def test_bodies_the_request_schema_takes_are_not_rejected() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    for endpoint, body in [
        (CHAT, chat_body()),
        (CHAT, chat_body(tools=[tool], tool_choice="auto", temperature=0.2, seed=3,
                         response_format={"type": "json_object"})),
        (CHAT, {"model": "m", "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": [{"type": "text", "text": "x"}]}]}),
        (EMBED, {"model": "m", "input": ["a", "b"], "encoding_format": "base64"}),
    ]:
        assert endpoint.reject(body) is None, body


def test_injected_item_failures_depend_on_the_batch_so_retries_can_succeed() -> None:
    fault = ItemErrorsFault(kind="item_errors", rate=0.5)

    def failing(batch_id: str) -> set[str]:
        return {f"c{i}" for i in range(200) if line_failure(
            body=chat_body(), endpoint=CHAT, batch_id=batch_id, custom_id=f"c{i}", seed=0,
            item_errors=fault) is not None}

    assert failing("batch_a") == failing("batch_a")
    assert failing("batch_a") != failing("batch_b")
    assert 60 < len(failing("batch_a")) < 140
