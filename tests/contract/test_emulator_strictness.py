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
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmbatch.emulator import EmulatorServer, FakeClock

from .spec_support import (
    EmulatorClient,
    assert_fresh_extract_matches,
    load_extractor,
    running_emulator,
)

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

    texts = [f"text number {i}" for i in range(5)]
    # Closed here: a dropped SDK client sits in a reference cycle until some later collection,
    # whose finalizer order may close its socket's finalizer first (a ResourceWarning there).
    with genai.Client(api_key="strict-key", http_options=types.HttpOptions(
            base_url=f"{gemini.server.url}/gemini", api_version="v1beta")) as client:
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


# --- Anthropic ---------------------------------------------------------------------------------

# ../shared/specs beside the checkout (a worktree sits one level deeper than the main one).
SPECS = next((p / "shared" / "specs" for p in Path(__file__).resolve().parents
              if (p / "shared" / "specs").is_dir()), Path("/nonexistent"))
ANTHROPIC_SPEC = SPECS / "anthropic-openapi.json"


class Anthropic(EmulatorClient):
    def __init__(self, server: EmulatorServer, clock: FakeClock) -> None:
        super().__init__(server, clock, f"{server.url}/anthropic", {
            "x-api-key": "sk-ant-strict", "anthropic-version": "2023-06-01"})

    def run(self, params: list[dict[str, Any]], **headers: str) -> dict[str, dict[str, Any]]:
        """Create a batch of these params, run it to the end, its results by custom_id."""
        requests = [{"custom_id": f"r-{i}", "params": p} for i, p in enumerate(params)]
        batch = self.post("/v1/messages/batches", json={"requests": requests},
                          headers=headers)
        self.clock.advance(300)
        batch = self.get(f"/v1/messages/batches/{batch['id']}")
        response = self.http.get(batch["results_url"])
        assert response.headers["content-type"] == "application/x-jsonl"
        return {line["custom_id"]: line["result"]
                for line in map(json.loads, response.text.splitlines())}


@pytest.fixture(scope="module")
def anthropic() -> Iterator[Anthropic]:
    with running_emulator(Anthropic) as emu:
        yield emu


def _params(**extra: Any) -> dict[str, Any]:
    return {"model": "claude-haiku-4-5", "max_tokens": 20,
            "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.mark.parametrize(("body", "message"), [
    ({"requests": [{"custom_id": "a", "params": _params()}], "extra": True},
     "extra: Extra inputs are not permitted"),
    ({"requests": [{"custom_id": "a", "params": _params(), "note": "x"}]},
     "requests.0.note: Extra inputs are not permitted"),
])
def test_anthropic_refuses_unknown_envelope_names_at_create(
        anthropic: Anthropic, body: dict[str, Any], message: str) -> None:
    response = anthropic.http.post("/v1/messages/batches", json=body)
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"] == {"type": "invalid_request_error", "message": message}


def test_anthropic_params_are_judged_per_request_and_fail_alone(anthropic: Anthropic) -> None:
    """``params`` validation is asynchronous (PROVIDER_APIS.md B.2): a bad request becomes an
    ``errored`` result and its neighbours run."""
    no_max = _params()
    del no_max["max_tokens"]
    results = anthropic.run([_params(), _params(tempreature=0.5), no_max, _params(speed="x")])
    assert results["r-0"]["type"] == "succeeded"
    errors = {k: (v["type"], v.get("error", {}).get("error", {}).get("message"))
              for k, v in results.items() if k != "r-0"}
    assert errors == {
        "r-1": ("errored", "tempreature: Extra inputs are not permitted"),
        "r-2": ("errored", "max_tokens: Field required"),
        "r-3": ("errored", "speed: Extra inputs are not permitted"),
    }
    beta = anthropic.run([_params(context_management={"edits": []})],
                         **{"anthropic-beta": "context-management-2025-06-27"})
    assert beta["r-0"]["type"] == "succeeded"


@pytest.mark.parametrize(("params", "message"), [
    (_params(messages=[{"role": "user", "content": [{"type": "text", "txt": "hi"}]}]),
     "messages.0.content.0.txt: Extra inputs are not permitted"),
    (_params(messages=[{"role": "user", "content": "hi", "name": "x"}]),
     "messages.0.name: Extra inputs are not permitted"),
    (_params(messages=[{"role": "user", "content": [{"type": "picture", "data": "x"}]}]),
     "messages.0.content.0: Input tag 'picture' found using 'type' does not match any of the "
     "expected tags"),
    (_params(temperature="warm"), "temperature: Input should be a valid number"),
    (_params(tools=[{"name": "t", "input_schema": {"type": "object"}, "strict_mode": True}]),
     "tools.0.strict_mode: Extra inputs are not permitted"),
])
def test_anthropic_params_are_checked_against_the_api_description(
        params: dict[str, Any], message: str) -> None:
    from llmbatch.emulator.anthropic.lines import failure

    assert failure(params, batch_id="b", custom_id="c", seed=0, item_errors=None) == (
        "invalid_request_error", message)


def test_anthropic_valid_params_pass_the_description() -> None:
    from llmbatch.emulator.anthropic.lines import failure

    params = _params(system=[{"type": "text", "text": "be brief",
                              "cache_control": {"type": "ephemeral"}}],
                     tools=[{"name": "weather", "description": "w",
                             "input_schema": {"type": "object", "properties": {}}}],
                     tool_choice={"type": "auto"}, temperature=0.3, stop_sequences=["x"],
                     output_config={"format": {"type": "json_schema",
                                               "schema": {"type": "object"}}},
                     messages=[{"role": "user", "content": "hi"},
                               {"role": "assistant", "content": [{"type": "text", "text": "?"}]},
                               {"role": "user", "content": [{"type": "text", "text": "go"}]}])
    assert failure(params, batch_id="b", custom_id="c", seed=0, item_errors=None) is None


def test_anthropic_params_schema_matches_a_fresh_extraction_when_the_spec_is_present() -> None:
    extractor = load_extractor("extract_anthropic_params_schema")
    assert_fresh_extract_matches(extractor, extractor.SPEC, extractor.OUTPUT,
                                 "Anthropic params schema")


def test_anthropic_params_names_match_the_api_description() -> None:
    from llmbatch.emulator.anthropic.lines import BETA_PARAMS, PARAMS

    if not ANTHROPIC_SPEC.exists():
        return  # a checkout without ../shared: the vendored params schema stands in
    schemas = json.loads(ANTHROPIC_SPEC.read_text(encoding="utf-8"))["components"]["schemas"]
    plain = set(schemas["CreateMessageParamsWithoutStream"]["properties"])
    beta = set(schemas["BetaCreateMessageParams"]["properties"])
    assert plain | {"stream"} == PARAMS
    assert beta - PARAMS == BETA_PARAMS


# --- OpenAI ------------------------------------------------------------------------------------

OPENAI_SPEC = SPECS / "openai-openapi.yaml"


class OpenAI(EmulatorClient):
    def __init__(self, server: EmulatorServer, clock: FakeClock) -> None:
        super().__init__(server, clock, f"{server.url}/openai/v1",
                         {"authorization": "Bearer sk-strict"})

    def upload(self, lines: list[dict[str, Any]]) -> str:
        text = "".join(json.dumps(line) + "\n" for line in lines)
        body = self.post("/files", files={"file": ("in.jsonl", text.encode())},
                         data={"purpose": "batch"})
        return str(body["id"])


@pytest.fixture(scope="module")
def openai_emu() -> Iterator[OpenAI]:
    with running_emulator(OpenAI) as emu:
        yield emu


def _line(custom_id: str, **body: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                     **body}}


def test_openai_refuses_an_unknown_create_argument(openai_emu: OpenAI) -> None:
    file_id = openai_emu.upload([_line("a")])
    response = openai_emu.http.post("/batches", json={
        "input_file_id": file_id, "endpoint": "/v1/chat/completions",
        "completion_window": "24h", "priority": "high"})
    assert response.status_code == 400
    assert response.json() == {"error": {
        "message": "Unrecognized request argument supplied: priority",
        "type": "invalid_request_error", "param": None, "code": None}}


def test_openai_request_bodies_with_unknown_names_fail_alone(openai_emu: OpenAI) -> None:
    file_id = openai_emu.upload([_line("good"), _line("bad", max_token=5)])
    batch = openai_emu.post("/batches", json={
        "input_file_id": file_id, "endpoint": "/v1/chat/completions",
        "completion_window": "24h"})
    openai_emu.clock.advance(300)
    done = openai_emu.get(f"/batches/{batch['id']}")
    assert done["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    errors = openai_emu.http.get(f"/files/{done['error_file_id']}/content").text
    line = json.loads(errors.splitlines()[0])
    assert line["custom_id"] == "bad"
    assert line["response"]["status_code"] == 400
    assert line["response"]["body"]["error"]["message"] == \
        "Unrecognized request argument supplied: max_token"


def test_openai_names_match_the_api_description() -> None:
    from llmbatch.emulator.openai.endpoints import ChatCompletions, Embeddings
    from llmbatch.emulator.openai.service import CREATE_BATCH_NAMES
    from llmbatch.emulator.openai.text_endpoints import Completions, Moderations, Responses

    if not OPENAI_SPEC.exists():
        return  # a checkout without ../shared: the names as vendored stand
    import yaml

    schemas = yaml.load(OPENAI_SPEC.read_text(encoding="utf-8"),
                        Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["components"][
        "schemas"]

    def names(schema: str) -> set[str]:
        node = schemas[schema]
        found = set(node.get("properties", {}))
        for part in node.get("allOf", []):
            found |= names(part["$ref"].rsplit("/", 1)[-1]) if "$ref" in part \
                else set(part.get("properties", {}))
        return found

    assert names("CreateChatCompletionRequest") == ChatCompletions.NAMES
    assert names("CreateEmbeddingRequest") == Embeddings.NAMES
    assert names("CreateBatchRequest") == CREATE_BATCH_NAMES
    assert names("CreateResponse") == Responses.NAMES
    assert names("CreateCompletionRequest") == Completions.NAMES
    assert names("CreateModerationRequest") == Moderations.NAMES


def test_the_gemini_field_table_matches_a_fresh_extraction_when_the_spec_is_present() -> None:
    extractor = load_extractor("extract_gemini_request_fields")
    assert_fresh_extract_matches(extractor, extractor.SPEC, extractor.OUTPUT,
                                 "Gemini request field table")
