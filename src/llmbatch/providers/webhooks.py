"""What an adapter tells the service layer about a provider's webhook delivery.

A provider that pushes batch events (which do: docs/webhooks.md) verifies each delivery with its own
scheme in ``providers/<vendor>/webhooks.py`` and answers with a ``WebhookNotice`` (the batch it
names), None for an event about something else, or ``WebhookRejected``: forged, stale or
unreadable. The notice only makes the batch due for a poll at once: what the batch's state is
comes from that poll, never from the event (a lost or late event only delays).

``verify_standard_webhook`` is the Standard Webhooks check (HMAC-SHA256 over
``"{webhook-id}.{webhook-timestamp}.{body}"``, ±5 min, several signatures allowed) done by the
``standardwebhooks`` library, for providers that sign that way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

__all__ = ["WebhookNotice", "WebhookRejected", "WebhooksUnsupported", "parse_json_event",
           "standard_webhook_id", "verify_standard_webhook"]


@dataclass(frozen=True)
class WebhookNotice:
    """A verified delivery about one of the provider's batches: ``event`` is the vendor's
    event type (``batch.completed``...), kept for the log only; ``delivery_id`` names the
    delivery the same way on each of the vendor's retries of it (Standard Webhooks'
    ``webhook-id``), so that a repeat is acknowledged without a second wake-up (None: the
    scheme has no such id, and every delivery is acted on)."""

    provider_batch_id: str
    event: str
    delivery_id: str | None = None


class WebhookRejected(Exception):
    """A delivery that must not be acted on. ``stale``: well signed perhaps, but its timestamp
    is outside the tolerance (a replay, or a clock far off); otherwise forged or malformed."""

    def __init__(self, reason: str, *, stale: bool = False, forged: bool = True) -> None:
        super().__init__(reason)
        self.reason, self.stale, self.forged = reason, stale, forged and not stale


class WebhooksUnsupported(Exception):
    """The provider sends no webhooks (or llmbatch does not read them)."""


def verify_standard_webhook(secret: str, body: bytes, headers: Mapping[str, str]) -> None:
    """Raise ``WebhookRejected`` unless ``body`` carries a valid Standard Webhooks signature
    made with ``secret`` (``whsec_`` + base64) within the last five minutes."""
    try:
        verifier = Webhook(secret)
    except Exception as exc:  # a malformed configured secret: a setup error, said plainly
        raise WebhookRejected("the configured webhook secret is not whsec_ + base64",
                              forged=False) from exc
    try:
        verifier.verify(body, dict(headers), json_parse=False)
    except WebhookVerificationError as exc:
        text = str(exc)
        if "too old" in text or "too new" in text:
            raise WebhookRejected(f"timestamp outside the tolerance: {text}", stale=True) \
                from exc
        if "Missing" in text:
            raise WebhookRejected("not a signed delivery: webhook-id, webhook-timestamp and "
                                  "webhook-signature are required") from exc
        raise WebhookRejected("signature does not match") from exc
    except ValueError as exc:  # a header or body the library cannot even split or decode
        raise WebhookRejected("malformed signature headers or body") from exc


def standard_webhook_id(headers: Mapping[str, str]) -> str | None:
    """The ``webhook-id`` header (any case) of a Standard Webhooks delivery: unique per message
    and the same when the sender retries it. Part of what the signature covers, so it is
    trustworthy once the delivery is verified."""
    for name, value in headers.items():
        if name.lower() == "webhook-id":
            return value.strip() or None
    return None


def parse_json_event(body: bytes) -> dict[str, Any]:
    """The delivery's JSON object (after verification), or ``WebhookRejected``."""
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WebhookRejected("the body is not JSON", forged=False) from exc
    if not isinstance(event, dict):
        raise WebhookRejected("the body is not a JSON object", forged=False)
    return event
