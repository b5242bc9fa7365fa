"""Tenant isolation: every endpoint probed with another tenant's ids answers exactly as for a
job that does not exist (404), and nothing of the other tenant shows in any body, header or
event stream. The keys table holds no key in clear."""

from __future__ import annotations

import json

from sqlalchemy import select

from llmbatch.db.tables import api_keys

from .conftest import MODEL, ApiWorld, jsonl

MISSING = "job_0000000000000000000000"


def _alice_job(world: ApiWorld) -> str:
    world.driver.fake.outcomes.update({"secret-1": ["permanent"]})
    answer = world.client("alice").post(
        "/v1/jobs", headers={"Idempotency-Key": "shared-key"},
        files={"file": ("a.jsonl", jsonl(3, "secret"), "application/x-ndjson")},
        data={"provider": "fake", "model": MODEL, "name": "alice-private",
              "metadata": json.dumps({"owner": "alice-private"})})
    assert answer.status_code == 201, answer.text
    job_id: str = answer.json()["id"]
    world.driver.run(job_id)
    return job_id


def _probes(job_id: str) -> list[tuple[str, str, dict[str, str]]]:
    sse = {"Accept": "text/event-stream"}
    return [("GET", f"/v1/jobs/{job_id}", {}), ("GET", f"/v1/jobs/{job_id}/items", {}),
            ("GET", f"/v1/jobs/{job_id}/results", {}),
            ("GET", f"/v1/jobs/{job_id}/results", {"Accept-Encoding": "gzip"}),
            ("GET", f"/v1/jobs/{job_id}/events", {}), ("GET", f"/v1/jobs/{job_id}/events", sse),
            ("POST", f"/v1/jobs/{job_id}/cancel", {}), ("POST", f"/v1/jobs/{job_id}/retry", {})]


def test_another_tenants_job_is_a_404_like_a_missing_one_on_every_endpoint(
        api_world_any: ApiWorld) -> None:
    api_world = api_world_any
    job_id = _alice_job(api_world)
    bob = api_world.client("bob")
    secrets = ("tenant-a", "alice-private", "secret-", job_id.removeprefix("job_"))
    for (method, path, headers), (_, missing_path, _) in zip(_probes(job_id), _probes(MISSING),
                                                             strict=True):
        theirs = bob.request(method, path, headers=headers)
        none = bob.request(method, missing_path, headers=headers)
        assert theirs.status_code == none.status_code == 404, (method, path, theirs.text)
        # Only the id bob sent is echoed; otherwise the answer is the one for no job at all.
        assert theirs.text.replace(job_id, MISSING) == none.text
        assert sorted(theirs.headers.keys()) == sorted(none.headers.keys())
        echoed = theirs.text.replace(job_id, "<id>") + json.dumps(dict(theirs.headers))
        assert not any(s in echoed for s in secrets), (method, path, echoed)

    listed = bob.get("/v1/jobs").text + bob.get(f"/v1/jobs?parent_job_id={job_id}").text
    assert not any(s in listed for s in (*secrets, job_id))
    # Bob's own use of the same idempotency key makes his own job.
    mine = bob.post("/v1/jobs", headers={"Idempotency-Key": "shared-key"},
                    files={"file": ("b.jsonl", jsonl(1, "bob"), "application/x-ndjson")},
                    data={"provider": "fake", "model": MODEL})
    assert mine.status_code == 201 and mine.json()["id"] != job_id
    assert mine.json()["tenant"] == "tenant-b"
    # Alice's job is still hers and untouched; the admin key reads both tenants.
    assert api_world.client("alice").get(f"/v1/jobs/{job_id}").json()["status"] != "cancelling"
    listed_by_admin = {j["id"] for j in api_world.client("root").get("/v1/jobs").json()["data"]}
    assert listed_by_admin == {job_id, mine.json()["id"]}
    assert api_world.client("root").get(f"/v1/jobs/{job_id}/results").status_code == 200


def test_the_keys_table_holds_no_key_in_clear(api_world: ApiWorld) -> None:
    with api_world.driver.rt.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(api_keys)).all()]
    assert len(rows) == len(api_world.keys) == 3
    stored = json.dumps(rows, default=str)
    for key in api_world.keys.values():
        secret = key.split("_", 2)[2]
        assert key not in stored and secret not in stored and secret[:16] not in stored
    assert all(len(r["secret_hash"]) == 64 for r in rows)
