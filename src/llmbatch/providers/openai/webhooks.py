"""OpenAI batch webhooks (PROVIDER_APIS A.10): verified with the openai SDK's own check.

OpenAI signs with Standard Webhooks; ``client.webhooks.verify_signature`` checks the HMAC and
a ±300 s timestamp tolerance, with OpenAI's quirk kept (a secret without ``whsec_`` is used as
raw bytes). Endpoints belong to a project and are registered in the dashboard (Settings ->
Project -> Webhooks), not per batch: the events are ``batch.completed``, ``batch.failed``,
``batch.expired``, ``batch.cancelled``, each naming the batch in ``data.id``. Other events of
the project are acknowledged and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from llmbatch.providers.webhooks import (
    WebhookNotice,
    WebhookRejected,
    parse_json_event,
    standard_webhook_id,
)

if TYPE_CHECKING:  # imported on the first delivery: the SDK is not loaded before it is used
    import openai

__all__ = ["BATCH_EVENTS", "read_webhook"]

BATCH_EVENTS = frozenset({"batch.completed", "batch.failed", "batch.expired",
                          "batch.cancelled"})
TOLERANCE_S = 300


@lru_cache(maxsize=4)
def _verifier(secret: str) -> openai.OpenAI:
    """A client that only carries the secret: verification needs no API key and makes no
    request. Kept (one per secret), since every delivery, forged ones included, needs it."""
    import openai

    return openai.OpenAI(api_key="unused-for-webhook-verification", webhook_secret=secret,
                         max_retries=0)


def read_webhook(secret: str, body: bytes, headers: Mapping[str, str]) -> WebhookNotice | None:
    """The batch a delivery names, once its signature and timestamp check out."""
    client = _verifier(secret)
    import openai

    try:
        client.webhooks.verify_signature(body, dict(headers), tolerance=TOLERANCE_S)
    except openai.InvalidWebhookSignatureError as exc:
        text = str(exc)
        if "too old" in text or "too new" in text:
            raise WebhookRejected(f"timestamp outside ±{TOLERANCE_S} s", stale=True) from exc
        raise WebhookRejected("signature does not match") from exc
    except ValueError as exc:  # a missing header, or a body or header that cannot be read
        raise WebhookRejected(f"not a signed delivery: {exc}") from exc
    event = parse_json_event(body)
    kind = event.get("type")
    data = event.get("data")
    if kind not in BATCH_EVENTS:
        return None
    batch_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(batch_id, str) or not batch_id:
        raise WebhookRejected(f"a {kind} event without data.id", forged=False)
    return WebhookNotice(provider_batch_id=batch_id, event=str(kind),
                         delivery_id=standard_webhook_id(headers))
