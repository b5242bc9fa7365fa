"""``POST /v1/estimates`` and ``GET /v1/usage``: the estimate is the service function's, to the
last digit; the usage report of one tenant never counts, names or totals another's jobs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from llmbatch.config import ModelConfig, ProviderConfig
from llmbatch.service_layer.estimates import estimate_lines
from llmbatch.service_layer.read_models.usage import usage_report
from service.harness import Driver

from .conftest import MODEL, ApiWorld, _world, chat_line, jsonl

PRICED = ModelConfig(name=MODEL, input_usd_per_mtok=Decimal("1.25"),
                     output_usd_per_mtok=Decimal("4.5"))


@pytest.fixture
def priced_world(make_driver: Callable[..., Driver]) -> Iterator[ApiWorld]:
    """The app on SQLite, the fake model priced."""
    yield from _world(make_driver(ProviderConfig(models=(PRICED,))))


def _run_job(world: ApiWorld, who: str, n: int) -> str:
    answer = world.client(who).post(
        "/v1/jobs", files={"file": (f"{who}.jsonl", jsonl(n, who), "application/x-ndjson")},
        data={"provider": "fake", "model": MODEL, "name": f"{who}-job"})
    assert answer.status_code == 201, answer.text
    job_id: str = answer.json()["id"]
    world.driver.run(job_id)
    return job_id


REQUESTS = [json.loads(chat_line(f"e-{i}", "word " * (1 + i * 40))) for i in range(3)]
REQUESTS.append({"custom_id": "no-bound",
                 "body": {"messages": [{"role": "user", "content": "no max_tokens"}]}})


def test_the_estimate_is_the_service_functions_to_the_last_digit(
        priced_world: ApiWorld) -> None:
    _run_job(priced_world, "alice", 3)  # alice's history: the expected output is learnt

    answer = priced_world.client("alice").post(
        "/v1/estimates", json={"provider": "fake", "model": MODEL, "requests": REQUESTS})

    assert answer.status_code == 200, answer.text
    got = answer.json()
    lines = [json.dumps(r).encode() for r in REQUESTS]
    want = estimate_lines(priced_world.driver.rt, lines, source="requests", provider="fake",
                          model=MODEL, tenant="tenant-a")
    assert {k: got[k] for k in want.as_dict()} == want.as_dict()
    assert got["requests"] == 4 and got["endpoint"] == "chat"
    assert got["defaulted_output_bounds"] == 1
    assert got["output_basis"] == "mean of 3 finished requests of fake/fake-model"
    batch, sync = Decimal(got["batch_usd_expected"]), Decimal(got["sync_usd_expected"])
    assert batch > 0 and sync == 2 * batch  # the fake's batch discount is half
    assert Decimal(got["saving_usd_expected"]) == sync - batch
    assert (Decimal(got["saving_usd_bound"]) == Decimal(got["sync_usd_bound"])
            - Decimal(got["batch_usd_bound"]) > 0)


def test_an_estimate_learns_from_the_callers_tenant_only(priced_world: ApiWorld) -> None:
    _run_job(priced_world, "alice", 2)

    got = priced_world.client("bob").post(
        "/v1/estimates", json={"provider": "fake", "model": MODEL, "requests": REQUESTS}).json()

    assert got["output_basis"] == "no finished requests of this model yet: the bound"
    assert got["output_tokens_expected"] == got["output_tokens_bound"]


def test_an_unpriced_model_estimates_tokens_and_says_why_there_is_no_price(
        api_world: ApiWorld) -> None:
    got = api_world.client("alice").post(
        "/v1/estimates", json={"provider": "fake", "model": MODEL, "requests": REQUESTS}).json()
    assert got["input_tokens"] > 0 and got["batch_usd_expected"] is None
    assert got["saving_usd_bound"] is None and got["note"].startswith("no price known")


@pytest.mark.parametrize(("body", "field", "line"), [
    ({"provider": "fake", "model": MODEL,
      "requests": [REQUESTS[0], {"custom_id": "x", "body": "not an object"}]}, "body", 2),
    ({"provider": "fake", "model": MODEL, "requests": []}, "requests", None),
    ({"provider": "fake", "model": MODEL, "requests": REQUESTS, "colour": 1}, "colour", None),
    ({"provider": "nobody", "model": MODEL, "requests": REQUESTS}, None, None),
])
def test_bad_estimate_input_is_a_problem_naming_where(
        api_world: ApiWorld, body: dict[str, object], field: str | None,
        line: int | None) -> None:
    answer = api_world.client("alice").post("/v1/estimates", json=body)

    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 422 and problem["detail"]
    if field is not None:
        assert problem["errors"][0]["field"] == field
        assert problem["errors"][0].get("line") == line


def test_an_estimate_is_json_only(api_world: ApiWorld) -> None:
    answer = api_world.client("alice").post("/v1/estimates", content=b"{}",
                                            headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415
    assert answer.headers["content-type"] == "application/problem+json"


def _usage(world: ApiWorld, who: str, query: str = "") -> Any:
    answer = world.client(who).get(f"/v1/usage?by=tenant,provider,model,day{query}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_usage_of_a_tenant_never_includes_another_tenants_jobs(
        priced_world: ApiWorld) -> None:
    _run_job(priced_world, "alice", 3)
    _run_job(priced_world, "bob", 2)
    rt = priced_world.driver.rt

    alice = _usage(priced_world, "alice")
    assert alice["tenant"] == "tenant-a"
    assert [r["group"]["tenant"] for r in alice["rows"]] == ["tenant-a"]
    assert alice["total"]["requests"] == 3
    (want,) = usage_report(rt, ["tenant", "provider", "model", "day"], tenant="tenant-a")
    assert alice["total"]["batch_usd"] == str(want.batch_usd) != "0"
    assert alice["rows"][0]["tokens"] == want.tokens
    assert "tenant-b" not in json.dumps(alice)
    # Naming another tenant filters to nothing; it neither errs nor shows the other's rows.
    theirs = _usage(priced_world, "alice", "&tenant=tenant-b")
    assert theirs["rows"] == [] and theirs["total"]["requests"] == 0
    assert "tenant-b" not in json.dumps({k: v for k, v in theirs.items() if k != "tenant"})
    assert theirs["tenant"] == "tenant-a"

    assert _usage(priced_world, "bob")["total"]["requests"] == 2
    admin = _usage(priced_world, "root")
    assert admin["tenant"] is None
    assert {r["group"]["tenant"]: r["requests"]
            for r in admin["rows"]} == {"tenant-a": 3, "tenant-b": 2}
    assert _usage(priced_world, "root", "&tenant=tenant-b")["total"]["requests"] == 2


def test_usage_days_are_inclusive_and_bad_groupings_are_problems(
        priced_world: ApiWorld) -> None:
    _run_job(priced_world, "alice", 2)
    day = _usage(priced_world, "alice")["rows"][0]["group"]["day"]

    assert _usage(priced_world, "alice", f"&from={day}&to={day}")["total"]["requests"] == 2
    assert _usage(priced_world, "alice", "&to=2000-01-01")["rows"] == []
    total_only = priced_world.client("alice").get("/v1/usage?by=").json()
    assert total_only["rows"][0]["group"] == {} and total_only["total"]["requests"] == 2
    for query, field in (("by=colour", "by"), ("by=day,day", "by"),
                         ("from=2026-02-02&to=2026-02-01", "to"), ("from=yesterday", "from")):
        answer = priced_world.client("alice").get(f"/v1/usage?{query}")
        assert answer.status_code == 422, (query, answer.text)
        assert answer.json()["errors"][0]["field"] == field, query
