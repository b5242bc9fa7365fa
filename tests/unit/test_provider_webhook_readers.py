"""Reading the providers' batch webhooks: the vendor's signature scheme, then the batch named."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from llmbatch.providers.gemini import webhooks as gemini
from llmbatch.providers.webhooks import WebhookNotice, WebhookRejected, standard_webhook_id

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
OTHER = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signed(event: dict[str, Any], *, secret: str = SECRET,
           age_s: float = 0) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    at = datetime.now(UTC) - timedelta(seconds=age_s)
    return body, {"webhook-id": "wh_1", "webhook-timestamp": str(int(at.timestamp())),
                  "webhook-signature": Webhook(secret).sign("wh_1", at, body.decode())}


def readers() -> list[Any]:
    found = [gemini.read_webhook]
    try:
        from llmbatch.providers.openai import webhooks as openai_hooks
    except ImportError:  # the openai extra
        return found
    return [*found, openai_hooks.read_webhook]


@pytest.mark.parametrize("read", readers())
@pytest.mark.parametrize(("case", "stale", "forged"), [
    ("other secret", False, True), ("an hour old", True, False), ("unsigned", False, True),
    ("tampered body", False, True)])
def test_forged_stale_and_unsigned_deliveries_are_rejected(read: Any, case: str, stale: bool,
                                                           forged: bool) -> None:
    event = {"type": "batch.failed", "data": {"id": "batch_1", "name": "batches/1"}}
    body, headers = signed(event, secret=OTHER if case == "other secret" else SECRET,
                           age_s=3600 if case == "an hour old" else 0)
    if case == "unsigned":
        del headers["webhook-signature"]
    if case == "tampered body":
        body = body.replace(b"batch_1", b"batch_2")
    with pytest.raises(WebhookRejected) as refused:
        read(SECRET, body, headers)
    assert (refused.value.stale, refused.value.forged) == (stale, forged)


@pytest.mark.parametrize(("event", "name"), [
    ({"id": "evt_1", "type": "batch.succeeded", "data": {"name": "batches/abc"}}, "batches/abc"),
    ({"id": "evt_1", "type": "batch.expired", "data": {"id": "abc"}}, "batches/abc"),
    ({"id": "evt_1", "type": "batch.failed", "name": "batches/abc"}, "batches/abc"),
])
def test_gemini_events_name_the_batch_however_the_body_puts_it(event: dict[str, Any],
                                                               name: str) -> None:
    notice = gemini.read_webhook(SECRET, *signed(event))
    assert notice == WebhookNotice(provider_batch_id=name, event=event["type"],
                                   delivery_id="wh_1")


def test_gemini_events_about_no_batch_are_ignored_or_refused() -> None:
    assert gemini.read_webhook(SECRET, *signed({"type": "video.generated"})) is None
    with pytest.raises(WebhookRejected) as refused:  # the event id is not a batch name
        gemini.read_webhook(SECRET, *signed({"id": "evt_1", "type": "batch.succeeded"}))
    assert not refused.value.forged


def test_openai_batch_events_name_the_batch() -> None:
    pytest.importorskip("openai")
    from llmbatch.providers.openai import webhooks as openai_hooks

    event = {"object": "event", "id": "evt_1", "type": "batch.cancelled", "created_at": 1,
             "data": {"id": "batch_9"}}
    assert openai_hooks.read_webhook(SECRET, *signed(event)) == WebhookNotice(
        provider_batch_id="batch_9", event="batch.cancelled", delivery_id="wh_1")
    assert openai_hooks.read_webhook(SECRET, *signed({**event, "type": "response.completed"})
                                     ) is None


def test_the_delivery_id_is_the_standard_webhook_id_header_in_any_case() -> None:
    assert standard_webhook_id({"Webhook-Id": "msg_2"}) == "msg_2"
    assert standard_webhook_id({"webhook-id": " "}) is None
    assert standard_webhook_id({}) is None
