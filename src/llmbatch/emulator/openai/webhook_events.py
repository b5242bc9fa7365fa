"""The OpenAI batch webhook events (PROVIDER_APIS A.10) of the batches that have ended.

The payload is OpenAI's thin one: the event id, ``type``, ``created_at`` and ``data.id`` (the
batch id); a receiver fetches the batch for the rest. Sent by ``emulator.webhooks``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from llmbatch.emulator.openai.state import OpenAIState
from llmbatch.emulator.progress import Phase
from llmbatch.emulator.webhooks import EndedBatchEvent

__all__ = ["ended_batches"]

EVENT_TYPES = {Phase.COMPLETED: "batch.completed", Phase.FAILED: "batch.failed",
               Phase.EXPIRED: "batch.expired", Phase.CANCELLED: "batch.cancelled"}


def ended_batches(state: OpenAIState, now: float) -> Iterator[EndedBatchEvent]:
    with state.lock:
        batches = list(state.batches.values())
    for batch in batches:
        snap = batch.schedule.snapshot(now)
        kind = EVENT_TYPES.get(snap.phase)
        if kind is None:
            continue
        event_id = "evt_" + hashlib.blake2b(batch.id.encode(), digest_size=12).hexdigest()
        yield batch.id, {"object": "event", "id": event_id, "type": kind,
                         "created_at": int(snap.times.get(snap.phase.value, now)),
                         "data": {"id": batch.id}}
