"""The OpenAPI description: schemathesis sends generated requests to every operation (with a
valid key) and checks each answer against the description; the served description equals the
one kept in the repository (docs/openapi.json)."""

from __future__ import annotations

import json
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import ApiWorld

KEPT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
MAX_EXAMPLES = 30
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance, negative_data_rejection]


def test_every_operation_conforms_to_the_description(api_world: ApiWorld) -> None:
    # A job of alice's to find; generated ids mostly miss it, which is a 404 to conform too.
    api_world.client("alice").post("/v1/jobs", json={"provider": "fake", "model": "fake-model",
                                                     "requests": [{"custom_id": "a",
                                                                   "body": {"messages": []}}]})
    schema = schemathesis.openapi.from_asgi("/openapi.json", api_world.app)
    auth = {"Authorization": f"Bearer {api_world.keys['alice']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "GET /healthz", "GET /readyz", "POST /v1/jobs", "GET /v1/jobs", "GET /v1/jobs/{job_id}",
        "GET /v1/jobs/{job_id}/items", "GET /v1/jobs/{job_id}/results",
        "GET /v1/jobs/{job_id}/events", "POST /v1/jobs/{job_id}/cancel",
        "POST /v1/jobs/{job_id}/retry"}

    failures: list[str] = []
    seen: list[tuple[str, int]] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def conforms(case: schemathesis.Case) -> None:
            response = case.call_and_validate(headers=auth, checks=CHECKS)
            seen.append((case.operation.label, response.status_code))

        try:
            conforms()
        except Exception as exc:  # one operation's failures, reported with the others
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert {label for label, _ in seen} == {op.label for op in operations}


def test_the_served_description_is_the_one_kept_in_the_repository(api_world: ApiWorld) -> None:
    served = api_world.client(None).get("/openapi.json").json()
    assert KEPT.exists(), "write it: python -m llmbatch.api.openapi_dump docs/openapi.json"
    assert served == json.loads(KEPT.read_text(encoding="utf-8")), (
        "docs/openapi.json is stale: python -m llmbatch.api.openapi_dump docs/openapi.json")
