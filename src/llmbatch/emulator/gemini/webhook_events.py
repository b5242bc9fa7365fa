"""The Gemini batch webhook events (PROVIDER_APIS C.9) of the batches that have ended.

Events: ``batch.succeeded``, ``batch.failed``, ``batch.expired``; a cancelled batch sends none
(the API has no cancel event). Google has not published the body of batch events (reported
thin): the emulator sends ``{"id", "type", "create_time", "data": {"name": "batches/…"}}``, the
batch's resource name being what a receiver needs to fetch it. Sent by ``emulator.webhooks``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

from llmbatch.emulator.gemini.state import GeminiState, rfc3339
from llmbatch.emulator.progress import Phase
from llmbatch.emulator.webhooks import EndedBatchEvent

__all__ = ["ended_batches", "webhook_config_problem"]

EVENT_TYPES = {Phase.COMPLETED: "batch.succeeded", Phase.FAILED: "batch.failed",
               Phase.EXPIRED: "batch.expired"}


def ended_batches(state: GeminiState, now: float) -> Iterator[EndedBatchEvent]:
    with state.lock:
        batches = list(state.batches.values())
    for batch in batches:
        snap = batch.schedule.snapshot(now)
        kind = EVENT_TYPES.get(snap.phase)
        if kind is None:
            continue
        event_id = "evt_" + hashlib.blake2b(batch.name.encode(), digest_size=12).hexdigest()
        yield batch.name, {"id": event_id, "type": kind,
                           "create_time": rfc3339(snap.times.get(snap.phase.value, now)),
                           "data": {"name": batch.name}}


def webhook_config_problem(batch: Mapping[str, Any]) -> str | None:
    """Google's 400 message for a malformed ``batch.webhookConfig`` (``uris``: strings;
    ``user_metadata``: an object), or None. The config is accepted and kept, not used: its
    deliveries are JWT-signed (see ``emulator.webhooks``)."""
    config = batch.get("webhookConfig", batch.get("webhook_config"))
    if config is None:
        return None
    if not isinstance(config, Mapping):
        return "Invalid value at 'batch.webhook_config' (type.googleapis.com/google.ai." \
               "generativelanguage.v1beta.WebhookConfig)"
    for name in config:
        if name not in ("uris", "user_metadata", "userMetadata"):
            return f'Invalid JSON payload received. Unknown name "{name}" at ' \
                   "'batch.webhook_config': Cannot find field."
    uris = config.get("uris")
    if uris is not None and not (isinstance(uris, list)
                                 and all(isinstance(u, str) and u for u in uris)):
        return "Invalid value at 'batch.webhook_config.uris' (TYPE_STRING)"
    metadata = config.get("user_metadata", config.get("userMetadata"))
    if metadata is not None and not isinstance(metadata, Mapping):
        return "Invalid value at 'batch.webhook_config.user_metadata' " \
               "(type.googleapis.com/google.protobuf.Struct)"
    return None

