"""Provider webhooks as an early wake-up, end to end (PROVIDER_APIS A.10, C.9, D.13).

The real OpenAI and Gemini adapters, built by the registry from config, on the session
emulator, driven through the services; the llmbatch API in-process. Polling is fixed at one
hour, and our clock never moves: a batch the emulator has ended is seen ended only because
the emulator's signed batch-end webhook reached ``POST /v1/provider-webhooks/<name>``, which
made the batch due and published a poll. A forged signature (401), a stale timestamp (400),
a provider without a configured secret (404) and a repeat of a delivery (same webhook-id,
200 ``duplicate``) wake nothing.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from llmbatch.api.app import create_app
from llmbatch.api.settings import ApiConfig
from llmbatch.config import AppConfig, DatabaseConfig, ModelConfig, PollingConfig, ProviderConfig
from llmbatch.domain.states import BatchStatus
from llmbatch.emulator.server import EmulatorServer
from llmbatch.emulator.settings import WebhookTarget
from llmbatch.service_layer import tasks
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.progress import poll_batch
from llmbatch.service_layer.submission import plan_job, submit_batch
from service.harness import Driver, chat_line, real_provider_driver

from .harness import TEST_API_KEY

pytestmark = pytest.mark.contract

MODELS = {"openai": "gpt-4o-mini", "gemini": "gemini-2.5-flash"}
EVENTS = {"openai": "batch.completed", "gemini": "batch.succeeded"}
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture(params=sorted(MODELS))
def provider(request: pytest.FixtureRequest) -> str:
    pytest.importorskip("openai" if request.param == "openai" else "google.genai")
    name: str = request.param
    return name


@pytest.fixture
def driver(emu: EmulatorServer, tmp_path: Path, provider: str) -> Iterator[Driver]:
    base = emu.openai_base_url if provider == "openai" else f"{emu.url}/gemini"
    config = AppConfig(
        database=DatabaseConfig(url=f"sqlite:///{tmp_path}/llmbatch.db"),
        polling=PollingConfig(strategy="fixed", interval_s=3600),
        providers={provider: ProviderConfig(
            base_url=base, api_key=TEST_API_KEY, webhook_secret=SecretStr(SECRET),
            models=(ModelConfig(name=MODELS[provider]),))})
    built = real_provider_driver(config, provider_clock=emu.advance_clock)
    yield built
    built.rt.close()


@pytest.fixture
def api(driver: Driver) -> TestClient:
    return TestClient(create_app(driver.rt, ApiConfig(auth=True)),
                      raise_server_exceptions=False)


@pytest.fixture
def wired(emu: EmulatorServer, api: TestClient, provider: str) -> Iterator[EmulatorServer]:
    """The emulator sends ``provider``'s batch-end webhooks to the in-process API."""
    sender = emu.runtime.webhooks
    plain_http = sender.post

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        return api.post(url.removeprefix("http://llmbatch.test"), content=body,
                        headers=headers).status_code

    sender.post = post
    sender.configure(provider, WebhookTarget(
        url=f"http://llmbatch.test/v1/provider-webhooks/{provider}", secret=SecretStr(SECRET)))
    yield emu
    sender.configure(provider, None)
    sender.post = plain_http


def _running_batch(driver: Driver, tmp_path: Path, provider: str) -> str:
    """A batch submitted and polled once (still running): its next poll is an hour away."""
    rt = driver.rt
    path = tmp_path / "in.jsonl"
    path.write_text("".join(chat_line(f"q-{i}", f"question {i}") + "\n" for i in range(3)))
    job_id, _ = create_job(rt, path, provider=provider, model=MODELS[provider])
    (batch_id,) = plan_job(rt, job_id)
    assert submit_batch(rt, batch_id) is BatchStatus.IN_PROGRESS
    assert poll_batch(rt, batch_id) is BatchStatus.IN_PROGRESS
    return batch_id


def _status(driver: Driver, batch_id: str) -> BatchStatus:
    with driver.rt.uow() as uow:
        return uow.repo.get_batch(batch_id).status


def test_a_signed_webhook_from_the_emulator_wakes_the_poll(
        driver: Driver, wired: EmulatorServer, tmp_path: Path, provider: str) -> None:
    batch_id = _running_batch(driver, tmp_path, provider)
    wired.advance_clock(3600)  # the provider's batch ends; our clock stays where it was
    driver.tick()
    assert _status(driver, batch_id) is BatchStatus.IN_PROGRESS  # not due for an hour

    # The app's own sender (every webhooks.interval_s while a target is set) may deliver it
    # first: then this flush finds it acknowledged and sends nothing more.
    sent = wired.runtime.webhooks.flush()

    assert sent["failed"] == 0
    assert (tasks.POLL, (batch_id,)) in driver.publisher.messages
    driver.drain()  # the poll, then the fetch and finalize it leads to
    assert _status(driver, batch_id) is BatchStatus.FETCHED  # polled early, seen ended


def _delivery(provider_batch_id: str, provider: str, *, secret: str = SECRET,
              at: datetime | None = None) -> tuple[bytes, dict[str, str]]:
    data = ({"id": provider_batch_id} if provider == "openai"
            else {"name": provider_batch_id})
    body = json.dumps({"object": "event", "id": "evt_1", "type": EVENTS[provider],
                       "created_at": 1, "data": data}).encode()
    at = at or datetime.now(UTC)
    headers = {"webhook-id": "wh_1", "webhook-timestamp": str(int(at.timestamp())),
               "webhook-signature": Webhook(secret).sign("wh_1", at, body.decode()),
               "content-type": "application/json"}
    return body, headers


def _provider_batch_id(driver: Driver, batch_id: str) -> str:
    with driver.rt.uow() as uow:
        found = uow.repo.get_batch(batch_id).provider_batch_id
    assert found is not None
    return found


def test_a_forged_stale_or_unsigned_webhook_is_refused_and_wakes_nothing(
        driver: Driver, api: TestClient, tmp_path: Path, provider: str) -> None:
    batch_id = _running_batch(driver, tmp_path, provider)
    remote = _provider_batch_id(driver, batch_id)
    other = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    driver.publisher.messages.clear()
    for case, status in (("forged", 401), ("stale", 400), ("unsigned", 401)):
        body, headers = _delivery(
            remote, provider, secret=other if case == "forged" else SECRET,
            at=datetime.now(UTC) - timedelta(hours=1) if case == "stale" else None)
        if case == "unsigned":
            del headers["webhook-signature"]

        answer = api.post(f"/v1/provider-webhooks/{provider}", content=body, headers=headers)

        assert answer.status_code == status, (case, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert driver.publisher.messages == []
    with driver.rt.uow() as uow:
        assert uow.repo.get_batch(batch_id).next_poll_at > driver.clock()


def test_a_repeated_delivery_is_acknowledged_and_wakes_nothing_again(
        driver: Driver, api: TestClient, tmp_path: Path, provider: str) -> None:
    batch_id = _running_batch(driver, tmp_path, provider)
    body, headers = _delivery(_provider_batch_id(driver, batch_id), provider)
    driver.publisher.messages.clear()

    first = api.post(f"/v1/provider-webhooks/{provider}", content=body, headers=headers)
    again = api.post(f"/v1/provider-webhooks/{provider}", content=body, headers=headers)

    assert first.json() == {"status": "accepted", "batches": 1}
    assert again.status_code == 200 and again.json() == {"status": "duplicate", "batches": 0}
    assert driver.publisher.messages == [(tasks.POLL, (batch_id,))]


def test_a_valid_webhook_about_no_batch_of_ours_is_acknowledged(
        driver: Driver, api: TestClient, provider: str) -> None:
    body, headers = _delivery("batches/unknown" if provider == "gemini" else "batch_unknown",
                              provider)
    answer = api.post(f"/v1/provider-webhooks/{provider}", content=body, headers=headers)
    assert answer.status_code == 200 and answer.json() == {"status": "accepted", "batches": 0}


@pytest.mark.parametrize("provider", ["openai"])
def test_a_provider_without_a_secret_has_no_webhook_endpoint(api: TestClient) -> None:
    answer = api.post("/v1/provider-webhooks/anthropic", content=b"{}")
    assert answer.status_code == 404
    assert "webhook_secret_env" in answer.json()["detail"]


def test_the_endpoints_to_register_are_listed(driver: Driver, provider: str) -> None:
    api = TestClient(create_app(driver.rt, ApiConfig(auth=False,
                                                     public_url="https://llm.example.com/")))
    assert api.get("/v1/provider-webhooks").json() == [{
        "provider": provider, "url": f"https://llm.example.com/v1/provider-webhooks/{provider}",
        "events": sorted(driver.rt.registry.get(provider).webhook_events)}]


def test_the_running_emulator_sends_webhooks_on_its_own(emu: EmulatorServer) -> None:
    """No flush call: the app's background sender delivers within ``webhooks.interval_s``."""
    import threading

    pytest.importorskip("openai")
    import openai

    sender = emu.runtime.webhooks
    plain_http, got = sender.post, threading.Event()
    bodies: list[bytes] = []

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        bodies.append(body)
        got.set()
        return 200

    client = openai.OpenAI(base_url=emu.openai_base_url, api_key=TEST_API_KEY)
    line = json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": "gpt-4o-mini", "messages": [
                           {"role": "user", "content": "hi"}]}})
    file = client.files.create(file=("in.jsonl", line.encode()), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    emu.advance_clock(3600)
    sender.post = post
    sender.configure("openai", WebhookTarget(url="http://hooks.test/openai",
                                             secret=SecretStr(SECRET)))
    try:
        assert got.wait(timeout=30), "no webhook within 30 s"
        deadline = 300
        while deadline and not any(batch.id.encode() in body for body in bodies):
            got.clear()
            got.wait(timeout=0.1)
            deadline -= 1
        assert any(batch.id.encode() in body for body in bodies)
    finally:
        sender.configure("openai", None)
        sender.post = plain_http
        client.close()
