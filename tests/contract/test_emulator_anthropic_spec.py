"""Every response the Anthropic emulator sends validates against Anthropic's API description.

Schemas come from ``tests/fixtures/anthropic_batch_schemas.json``, an extract of
``../shared/specs/anthropic-openapi.json`` made by ``tests/fixtures/extract_anthropic_schemas.py``.
When the spec is present the extract must equal a fresh extraction; without it (a checkout
without ``../shared``) the vendored copy is what responses are checked against. No relaxation
is needed: the Anthropic spec already types its optional fields as nullable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

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

VENDORED = FIXTURES / "anthropic_batch_schemas.json"
URI = "urn:llmbatch:anthropic-batch-schemas"
DOCUMENT: dict[str, Any] = json.loads(VENDORED.read_text(encoding="utf-8"))
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def assert_valid(instance: Any, name: str) -> None:
    assert_no_errors(schema_validator(DOCUMENT, URI, name), instance, name)


def test_the_vendored_extract_is_complete_and_matches_the_spec_when_present() -> None:
    extractor = load_extractor("extract_anthropic_schemas")
    schemas = DOCUMENT["components"]["schemas"]
    assert set(extractor.ROOTS) <= set(schemas)
    assert vendored_refs(VENDORED) <= set(schemas)
    assert_fresh_extract_matches(extractor, extractor.SPEC, VENDORED, "spec")


class Emulator(EmulatorClient):
    def __init__(self, server: EmulatorServer, clock: FakeClock) -> None:
        super().__init__(server, clock, f"{server.url}/anthropic", {
            "x-api-key": "sk-ant-contract", "anthropic-version": "2023-06-01"})

    def create(self, n: int = 4, prefix: str = "c", bad: bool = False) -> dict[str, Any]:
        requests = [{"custom_id": f"{prefix}-{i}", "params": {
            "model": "claude-haiku-4-5", "max_tokens": 0 if bad and i == 0 else 30,
            "messages": [{"role": "user", "content": f"q{i}"}]}} for i in range(n)]
        return self.post("/v1/messages/batches", json={"requests": requests})

    def results(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        text = self.http.get(batch["results_url"]).text
        assert text.endswith("\n") and "\n\n" not in text
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with running_emulator(Emulator) as emu:
        yield emu


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
    ({"custom_id": "ok", "params": {}, "extra": 1}, "requests.0.extra: Extra inputs are not "
                                                    "permitted"),
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
