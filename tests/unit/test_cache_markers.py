"""``cache_control`` breakpoints in the neutral format: kept in place for Anthropic, removed
(with automatic prefix caching as the documented equivalent) for OpenAI and Gemini, and a
malformed marker refused everywhere, never dropped silently."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.errors import InputError
from llmbatch.providers.anthropic.translate import DEFAULT_API_VERSION, to_anthropic_params
from llmbatch.providers.gemini.translate import to_generate_content
from llmbatch.providers.openai.wire import encode_line

EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}


def anthropic(body: dict[str, Any]) -> dict[str, Any]:
    return to_anthropic_params(body, model="claude-haiku-4-5", api_version=DEFAULT_API_VERSION,
                               default_max_tokens=100)


BODY: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "Manual.", "cache_control": HOUR},
        {"role": "user", "content": [
            {"type": "text", "text": "Document.", "cache_control": EPHEMERAL},
            {"type": "text", "text": "Question?"}]},
        {"role": "assistant", "content": "Answer.", "cache_control": EPHEMERAL},
        {"role": "user", "content": "More?"}],
    "tools": [{"type": "function", "function": {"name": "look"}, "cache_control": EPHEMERAL}],
}


def test_anthropic_keeps_every_breakpoint_where_it_was_put() -> None:
    params = anthropic(BODY)
    assert params["system"] == [{"type": "text", "text": "Manual.", "cache_control": HOUR}]
    user, assistant, last = params["messages"]
    assert user["content"] == [
        {"type": "text", "text": "Document.", "cache_control": EPHEMERAL},
        {"type": "text", "text": "Question?"}]
    assert assistant["content"] == [{"type": "text", "text": "Answer.",
                                      "cache_control": EPHEMERAL}]
    assert last["content"] == "More?"
    assert params["tools"][0]["cache_control"] == EPHEMERAL


@pytest.mark.parametrize(("marker", "field"), [
    ({"type": "persistent"}, "body.messages[0].cache_control"),
    ({"type": "ephemeral", "ttl": "2h"}, "body.messages[0].cache_control.ttl"),
    ("yes", "body.messages[0].cache_control"),
])
def test_anthropic_refuses_a_marker_that_is_not_a_breakpoint(marker: Any, field: str) -> None:
    with pytest.raises(InputError) as caught:
        anthropic({"messages": [{"role": "user", "content": "Hi", "cache_control": marker}]})
    assert caught.value.field == field


def test_openai_lines_carry_no_marker_and_native_bodies_are_untouched() -> None:
    line = encode_line(RequestLine(0, "a", BODY), endpoint=Endpoint.CHAT, model="gpt-5.4",
                       max_line_bytes=10**6)
    assert b"cache_control" not in line.data
    sent = json.loads(line.data)["body"]
    assert sent["messages"][1]["content"][0] == {"type": "text", "text": "Document."}
    native = {"messages": [{"role": "user", "content": "Hi", "cache_control": EPHEMERAL}]}
    assert b"cache_control" in encode_line(RequestLine(0, "n", None, native),
                                           endpoint=Endpoint.CHAT, model="gpt-5.4",
                                           max_line_bytes=10**6).data


def test_gemini_requests_carry_no_marker_and_a_bad_one_is_refused() -> None:
    body = {k: v for k, v in BODY.items() if k != "tools"}
    assert "cache_control" not in json.dumps(to_generate_content(body))
    with pytest.raises(InputError) as caught:
        to_generate_content({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral", "ttl": 5}}]}]})
    assert caught.value.field == "body.messages[0].content[0].cache_control"
