"""Result lines read for storing (issue 13): the plain verdict taken from the strict parser
(``jsonl.read_result_line``)."""

from __future__ import annotations

import orjson
import pytest

from llmbatch.domain.storable import (
    MAX_JSON_DEPTH,
    has_long_digit_run,
    is_plain_json_text,
    is_plain_strict_json,
    plain_strict_scan,
)
from llmbatch.providers.anthropic import wire as anthropic_wire
from llmbatch.providers.jsonl import parse_result_stream, read_result_line
from llmbatch.providers.openai import wire as openai_wire


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


@pytest.mark.parametrize("raw", [
    b'{"a":"x"}', b'{"a":"\\u0000"}', b'{"n":' + b"1" * 20 + b"}", b'{"n":' + b"9" * 19 + b"}",
    b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, b"[{" * (MAX_JSON_DEPTH // 2) + b"x",
    b"{" * (MAX_JSON_DEPTH - 1),
])
def test_the_one_pass_scan_answers_as_the_two_checks_do(raw: bytes) -> None:
    assert plain_strict_scan(raw) == (has_long_digit_run(raw), is_plain_strict_json(raw))


def test_a_success_is_numbered_by_its_parser_and_streamed_with_its_verdict() -> None:
    openai_line = orjson.dumps({"custom_id": "a", "error": None, "response": {
        "status_code": 200, "body": {"choices": [{"message": {"content": "hi"}}]}}})
    anthropic_line = orjson.dumps({"custom_id": "b", "result": {"type": "succeeded", "message": {
        "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn"}}})
    escaped = orjson.dumps({"custom_id": "c", "result": {"type": "succeeded", "message": {
        "content": [{"type": "text", "text": "a\x00b"}]}}})
    openai = list(parse_result_stream([b"\n" + openai_line], openai_wire.parse_result_line,
                                      provider="openai"))
    anthropic = list(parse_result_stream([anthropic_line + b"\n" + escaped],
                                         anthropic_wire.parse_result_line, provider="anthropic"))
    assert [(r.provider_key, r.line, r.plain) for r in openai + anthropic] == [
        ("a", 2, True), ("b", 1, True), ("c", 2, False)]


def test_a_line_only_the_lenient_parser_reads_is_not_plain() -> None:
    for raw in (b'{"custom_id":"c","v":NaN}', b'{"custom_id":"c","v":' + b"9" * 25 + b"}"):
        read = read_result_line(raw)
        assert read is not None and read.obj is not None and not read.plain


def test_text_held_for_a_response_is_dropped_when_the_response_is_escaped() -> None:
    from llmbatch.domain.models import ItemResult
    from llmbatch.domain.states import ItemStatus
    from llmbatch.domain.storable import storable_result

    result = ItemResult("k", ItemStatus.SUCCEEDED, {"t": "a\x00b"},
                        response_json='{"t":"a\\u0000b"}')
    stored = storable_result(result)
    assert stored.escaped and stored.result.response == {"t": "a\ufffdb"}
    assert stored.result.response_json is None


@pytest.mark.parametrize("raw", [
    b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}', b'{"a":1e309}',
    b'{"a":"\\ud800"}', b'{"a":"\\udc00"}', b'{"a":"\\ud800\\u0041"}',
    b'{"a":"\xed\xa0\x80"}', b'{"a":"x\x00"}', b'{"a":"x\x1f"}',
])
def test_the_strict_parser_refuses_what_the_plain_verdict_no_longer_scans_for(
        raw: bytes) -> None:
    """``is_plain_strict_json`` relies on ``orjson`` refusing these (a dependency upgrade
    that changed it would make the verdict wrong)."""
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)
