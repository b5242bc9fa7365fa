"""``decode_storable_line`` (orjson where it judges a line as the careful parser would, and no
storable walk when the text proves it clean) gives what ``decode_json_line`` then
``storable_problem`` give: the same value, or the same refusal in the same words."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmbatch.domain.input_limits import (
    MAX_DEPTH,
    decode_json_line,
    decode_storable_line,
    storable_problem,
)
from llmbatch.errors import InputError

LINES = [
    '{"custom_id": "a", "body": {"messages": [{"role": "user", "content": "Hi"}]}}',
    '{"a": 1, "a": 2}',
    '{"n": 9223372036854775807, "m": -9223372036854775808}',
    '{"n": 9223372036854775808}',
    '{"n": 18446744073709551616}',
    '{"n": -9223372036854775809}',
    '{"n": 1234567890123456789012345}',
    '{"x": 1e400}',
    '{"x": -1E+999}',
    '{"x": 1e308, "y": 0.1111111111111111111111}',
    '{"x": NaN}',
    '{"x": Infinity}',
    '{"s": "nul \\u0000 here"}',
    '{"s\\u0000": 1}',
    '{"s": "pair \\ud83d\\ude00"}',
    '{"s": "lone \\ud800"}',
    '{"s": "escaped backslash \\\\u0000"}',
    '{"s": "brackets [[[[{{{{ in text"}',
    "[" * MAX_DEPTH + "]" * MAX_DEPTH,
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
    "[" * 5000 + "]" * 5000,
    '{"a": [1, 2,]}',
    "not json",
    "01",
    '"\\x"',
    '{"s": "caf\u00e9 \u2028"}',
    "\ufeff{}",
    '{"lone": "\ud800"}',  # a surrogate in the text itself, not an escape
]


def careful(text: str) -> Any:
    value = decode_json_line(text)
    problem = storable_problem(value)
    if problem is not None:
        raise problem
    return value


def outcome(decode: Any, text: str) -> tuple[str, Any]:
    try:
        return "value", json.dumps(decode(text), sort_keys=True)
    except InputError as exc:
        return "refused", (exc.message, exc.field)


@pytest.mark.parametrize("text", LINES)
def test_fast_path_agrees_with_the_careful_parser(text: str) -> None:
    assert outcome(decode_storable_line, text) == outcome(careful, text)


def test_integers_keep_their_exact_value() -> None:
    assert decode_storable_line('{"n": 922337203685477580}')["n"] == 922337203685477580
    assert type(decode_storable_line('{"x": 1.0}')["x"]) is float
