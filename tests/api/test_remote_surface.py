"""What ``submit`` may ask beyond the job's fields works through the API as it does locally:
``strict_model``, ``max_cost`` and ``webhook_url`` are fields of ``POST /v1/jobs``; the
dry run is ``POST /v1/validations`` (every problem, nothing stored); ``Client.validate``,
``Client.estimate`` and ``Client.usage`` answer the same remotely and embedded."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from llmbatch.cli.retention_options import naming_options, retention_overrides
from llmbatch.client import Client
from llmbatch.client.backends import EmbeddedBackend, RemoteBackend
from llmbatch.config import ModelConfig, ProviderConfig
from llmbatch.db import tables
from llmbatch.errors import InputError, InputProblems
from llmbatch.service_layer.estimates import estimate_file
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.read_models.usage import usage_report
from llmbatch.webhooks.settings import WebhooksConfig
from service.harness import Driver

from .conftest import MODEL, ApiWorld, _world, chat_line

pytestmark = pytest.mark.service

PRICED = ModelConfig(name=MODEL, input_usd_per_mtok=Decimal("1.25"),
                     output_usd_per_mtok=Decimal("4.5"))
HOOKS = WebhooksConfig(allowed_hosts=("127.0.0.1",), allow_private_addresses=True,
                       secret="whsec_c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw==")


@pytest.fixture
def world(make_driver: Callable[..., Driver]) -> Iterator[ApiWorld]:
    yield from _world(make_driver(ProviderConfig(models=(PRICED,)), webhooks=HOOKS))


def remote(world: ApiWorld, who: str) -> Client:
    """``Client(url=..., api_key=...)`` with the app in-process behind its HTTP client."""
    backend = RemoteBackend("http://testserver", world.keys[who])
    backend.http.close()
    backend.http = TestClient(world.app, base_url="http://testserver/v1",
                              headers={"Authorization": f"Bearer {world.keys[who]}"},
                              raise_server_exceptions=False)
    return Client(backend=backend)


def embedded(world: ApiWorld) -> Client:
    """``Client()`` on the same database (the key-less local user)."""
    backend = object.__new__(EmbeddedBackend)
    backend.rt, backend.config_path = world.driver.rt, None
    return Client(backend=backend)


def jobs_stored(world: ApiWorld) -> int:
    with world.driver.rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.jobs)).scalar_one())


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_submit_options_travel_as_fields_and_refuse_as_they_do_locally(
        world: ApiWorld, tmp_path: Path) -> None:
    other_model = write(tmp_path / "other.jsonl", [
        chat_line("a"), json.dumps({"custom_id": "b", "body": {
            "model": "another-model", "messages": [{"role": "user", "content": "hi"}]}})])
    with remote(world, "alice") as client:
        for options, field in (({"strict_model": True}, "body.model"),
                               ({"max_cost": "0.0000001"}, "max_cost"),
                               ({"webhook_url": "https://evil.test/hook"}, "webhook_url")):
            with pytest.raises(InputError) as refused:
                client.submit(other_model, provider="fake", model=MODEL, **options)
            assert refused.value.field == field, (options, refused.value)
        assert jobs_stored(world) == 0
        job = client.submit(other_model, provider="fake", model=MODEL, max_cost="5",
                            webhook_url="http://127.0.0.1:9/llmbatch")
    assert job.created
    with world.driver.rt.engine.connect() as conn:
        (url,) = conn.execute(select(tables.jobs.c.webhook_url)).scalars().all()
        (ledger,) = conn.execute(select(tables.budget_ledgers.c.limit_pusd)
                                 .where(tables.budget_ledgers.c.scope == f"job:{job.id}")
                                 ).scalars().all()
    assert url == "http://127.0.0.1:9/llmbatch" and ledger == 5 * 10**12


@pytest.mark.parametrize(("fields", "field"), [
    ({"strict_model": "maybe"}, "strict_model"), ({"max_cost": "-1"}, "max_cost"),
    ({"max_cost": "cheap"}, "max_cost"), ({"max_cost": "NaN"}, "max_cost"),
])
def test_bad_option_fields_are_problems_naming_the_field(
        world: ApiWorld, fields: dict[str, str], field: str) -> None:
    answer = world.client("alice").post(
        "/v1/jobs", files={"file": ("p.jsonl", chat_line("a").encode(), "application/x-ndjson")},
        data={"provider": "fake", "model": MODEL, **fields})
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == field
    assert jobs_stored(world) == 0


def test_a_dry_run_lists_every_problem_with_the_clients_file_name_and_stores_nothing(
        world: ApiWorld, tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.jsonl", [chat_line("a"), '{"custom_id": "b", "body": 5}',
                                         "not json", chat_line("a")])
    good = write(tmp_path / "good.jsonl", [chat_line("a"), json.dumps({
        "custom_id": "b", "body": {"model": "x", "messages": [{"role": "user",
                                                               "content": "hi"}]}})])
    for client in (remote(world, "alice"), embedded(world)):
        with client:
            verdict = client.validate(bad, provider="fake", model=MODEL)
            assert not verdict.ok and verdict.problem_count == 3 and verdict.file == str(bad)
            assert [(p.file, p.line) for p in verdict.problems] == [
                (str(bad), 2), (str(bad), 3), (str(bad), 4)]
            assert verdict.problems[0].text.startswith(f"{bad}:2: ")
            fine = client.validate(good, provider="fake", model=MODEL)
            assert fine.ok and fine.requests == 2 and fine.problems == []
            assert fine.warnings and fine.warnings[0].startswith(f"{good}:2: 1 line(s)")
            strict = client.validate(good, provider="fake", model=MODEL, strict_model=True)
            assert not strict.ok and strict.problems[0].field == "body.model"
            # What the CLI prints is rebuilt from the answer as it was found.
            assert str(verdict.report().error()) == str(
                embedded(world).validate(bad, provider="fake", model=MODEL).report().error())
    assert jobs_stored(world) == 0


def test_estimate_and_usage_answer_the_same_remotely_and_embedded(
        world: ApiWorld, tmp_path: Path) -> None:
    prompts = write(tmp_path / "prompts.jsonl", [chat_line(f"q-{i}", "word " * (1 + i * 30))
                                                 for i in range(3)])
    with remote(world, "alice") as client:
        job = client.submit(prompts, provider="fake", model=MODEL)
        world.driver.run(job.id)
        far = client.estimate(prompts, provider="fake", model=MODEL)
        report = client.usage(by=["tenant", "model"])
    local = estimate_file(world.driver.rt, prompts, provider="fake", model=MODEL)
    assert far.estimate() == local  # alice's history is all the history there is
    assert far.output_basis == "mean of 3 finished requests of fake/fake-model"
    with embedded(world) as client:
        assert client.estimate(prompts, provider="fake", model=MODEL).estimate() == local
        here = client.usage(by=["tenant", "model"])
    want = usage_report(world.driver.rt, ["tenant", "model"])
    assert report.usage_rows() == here.usage_rows() == want
    assert report.tenant == "tenant-a" and here.tenant is None
    with remote(world, "bob") as client:  # another tenant: nothing of alice's
        assert client.usage(by=["tenant"]).rows == []
        assert client.estimate(prompts, provider="fake", model=MODEL).output_basis.startswith(
            "no finished requests")
    bad = write(tmp_path / "bad.jsonl", [chat_line("a"), '{"custom_id": "b", "body": 5}'])
    with remote(world, "alice") as client, pytest.raises(InputError) as refused:
        client.estimate(bad, provider="fake", model=MODEL)
    assert (refused.value.file, refused.value.line) == (str(bad), 2)


def test_a_refused_submit_lists_every_problem_as_it_does_locally(
        world: ApiWorld, tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.jsonl", [chat_line("a"), '{"custom_id": "b", "body": 5}',
                                         "not json", chat_line("a")])
    with pytest.raises(InputProblems) as local:
        create_job(world.driver.rt, bad, provider="fake", model=MODEL)
    with remote(world, "alice") as client, pytest.raises(InputProblems) as far:
        client.submit(bad, provider="fake", model=MODEL)
    assert far.value.total == local.value.total == 3
    assert str(far.value) == str(local.value)
    assert str(far.value).splitlines()[0] == f"{bad}: 3 problems"
    assert jobs_stored(world) == 0


def test_what_a_submit_did_unasked_comes_back_as_warnings(
        world: ApiWorld, tmp_path: Path) -> None:
    other_model = write(tmp_path / "other.jsonl", [chat_line("a"), json.dumps({
        "custom_id": "b", "body": {"model": "x", "messages": [{"role": "user",
                                                               "content": "hi"}]}})])
    for client in (remote(world, "alice"), embedded(world)):
        with client:
            job = client.submit(other_model, provider="fake", model=MODEL)
            assert job.warnings == [f"{other_model}:2: 1 line(s) name another model in "
                                    f"body.model ('x'); they run on the job's model "
                                    f"{MODEL!r} (--strict-model refuses them instead)"]
            again = client.submit(write(tmp_path / "plain.jsonl", [chat_line("a")]),
                                  provider="fake", model=MODEL)
            assert again.warnings == []


def test_a_refused_retention_option_is_named_as_the_user_typed_it_remotely_too(
        world: ApiWorld, tmp_path: Path) -> None:
    """The API names ``retention.<key>``; ``llmbatch submit --api-url`` names its option."""
    path = write(tmp_path / "in.jsonl", [chat_line("a")])
    retention = retention_overrides(None, None, 3600)
    with (remote(world, "alice") as client, pytest.raises(InputError) as refused,
          naming_options(retention)):
        client.submit(path, provider="fake", model=MODEL, retention=retention)
    assert isinstance(refused.value.__cause__, InputError)
    assert refused.value.__cause__.field == "retention.output_expires_after_s"
    assert str(refused.value).startswith("option '--output-expires-after': ")
    assert "retention." not in str(refused.value) and refused.value.field is None
    with pytest.raises(InputError) as untouched, naming_options(retention):
        raise InputError("bad", field="retention.input_expires_after_s")  # not an option used
    assert untouched.value.field == "retention.input_expires_after_s"
    assert jobs_stored(world) == 0
