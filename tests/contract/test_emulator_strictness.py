"""The emulator refuses what the providers refuse, in each provider's own error shape.

A lenient emulator lets adapter defects pass the suite (an unknown field the live API would
refuse, a field a schema forbids). Each provider refuses unknown fields its own way: Google's
proto parser answers 400 ``INVALID_ARGUMENT`` with a ``google.rpc.BadRequest`` naming the path;
Anthropic answers 400 ``invalid_request_error`` "...: Extra inputs are not permitted" for the
envelope and reports bad ``params`` per request (validated asynchronously); OpenAI answers 400
"Unrecognized request argument supplied" for a create body and an error line for a request
body. Content types follow the descriptions (Anthropic results are ``application/x-jsonl``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmbatch.emulator import EmulatorServer, FakeClock

from .spec_support import EmulatorClient, running_emulator

pytestmark = pytest.mark.contract

GEMINI_KEY = {"x-goog-api-key": "strict-key"}
CREATE = "/models/gemini-2.5-flash:batchGenerateContent"
EMBED = "/models/gemini-embedding-001:asyncBatchEmbedContent"


class Gemini(EmulatorClient):
    def __init__(self, server: EmulatorServer, clock: FakeClock) -> None:
        super().__init__(server, clock, f"{server.url}/gemini/v1beta", GEMINI_KEY)


@pytest.fixture(scope="module")
def gemini() -> Iterator[Gemini]:
    with running_emulator(Gemini) as emu:
        yield emu


def _inline(request: dict[str, Any], **item: Any) -> dict[str, Any]:
    return {"batch": {"displayName": "strict", "inputConfig": {"requests": {"requests": [
        {"request": request, **item}]}}}}


def _refusal(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    violation = error["details"][0]
    assert violation["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert violation["fieldViolations"][0]["description"] == error["message"]
    return error["message"], violation["fieldViolations"][0]["field"]


def test_gemini_refuses_an_unknown_part_field_with_the_path_in_proto_names(
        gemini: Gemini) -> None:
    response = gemini.http.post(CREATE, json=_inline({"contents": [{"parts": [{"txt": "hi"}]}]},
                                                     metadata={"key": "k"}))
    message, field = _refusal(response)
    path = "batch.input_config.requests.requests[0].request.contents[0].parts[0]"
    assert message == f"Invalid JSON payload received. Unknown name \"txt\" at '{path}': " \
                      "Cannot find field."
    assert field == path


@pytest.mark.parametrize(("body", "where"), [
    ({"batch": {"displayName": "x", "inputConfig": {"requests": {"requests": []}},
                "bogus": 1}}, "'batch'"),
    (_inline({"contents": [{"parts": [{"text": "hi"}]}], "thinking_config": {}}),
     "'batch.input_config.requests.requests[0].request'"),
    (_inline({"contents": [{"parts": [{"text": "hi"}]}],
              "generationConfig": {"maxTokens": 5}}),
     "'batch.input_config.requests.requests[0].request.generation_config'"),
])
def test_gemini_refuses_unknown_names_at_every_level(gemini: Gemini, body: dict[str, Any],
                                                     where: str) -> None:
    message, _ = _refusal(gemini.http.post(CREATE, json=body))
    assert f"at {where}: Cannot find field." in message


def test_gemini_refuses_a_value_of_the_wrong_kind(gemini: Gemini) -> None:
    body = _inline({"contents": [{"parts": [{"text": "hi"}]}],
                    "generationConfig": {"temperature": "warm"}})
    message, field = _refusal(gemini.http.post(CREATE, json=body))
    assert message.startswith("Invalid value at 'batch.input_config.requests.requests[0]."
                              "request.generation_config.temperature' (TYPE_FLOAT)")
    assert field.endswith("generation_config.temperature")


def test_gemini_accepts_both_spellings_of_a_field(gemini: Gemini) -> None:
    body = _inline({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                    "generation_config": {"max_output_tokens": 8},
                    "systemInstruction": {"parts": [{"text": "be brief"}]}},
                   metadata={"key": "k"})
    assert gemini.http.post(CREATE, json=body).status_code == 200


def test_gemini_inline_embedding_items_take_no_metadata(gemini: Gemini) -> None:
    item = {"content": {"parts": [{"text": "embed me"}]}}
    message, _ = _refusal(gemini.http.post(EMBED, json=_inline(item, metadata={"key": "k"})))
    assert 'Unknown name "metadata" at \'batch.input_config.requests.requests[0]\'' in message
    assert gemini.http.post(EMBED, json=_inline(item)).status_code == 200


@pytest.mark.filterwarnings("ignore:batches.create_embeddings")
def test_gemini_inline_embeddings_from_the_official_sdk_come_back_in_request_order(
        gemini: Gemini) -> None:
    """google-genai builds inline embedding items itself (no metadata); results keep the
    request order, the only join the API allows for them."""
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    client = genai.Client(api_key="strict-key", http_options=types.HttpOptions(
        base_url=f"{gemini.server.url}/gemini", api_version="v1beta"))
    texts = [f"text number {i}" for i in range(5)]
    job = client.batches.create_embeddings(
        model="gemini-embedding-001",
        src=types.EmbeddingsBatchJobSource(inlined_requests=types.EmbedContentBatch(
            contents=texts, config=types.EmbedContentConfig(output_dimensionality=4))),
        config={"display_name": "sdk-embeddings"})
    gemini.clock.advance(300)
    done = gemini.get(f"/{job.name}")
    entries = done["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert [("metadata" in e) for e in entries] == [False] * 5
    from llmbatch.emulator import synth

    expected = [synth.embedding(synth.digest(text), 4) for text in texts]
    assert [e["response"]["embedding"]["values"] for e in entries] == expected


def test_gemini_file_lines_with_unknown_fields_fail_alone(gemini: Gemini) -> None:
    good = {"key": "good", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}
    bad = {"key": "bad", "request": {"contents": [{"parts": [{"txt": "hi"}]}]}}
    text = "".join(json.dumps(line) + "\n" for line in (good, bad))
    start = gemini.http.post(f"{gemini.server.url}/gemini/upload/v1beta/files", headers={
        "x-goog-upload-protocol": "resumable", "x-goog-upload-command": "start",
        "x-goog-upload-header-content-type": "application/jsonl"}, json={"file": {}})
    done = httpx.post(start.headers["x-goog-upload-url"], content=text.encode(),
                      headers={"x-goog-upload-command": "upload, finalize",
                               "x-goog-upload-offset": "0"})
    name = done.json()["file"]["name"]
    batch = gemini.post(CREATE, json={"batch": {"displayName": "file-strict",
                                                "inputConfig": {"fileName": name}}})
    gemini.clock.advance(300)
    finished = gemini.get(f"/{batch['name']}")
    assert finished["metadata"]["batchStats"]["failedRequestCount"] == "1"
    out = finished["metadata"]["output"]["responsesFile"]
    lines = [json.loads(x) for x in gemini.http.get(f"/{out}:download",
                                                     params={"alt": "media"}).text.splitlines()]
    by_key = {line["key"]: line for line in lines}
    assert "response" in by_key["good"]
    assert by_key["bad"]["error"]["code"] == 400
    assert 'Unknown name "txt"' in by_key["bad"]["error"]["message"]
