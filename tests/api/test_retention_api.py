"""A job's own retention through the API: the JSON field and the multipart form field reach
the job (its provider-side data is then kept or deleted as asked), and a value the provider
cannot honour is a 422 naming ``retention.<key>``."""

from __future__ import annotations

import json

import pytest

from llmbatch.domain.models import BatchProgress
from llmbatch.domain.retention import Deletion, DeletionOutcome
from llmbatch.domain.states import JobStatus
from llmbatch.errors import InputError

from .conftest import MODEL, ApiWorld, jsonl


def _event_types(world: ApiWorld, job_id: str) -> list[str]:
    events = world.client("alice").get(f"/v1/jobs/{job_id}/events").json()["data"]
    return [e["type"] for e in events]


def _delete(provider_batch_id: str, progress: BatchProgress) -> list[Deletion]:
    return [Deletion("batch", provider_batch_id, DeletionOutcome.DELETED)]


def test_inline_and_uploaded_jobs_carry_their_retention(api_world: ApiWorld) -> None:
    assert api_world.driver.fake is not None
    api_world.driver.fake.cleanup = _delete  # type: ignore[method-assign]
    client = api_world.client("alice")
    body = {"provider": "fake", "model": MODEL, "retention": {"delete_when_stored": False},
            "requests": [json.loads(jsonl(1))]}
    kept = client.post("/v1/jobs", json=body)
    assert kept.status_code == 201, kept.text
    uploaded = client.post("/v1/jobs", files={"file": ("p.jsonl", jsonl(1),
                                                       "application/x-ndjson")},
                           data={"provider": "fake", "model": MODEL,
                                 "retention": '{"delete_when_stored": true}'})
    assert uploaded.status_code == 201, uploaded.text
    for answer in (kept, uploaded):
        assert api_world.driver.run(answer.json()["id"]).status is JobStatus.SUCCEEDED
    assert "batch.provider_data_kept" in _event_types(api_world, kept.json()["id"])
    assert "batch.provider_data_deleted" in _event_types(api_world, uploaded.json()["id"])
    for answer, state in ((kept, "kept"), (uploaded, "deleted")):
        (batch,) = client.get(f"/v1/jobs/{answer.json()['id']}").json()["batches"]
        assert (batch["cleanup_state"], batch["cleanup_attempts"]) == (
            state, 0 if state == "kept" else 1)


def test_retention_the_provider_cannot_honour_is_a_422_naming_the_field(
        api_world: ApiWorld) -> None:
    client = api_world.client("alice")
    body = {"provider": "fake", "model": MODEL, "retention": {"output_expires_after_s": 3600},
            "requests": [json.loads(jsonl(1))]}
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "retention.output_expires_after_s"
    form = client.post("/v1/jobs", files={"file": ("p.jsonl", jsonl(1), "application/x-ndjson")},
                       data={"provider": "fake", "model": MODEL, "retention": "[1]"})
    assert form.status_code == 422
    assert form.json()["errors"][0]["field"] == "retention"
    assert client.get("/v1/jobs").json()["data"] == []


def test_the_python_client_sends_a_jobs_retention_to_the_api(api_world: ApiWorld) -> None:
    """``Client(url=...).submit(..., retention=...)``: the multipart field reaches the job."""
    import httpx

    from llmbatch.client import Client
    from llmbatch.client.backends import RemoteBackend

    served = api_world.client("alice")

    def forward(request: httpx.Request) -> httpx.Response:
        answer = served.request(request.method, request.url.path, headers=request.headers,
                                content=request.read())
        return httpx.Response(answer.status_code, headers=answer.headers,
                              content=answer.content)

    backend = RemoteBackend("http://api", None, transport=httpx.MockTransport(forward))
    with Client(backend=backend) as client:
        job = client.submit([json.loads(jsonl(1))], provider="fake", model=MODEL,
                            retention={"delete_when_stored": False})
        with pytest.raises(InputError) as err:
            client.submit([json.loads(jsonl(1))], provider="fake", model=MODEL,
                          retention={"output_expires_after_s": 7200})
    assert err.value.field == "retention.output_expires_after_s"
    assert api_world.driver.run(job.id).status is JobStatus.SUCCEEDED
    assert "batch.provider_data_kept" in _event_types(api_world, job.id)
