"""Result lines read for storing (issue 13): a response kept as the bytes the provider sent,
and the plain verdict taken from the strict parser."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmbatch.domain.storable import MAX_JSON_DEPTH, is_plain_json_text, is_plain_strict_json
from llmbatch.providers.jsonl import member_text, read_result_line
from llmbatch.providers.openai.wire import parse_result_line


def line(body: Any, *, dumps: Any = json.dumps, **top: Any) -> bytes:
    return dumps({"id": "batch_req_1", "custom_id": "c-1",
                  "response": {"status_code": 200, "request_id": "req_1", "body": body},
                  "error": None, **top}).encode()


def sliced(raw: bytes) -> str | None:
    return member_text(raw, orjson.loads(raw), "response", "body")


@pytest.mark.parametrize("raw", [
    line({"a": "}", "b": [1, {"c": "{"}]}),
    line({"a": "é"}, dumps=lambda o: json.dumps(o, ensure_ascii=False)),
    line({"a": 1}, dumps=lambda o: json.dumps(o, separators=(",", ":"))),
    line({}),
    b' { "custom_id" : "c" , "response" : { "body" : { "q" : [ ] } } , "error" : null } \r',
])
def test_the_body_is_sliced_exactly_as_sent(raw: bytes) -> None:
    text = sliced(raw)
    assert text is not None and text.encode() in raw
    assert orjson.loads(text) == orjson.loads(raw)["response"]["body"]


@pytest.mark.parametrize("raw", [
    line({"a": "é"}),  # \u escapes: the key could have been written escaped
    line({"body": {"x": 1}}),  # the key's token twice
    line({"a": 1}, top_key="c\"body"),  # ... also inside a string
    line({"a": 1}, extra=1),  # a member after the response that is not null
    json.dumps({"custom_id": "c", "response": {"body": {"a": 1}, "status_code": 200},
                "error": None}).encode(),  # the body not last
    json.dumps({"custom_id": "c", "response": {"body": [1]}, "error": None}).encode(),
])
def test_a_layout_that_leaves_any_doubt_is_not_sliced(raw: bytes) -> None:
    assert sliced(raw) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=8)
    | st.sampled_from(["body", '"body"', "}", "{", "\\", '"']),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["body", "a", "error", "x\"body"]) | st.text(max_size=4),
                      inner, max_size=3),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(st.text(max_size=5) | st.just("body"), json_values, max_size=4),
       before=st.dictionaries(st.sampled_from(["id", "custom_id", "x"]), json_values,
                              max_size=2),
       after=st.dictionaries(st.sampled_from(["error", "z", "body"]), st.none() | json_values,
                             max_size=2),
       ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_a_slice_when_taken_is_always_the_body(body: dict[str, Any], before: dict[str, Any],
                                                after: dict[str, Any], ascii_only: bool,
                                                indent: int | None) -> None:
    obj = {**before, "response": {"status_code": 200, "body": body}, **after}
    raw = json.dumps(obj, ensure_ascii=ascii_only, indent=indent).encode()
    text = sliced(raw)
    if text is not None:
        assert json.loads(text) == body


def test_an_openai_success_keeps_its_body_as_sent_only_from_a_plain_line() -> None:
    raw = line({"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
    result = parse_result_line(raw)
    assert result is not None and result.plain and result.response_json is not None
    assert orjson.loads(result.response_json) == result.response
    nul = line({"choices": [{"message": {"content": "a\u0000b"}}]})
    escaped = parse_result_line(nul)
    assert escaped is not None and not escaped.plain and escaped.response_json is None


@pytest.mark.parametrize("raw", [
    b'{"a":"x"}', b'{"a":"\\u0000"}', b'{"a":"\\ud83d\\ude00"}', b'{"n":123456789}',
    b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, b'{"t":"NaN Infinity"}',
])
def test_the_strict_verdict_never_calls_plain_what_the_full_scan_refuses(raw: bytes) -> None:
    orjson.loads(raw)  # the precondition: the strict parser read it
    if is_plain_json_text(raw):
        assert is_plain_strict_json(raw)
    if is_plain_strict_json(raw):
        assert b"\\u0000" not in raw and raw.count(b"[") < MAX_JSON_DEPTH


def test_a_line_only_the_lenient_parser_reads_is_not_plain() -> None:
    for raw in (b'{"custom_id":"c","v":NaN}', b'{"custom_id":"c","v":' + b"9" * 25 + b"}"):
        read = read_result_line(raw)
        assert read is not None and read.obj is not None and not read.plain
