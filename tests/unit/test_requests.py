"""Parsing input lines: every refusal names the file, the line and the field; every accepted
form becomes the same neutral ``RequestLine``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.domain.requests import parse_request_line
from llmbatch.errors import InputError

FILE = "prompts.jsonl"
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Hi"}]


def parse(line: Any, *, line_no: int = 7, index: int = 3,
          endpoint: Endpoint = Endpoint.CHAT) -> RequestLine:
    text = line if isinstance(line, str) else json.dumps(line)
    return parse_request_line(text, line=line_no, index=index, file=FILE, endpoint=endpoint,
                              model=MODEL)


BAD_LINES = [
    ('{"custom_id": "a", "body": {', None, "not valid JSON"),
    ("not json at all", None, "not valid JSON"),
    ("[1, 2, 3]", None, "must be a JSON object"),
    ('"a string"', None, "must be a JSON object"),
    ("null", None, "must be a JSON object"),
    ({"custom_id": "a", "body": {"messages": MESSAGES}, "extra": 1}, "extra", "unknown key"),
    ({"custom_id": "", "body": {"messages": MESSAGES}}, "custom_id", "non-empty string"),
    ({"custom_id": 12, "body": {"messages": MESSAGES}}, "custom_id", "non-empty string"),
    ({"custom_id": None, "body": {"messages": MESSAGES}}, "custom_id", "non-empty string"),
    ({"custom_id": "a"}, "body", "missing"),
    ({"custom_id": "a", "body": [1]}, "body", "not a JSON object"),
    ({"custom_id": "a", "body": {}}, "body.messages", "is required"),
    ({"custom_id": "a", "body": {"messages": []}}, "body.messages", "at least 1 item"),
    ({"custom_id": "a", "body": {"messages": "Hi"}}, "body.messages", "must be an array"),
    ({"custom_id": "a", "body": {"messages": ["Hi"]}}, "body.messages[0]", "must be an object"),
    ({"custom_id": "a", "body": {"messages": [{"role": "robot", "content": "x"}]}},
     "body.messages[0].role", 'must be one of "developer", "system", "user"'),
    ({"custom_id": "a", "body": {"messages": [MESSAGES[0], {"content": "x"}]}},
     "body.messages[1].role", "is required"),
    ({"custom_id": "a", "body": {"messages": [{"role": "user"}]}},
     "body.messages[0].content", "is required"),
    ({"custom_id": "a", "method": "GET", "body": {"messages": MESSAGES}}, "method", "POST"),
    ({"custom_id": "a", "url": "/v1/embeddings", "body": {"messages": MESSAGES}}, "url",
     "must be /v1/chat/completions for a chat job, got '/v1/embeddings'"),
    ({"custom_id": "a", "body": {"model": "gpt-4o", "messages": MESSAGES}}, "body.model",
     "model 'gpt-4o' differs from the job's model 'gpt-4o-mini'"),
    ({"custom_id": "a", "body": {"messages": MESSAGES, "stream": True}}, "body.stream",
     "streaming"),
    ({"custom_id": "a", "body": {"messages": MESSAGES}, "native": {"contents": []}}, "native",
     "either 'body' or 'native'"),
    ({"custom_id": "a", "native": ["not", "an", "object"]}, "native", "JSON object"),
]


@pytest.mark.parametrize(("line", "field", "words"), BAD_LINES,
                         ids=[f"{i}-{case[1] or 'line'}" for i, case in enumerate(BAD_LINES)])
def test_a_bad_line_is_refused_naming_file_line_and_field(line: Any, field: str | None,
                                                          words: str) -> None:
    with pytest.raises(InputError) as caught:
        parse(line, line_no=7)

    err = caught.value
    assert (err.file, err.line, err.field) == (FILE, 7, field)
    assert words in err.message
    assert str(err).startswith(f"{FILE}:7:")
    if field:
        assert f"field '{field}'" in str(err)


@pytest.mark.parametrize("body", [{}, {"inputs": "x"}, {"messages": MESSAGES}])
def test_an_embeddings_line_without_input_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(InputError) as caught:
        parse({"custom_id": "e", "body": body}, endpoint=Endpoint.EMBEDDINGS)
    problems = getattr(caught.value, "problems", [caught.value])
    assert {(p.line, p.field, p.message) for p in problems} >= {(7, "body.input", "is required")}


def test_an_embeddings_line_must_not_point_at_the_chat_url() -> None:
    with pytest.raises(InputError) as caught:
        parse({"custom_id": "e", "url": "/v1/chat/completions", "body": {"input": "x"}},
              endpoint=Endpoint.EMBEDDINGS)
    assert caught.value.field == "url"


def test_the_neutral_form_is_accepted() -> None:
    body = {"messages": MESSAGES, "max_tokens": 200, "temperature": 0.2}

    req = parse({"custom_id": "q-1", "body": body}, index=3)

    assert req == RequestLine(index=3, custom_id="q-1", body=body)


def test_an_openai_batch_line_is_accepted_unchanged() -> None:
    body = {"model": MODEL, "messages": [{"role": "system", "content": "Be brief."}, *MESSAGES],
            "max_tokens": 50, "response_format": {"type": "json_object"}}
    line = {"custom_id": "request-1", "method": "POST", "url": "/v1/chat/completions",
            "body": body}

    req = parse(line)

    # The model is the job's; everything else is kept as given.
    assert req.body == {k: v for k, v in body.items() if k != "model"}
    assert req.custom_id == "request-1" and req.native is None
    assert line["body"] == body  # the caller's object is not modified


def test_an_openai_embeddings_line_is_accepted() -> None:
    req = parse({"custom_id": "e", "method": "POST", "url": "/v1/embeddings",
                 "body": {"model": MODEL, "input": ["a", "b"]}}, endpoint=Endpoint.EMBEDDINGS)
    assert req.body == {"input": ["a", "b"]}


def test_a_missing_custom_id_is_named_after_the_line() -> None:
    req = parse({"body": {"messages": MESSAGES}}, line_no=42, index=40)
    assert (req.custom_id, req.index) == ("line-42", 40)


def test_a_native_body_is_passed_through_untouched() -> None:
    native = {"contents": [{"parts": [{"text": "hi"}]}], "model": "anything", "stream": True}

    req = parse({"custom_id": "n", "native": native})

    assert req.native == native and req.body is None


@pytest.mark.parametrize("message", [
    {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                          "function": {"name": "f", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "42"},
    {"role": "developer", "content": "rules"},
    {"role": "user", "content": [{"type": "text", "text": "multi-part"}]},
])
def test_every_chat_role_and_tool_calls_without_content_are_accepted(
        message: dict[str, Any]) -> None:
    req = parse({"custom_id": "t", "body": {"messages": [*MESSAGES, message]}})
    assert req.body is not None and req.body["messages"][-1] == message


def test_stream_false_is_harmless() -> None:
    req = parse({"custom_id": "s", "body": {"messages": MESSAGES, "stream": False}})
    assert req.body == {"messages": MESSAGES, "stream": False}


def test_a_trailing_newline_and_windows_line_ending_are_fine() -> None:
    text = json.dumps({"custom_id": "w", "body": {"messages": MESSAGES}}) + "\r\n"
    assert parse(text).custom_id == "w"
