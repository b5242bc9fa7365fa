"""Result lines read for storing (issue 13): the plain verdict taken from the strict parser
(``jsonl.read_result_line``, ``json_text.strict_loads``)."""

from __future__ import annotations

import orjson
import pytest

from llmbatch.domain.storable import MAX_JSON_DEPTH, is_plain_json_text, is_plain_strict_json
from llmbatch.json_text import strict_loads
from llmbatch.providers.anthropic import wire as anthropic_wire
from llmbatch.providers.jsonl import parse_result_stream, read_result_line
from llmbatch.providers.openai import wire as openai_wire


@pytest.mark.parametrize("raw", [
    b'{"a":"x"}', b'{"a":"\\u0000"}', b'{"a":"\\ud83d\\ude00"}', b'{"n":123456789}',
    b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, b'{"t":"NaN Infinity"}',
])
def test_the_strict_verdict_never_calls_plain_what_the_full_scan_refuses(raw: bytes) -> None:
    strict_loads(raw)  # the precondition: the strict parser read it
    if is_plain_json_text(raw):
        assert is_plain_strict_json(raw)
    if is_plain_strict_json(raw):
        assert b"\\u0000" not in raw and raw.count(b"[") < MAX_JSON_DEPTH


@pytest.mark.parametrize("raw", [
    b'{"a":"x"}', b'{"a":"\\u0000"}', b'{"a":"x\\n"}', b"[" * (MAX_JSON_DEPTH - 1) + b"]" * 300,
    b"[{" * (MAX_JSON_DEPTH // 2) + b"x", b"{" * (MAX_JSON_DEPTH - 1),
])
def test_the_plain_verdict_is_no_nul_escape_and_fewer_brackets_than_the_depth(
        raw: bytes) -> None:
    expected = (b"\\u0000" not in raw
                and raw.count(b"{") + raw.count(b"[") < MAX_JSON_DEPTH)
    assert is_plain_strict_json(raw) is expected


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
    read = read_result_line(b'{"custom_id":"c","v":NaN}')
    assert read is not None and read.obj is not None and not read.plain


@pytest.mark.parametrize("number", [b"9" * 25, b"-" + b"9" * 19, b"-9223372036854775809",
                                    b"18446744073709551616"])
def test_an_integer_of_any_size_is_read_exactly_and_stays_plain(number: bytes) -> None:
    """``orjson`` read an integer past 64 bits as a float (and a 19-digit one below -2^63,
    which the old 20-digit scan let through); the strict parser reads it exactly."""
    read = read_result_line(b'{"custom_id":"c","v":' + number + b"}")
    assert read is not None and read.obj is not None and read.plain
    assert read.obj["v"] == int(number)


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
    """``is_plain_strict_json`` relies on the strict parser refusing these (a dependency
    upgrade that changed it would make the verdict wrong)."""
    with pytest.raises(ValueError):
        strict_loads(raw)
