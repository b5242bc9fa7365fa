"""Every response the Anthropic emulator sends validates against Anthropic's API description.

Schemas come from ``tests/fixtures/anthropic_batch_schemas.json``, an extract of
``../shared/specs/anthropic-openapi.json`` made by ``tests/fixtures/extract_anthropic_schemas.py``.
When the spec is present the extract must equal a fresh extraction; without it (a checkout
without ``../shared``) the vendored copy is what responses are checked against. No relaxation
is needed: the Anthropic spec already types its optional fields as nullable.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from llmbatch.emulator import EmulatorServer, EmulatorSettings, FakeClock

pytestmark = pytest.mark.contract

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VENDORED = FIXTURES / "anthropic_batch_schemas.json"
URI = "urn:llmbatch:anthropic-batch-schemas"
TIMING = {"validate_s": 10, "run_base_s": 100, "run_per_item_s": 0, "finalize_s": 5,
          "cancel_s": 3}
DOCUMENT: dict[str, Any] = json.loads(VENDORED.read_text(encoding="utf-8"))
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _extractor() -> Any:
    spec = importlib.util.spec_from_file_location("extract_anthropic_schemas",
                                                  FIXTURES / "extract_anthropic_schemas.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_valid(instance: Any, name: str) -> None:
    registry: Registry[Any] = Registry().with_resource(
        URI, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012))
    validator = Draft202012Validator({"$ref": f"{URI}#/components/schemas/{name}"},
                                     registry=registry)
    errors = sorted(validator.iter_errors(instance), key=lambda e: e.path)
    assert not errors, f"{name}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])


def test_the_vendored_extract_is_complete_and_matches_the_spec_when_present() -> None:
    extractor = _extractor()
    schemas = DOCUMENT["components"]["schemas"]
    assert set(extractor.ROOTS) <= set(schemas)
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', VENDORED.read_text()))
    assert refs <= set(schemas)
    spec_dir = extractor.DEFAULT_SPEC_DIR
    if (spec_dir / extractor.SPEC).exists():
        fresh = extractor.render(extractor.extract(spec_dir))
        assert fresh == VENDORED.read_text(encoding="utf-8"), (
            "the spec changed: re-run tests/fixtures/extract_anthropic_schemas.py")


class Emulator:
    def __init__(self, server: EmulatorServer, clock: FakeClock) -> None:
        self.server, self.clock = server, clock
        self.http = httpx.Client(base_url=f"{server.url}/anthropic", headers={
            "x-api-key": "sk-ant-contract", "anthropic-version": "2023-06-01"})

    def create(self, n: int = 4, prefix: str = "c", bad: bool = False) -> dict[str, Any]:
        requests = [{"custom_id": f"{prefix}-{i}", "params": {
            "model": "claude-haiku-4-5", "max_tokens": 0 if bad and i == 0 else 30,
            "messages": [{"role": "user", "content": f"q{i}"}]}} for i in range(n)]
        response = self.http.post("/v1/messages/batches", json={"requests": requests})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def results(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        text = self.http.get(batch["results_url"]).text
        assert text.endswith("\n") and "\n\n" not in text
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    clock = FakeClock()
    settings = EmulatorSettings.model_validate({"timing": TIMING})
    with EmulatorServer(settings, clock=clock) as server:
        emu = Emulator(server, clock)
        yield emu
        emu.http.close()


def test_batches_lists_results_and_deletes_match_the_spec(emulator: Emulator) -> None:
    batch = emulator.create(bad=True)
    assert_valid(batch, "MessageBatch")
    assert batch["processing_status"] == "in_progress" and batch["results_url"] is None
    assert batch["request_counts"] == {"processing": 4, "succeeded": 0, "errored": 0,
                                       "canceled": 0, "expired": 0}
    assert RFC3339.match(batch["created_at"]) and RFC3339.match(batch["expires_at"])
    emulator.clock.advance(200)
    ended = emulator.get(f"/v1/messages/batches/{batch['id']}")
    assert_valid(ended, "MessageBatch")
    assert ended["processing_status"] == "ended" and ended["ended_at"]
    assert ended["request_counts"]["succeeded"] == 3 and ended["request_counts"]["errored"] == 1
    assert ended["results_url"].startswith(emulator.server.url + "/anthropic/v1/")
    lines = emulator.results(ended)
    assert {line["result"]["type"] for line in lines} == {"succeeded", "errored"}
    for line in lines:
        assert_valid(line, "MessageBatchIndividualResponse")
    listing = emulator.get("/v1/messages/batches?limit=1")
    assert listing["data"] and listing["has_more"] in (True, False)
    assert_valid(listing, "ListResponse_MessageBatch_")
    deleted = emulator.http.delete(f"/v1/messages/batches/{batch['id']}").json()
    assert_valid(deleted, "DeleteMessageBatchResponse")


def test_cancel_and_expiry_end_with_partial_results_that_match_the_spec(
        emulator: Emulator) -> None:
    batch = emulator.create(n=20, prefix="k")
    emulator.clock.advance(60)
    canceling = emulator.http.post(f"/v1/messages/batches/{batch['id']}/cancel").json()
    assert_valid(canceling, "MessageBatch")
    assert canceling["processing_status"] == "canceling" and canceling["cancel_initiated_at"]
    emulator.clock.advance(10)
    ended = emulator.get(f"/v1/messages/batches/{batch['id']}")
    counts = ended["request_counts"]
    assert counts["canceled"] > 0 and counts["succeeded"] > 0 and sum(counts.values()) == 20
    for line in emulator.results(ended):
        assert_valid(line, "MessageBatchIndividualResponse")

    emulator.server.set_faults([{"kind": "expire", "provider": "anthropic", "at_fraction": 0.5,
                                 "match": {"custom_id_prefix": "x"}, "times": 1}])
    expiring = emulator.create(n=10, prefix="x")
    emulator.clock.advance(200)
    ended = emulator.get(f"/v1/messages/batches/{expiring['id']}")
    assert ended["request_counts"]["expired"] > 0
    for line in emulator.results(ended):
        assert_valid(line, "MessageBatchIndividualResponse")
    emulator.server.clear_faults()


@pytest.mark.parametrize(("headers", "status", "kind"), [
    ({"x-api-key": ""}, 401, "authentication_error"),
    ({"anthropic-version": "1999-01-01"}, 400, "invalid_request_error"),
])
def test_auth_and_version_errors_match_the_spec(emulator: Emulator, headers: dict[str, str],
                                                status: int, kind: str) -> None:
    response = emulator.http.get("/v1/messages/batches", headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["type"] == kind
    assert_valid(response.json(), "ErrorResponse")


@pytest.mark.parametrize(("request_item", "needle"), [
    ({"custom_id": "x" * 65, "params": {}}, "at most 64 characters"),
    ({"custom_id": "bad id", "params": {}}, "should match pattern"),
    ({"custom_id": "ok", "params": {"model": "m", "messages": []}}, "max_tokens: Field required"),
    ({"custom_id": "ok", "params": {"max_tokens": 5, "messages": []}}, "model: Field required"),
])
def test_create_validation_errors_are_400_invalid_request(
        emulator: Emulator, request_item: dict[str, Any], needle: str) -> None:
    response = emulator.http.post("/v1/messages/batches", json={"requests": [request_item]})
    assert response.status_code == 400
    assert needle in response.json()["error"]["message"]
    assert_valid(response.json(), "ErrorResponse")


def test_duplicate_custom_ids_and_unknown_batches_are_refused(emulator: Emulator) -> None:
    item = {"custom_id": "dup", "params": {"model": "m", "max_tokens": 5, "messages": []}}
    response = emulator.http.post("/v1/messages/batches", json={"requests": [item, item]})
    assert response.status_code == 400 and "unique" in response.json()["error"]["message"]
    missing = emulator.http.get("/v1/messages/batches/msgbatch_nope")
    assert missing.status_code == 404
    assert_valid(missing.json(), "ErrorResponse")
