"""The Gemini batch webhook events (PROVIDER_APIS C.9) of the batches that have ended.

Events: ``batch.succeeded``, ``batch.failed``, ``batch.expired``; a cancelled batch sends none
(the API has no cancel event). Google has not published the body of batch events (reported
thin): the emulator sends ``{"id", "type", "create_time", "data": {"name": "batches/…"}}``, the
batch's resource name being what a receiver needs to fetch it. Sent by ``emulator.webhooks``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from llmbatch.emulator.gemini.state import GeminiState, rfc3339
from llmbatch.emulator.progress import Phase
from llmbatch.emulator.webhooks import EndedBatchEvent

__all__ = ["ended_batches"]

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
