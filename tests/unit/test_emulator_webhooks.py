"""The emulator's batch-end webhooks (PROVIDER_APIS D.13): which events, how signed, sent once.

The app in-process on a fake clock; deliveries are captured instead of sent. The OpenAI SDK's
own ``webhooks.unwrap`` must accept the emulator's OpenAI delivery, and the ``standardwebhooks``
library its Gemini one.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from llmbatch.emulator import EmulatorSettings, FakeClock
from llmbatch.emulator.app import create_app

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
KEY = {"Authorization": "Bearer sk-test", "x-goog-api-key": "sk-test"}
TIMING = {"validate_s": 1, "run_base_s": 10, "run_per_item_s": 0, "finalize_s": 1,
          "cancel_s": 1}


class World:
    def __init__(self) -> None:
        self.clock = FakeClock(1_750_000_000.0)
        self.app = create_app(EmulatorSettings.model_validate({"timing": TIMING}),
                              clock=self.clock)
        self.http = TestClient(self.app)
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []
        self.answer = 200
        self.app.state.emulator.webhooks.post = self.capture

    def capture(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.sent.append((url, body, headers))
        return self.answer

    def flush(self) -> dict[str, int]:
        answer = self.http.post("/_emulator/webhooks/flush")
        assert answer.status_code == 200
        result: dict[str, int] = answer.json()
        return result

    def openai_batch(self) -> str:
        line = json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                           "body": {"model": "gpt-4o-mini", "messages": [
                               {"role": "user", "content": "hi"}]}})
        file = self.http.post("/openai/v1/files", headers=KEY, data={"purpose": "batch"},
                              files={"file": ("in.jsonl", line + "\n")}).json()
        batch = self.http.post("/openai/v1/batches", headers=KEY, json={
            "input_file_id": file["id"], "endpoint": "/v1/chat/completions",
            "completion_window": "24h"}).json()
        return str(batch["id"])

    def gemini_batch(self) -> str:
        answer = self.http.post(
            "/gemini/v1beta/models/gemini-2.5-flash:batchGenerateContent", headers=KEY,
            json={"batch": {"displayName": "x", "inputConfig": {"requests": {"requests": [
                {"request": {"contents": [{"parts": [{"text": "hi"}]}]}}]}}}})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["name"])


@pytest.fixture
def world() -> Iterator[World]:
    built = World()
    with built.http:
        yield built


def _target(world: World, provider: str) -> None:
    answer = world.http.post("/_emulator/webhooks", json={
        "provider": provider, "url": f"http://hooks.test/{provider}", "secret": SECRET})
    assert answer.status_code == 200


def test_openai_batch_end_is_sent_once_signed_as_the_openai_sdk_expects(world: World) -> None:
    import openai

    batch_id = world.openai_batch()
    _target(world, "openai")
    assert world.flush() == {"sent": 0, "failed": 0}  # still running: nothing to say
    world.clock.advance(60)

    assert world.flush() == {"sent": 1, "failed": 0}
    assert world.flush() == {"sent": 0, "failed": 0}  # acknowledged: never again

    url, body, headers = world.sent[0]
    assert url == "http://hooks.test/openai"
    client = openai.OpenAI(api_key="x", webhook_secret=SECRET)
    event = client.webhooks.unwrap(body, headers)
    assert event.type == "batch.completed" and event.data.id == batch_id


def test_a_refused_delivery_is_tried_again_and_gemini_events_are_signed(world: World) -> None:
    name = world.gemini_batch()
    cancelled = world.gemini_batch()
    world.http.post(f"/gemini/v1beta/{cancelled}:cancel", headers=KEY)
    _target(world, "gemini")
    world.clock.advance(60)
    world.answer = 500

    assert world.flush() == {"sent": 0, "failed": 1}  # the cancelled one sends nothing
    world.answer = 204
    assert world.flush() == {"sent": 1, "failed": 0}

    _, body, headers = world.sent[-1]
    event: dict[str, Any] = Webhook(SECRET).verify(body, headers)
    assert event["type"] == "batch.succeeded" and event["data"] == {"name": name}
    # The retry is the same delivery to the receiver: the same webhook-id.
    assert [h["webhook-id"] for _, _, h in world.sent] == [headers["webhook-id"]] * 2


def test_no_target_no_delivery_and_a_half_target_is_refused(world: World) -> None:
    world.openai_batch()
    world.clock.advance(60)
    assert world.flush() == {"sent": 0, "failed": 0} and world.sent == []
    answer = world.http.post("/_emulator/webhooks", json={"provider": "openai",
                                                          "url": "http://x"})
    assert answer.status_code == 422


@pytest.mark.parametrize(("config", "status"), [
    ({"uris": ["https://hooks.example.com/g"], "user_metadata": {"job": "j1"}}, 200),
    ({"uris": "https://hooks.example.com/g"}, 400),
    ({"url": ["https://hooks.example.com/g"]}, 400),
    ({"uris": [], "user_metadata": "j1"}, 400),
])
def test_gemini_create_takes_a_per_job_webhook_config_and_refuses_a_malformed_one(
        world: World, config: dict[str, Any], status: int) -> None:
    answer = world.http.post(
        "/gemini/v1beta/models/gemini-2.5-flash:batchGenerateContent", headers=KEY,
        json={"batch": {"displayName": "x", "webhookConfig": config, "inputConfig": {
            "requests": {"requests": [{"request": {"contents": [{"parts": [{"text": "hi"}]}]}}]}}}})
    assert answer.status_code == status, answer.text
