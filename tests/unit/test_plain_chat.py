"""The typed pass over plain chat lines (``domain.plain_chat``) against the full checks it
stands in for: a line it takes is one ``parse_request_line`` takes, with the same request and
the same estimate; and an intake with it gives exactly what the full checks give (the lines
accepted, what is stored and sent of each, every problem in the same words), for every
built-in adapter, strict or not about ``body.model``. A difference is a line the typed pass
must leave to the full checks."""

from __future__ import annotations

import io
import json
import math
from decimal import Context, Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmbatch.config import ProviderConfig
from llmbatch.domain.input_limits import MAX_CUSTOM_ID_CHARS, MAX_OUTPUT_TOKENS
from llmbatch.domain.models import Endpoint
from llmbatch.domain.plain_chat import PlainChatReader
from llmbatch.domain.requests import parse_request_line
from llmbatch.domain.tokens import estimate_tokens
from llmbatch.errors import InputError
from llmbatch.providers.anthropic import AnthropicProvider
from llmbatch.providers.base import BatchProvider
from llmbatch.providers.gemini import GeminiProvider
from llmbatch.providers.openai import OpenAIProvider
from llmbatch.service_layer.intake import Intake

MODEL = "gpt-4o-mini"
HI = [{"role": "user", "content": "Hi"}]


def line(body: Any, **extra: Any) -> str:
    return json.dumps({"custom_id": "c", "body": body, **extra})


# Each field's values around the edges of what the typed pass takes, and past them.
FIELD_VALUES: dict[str, list[Any]] = {
    "max_tokens": [1, 120, MAX_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS + 1, 0, -1, 5.0, 5.5, True,
                   None, "5", 2**63, 16_385, 200_000],
    "max_completion_tokens": [1, 64, 0, None, 2.0, 129_000],
    "temperature": [0, 0.2, 1, 2, 2.0001, -0.1, None, "0.2", True, 1e400],
    "top_p": [0, 0.5, 1, 1.5, None],
    "n": [1, 128, 0, 129, None],
    "seed": [0, -5, 2**63 - 1, 2**63, None, 1.5],
    "presence_penalty": [-2, 0, 2, 2.5, None],
    "frequency_penalty": [-2.0, 0.5, -3],
    "logprobs": [True, False, None, "true"],
    "top_logprobs": [0, 20, 21, None],
    "store": [True, False, 1],
    "user": ["u-1", "", 5, None],
    "model": [MODEL, "gpt-4o", None, 5, ""],
    "stream": [False, True, None],
    "stop": ["\n", ["a", "b"]],
    "response_format": [{"type": "json_object"}],
    "unknown_field": [1],
}
MESSAGES: list[Any] = [
    HI,
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}],
    [{"role": "developer", "content": "d"}, {"role": "assistant", "content": "a", "name": "x"},
     {"role": "user", "content": "u", "name": "data:nm"}],
    [{"role": "user", "content": "data:image/png;base64,AAAA"}],
    [{"role": "user", "content": "é ünïcödé 😀 " * 3}],
    [{"role": "user", "content": "x" * 600_000}],  # past gpt-4o-mini's context window
    # "null" in a line sends the whole line to the standard encoder (``compact_json``), whose
    # floats differ from orjson's (1e-07, not 1e-7): a spliced line must say the same.
    [{"role": "user", "content": "null or none?"}],
    [],
    [{"role": "user", "content": ""}],
    [{"role": "user", "content": " "}],
    [{"role": "user", "content": None}],
    [{"role": "user", "content": 5}],
    [{"role": "user", "content": [{"type": "text", "text": "parts"}]}],
    [{"role": "user", "content": [{"type": "text", "text": ""}]}],
    [{"role": "tool", "content": "t", "tool_call_id": "c1"}],
    [{"role": "assistant", "content": None, "tool_calls": []}],
    [{"role": "User", "content": "x"}],
    [{"role": "user", "content": "x", "cache_control": {"type": "ephemeral"}}],
    [{"role": "user"}],
    [{"content": "x"}],
    ["not an object"],
    "not a list",
]
IDS: list[Any] = ["c", "a" * MAX_CUSTOM_ID_CHARS, "a" * (MAX_CUSTOM_ID_CHARS + 1),
                  "😀" * MAX_CUSTOM_ID_CHARS, "", 5, None, "with space/and:colon"]

def halfway(value: float) -> str:
    """The decimal exactly between ``value`` and the next double up."""
    exact = Context(prec=1000)  # both doubles and their mean, without rounding
    return format(exact.divide(exact.add(Decimal(value),
                                         Decimal(math.nextafter(value, math.inf))), 2), "f")


CORPUS: list[str | bytes] = [
    *(line({"messages": m}) for m in MESSAGES),
    *(line({"messages": HI, key: value}) for key, values in FIELD_VALUES.items()
      for value in values),
    *(json.dumps({"custom_id": cid, "body": {"messages": HI}}) for cid in IDS),
    json.dumps({"body": {"messages": HI}}),  # the id is the line's number
    line({"messages": HI}, method="POST", url="/v1/chat/completions"),
    line({"messages": HI}, method="GET"),
    line({"messages": HI}, url="/v1/embeddings"),
    line({"messages": HI}, native={"messages": HI}),
    json.dumps({"custom_id": "n", "native": {"messages": HI, "max_tokens": 5}}),
    line({"messages": HI}, extra=1),
    line({"messages": [{"role": "user", "content": "null"}], "temperature": 1e-07,
          "top_p": 1e-05}),
    line({"messages": HI, "temperature": 1e-07}),
    # Halfway between two doubles, padded past ~768 digits: orjson rounds these up, the full
    # path's careful parser (and msgspec) to even; at 2.0 and 1.0 that is the range's edge.
    *(line({"messages": HI}).replace("}}", f', "{key}": {halfway(edge)}{"0" * 760}}}}}')
      for key, edge in (("temperature", 1.0), ("temperature", 2.0), ("top_p", 1.0))),
    line({"messages": HI, "max_tokens": 5}).replace('"max_tokens": 5',
                                                      '"max_tokens": 5, "max_tokens": 0'),
    '{"custom_id": "dup", "custom_id": "c2", "body": {"messages": [{"role": "user", '
    '"content": "Hi"}]}}',
    '{"custom_id": "e", "body": {"messages": [{"role": "user", "content": "\\u00e9\\ud83d'
    '\\ude00"}]}}',
    '{"custom_id": "nul", "body": {"messages": [{"role": "user", "content": "a\\u0000b"}]}}',
    '{"custom_id": "lone", "body": {"messages": [{"role": "user", "content": "\\ud800"}]}}',
    '{"custom_id": "big", "body": {"messages": [{"role": "user", "content": "x"}], '
    '"max_tokens": 99999999999999999999999}}',
    '{"custom_id": "nan", "body": {"messages": [{"role": "user", "content": "x"}], '
    '"temperature": NaN}}',
    line({"messages": HI}) + " trailing",
    "[1, 2]",
    "   ",
    "",
    b'{"custom_id": "bad", "body": {"messages": [{"role": "user", "content": "\xff"}]}}',
    line({"messages": HI, "max_tokens": 7, "temperature": 0.7, "top_p": 0.9, "seed": 3,
          "n": 2, "user": "u", "store": True, "logprobs": True, "top_logprobs": 3,
          "presence_penalty": 0.1, "frequency_penalty": -0.1}),
]


def adapters() -> list[tuple[BatchProvider, str]]:
    return [(OpenAIProvider(ProviderConfig(api_key="k")), MODEL),
            (OpenAIProvider(ProviderConfig(api_key="k")), "o3-mini"),  # refuses fields
            (AnthropicProvider(ProviderConfig(api_key="k")), "claude-sonnet-4-5"),
            (GeminiProvider(ProviderConfig(api_key="k")), "gemini-2.5-flash")]


def as_bytes(lines: list[str | bytes]) -> bytes:
    return b"".join((raw if isinstance(raw, bytes) else raw.encode()) + b"\n" for raw in lines)


def scan(adapter: BatchProvider, model: str, data: bytes, *, typed: bool,
         strict_model: bool) -> tuple[Any, ...]:
    """Everything an intake's pass gives, the typed pass on or off."""
    intake = Intake(adapter, file="in.jsonl", endpoint=Endpoint.CHAT, model=model,
                    limits=adapter.effective_limits(model), strict_model=strict_model)
    if not typed:
        intake._plain = None  # the full checks for every line: what the typed pass must match
    accepted = list(intake.scan(io.BytesIO(data)))
    report = intake.report
    return (accepted, [(p.line, p.field, p.message) for p in report.problems],
            report.problem_count, report.warnings(), intake.mapped_keys, intake.content_hash)


def the_same_either_way(lines: list[str | bytes], adapter: BatchProvider, model: str,
                        strict_model: bool) -> None:
    data = as_bytes(lines)
    typed = scan(adapter, model, data, typed=True, strict_model=strict_model)
    full = scan(adapter, model, data, typed=False, strict_model=strict_model)
    assert typed == full


@pytest.mark.parametrize("strict_model", [False, True])
@pytest.mark.parametrize(("adapter", "model"), adapters(),
                         ids=lambda value: getattr(value, "name", value))
def test_an_intake_gives_the_same_with_or_without_the_typed_pass(
        adapter: BatchProvider, model: str, strict_model: bool) -> None:
    the_same_either_way(CORPUS, adapter, model, strict_model)


def test_the_typed_pass_takes_the_common_lines_and_no_others() -> None:
    """Not vacuous: the common lines are the typed pass's, each one it takes is one the full
    parse takes alike; and it leaves to the full checks every line they refuse here."""
    reader = PlainChatReader(MODEL)
    taken = [raw for raw in CORPUS if isinstance(raw, str) and reader.read(raw.encode())]
    assert len(taken) >= 40
    for raw in taken:
        assert_parsed_alike(reader, raw)
    for cid in ("", 5, None, "a" * (MAX_CUSTOM_ID_CHARS + 1)):
        assert reader.read(json.dumps({"custom_id": cid, "body": {"messages": HI}}).encode()) \
            is None
    assert reader.read(line({"messages": HI, "model": "gpt-4o"}).encode()) is None


def assert_parsed_alike(reader: PlainChatReader, raw: str) -> None:
    plain = reader.read(raw.encode())
    assert plain is not None
    request = parse_request_line(raw, line=1, index=0, file="in.jsonl", endpoint=Endpoint.CHAT,
                                 model=reader.model)  # strict: not even a model warning
    assert request.native is None
    assert (plain.custom_id, plain.body) == (request.custom_id, request.body)
    assert json.dumps(plain.body) == json.dumps(request.body)  # 1 is not 1.0 here
    assert plain.tokens == estimate_tokens(request)


# Generated lines: mostly plain ones, some with a value anywhere swapped for another.
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))


def _mostly(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, strategy, strategy, _scalars)


_messages = st.lists(st.fixed_dictionaries(
    {"role": _mostly(st.sampled_from(["system", "user", "assistant", "developer"])),
     "content": _mostly(st.text(min_size=1, max_size=40))},
    optional={"name": st.text(max_size=5)}), min_size=1, max_size=3)
_settings = st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=3, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({key: _mostly(st.sampled_from(FIELD_VALUES[key]))
                                        for key in keys}))
_lines = st.fixed_dictionaries(
    {"custom_id": _mostly(st.text(min_size=1, max_size=12)),
     "body": st.builds(lambda messages, rest: {"messages": messages, **rest},
                       _messages, _settings)},
    optional={"method": st.sampled_from(["POST", "PUT"]),
              "url": st.sampled_from(["/v1/chat/completions", "/v1/responses"])})


@given(st.lists(_lines.map(json.dumps), min_size=1, max_size=12))
def test_generated_lines_give_the_same_with_or_without_the_typed_pass(lines: list[str]) -> None:
    reader = PlainChatReader(MODEL)
    for raw in lines:
        if reader.read(raw.encode()) is not None:
            assert_parsed_alike(reader, raw)
    for adapter, model in adapters():
        the_same_either_way(list(lines), adapter, model, strict_model=False)


def test_a_line_over_the_size_limit_is_refused_in_the_same_words() -> None:
    adapter = OpenAIProvider(ProviderConfig(api_key="k", limits={"max_bytes": 200}))
    lines: list[str | bytes] = [line({"messages": [{"role": "user", "content": "x" * 300}]}),
                                line({"messages": HI})]
    typed = scan(adapter, MODEL, as_bytes(lines), typed=True, strict_model=False)
    assert [a.request.custom_id for a in typed[0]] == ["c"]
    assert typed[1] == [(1, "body", "the request is 436 bytes encoded; an OpenAI batch file "
                               "holds at most 200")]
    the_same_either_way(lines, adapter, MODEL, strict_model=False)


def test_parse_refusals_are_not_the_typed_pass_s_to_make() -> None:
    """What the typed pass declines, the full parse refuses (or takes with a warning)."""
    reader = PlainChatReader(MODEL)
    for raw in (line({"messages": HI, "max_tokens": 0}), line({"messages": []}),
                line({"messages": HI, "stream": True})):
        assert reader.read(raw.encode()) is None
        with pytest.raises(InputError):
            parse_request_line(raw, line=1, index=0, file="f", endpoint=Endpoint.CHAT,
                               model=MODEL)
