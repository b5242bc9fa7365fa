"""The input door, line by line: what the OpenAI request schema and the limits refuse, said as
``file:line: field '…': reason``; what run-anywhere files may carry (another ``body.model``);
native bodies checked against each provider's own request description."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmbatch.config import ProviderConfig, load_config
from llmbatch.domain.input_limits import MAX_CUSTOM_ID_CHARS, MAX_DEPTH, MAX_OUTPUT_TOKENS
from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.domain.requests import parse_request_line
from llmbatch.errors import InputError
from llmbatch.providers.anthropic import AnthropicProvider
from llmbatch.providers.gemini import GeminiProvider
from llmbatch.providers.openai import OpenAIProvider
from llmbatch.service_layer.intake import check_file

FILE = "in.jsonl"
MODEL = "gpt-4o-mini"
HI = [{"role": "user", "content": "Hi"}]
REPO = Path(__file__).resolve().parents[2]


def problems(text: str, *, endpoint: Endpoint = Endpoint.CHAT) -> list[InputError]:
    with pytest.raises(InputError) as caught:
        parse_request_line(text, line=4, index=0, file=FILE, endpoint=endpoint, model=MODEL)
    found: list[InputError] = getattr(caught.value, "problems", [caught.value])
    assert all((p.file, p.line) == (FILE, 4) for p in found)
    return found


def fields(text: str, **kw: Any) -> dict[str | None, str]:
    return {p.field: p.message for p in problems(text, **kw)}


def line(body: dict[str, Any], **extra: Any) -> str:
    return json.dumps({"custom_id": "c", "body": body, **extra})


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"messages": [{"role": ["user"], "content": "x"}]}, "body.messages[0].role", "one of"),
    ({"messages": [{"role": {"a": 1}, "content": "x"}]}, "body.messages[0].role", "one of"),
    ({"messages": [{"role": "user", "content": 5}]}, "body.messages[0].content",
     "must be a string or an array"),
    ({"messages": HI, "max_tokens": "10"}, "body.max_tokens", "must be an integer or null"),
    ({"messages": HI, "max_tokens": 0}, "body.max_tokens", f"from 1 to {MAX_OUTPUT_TOKENS:,}"),
    ({"messages": HI, "max_tokens": -5}, "body.max_tokens", "from 1 to"),
    ({"messages": HI, "max_completion_tokens": 2**62}, "body.max_completion_tokens",
     "from 1 to"),
    ({"messages": HI, "temperature": 5}, "body.temperature", "at most 2"),
    ({"messages": HI, "temprature": 0.5}, "body.temprature", "unknown field"),
    ({"messages": [{"role": "user", "content": ""}]}, "body.messages[0].content", "is empty"),
    ({"messages": [{"role": "user", "content": []}]}, "body.messages[0].content",
     "at least 1 item"),
    ({"messages": [{"role": "system", "content": ""}, *HI]}, "body.messages[0].content",
     "is empty"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
     "body.messages[0].content[0].text", "is empty"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "txt": "x"}]}]},
     "body.messages[0].content[0].text", "is required"),
    ({"messages": HI, "response_format": {"type": "yaml"}}, "body.response_format.type",
     "one of"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_neutral_body_is_held_to_openais_schema_and_the_limits(body: dict[str, Any],
                                                                 field: str, words: str) -> None:
    found = fields(line(body))
    assert field in found and words in found[field], found


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"input": ""}, "body.input", "nothing to embed"),
    ({"input": []}, "body.input", "at least 1 item"),
    ({"input": ["a", ""]}, "body.input[1]", "nothing to embed"),
    ({"input": 5}, "body.input", "a string or an array"),
    ({"input": "a", "dimensions": 0}, "body.dimensions", "at least 1"),
])
def test_an_embeddings_body_is_held_to_its_schema(body: dict[str, Any], field: str,
                                                  words: str) -> None:
    found = fields(line(body), endpoint=Endpoint.EMBEDDINGS)
    assert field in found and words in found[field], found


@pytest.mark.parametrize(("text", "field", "words"), [
    ("[" * 5000 + "]" * 5000, None, f"nested deeper than {MAX_DEPTH} levels"),
    (line({"messages": HI, "x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
        ]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}), "body.x[0][0]",
     "nested deeper"),
    ('{"custom_id": "c", "body": {"max_tokens": ' + "9" * 5000 + "}}", "body.max_tokens",
     "an integer of 5000 digits is out of range"),
    ('{"custom_id": "c", "body": {"max_tokens": ' + str(2**70) + "}}", "body.max_tokens",
     "out of range"),
    ('{"custom_id": "c", "body": {"temperature": 1e999}}', "body.temperature", "finite"),
    ('{"custom_id": "c", "body": {"x": [1, {"t": NaN}]}}', "body.x[1].t", "NaN is not JSON"),
    ('{"custom_id": "\\ud800", "body": {}}', "custom_id", "lone surrogate (U+D800)"),
    ('{"custom_id": "c", "body": {"messages": [{"role": "user", "content": "a\\u0000"}]}}',
     "body.messages[0].content", "NUL character"),
    ('{"custom_id": "c", "body": {"\\u0000": 1}}', "body", "NUL character"),
    (json.dumps({"custom_id": "x" * (MAX_CUSTOM_ID_CHARS + 1), "body": {"messages": HI}}),
     "custom_id", f"at most {MAX_CUSTOM_ID_CHARS}"),
], ids=["deep-line", "deep-field", "4300-digit-int", "int-over-64-bits", "float-overflow",
        "nan", "surrogate-custom-id", "nul-content", "nul-key", "custom-id-too-long"])
def test_what_no_database_or_provider_can_take_is_refused_not_a_traceback(
        text: str, field: str | None, words: str) -> None:
    found = problems(text)
    assert words in found[0].message, found
    assert found[0].field == field or (field and str(found[0].field).startswith(field)), found


def test_a_custom_id_holding_markup_is_kept_as_text() -> None:
    found = problems(json.dumps({"custom_id": "[/red]", "body": {"messages": []}}))
    assert "[/red]" not in str(found[0])  # the id is not part of the message...
    req = parse_request_line(json.dumps({"custom_id": "[/red]", "body": {"messages": HI}}),
                             line=1, index=0, file=FILE, endpoint=Endpoint.CHAT, model=MODEL)
    assert req.custom_id == "[/red]"  # ...and is accepted as the user wrote it


def test_every_schema_problem_of_a_line_is_reported() -> None:
    found = fields(line({"messages": HI, "temperature": 9, "top_p": 7, "n": 0}))
    assert set(found) >= {"body.temperature", "body.top_p", "body.n"}


def test_another_model_in_a_line_runs_on_the_jobs_model_when_not_strict() -> None:
    seen: list[str] = []
    text = line({"model": "gpt-4o", "messages": HI})

    req = parse_request_line(text, line=1, index=0, file=FILE, endpoint=Endpoint.CHAT,
                             model="claude-haiku-4-5", on_model_conflict=seen.append)

    assert req.body == {"messages": HI} and seen == ["gpt-4o"]
    with pytest.raises(InputError, match="differs from the job's model") as caught:
        parse_request_line(text, line=1, index=0, file=FILE, endpoint=Endpoint.CHAT,
                           model="claude-haiku-4-5")
    assert caught.value.field == "body.model"


# --- native bodies, each provider against its own description ------------------------------

def native(adapter: Any, body: dict[str, Any], endpoint: Endpoint = Endpoint.CHAT,
           model: str = "m") -> dict[str | None, str]:
    return {p.field: p.message for p in adapter.native_problems(body, endpoint=endpoint,
                                                                model=model)}


def test_an_anthropic_native_body_without_max_tokens_is_refused_at_the_door() -> None:
    adapter = AnthropicProvider(ProviderConfig(api_key="k"))
    good = {"max_tokens": 10, "messages": HI}

    assert native(adapter, good) == {}
    assert native(adapter, {"messages": HI}) == {"native.max_tokens": "is required"}
    assert "native.temprature" in native(adapter, {**good, "temprature": 1})


def test_a_gemini_native_body_with_an_unknown_field_is_refused_in_either_spelling() -> None:
    adapter = GeminiProvider(ProviderConfig(api_key="k"))
    good = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generation_config": {"max_output_tokens": 5}, "generationConfig": {"topK": 2}}

    assert native(adapter, good) == {}
    assert native(adapter, {"contents": [{"parts": [{"txt": "hi"}]}]}) == {
        "native.contents[0].parts[0].txt": "unknown field"}
    assert native(adapter, {"content": {"parts": [{"text": "x"}]}},
                  endpoint=Endpoint.EMBEDDINGS) == {}
    assert "native.generationConfig.maxOutputTokens" in native(
        adapter, {**good, "generationConfig": {"maxOutputTokens": 2**40}})


def test_an_openai_native_body_is_held_to_the_same_schema_as_the_neutral_form() -> None:
    adapter = OpenAIProvider(ProviderConfig(api_key="k"))
    assert native(adapter, {"messages": HI}) == {}
    assert native(adapter, {"messages": HI, "max_tokens": "x"}) == {
        "native.max_tokens": "must be an integer or null"}
    assert "native.bogus" in native(adapter, {"messages": HI, "bogus": 1})


# --- the example configuration runs the README's example lines on every provider ----------

README_LINES = [
    {"custom_id": "q-1", "body": {"messages": HI, "max_tokens": 200}},
    {"custom_id": "q-2", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "gpt-4o-mini", "messages": HI, "temperature": 0.2}},
]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_the_example_config_takes_the_readme_lines_with_temperature(provider: str) -> None:
    config = load_config(REPO / "llm_config.example.yaml", env={})
    pconf = config.provider(provider)
    cls = {"openai": OpenAIProvider, "anthropic": AnthropicProvider,
           "gemini": GeminiProvider}[provider]
    adapter = cls(pconf)
    model = pconf.models[0].name
    for i, obj in enumerate(README_LINES):
        req: RequestLine = parse_request_line(json.dumps(obj), line=i + 1, index=i, file=FILE,
                                              endpoint=Endpoint.CHAT, model=model,
                                              on_model_conflict=lambda _: None)
        adapter.encode(req, endpoint=Endpoint.CHAT, model=model)  # raises if refused


def test_a_line_cut_short_is_placed_where_it_ends_whatever_ends_the_line(tmp_path: Path) -> None:
    """The parser sees a line without its ending (``input_lines``), so a line cut short is
    reported at its own end, the same with ``\\n``, ``\\r\\n`` or none (it was ``column 1``
    of the next line, past the newline)."""
    cut = '{"custom_id": "b", "body": {"messages": ['
    adapter = OpenAIProvider(ProviderConfig(api_key="k"))
    for ending in ("\n", "\r\n", ""):
        path = tmp_path / "cut.jsonl"
        path.write_bytes((line({"messages": HI}) + "\n" + cut + ending).encode())
        report = check_file(adapter, path, endpoint=Endpoint.CHAT, model=MODEL)
        assert [(p.line, p.message) for p in report.problems] == [
            (2, f"not valid JSON: Expecting value (column {len(cut) + 1})")], ending
