"""Every response the OpenAI emulator sends validates against OpenAI's own API description.

Schemas come from ``tests/fixtures/openai_batch_schemas.json``, an extract of
``../shared/specs/openai-openapi.yaml`` (plus ``BatchRequestOutput`` from the 2025 spec) made
by ``tests/fixtures/extract_openai_schemas.py``. When the spec is present, the extract must
equal a fresh extraction; when it is absent (a checkout without ``../shared``, including CI),
the vendored copy is what the responses are checked against, so nothing is skipped.

One relaxation, applied to the schemas here and justified by a test below: a property the
spec does not list as required may be ``null``. The Stainless-generated spec types such
fields as plain ``string``/``integer``, but the real API sends ``null`` (``"failed_at":
null``), the spec's own examples show it, and the SDK models declare them ``Optional``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from llmbatch.emulator import EmulatorServer, FakeClock

from .spec_support import (
    FIXTURES,
    EmulatorClient,
    assert_fresh_extract_matches,
    assert_no_errors,
    load_extractor,
    running_emulator,
    schema_validator,
    vendored_refs,
)

pytestmark = pytest.mark.contract

VENDORED = FIXTURES / "openai_batch_schemas.json"
URI = "urn:llmbatch:openai-batch-schemas"


def relax(node: Any) -> Any:
    """Let every non-required property also be null (see the module docstring)."""
    if isinstance(node, list):
        return [relax(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: relax(v) for k, v in node.items()}
    if isinstance(node.get("properties"), dict):
        required = set(node.get("required", ()))
        out["properties"] = {
            name: sub if name in required else {"anyOf": [sub, {"type": "null"}]}
            for name, sub in out["properties"].items()
        }
    return out


DOCUMENT: dict[str, Any] = json.loads(VENDORED.read_text(encoding="utf-8"))
RELAXED: dict[str, Any] = relax(DOCUMENT)


def validator(name: str, *, relaxed: bool = True, document: Any = None) -> Draft202012Validator:
    doc = document if document is not None else (RELAXED if relaxed else DOCUMENT)
    return schema_validator(doc, URI, name)


def assert_valid(instance: Any, name: str, **kwargs: Any) -> None:
    assert_no_errors(validator(name, **kwargs), instance, name)


# -- the vendored extract ----------------------------------------------------------------------


def test_the_vendored_extract_is_complete_and_self_contained() -> None:
    extractor = load_extractor("extract_openai_schemas")
    schemas = DOCUMENT["components"]["schemas"]
    assert set(extractor.ROOTS) | set(extractor.LEGACY_ROOTS) <= set(schemas)
    assert vendored_refs(VENDORED) <= set(schemas)


def test_the_vendored_extract_matches_the_spec_when_the_spec_is_present() -> None:
    extractor = load_extractor("extract_openai_schemas")
    # No spec in this checkout: the vendored copy stands in (checked above).
    assert_fresh_extract_matches(extractor, extractor.CURRENT_SPEC, VENDORED, "spec")


def test_the_specs_own_batch_example_needs_the_null_relaxation() -> None:
    example_text = DOCUMENT["components"]["schemas"]["Batch"]["x-oaiMeta"]["example"]
    example = json.loads(re.sub(r",(\s*[}\]])", r"\1", example_text))
    assert any(value is None for value in example.values())
    assert list(validator("Batch", relaxed=False).iter_errors(example))
    assert_valid(example, "Batch")


# -- responses of a running emulator -----------------------------------------------------------


class Emulator(EmulatorClient):
    def __init__(self, server: EmulatorServer, clock: FakeClock) -> None:
        super().__init__(server, clock, server.openai_base_url,
                         {"Authorization": "Bearer sk-contract"})

    def upload(self, text: str, purpose: str = "batch") -> dict[str, Any]:
        return self.post("/files", data={"purpose": purpose},
                         files={"file": ("in.jsonl", text.encode())})

    def create(self, lines: int = 6, tag: str = "x", text: str | None = None) -> dict[str, Any]:
        if text is None:
            text = "".join(json.dumps({
                "custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "max_tokens": 20,
                         "messages": [{"role": "user", "content": f"q{i}"}]}}) + "\n"
                for i in range(lines))
        file_id = self.upload(text)["id"]
        return self.post("/batches", json={
            "input_file_id": file_id, "endpoint": "/v1/chat/completions",
            "completion_window": "24h", "metadata": {"tag": tag}})

    def lines(self, file_id: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.http.get(f"/files/{file_id}/content").text
                .splitlines()]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with running_emulator(Emulator) as emu:
        yield emu


def test_file_objects_file_lists_and_deletes_match_the_spec(emulator: Emulator) -> None:
    uploaded = emulator.upload('{"x": 1}\n')
    assert_valid(uploaded, "OpenAIFile")
    assert_valid(emulator.get(f"/files/{uploaded['id']}"), "OpenAIFile")
    listing = emulator.get("/files?limit=2")
    assert listing["data"]
    assert_valid(listing, "ListFilesResponse")
    deleted = emulator.http.delete(f"/files/{uploaded['id']}").json()
    assert deleted == {"id": uploaded["id"], "object": "file", "deleted": True}
    assert_valid(deleted, "DeleteFileResponse")


def test_a_batch_validates_in_every_status(emulator: Emulator) -> None:
    clock = emulator.clock
    seen: dict[str, dict[str, Any]] = {}
    batch = emulator.create(tag="statuses")
    seen[batch["status"]] = batch
    for step in (60, 52, 8):
        clock.advance(step)
        current = emulator.get(f"/batches/{batch['id']}")
        seen[current["status"]] = current
    failed = emulator.create(text="not json\n")
    clock.advance(20)
    seen["failed"] = emulator.get(f"/batches/{failed['id']}")
    cancelled = emulator.create(tag="to-cancel")
    clock.advance(40)
    seen["cancelling"] = emulator.http.post(f"/batches/{cancelled['id']}/cancel").json()
    clock.advance(5)
    seen["cancelled"] = emulator.get(f"/batches/{cancelled['id']}")
    emulator.server.set_faults([{"kind": "expire", "at_fraction": 0.5, "times": 1}])
    expired = emulator.create(tag="to-expire")
    clock.advance(200)
    seen["expired"] = emulator.get(f"/batches/{expired['id']}")
    assert set(seen) == {"validating", "in_progress", "finalizing", "completed", "failed",
                         "cancelling", "cancelled", "expired"}
    for status, body in seen.items():
        assert body["status"] == status
        assert_valid(body, "Batch")
    assert seen["failed"]["errors"]["data"][0]["code"] == "invalid_json_line"
    assert seen["expired"]["output_file_id"] and seen["expired"]["error_file_id"]
    listing = emulator.get("/batches?limit=3")
    assert len(listing["data"]) == 3 and listing["has_more"]
    assert_valid(listing, "ListBatchesResponse")


def test_empty_pages_validate_apart_from_their_null_cursors(emulator: Emulator) -> None:
    # The spec makes first_id/last_id required strings, which an empty page cannot have; the
    # emulator sends null there (as the real API does for empty lists).
    last_file = emulator.get("/files?order=asc")["data"][-1]["id"]
    pages = {
        "ListFilesResponse": emulator.get(f"/files?order=asc&after={last_file}"),
        "ListBatchesResponse": emulator.get("/batches?after=batch_unknown"),
    }
    for name, page in pages.items():
        assert page["data"] == [] and page["has_more"] is False
        assert page["first_id"] is None and page["last_id"] is None
        document = copy.deepcopy(RELAXED)
        schema = document["components"]["schemas"][name]
        schema["required"] = [r for r in schema["required"] if r not in ("first_id", "last_id")]
        schema["properties"] = relax({"properties": schema["properties"]})["properties"]
        assert_valid(page, name, document=document)


def test_result_lines_and_their_bodies_match_the_spec(emulator: Emulator) -> None:
    emulator.server.set_faults([{"kind": "item_errors", "rate": 0.5, "shape": "mixed",
                                 "times": 1}])
    batch = emulator.create(lines=40, tag="results")
    emulator.clock.advance(200)
    done = emulator.get(f"/batches/{batch['id']}")
    outputs = emulator.lines(done["output_file_id"])
    errors = emulator.lines(done["error_file_id"])
    for line in outputs + errors:
        assert_valid(line, "BatchRequestOutput")
    for line in outputs:
        assert_valid(line["response"]["body"], "CreateChatCompletionResponse", relaxed=False)
    http_errors = [e for e in errors if e["response"] is not None]
    assert http_errors and len(http_errors) < len(errors)
    for line in http_errors:
        assert_valid(line["response"]["body"], "ErrorResponse", relaxed=False)


def test_embedding_bodies_match_the_spec(emulator: Emulator) -> None:
    text = json.dumps({"custom_id": "e", "method": "POST", "url": "/v1/embeddings",
                       "body": {"model": "text-embedding-3-small", "input": ["a", "b"]}}) + "\n"
    file_id = emulator.upload(text)["id"]
    batch = emulator.http.post("/batches", json={
        "input_file_id": file_id, "endpoint": "/v1/embeddings", "completion_window": "24h"})
    emulator.clock.advance(200)
    done = emulator.get(f"/batches/{batch.json()['id']}")
    [line] = emulator.lines(done["output_file_id"])
    assert_valid(line, "BatchRequestOutput")
    assert_valid(line["response"]["body"], "CreateEmbeddingResponse", relaxed=False)


def test_error_responses_match_the_spec(emulator: Emulator) -> None:
    http = emulator.http
    emulator.server.set_faults([{"kind": "http", "operation": "batches.list", "status": 429,
                                 "retry_after_s": 1, "times": 1}])
    responses = [
        http.get("/files/file-missing"),
        http.get("/batches/batch_missing"),
        http.post("/batches", json={"input_file_id": "file-missing"}),
        http.post("/batches", content=b"{"),
        http.get("/batches"),
        http.get("/nope"),
        httpx.get(f"{emulator.server.openai_base_url}/files"),
    ]
    assert [r.status_code for r in responses] == [404, 404, 400, 400, 429, 404, 401]
    for response in responses:
        assert_valid(response.json(), "ErrorResponse", relaxed=False)


def test_relaxation_does_not_hide_wrong_types(emulator: Emulator) -> None:
    batch = copy.deepcopy(emulator.create(tag="negative"))
    batch["created_at"] = "yesterday"
    assert list(validator("Batch").iter_errors(batch))
    batch["created_at"] = None
    assert list(validator("Batch").iter_errors(batch))


def _one_result(emulator: Emulator, url: str, body: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps({"custom_id": "x", "method": "POST", "url": url, "body": body}) + "\n"
    file_id = emulator.upload(text)["id"]
    batch = emulator.post("/batches", json={
        "input_file_id": file_id, "endpoint": url, "completion_window": "24h"})
    emulator.clock.advance(200)
    done = emulator.get(f"/batches/{batch['id']}")
    assert done["status"] == "completed", done
    [line] = emulator.lines(done["output_file_id"])
    assert_valid(line, "BatchRequestOutput")
    body_out: dict[str, Any] = line["response"]["body"]
    return body_out


@pytest.mark.parametrize("body", [
    {"model": "gpt-5.6-sol", "instructions": "One word.", "input": "Capital of France?",
     "reasoning": {"effort": "low"}, "max_output_tokens": 256},
    {"model": "gpt-4.1-mini", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "hi"}]}], "max_output_tokens": 16},
    {"model": "gpt-4.1-mini", "input": "weather?", "tool_choice": "required",
     "tools": [{"type": "function", "name": "weather", "strict": True,
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"], "additionalProperties": False}}]},
    {"model": "gpt-4.1-mini", "input": "json please", "text": {"format": {
        "type": "json_schema", "name": "answer", "schema": {
            "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}},
], ids=["reasoning", "items-cut-short", "function-call", "json-schema"])
def test_response_bodies_match_the_spec(emulator: Emulator, body: dict[str, Any]) -> None:
    response = _one_result(emulator, "/v1/responses", body)
    assert_valid(response, "Response", relaxed=False)
    usage = response["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    if body["model"].startswith("gpt-5"):
        assert usage["output_tokens_details"]["reasoning_tokens"] > 0
        assert response["output"][0]["type"] == "reasoning"


def test_completion_and_moderation_bodies_match_the_spec(emulator: Emulator) -> None:
    completion = _one_result(emulator, "/v1/completions", {
        "model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 5})
    assert_valid(completion, "CreateCompletionResponse", relaxed=False)
    moderation = _one_result(emulator, "/v1/moderations", {"input": ["fine", "kill it"]})
    assert_valid(moderation, "CreateModerationResponse", relaxed=False)
    assert [r["flagged"] for r in moderation["results"]] == [False, True]
    assert "usage" not in moderation
