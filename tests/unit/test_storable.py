"""Making a result storable: text the databases cannot hold is escaped, values they cannot
represent fail a success with ``result_unstorable`` naming the line and the reason."""

from __future__ import annotations

import json
import random

import pytest

from llmbatch.domain.models import ItemError, ItemResult, Usage
from llmbatch.domain.states import ItemStatus
from llmbatch.domain.storable import (
    MAX_JSON_DEPTH,
    MAX_TOKEN_COUNT,
    escape_text,
    is_plain_json_text,
    storable_result,
    unstorable_result,
)


def success(response: object = None, *, text: str | None = "fine", usage: Usage | None = None,
            line: int | None = 7) -> ItemResult:
    return ItemResult(provider_key="k-1", status=ItemStatus.SUCCEEDED,
                      response=response if response is not None else {"text": text},  # type: ignore[arg-type]
                      output_text=text, finish_reason="stop",
                      usage=usage or Usage(input_tokens=3, output_tokens=4), line=line)


def failure(response: object, *, usage: Usage | None = None) -> ItemResult:
    return ItemResult(provider_key="k-2", status=ItemStatus.FAILED,
                      response=response,  # type: ignore[arg-type]
                      usage=usage, line=9,
                      error=ItemError(type="server_error", message="try later",
                                      code="server_error", retryable=True))


# ---- text ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "escaped"), [
    ("a\x00b", "a\ufffdb"),
    ("\x00\x00", "\ufffd\ufffd"),
    ("high \ud83d alone", "high \ufffd alone"),
    ("low \udc00 alone", "low \ufffd alone"),
    ("é\x00ü", "é\ufffdü"),
    ("\udbff\udfff", "\ufffd\ufffd"),  # two halves in a str are not one character
])
def test_nul_and_lone_surrogates_become_replacement_characters(raw: str, escaped: str) -> None:
    assert escape_text(raw) == escaped
    escape_text(raw).encode("utf-8")  # encodable now


@pytest.mark.parametrize("clean", ["", "plain ascii", "émoji 😀 and 中文", "line\u2028sep"])
def test_clean_text_is_returned_as_the_same_object(clean: str) -> None:
    assert escape_text(clean) is clean


def test_escaping_any_text_leaves_something_every_database_stores() -> None:
    rng = random.Random(7)
    alphabet = ["\x00", "\ud800", "\udfff", "a", "é", "😀", "\ufffd", "\\"]
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        out = escape_text(text)
        assert "\x00" not in out
        out.encode("utf-8")
        assert len(out) == len(text)  # one replacement per bad code point: nothing shifts


def test_a_clean_result_passes_unchanged() -> None:
    result = success({"choices": [{"message": {"content": "fine"}}], "n": 10**30})
    stored = storable_result(result)
    assert stored.result is result
    assert not stored.escaped and stored.problem is None


def test_text_in_every_field_is_escaped_and_the_success_is_kept() -> None:
    result = success({"text": "a\x00b", "nested": [{"k\ud800": "\x00"}], "n": 1.5},
                     text="a\x00b")
    stored = storable_result(result)
    assert stored.escaped and stored.problem is None
    clean = stored.result
    assert clean.status is ItemStatus.SUCCEEDED
    assert clean.output_text == "a\ufffdb"
    assert clean.response == {"text": "a\ufffdb", "nested": [{"k\ufffd": "\ufffd"}], "n": 1.5}
    assert clean.usage == result.usage and clean.line == 7
    json.dumps(clean.response).encode("utf-8")


def test_error_fields_are_escaped_and_the_failure_keeps_its_meaning() -> None:
    result = ItemResult(provider_key="k", status=ItemStatus.FAILED, line=2, error=ItemError(
        type="bad\x00type", message="echo: \ud800", code="c\x00", retryable=True))
    clean = storable_result(result).result
    assert clean.error == ItemError(type="bad\ufffdtype", message="echo: \ufffd",
                                    code="c\ufffd", retryable=True)
    assert clean.status is ItemStatus.FAILED


# ---- values that cannot be represented ------------------------------------------------------

@pytest.mark.parametrize(("usage", "reason"), [
    (Usage(input_tokens=10**20), "usage.input_tokens is 100000000000000000000, outside "
                                 f"0..{MAX_TOKEN_COUNT}"),
    (Usage(output_tokens=MAX_TOKEN_COUNT + 1), "usage.output_tokens is 2147483648"),
    (Usage(cached_tokens=-1), "usage.cached_tokens is -1"),
])
def test_a_token_count_outside_its_column_fails_the_success_naming_line_and_count(
        usage: Usage, reason: str) -> None:
    stored = storable_result(success(usage=usage))
    result = stored.result
    assert result.status is ItemStatus.FAILED
    assert result.error is not None
    assert result.error.as_dict()["code"] == "result_unstorable"
    assert result.error.type == "result_unstorable" and result.error.retryable is False
    assert result.error.message.startswith(f"result line 7: {reason}")
    assert result.usage is None and result.response is None and result.output_text is None
    assert stored.problem is not None and reason in stored.problem


def test_the_largest_token_count_is_still_stored() -> None:
    usage = Usage(input_tokens=MAX_TOKEN_COUNT)
    assert storable_result(success(usage=usage)).result.status is ItemStatus.SUCCEEDED


@pytest.mark.parametrize(("response", "reason"), [
    ({"data": [{"embedding": [0.1, float("nan")]}]},
     "response.data[0].embedding[1] is nan, which JSON storage refuses"),
    ({"x": float("inf")}, "response.x is inf"),
    ({"odd key": [float("-inf")]}, "response['odd key'][0] is -inf"),
    ({"t": (1, 2)}, "response.t is a tuple value, not JSON"),
    ({"s": {1, 2}}, "response.s is a set value, not JSON"),
])
def test_a_response_value_json_storage_refuses_fails_the_success_with_its_path(
        response: object, reason: str) -> None:
    result = storable_result(success(response)).result
    assert result.status is ItemStatus.FAILED and result.error is not None
    assert result.error.message.startswith(f"result line 7: {reason}")
    assert result.usage == Usage(input_tokens=3, output_tokens=4)  # valid usage is kept


def test_json_nested_deeper_than_the_limit_is_refused_and_at_the_limit_kept() -> None:
    def nested(depth: int) -> object:
        value: object = "leaf"
        for _ in range(depth):
            value = [value]
        return value

    kept = storable_result(success({"v": nested(MAX_JSON_DEPTH - 1)}))
    assert kept.result.status is ItemStatus.SUCCEEDED
    refused = storable_result(success({"v": nested(MAX_JSON_DEPTH)})).result
    assert refused.error is not None
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in refused.error.message


def test_integers_of_any_size_in_the_response_are_kept() -> None:
    result = success({"seed": 10**40, "neg": -(10**25)})
    assert storable_result(result).result is result


def test_a_failure_keeps_its_own_error_and_loses_only_what_cannot_be_stored() -> None:
    stored = storable_result(failure({"detail": float("nan")},
                                     usage=Usage(output_tokens=10**20)))
    result = stored.result
    assert result.status is ItemStatus.FAILED
    assert result.error == ItemError(type="server_error", message="try later",
                                     code="server_error", retryable=True)
    assert result.response is None and result.usage is None
    assert stored.problem == "response.detail is nan, which JSON storage refuses"


def test_an_unstorable_result_without_a_line_says_so() -> None:
    result = unstorable_result(success(line=None), "the database refused it: too long")
    assert result.error is not None
    assert result.error.message == "result: the database refused it: too long"
    assert result.line is None and result.usage is None


def test_the_reason_itself_is_escaped() -> None:
    result = unstorable_result(success(), "echoed \x00 back")
    assert result.error is not None and result.error.message == "result line 7: echoed \ufffd back"


@pytest.mark.parametrize("numbers", [
    [1e308, 1e308, -1.5],  # the sum overflows, every number is finite
    [0.5, 10**400],  # an integer no float can hold
    [0.5, "text", None, {"k": 1}],
], ids=["sum-overflows", "huge-int", "mixed"])
def test_lists_starting_with_a_float_are_checked_whatever_follows(numbers: list[object]) -> None:
    result = success({"v": numbers})
    assert storable_result(result).result is result


def random_json(rng: random.Random, depth: int = 0) -> object:
    leaves: list[object] = ["ok", "é", "a\x00", "\ud800x", 1, 10**30, 0.5, float("nan"),
                            float("inf"), True, None]
    roll = rng.random()
    if depth < 4 and roll < 0.3:
        return {rng.choice(["k", "k\x00", "é", "\udc00"]) + str(i): random_json(rng, depth + 1)
                for i in range(rng.randint(0, 4))}
    if depth < 4 and roll < 0.5:
        if rng.random() < 0.5:
            return [rng.choice([0.25, 1.0, float("nan")]) for _ in range(rng.randint(1, 6))]
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return rng.choice(leaves)


def test_whatever_a_response_holds_what_is_kept_can_be_stored_and_clean_ones_are_untouched(
        ) -> None:
    rng = random.Random(11)
    for _ in range(2000):
        response = {"body": random_json(rng)}
        original = json.dumps(response)  # NaN allowed: a repr to compare with afterwards
        stored = storable_result(success(response))
        assert json.dumps(response) == original  # the input is never changed in place
        result = stored.result
        if result.status is ItemStatus.SUCCEEDED:
            text = json.dumps(result.response, allow_nan=False, ensure_ascii=False)
            text.encode("utf-8")
            assert "\\u0000" not in text
            if not stored.escaped:
                assert result.response is response
        else:
            assert stored.problem is not None and result.response is None


# ---- the byte scan that lets clean lines skip the walk -------------------------------------

def _line(value: object) -> bytes:
    return json.dumps({"custom_id": "k", "response": value}, ensure_ascii=True).encode()


@pytest.mark.parametrize("raw", [
    _line("nul \x00 inside"),
    _line("lone \ud800 surrogate"),
    _line("paired \U0001f600 as escapes"),  # escaped as a surrogate pair: judged the long way
    b'{"custom_id":"k","response":{"v":NaN}}',
    b'{"custom_id":"k","response":{"v":-Infinity}}',
    _line(2**64),
    _line(json.loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)),
    _line({"usage": {"tokens": 10**20}}),
])
def test_a_line_that_may_need_escaping_or_refusing_is_never_called_plain(raw: bytes) -> None:
    assert not is_plain_json_text(raw)


@pytest.mark.parametrize("raw", [
    _line({"text": "plain words, digits 1234567890123456789 and \u00e9 escaped"}),
    json.dumps({"text": "caf\u00e9 \u2028 raw UTF-8"}, ensure_ascii=False).encode(),
    _line([[0.1, -2.5e-07] * 50]),
])
def test_ordinary_lines_are_plain(raw: bytes) -> None:
    assert is_plain_json_text(raw)


def test_a_plain_line_is_stored_exactly_as_the_full_check_would_store_it() -> None:
    """For lines the scan calls plain, the shortcut and the full check agree, over many
    random responses (the shortcut may only ever skip work, never change the outcome)."""
    rng = random.Random(13)
    alphabet = ["a", "\u00e9", "1", " ", "\"", "\\", "N", "\x00", "\ud800", "{", "["]
    agreed = plain = 0
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        value = {"t": text, "n": rng.choice([1, 2**40, 2**70, 0.5]), "l": [text, {"x": text}]}
        raw = _line(value)
        parsed = json.loads(raw)["response"]
        result = success(parsed, text=text)
        full = storable_result(result)
        if is_plain_json_text(raw):
            plain += 1
            fast = storable_result(result.at_line(7, plain=True))
            assert fast.result._replace(plain=False) == full.result
            assert fast.problem == full.problem
            assert not full.escaped
        agreed += 1
    assert plain > 100, f"only {plain} of {agreed} random lines were plain: the test tests little"
