"""Every response the Gemini emulator sends validates against the Gemini API descriptions.

Schemas come from ``tests/fixtures/gemini_batch_schemas.json``, extracted by
``tests/fixtures/extract_gemini_schemas.py`` from Google's own export (``google``) and from a
third-party, docs-derived description (``whit3rabbit``). When ``../shared/specs/`` is present
the extract must equal a fresh extraction; otherwise the vendored copy stands in.

Google's export types the batch as a generic ``Operation`` (metadata/response are open
objects), so it is checked strictly. The third-party description types batches closely but
disagrees with the live API and the SDK on three points, pinned by
``test_what_the_third_party_description_gets_wrong``; everything else is checked strictly.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmbatch.emulator import EmulatorServer, FakeClock

from .spec_support import (
    FIXTURES,
    EmulatorClient,
    assert_fresh_extract_matches,
    load_extractor,
    running_emulator,
    schema_validator,
)

pytestmark = pytest.mark.contract

VENDORED = FIXTURES / "gemini_batch_schemas.json"
DOCUMENT: dict[str, Any] = json.loads(VENDORED.read_text(encoding="utf-8"))
KEY = {"x-goog-api-key": "contract-key"}


def fix_third_party(operation: dict[str, Any]) -> dict[str, Any]:
    """The live Operation reshaped to what the third-party description expects."""
    fixed = copy.deepcopy(operation)
    metadata = fixed.get("metadata", {})
    for name in ("@type", "name", "inputConfig"):
        metadata.pop(name, None)
    if "state" in metadata:
        metadata["state"] = metadata["state"].replace("BATCH_STATE_", "JOB_STATE_")
    fixed.get("response", {}).pop("@type", None)
    return fixed


def errors_of(instance: Any, name: str, source: str = "google") -> list[str]:
    uri = f"urn:llmbatch:gemini:{source}"
    validator = schema_validator(DOCUMENT[source], uri, name)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(instance)]


def assert_valid(instance: Any, name: str, source: str = "google") -> None:
    problems = errors_of(instance, name, source)
    assert not problems, f"{source}:{name}: " + "; ".join(problems[:5])


def assert_operation(operation: dict[str, Any]) -> None:
    assert_valid(operation, "Operation")
    assert_valid(fix_third_party(operation), "BatchOperation", "whit3rabbit")
    output = operation.get("metadata", {}).get("output", {})
    for entry in output.get("inlinedResponses", {}).get("inlinedResponses", []):
        assert_valid(entry, "InlinedResponse", "whit3rabbit")
        if "response" in entry:
            assert_valid(entry["response"], "GenerateContentResponse")
            assert_valid(entry["response"], "GenerateContentResponse", "whit3rabbit")


def test_the_vendored_extract_matches_the_specs_when_present() -> None:
    extractor = load_extractor("extract_gemini_schemas")
    for source, roots in (("google", extractor.GOOGLE_ROOTS),
                          ("whit3rabbit", extractor.THIRD_PARTY_ROOTS)):
        assert set(roots) <= set(DOCUMENT[source]["components"]["schemas"])
    assert_fresh_extract_matches(extractor, extractor.GOOGLE_SPEC, VENDORED, "specs")


class Emulator(EmulatorClient):
    def __init__(self, server: EmulatorServer, clock: FakeClock) -> None:
        self.root = f"{server.url}/gemini"
        super().__init__(server, clock, f"{self.root}/v1beta", KEY)

    def upload(self, text: str) -> dict[str, Any]:
        start = httpx.post(f"{self.root}/upload/v1beta/files", headers={
            **KEY, "x-goog-upload-protocol": "resumable", "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": str(len(text)),
            "x-goog-upload-header-content-type": "application/jsonl"},
            json={"file": {"display_name": "in"}})
        assert start.status_code == 200, start.text
        done = httpx.post(start.headers["x-goog-upload-url"], content=text.encode(), headers={
            "x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "0"})
        assert done.headers["x-goog-upload-status"] == "final", done.text
        body: dict[str, Any] = done.json()["file"]
        return body

    def create(self, tag: str, *, lines: int = 4, file: bool = False) -> dict[str, Any]:
        requests = [{"request": {"contents": [{"role": "user", "parts": [{"text": f"q{i}"}]}],
                                 "generationConfig": {"maxOutputTokens": 30}},
                     "metadata": {"key": f"k{i}"}} for i in range(lines)]
        if file:
            text = "".join(json.dumps({"key": r["metadata"]["key"], "request": r["request"]})
                           + "\n" for r in requests)
            config: dict[str, Any] = {"fileName": self.upload(text)["name"]}
        else:
            config = {"requests": {"requests": requests}}
        return self.post("/models/gemini-2.5-flash:batchGenerateContent",
                         json={"batch": {"displayName": tag, "inputConfig": config}})


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with running_emulator(Emulator) as emu:
        yield emu


def test_files_validate(emulator: Emulator) -> None:
    uploaded = emulator.upload('{"request": {"contents": []}}\n')
    for source in ("google", "whit3rabbit"):
        assert_valid(uploaded, "File", source)
        assert_valid(emulator.get(f"/{uploaded['name']}"), "File", source)
        assert_valid(emulator.get("/files?pageSize=1"), "ListFilesResponse", source)
    assert isinstance(uploaded["sizeBytes"], str)


def test_a_batch_validates_in_every_state(emulator: Emulator) -> None:
    clock, seen = emulator.clock, {}
    batch = emulator.create("states")
    seen[batch["metadata"]["state"]] = batch
    for step in (60, 60):
        clock.advance(step)
        current = emulator.get(f"/{batch['name']}")
        seen[current["metadata"]["state"]] = current
    file_batch = emulator.create("file-states", file=True)
    emulator.server.set_faults([{"kind": "fail_batch", "code": "TOKEN_LIMIT", "times": 1}])
    failed = emulator.create("failed")
    cancelled = emulator.create("cancelled")
    emulator.server.set_faults([{"kind": "expire", "at_fraction": 0.5, "times": 1}])
    expired = emulator.create("expired", lines=10)
    clock.advance(40)
    assert emulator.http.post(f"/{cancelled['name']}:cancel").json() == {}
    clock.advance(200)
    for name in (failed, cancelled, expired):
        current = emulator.get(f"/{name['name']}")
        seen[current["metadata"]["state"]] = current
    file_done = emulator.get(f"/{file_batch['name']}")
    assert set(seen) == {f"BATCH_STATE_{s}" for s in (
        "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED")}
    for operation in [*seen.values(), file_done]:
        assert_operation(operation)
    assert seen["BATCH_STATE_FAILED"]["error"]["details"][0]["reason"] == "TOKEN_LIMIT"
    assert file_done["response"]["responsesFile"] == file_done["metadata"]["output"][
        "responsesFile"]
    listing = emulator.get("/batches?pageSize=3")
    assert len(listing["operations"]) == 3 and listing["nextPageToken"]
    assert_valid(listing, "ListOperationsResponse")
    assert_valid({**listing, "operations": [fix_third_party(o) for o in listing["operations"]]},
                 "ListBatchesResponse", "whit3rabbit")

    text = emulator.http.get(f"/{file_done['response']['responsesFile']}:download",
                             params={"alt": "media"}).text
    assert text.endswith("\n") and "\n\n" not in text
    for line in text.splitlines():
        entry = json.loads(line)
        assert entry["key"].startswith("k")
        assert_valid(entry["response"], "GenerateContentResponse")
        assert_valid(entry["response"], "GenerateContentResponse", "whit3rabbit")


def test_error_bodies_are_google_rpc_statuses(emulator: Emulator) -> None:
    emulator.server.set_faults([{"kind": "http", "operation": "batches.list", "status": 429,
                                 "retry_after_s": 1, "times": 1}])
    responses = [
        emulator.http.get("/batches/missing"),
        emulator.http.get("/batches"),
        emulator.http.post("/models/not-a-model:batchGenerateContent", json={"batch": {}}),
        emulator.http.post("/models/gemini-2.5-flash:batchGenerateContent",
                           json={"batch": {"displayName": "x", "bogus": 1}}),
        httpx.get(f"{emulator.root}/v1beta/batches"),
        emulator.http.get("/files/none"),
    ]
    assert [r.status_code for r in responses] == [404, 429, 404, 400, 403, 403]
    for response in responses:
        body = response.json()
        assert set(body) == {"error"}
        assert_valid(body["error"], "Status")
        assert isinstance(body["error"]["status"], str)
    assert responses[1].json()["error"]["details"][0]["retryDelay"] == "1s"


def test_an_inline_body_over_the_limit_is_refused(emulator: Emulator) -> None:
    limit = emulator.server.runtime.settings.gemini.max_inline_bytes
    text = "x" * (limit + 1)
    response = emulator.http.post("/models/gemini-2.5-flash:batchGenerateContent", json={
        "batch": {"displayName": "big", "inputConfig": {"requests": {"requests": [
            {"request": {"contents": [{"parts": [{"text": text}]}]}}]}}}})
    assert response.status_code == 400
    assert "payload size exceeds the limit" in response.json()["error"]["message"]


def test_what_the_third_party_description_gets_wrong(emulator: Emulator) -> None:
    """The live API (PROVIDER_APIS.md C.1, bifrost fixtures) and the SDK converter
    (``_BatchJob_from_mldev``, ``t_job_state``) use ``BATCH_STATE_*`` in ``metadata.state``,
    and carry ``@type``/``name``/``inputConfig`` in metadata and ``@type`` in ``response``;
    the third-party description types ``state`` as the SDK's ``JOB_STATE_*`` renaming and
    forbids the other fields. Google's own export accepts all of it."""
    batch = emulator.create("third-party", file=True)
    emulator.clock.advance(200)
    operation = emulator.get(f"/{batch['name']}")
    problems = errors_of(operation, "BatchOperation", "whit3rabbit")
    assert any("BATCH_STATE_SUCCEEDED" in p for p in problems), problems
    assert any("@type" in p for p in problems) and any("inputConfig" in p for p in problems)
    assert not errors_of(fix_third_party(operation), "BatchOperation", "whit3rabbit")
    assert not errors_of(operation, "Operation")
