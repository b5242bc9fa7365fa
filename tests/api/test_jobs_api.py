"""The job routes in-process: create (upload, inline, idempotency), read, results, events,
cancel, retry, and the problem details of bad input."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from llmbatch.api.app import create_app
from llmbatch.api.settings import ApiConfig
from llmbatch.domain.states import JobStatus

from .conftest import MODEL, ApiWorld, jsonl


def upload(world: ApiWorld, who: str, data: bytes, *, key: str | None = None,
           filename: str = "prompts.jsonl", **fields: str):  # type: ignore[no-untyped-def]
    headers = {"Idempotency-Key": key} if key else {}
    return world.client(who).post(
        "/v1/jobs", headers=headers, files={"file": (filename, data, "application/x-ndjson")},
        data={"provider": "fake", "model": MODEL, **fields})


def test_upload_creates_a_job_and_the_same_idempotency_key_returns_it(
        api_world: ApiWorld) -> None:
    first = upload(api_world, "alice", jsonl(3), key="k1", name="nightly",
                   metadata='{"team": "eval"}')
    assert first.status_code == 201, first.text
    job = first.json()
    assert first.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["tenant"], job["item_count"], job["name"]) == ("tenant-a", 3, "nightly")

    again = upload(api_world, "alice", jsonl(3), key="k1")
    assert (again.status_code, again.json()["id"]) == (200, job["id"])
    other = upload(api_world, "alice", jsonl(4), key="k1")
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"

    detail = api_world.client("alice").get(f"/v1/jobs/{job['id']}").json()
    assert detail["metadata"] == {"team": "eval"}


def test_a_bad_line_is_a_422_naming_file_line_and_field_as_the_cli_prints_it(
        api_world: ApiWorld) -> None:
    data = jsonl(2) + b'{"custom_id": "x", "body": 5}\n'
    answer = upload(api_world, "alice", data, filename="mine.jsonl")
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["status"] == 422
    [error] = problem["errors"]
    assert (error["file"], error["line"]) == ("mine.jsonl", 3)
    assert error["text"].startswith("mine.jsonl:3:")
    assert api_world.client("alice").get("/v1/jobs").json()["data"] == []


def test_an_endpoint_the_provider_lacks_is_a_422_naming_the_field(api_world: ApiWorld) -> None:
    client = api_world.client("alice")
    body = {"provider": "fake", "model": MODEL, "endpoint": "moderations",
            "requests": [{"custom_id": "m", "body": {"input": "hi"}}]}
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 422, answer.text
    assert "no moderations batches" in answer.text and "endpoint" in answer.text
    unknown = client.post("/v1/jobs", json={**body, "endpoint": "videos"})
    assert unknown.status_code == 422 and "responses" in unknown.text  # the values it takes


def test_inline_requests_run_to_results_in_input_order_plain_and_gzipped(
        api_world: ApiWorld) -> None:
    client = api_world.client("alice")
    body = {"provider": "fake", "model": MODEL,
            "requests": [json.loads(jsonl(1, f"r{i}")) for i in range(5)]}
    created = client.post("/v1/jobs", json=body)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    assert api_world.driver.run(job_id).status is JobStatus.SUCCEEDED

    plain = client.get(f"/v1/jobs/{job_id}/results", headers={"Accept-Encoding": "identity"})
    lines = [json.loads(line) for line in plain.text.splitlines()]
    assert [r["custom_id"] for r in lines] == [f"r{i}-0" for i in range(5)]
    assert all(r["status"] == "succeeded" for r in lines)

    raw = client.get(f"/v1/jobs/{job_id}/results", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.text == plain.text  # httpx decodes it

    items = client.get(f"/v1/jobs/{job_id}/items", params={"limit": 2}).json()
    assert [i["seq"] for i in items["data"]] == [0, 1] and items["next_cursor"] == "1"
    events = client.get(f"/v1/jobs/{job_id}/events").json()["data"]
    assert events[0]["type"] == "job.created"

    with client.stream("GET", f"/v1/jobs/{job_id}/events",
                       headers={"Accept": "text/event-stream",
                                "Last-Event-ID": str(events[0]["id"])}) as stream:
        text = "".join(stream.iter_text())
    ids = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
    assert ids == [e["id"] for e in events[1:]]
    assert text.rstrip().endswith('data: {"job_id": "' + job_id + '"}')


def test_cancel_and_retry(api_world: ApiWorld) -> None:
    client = api_world.client("alice")
    api_world.driver.fake.outcomes.update({"q-1": ["permanent", "ok"]})
    job_id = upload(api_world, "alice", jsonl(3)).json()["id"]
    assert client.post(f"/v1/jobs/{job_id}/retry").status_code == 409  # still running
    api_world.driver.run(job_id)
    retried = client.post(f"/v1/jobs/{job_id}/retry")
    assert retried.status_code == 201, retried.text
    assert retried.json()["items"] == 1
    child_id = retried.json()["job"]["id"]
    assert retried.headers["location"] == f"/v1/jobs/{child_id}"

    cancelled = client.post(f"/v1/jobs/{child_id}/cancel")
    assert cancelled.json() == {"id": child_id, "status": "cancelling"}


def test_progress_lineage_results_and_retry_options_serve_what_the_cli_shows(
        api_world: ApiWorld) -> None:
    client = api_world.client("alice")
    api_world.driver.fake.outcomes.update({"q-1": ["permanent", "ok"]})
    job_id = upload(api_world, "alice", jsonl(3)).json()["id"]
    api_world.driver.run(job_id)

    progress = client.get(f"/v1/jobs/{job_id}/progress").json()
    assert progress["job"]["status"] == "completed_with_failures"
    assert (progress["fetched"], progress["at_provider_total"], progress["waiting"]) == (3, 0, [])
    assert api_world.client("bob").get(f"/v1/jobs/{job_id}/progress").status_code == 404

    retried = client.post(f"/v1/jobs/{job_id}/retry", params={"name": "again"})
    assert retried.status_code == 201, retried.text
    body = retried.json()
    assert (body["items"], body["already_succeeded"], body["in_flight"]) == (1, 0, 0)
    assert body["job"]["name"] == "again"
    child_id = body["job"]["id"]
    again = client.post(f"/v1/jobs/{job_id}/retry")  # the child still carries q-1
    assert again.status_code == 409 and "still running" in again.json()["detail"]
    api_world.driver.run(child_id)

    merged = [json.loads(line) for line in client.get(
        f"/v1/jobs/{job_id}/results", params={"lineage": "true"}).text.splitlines()]
    assert [(r["custom_id"], r["status"], r["job_id"]) for r in merged] == [
        ("q-0", "succeeded", job_id), ("q-1", "succeeded", child_id),
        ("q-2", "succeeded", job_id)]
    plain = client.get(f"/v1/jobs/{job_id}/results").text.splitlines()
    assert [json.loads(line)["status"] for line in plain] == ["succeeded", "failed", "succeeded"]
    assert all("job_id" not in json.loads(line) for line in plain)


def test_no_key_or_a_revoked_key_is_401_and_health_needs_none(api_world: ApiWorld) -> None:
    from llmbatch.service_layer.api_keys import list_keys, revoke_key

    assert api_world.client(None).get("/v1/jobs").status_code == 401
    assert api_world.client(None).get("/healthz").json() == {"status": "ok"}
    assert api_world.client(None).get("/readyz").status_code == 200
    alice = next(k for k in list_keys(api_world.driver.rt) if k.name == "alice")
    revoke_key(api_world.driver.rt, alice.prefix)
    answer = api_world.client("alice").get("/v1/jobs")
    assert answer.status_code == 401 and "Bearer" in answer.headers["www-authenticate"]


def test_over_the_rate_limit_is_429_with_retry_after(api_world: ApiWorld) -> None:
    from llmbatch.api.app import create_app
    from llmbatch.api.settings import ApiConfig

    api_world.app = create_app(api_world.driver.rt,
                               ApiConfig(rate_limit_per_s=0.5, rate_limit_burst=2))
    client = api_world.client("alice")
    codes = [client.get("/v1/jobs").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert int(client.get("/v1/jobs").headers["retry-after"]) >= 1


def test_a_body_over_the_cap_is_413(api_world: ApiWorld) -> None:
    from llmbatch.api.app import create_app
    from llmbatch.api.settings import ApiConfig

    api_world.app = create_app(api_world.driver.rt, ApiConfig(max_body_bytes=1000))
    assert upload(api_world, "alice", jsonl(50)).status_code == 413


def test_betas_reach_the_providers_check_from_a_form_field_and_from_json(
        api_world: ApiWorld) -> None:
    # The fake provider takes no per-job options: the refusal names the field either way.
    answer = upload(api_world, "alice", jsonl(1), betas="output-300k-2026-03-24, x")
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert error["field"] == "betas" and "takes no per-job options" in error["message"]
    inline = api_world.client("alice").post("/v1/jobs", json={
        "provider": "fake", "model": MODEL, "betas": ["output-300k-2026-03-24"],
        "requests": [{"custom_id": "q", "body": {"messages": [
            {"role": "user", "content": "hi"}]}}]})
    assert inline.status_code == 422 and inline.json()["errors"][0]["field"] == "betas"
    assert upload(api_world, "alice", jsonl(1), betas="").status_code == 201


class _BrokerDown:
    """A publisher whose broker cannot be reached."""

    def __init__(self) -> None:
        self.attempts = 0

    def publish(self, task: str, *args: object, countdown: float | None = None) -> None:
        self.publish_many([(task, args, countdown)])

    def publish_many(self, messages: object) -> None:
        self.attempts += 1
        raise ConnectionRefusedError("[Errno 111] Connection refused")


def test_a_stored_job_is_created_even_when_the_broker_cannot_be_told(
        api_world: ApiWorld) -> None:
    """The job is committed before its wake-up call goes out: a broker that is down must not
    turn that into a 500 (a client that resubmits would pay twice). The tick plans it later."""
    driver = api_world.driver
    recording, down = driver.rt.publisher, _BrokerDown()
    driver.rt.publisher = down
    app = create_app(driver.rt, ApiConfig(rate_limit_per_s=1000, rate_limit_burst=10_000))
    client = TestClient(app, headers={"Authorization": f"Bearer {api_world.keys['alice']}"},
                        raise_server_exceptions=False)

    created = client.post("/v1/jobs", files={"file": ("p.jsonl", jsonl(2))},
                          data={"provider": "fake", "model": MODEL})

    assert created.status_code == 201, created.text
    assert down.attempts == 1
    job_id = created.json()["id"]
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "pending"
    driver.rt.publisher = recording  # the broker is back: the tick finds the job unplanned
    driver.tick()
    driver.run(job_id)
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
