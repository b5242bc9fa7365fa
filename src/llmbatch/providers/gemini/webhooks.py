"""Gemini batch webhooks (PROVIDER_APIS C.9): project webhooks, Standard Webhooks HMAC.

A project webhook (``POST /v1beta/webhooks`` with ``subscribed_events``, or
``client.webhooks.create``) signs each delivery with its ``whsec_`` secret the Standard
Webhooks way; google-genai ships no verifier, so the ``standardwebhooks`` library checks it.
Events: ``batch.succeeded``, ``batch.failed``, ``batch.expired`` (no cancel event). Google has
not published the event body: the batch is looked for, leniently, as a ``batches/…`` name in
``data.name``, ``data.id`` or ``data.batch``, else ``name`` or ``batch`` at the top level.

Per-job ``webhookConfig.uris`` deliveries are signed differently (an RS256 JWT against
Google's key set, claims unpublished): llmbatch does not register them, so every batch event
reaches the project webhook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmbatch.providers.webhooks import (
    WebhookNotice,
    WebhookRejected,
    parse_json_event,
    standard_webhook_id,
    verify_standard_webhook,
)

__all__ = ["BATCH_EVENTS", "read_webhook"]

BATCH_EVENTS = frozenset({"batch.succeeded", "batch.failed", "batch.expired"})


def _batch_name(event: Mapping[str, Any]) -> str | None:
    """The batch's resource name; a top-level ``id`` is the event's own, so it is skipped."""
    data = event.get("data")
    places = ((data, ("name", "id", "batch")) if isinstance(data, Mapping) else (None, ()),
              (event, ("name", "batch")))
    for holder, keys in places:
        for key in keys:
            value = holder.get(key) if holder is not None else None
            if isinstance(value, str) and value:
                return value if value.startswith("batches/") else f"batches/{value}"
    return None


def read_webhook(secret: str, body: bytes, headers: Mapping[str, str]) -> WebhookNotice | None:
    """The batch a delivery names, once its signature and timestamp check out."""
    verify_standard_webhook(secret, body, headers)
    event = parse_json_event(body)
    kind = event.get("type")
    if kind not in BATCH_EVENTS:
        return None
    name = _batch_name(event)
    if name is None:
        raise WebhookRejected(f"a {kind} event that names no batch", forged=False)
    return WebhookNotice(provider_batch_id=name, event=str(kind),
                         delivery_id=standard_webhook_id(headers))
