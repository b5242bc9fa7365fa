"""The request schemas shipped in the package are what ``tests/fixtures/extract_request_schemas.py``
makes from the official API descriptions (checked when ``../shared/specs`` is present; without
it the shipped copies stand)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from llmbatch.schemas import neutral_schemas

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.append(str(FIXTURES))

import extract_request_schemas as extractor  # noqa: E402


def spec_dir() -> Path:
    """``$LLMBATCH_SPECS``, else ``../shared/specs`` beside the checkout."""
    return Path(os.environ.get("LLMBATCH_SPECS", extractor.DEFAULT_SPEC_DIR))


def test_the_shipped_request_schemas_match_a_fresh_extraction() -> None:
    specs = spec_dir()
    if not (specs / extractor.OPENAI_SPEC).exists():
        return  # as every extraction check: without ../shared/specs the shipped copies stand
    for key, document in extractor.extract_all(specs).items():
        assert extractor.render(document) == extractor.OUTPUTS[key].read_text(
            encoding="utf-8"), f"re-run tests/fixtures/extract_request_schemas.py ({key})"


def test_the_neutral_schemas_hold_both_endpoints_and_know_the_chat_fields() -> None:
    schemas = neutral_schemas()
    assert {"CreateChatCompletionRequest", "CreateEmbeddingRequest"} <= set(schemas.names())
    assert {"messages", "max_tokens", "temperature", "response_format", "tools"} <= \
        schemas.property_names("CreateChatCompletionRequest")


def _corpus() -> list[dict[str, Any]]:
    """Chat bodies right and wrong in every way that matters to the documents' keywords:
    each message role against each content shape (``oneOf`` by role), numbers at and past
    their bounds, wrong types, unknown and missing fields, tools, response formats."""
    import itertools

    roles = ["user", "system", "developer", "assistant", "tool", "function", "bogus", None, 5]
    contents = ["hi", "", None, 3, [{"type": "text", "text": "x"}], [], {"a": 1},
                [{"type": "image_url", "image_url": {"url": "data:x"}}], [{"type": "nope"}]]
    extras: list[dict[str, Any]] = [{}, {"name": "n"}, {"tool_call_id": "t"}, {"zzz": 1},
                                    {"tool_calls": [{"id": "1", "type": "function", "function":
                                                     {"name": "f", "arguments": "{}"}}]}]
    bodies: list[dict[str, Any]] = []
    for role, content, extra in itertools.product(roles, contents, extras):
        message: Any = {**extra, **({"role": role} if role is not None else {}),
                        **({"content": content} if content is not None else {})}
        for messages in ([message], [{"role": "user", "content": "q"}, message], ["x"]):
            bodies.append({"model": "m", "messages": messages})
    hi = [{"role": "user", "content": "hi"}]
    fields: list[dict[str, Any]] = [
        {"temperature": t} for t in (0, 0.2, 1.0, 2, 2.5, 5, -1, "1", None, True)] + [
        {"max_tokens": v} for v in (1, 0, -5, 1.0, 1.5, "10", None, True, 2**62)] + [
        {"top_p": v} for v in (0, 1, 1.5)] + [
        {"n": 1}, {"n": 0}, {"seed": 7}, {"stop": "x"}, {"stop": ["a", "b"]}, {"stop": 3},
        {"response_format": {"type": "json_object"}}, {"response_format": {"type": "text"}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "s"}}},
        {"response_format": {"type": "json_schema"}}, {"response_format": {"type": "xml"}},
        {"logit_bias": {"50256": -100}}, {"logit_bias": {"1": "x"}}, {"metadata": {"k": "v"}},
        {"metadata": {"k": 1}}, {"stream": False}, {"reasoning_effort": "low"},
        {"reasoning_effort": "extreme"}, {"tool_choice": "auto"}, {"tool_choice": "maybe"},
        {"tools": [{"type": "function", "function": {"name": "get_weather"}}]},
        {"tools": [{"type": "function", "function": {"name": "bad name"}}]},
        {"tools": [{"type": "function", "function": {}}]}, {"tools": [{"type": "x"}]},
        {"temprature": 0.5}, {"messages": "hi"}, {"messages": []}, {}, {"model": 5},
    ]
    for extra in fields:
        bodies.append({"model": "m", "messages": hi, **extra})
    return bodies


def _native_corpus() -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """Native bodies, good and bad, per (package, document, schema)."""
    hi = [{"role": "user", "content": "hi"}]
    claude = {"model": "claude-x", "max_tokens": 10, "messages": hi}
    anthropic = [claude, {**claude, "max_tokens": "10"}, {**claude, "max_tokens": 0},
                 {k: v for k, v in claude.items() if k != "max_tokens"},
                 {**claude, "temprature": 1}, {**claude, "temperature": 5},
                 {**claude, "system": [{"type": "text", "text": "s",
                                        "cache_control": {"type": "ephemeral"}}]},
                 {**claude, "messages": [{"role": "robot", "content": "x"}]},
                 {**claude, "messages": [{"role": "user", "content": [{"type": "nope"}]}]},
                 {**claude, "tools": [{"name": "get_weather", "input_schema": {
                     "type": "object"}}]},
                 {**claude, "tools": [{"name": "bad name!", "input_schema": {
                     "type": "object"}}]}]
    gem = {"model": "models/g", "contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    gemini = [gem, {**gem, "generationConfig": {"maxOutputTokens": 5, "topK": 2}},
              {**gem, "generationConfig": {"maxOutputTokens": 2**40}},
              {**gem, "generation_config": {"max_output_tokens": 5}},
              {"model": "models/g", "contents": [{"parts": [{"txt": "hi"}]}]},
              {**gem, "contents": "hi"}, {**gem, "bogus": 1}, {"model": "models/g"}]
    return {("llmbatch.providers.anthropic", "request_schemas.json", "CreateMessageParams"):
            anthropic,
            ("llmbatch.providers.gemini", "request_schemas.json", "GenerateContentRequest"):
            gemini,
            ("llmbatch.schemas", "neutral_requests.json", "CreateChatCompletionRequest"):
            _corpus()}


def test_the_deciding_and_the_explaining_validator_agree_on_the_corpus() -> None:
    """``jsonschema_rs`` decides, ``jsonschema`` explains (``llmbatch.schemas``): over good
    and bad bodies alike, of the neutral document and the providers' native ones, the body
    refused is the body the explainer finds fault with, and the words are the explainer's."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    from llmbatch.schemas import SchemaSet, explain, load_document

    for (package, file, name), bodies in _native_corpus().items():
        document = load_document(package, file)
        uri = f"urn:test:{package}"
        registry: Registry[Any] = Registry().with_resource(
            uri, Resource.from_contents(document, default_specification=DRAFT202012))
        explainer = Draft202012Validator(
            {"$ref": f"{uri}#/components/schemas/{name}"}, registry=registry)
        schemas = SchemaSet(document, uri)
        verdicts = set()
        for body in bodies:
            found = schemas.problems(name, body)
            assert (not found) == explainer.is_valid(body), (name, body)
            assert found == explain(explainer, body), (name, body)
            verdicts.add(not found)
        assert verdicts == {True, False}, name


def test_a_body_found_certainly_clean_has_no_problem_checked_one_by_one(
        monkeypatch: Any) -> None:
    """``body_problems`` lets one compiled verdict (schema, declared fields and the limits of
    ``neutral_body_problems`` together) pass a clean body; it must never pass a body the
    checks one by one refuse. Over good and bad bodies of both endpoints; the verdict must
    also pass the plain clean ones, or it saves nothing."""
    from llmbatch.domain import requests
    from llmbatch.domain.models import Endpoint

    hi = [{"role": "user", "content": "hi"}]
    chat = [{k: v for k, v in body.items() if k != "model"} for body in _corpus()]
    chat += [{"messages": hi, "max_tokens": v} for v in (0, 1, 1.0, 0.0, 10**6, 10**6 + 1, True)]
    chat += [{"messages": [{"role": "user", "content": c}]} for c in
             ("", [], [{"type": "text", "text": ""}], [{"type": "text", "text": "x"}])]
    chat += [{"messages": [*hi, {"role": "assistant", "content": c, "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}
        for c in ("", None, "x")]
    embeddings: list[dict[str, Any]] = [
        {"input": v} for v in ("", "a", [""], [[]], ["a", "b"], [[1, 2]], [], 5)]
    embeddings += [{"input": "a", "dimensions": 0}, {"input": "a", "bogus": 1}]
    cases = [(Endpoint.CHAT, b) for b in chat] + [(Endpoint.EMBEDDINGS, b) for b in embeddings]

    clean = {(e, repr(b)) for e, b in cases
             if requests._certainly_clean(e)({**b, "model": "m"})}
    monkeypatch.setattr(requests, "_certainly_clean", lambda _: lambda _: False)
    for endpoint, body in cases:
        found = requests.body_problems(body, endpoint=endpoint, model="m")
        if (endpoint, repr(body)) in clean:
            assert found == [], (endpoint, body)
    assert (Endpoint.CHAT, repr({"messages": hi})) in clean
    assert (Endpoint.EMBEDDINGS, repr({"input": "a"})) in clean
