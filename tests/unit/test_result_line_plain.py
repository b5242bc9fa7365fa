"""Result lines read for storing (issue 13): the plain verdict taken from the strict parser
(``jsonl.read_result_line``, ``json_text.strict_loads``)."""

from __future__ import annotations

import orjson
import pytest

from llmbatch.domain.models import ItemResult
from llmbatch.domain.storable import MAX_JSON_DEPTH, is_plain_json_text, is_plain_strict_json
from llmbatch.json_text import ORJSON_MAX_DEPTH, dumps, dumps_shallow, strict_loads
from llmbatch.providers.anthropic import wire as anthropic_wire
from llmbatch.providers.jsonl import parse_result_stream, read_result_line
from llmbatch.providers.openai import wire as openai_wire


@pytest.mark.parametrize("raw", [
    b'{"a":"x"}', b'{"a":"\\u0000"}', b'{"a":"\\ud83d\\ude00"}', b'{"n":123456789}',
    b'{"t":"NaN Infinity"}',
])
def test_the_strict_verdict_never_calls_plain_what_the_full_scan_refuses(raw: bytes) -> None:
    strict_loads(raw)  # the precondition: the strict parser read it
    if is_plain_json_text(raw):
        assert is_plain_strict_json(raw)
    if is_plain_strict_json(raw):
        assert b"\\u0000" not in raw


@pytest.mark.parametrize("raw", [
    b'{"a":"x"}', b'{"a":"\\u0000"}', b'{"a":"x\\n"}', b'{"a":"\\\\u0000"}',
])
def test_the_plain_verdict_is_no_nul_escape(raw: bytes) -> None:
    assert is_plain_strict_json(raw) is (b"\\u0000" not in raw)


def test_the_writer_of_plain_results_refuses_what_is_deeper_than_storable() -> None:
    """The plain verdict leaves the depth to the writer: ``orjson`` refuses what is nested
    deeper than ``ORJSON_MAX_DEPTH``, under ``MAX_JSON_DEPTH`` (a dependency upgrade that
    changed it would make plain results skip the depth check)."""
    def nested(depth: int) -> list[object]:
        value: list[object] = []
        for _ in range(depth - 1):
            value = [value]
        return value

    assert ORJSON_MAX_DEPTH < MAX_JSON_DEPTH
    assert dumps_shallow(nested(ORJSON_MAX_DEPTH)) is not None
    assert dumps_shallow(nested(ORJSON_MAX_DEPTH + 1)) is None


@pytest.mark.parametrize(("depth", "stored"), [(10, True), (MAX_JSON_DEPTH - 1, True),
                                               (MAX_JSON_DEPTH + 5, False)])
def test_a_plain_result_too_deep_to_store_fails_and_one_just_shallow_enough_is_kept(
        depth: int, stored: bool) -> None:
    from llmbatch.domain.storable import storable_result

    body = b'{"choices":[{"message":{"content":"hi"}}],"deep":' + b"[" * (depth - 2) + \
        b"]" * (depth - 2) + b"}"
    line = b'{"custom_id":"a","error":null,"response":{"status_code":200,"body":' + body + b"}}"
    (result,) = parse_result_stream([line], openai_wire.parse_result_line, provider="openai")
    assert result.plain
    kept = storable_result(result, dumps_shallow)
    assert (kept.problem is None) is stored
    if stored:
        assert kept.result.status == "succeeded"
        text = kept.result.response_json or dumps(kept.result.response)
        assert strict_loads(text) == strict_loads(body)
    else:
        assert kept.result.status == "failed" and "nested deeper" in (kept.problem or "")


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


@pytest.mark.parametrize("frames", [0, 300])
def test_a_line_deeper_than_the_stack_leaves_room_for_reads_the_same_from_any_caller(
        frames: int) -> None:
    """The strict parser stops at the interpreter's recursion limit, counted from its
    caller's depth; a line it cannot finish is read with ``orjson``'s fixed limit instead,
    so a success nested 900 deep fails as unstorable, its usage kept, however deep the
    stack was (not as a garbled line, retried and billed again)."""
    from llmbatch.domain.storable import UNSTORABLE_CODE, storable_result

    depth = 900
    body = (b'{"usage":{"prompt_tokens":5,"completion_tokens":3},"x":' + b"[" * depth
            + b"]" * depth + b"}")
    raw = b'{"custom_id":"k","response":{"status_code":200,"body":' + body + b"}}"

    def deeper(left: int) -> ItemResult | None:
        return openai_wire.parse_result_line(raw, 1) if left == 0 else deeper(left - 1)

    result = deeper(frames)
    assert result is not None and result.status == "succeeded"
    stored = storable_result(result, dumps_shallow)
    assert stored.result.error is not None and stored.result.error.code == UNSTORABLE_CODE
    assert stored.result.usage is not None and stored.result.usage.input_tokens == 5
