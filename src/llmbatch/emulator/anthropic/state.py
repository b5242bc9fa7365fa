"""What the Anthropic emulator keeps per batch, and how a batch renders as a ``MessageBatch``.

Phases come from the shared ``Schedule``: validating/running/finalizing read as
``in_progress``, cancelling as ``canceling``, every terminal phase as ``ended`` (Anthropic has no
failed/expired batch).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from llmbatch.emulator.faults import ItemErrorsFault, PoisonOutputFault
from llmbatch.emulator.progress import FinishOrder, Phase, Schedule, Snapshot

__all__ = ["COUNTERS", "BatchRecord", "render_batch", "rfc3339"]

COUNTERS = ("processing", "succeeded", "errored", "canceled", "expired")


def rfc3339(moment: float) -> str:
    """``2024-09-24T18:37:24.100435Z``."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class BatchRecord:
    """One batch: its schedule, where its requests are, and (once ended) its result counts."""

    id: str
    created_at: float
    total: int
    blob: str
    schedule: Schedule
    order: FinishOrder
    item_errors: ItemErrorsFault | None
    tags: dict[str, str]
    counts: dict[str, int] | None = None
    poison: PoisonOutputFault | None = None
    # The create's anthropic-beta values: with any, the beta params are accepted.
    betas: tuple[str, ...] = ()
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def render_batch(record: BatchRecord, snap: Snapshot, base_url: str = "") -> dict[str, Any]:
    """The ``MessageBatch`` as of ``snap`` (results already written when it ended)."""
    ended = snap.phase.terminal
    counts = dict(record.counts) if ended and record.counts else {
        **dict.fromkeys(COUNTERS, 0), "processing": record.total}
    ended_at = max(snap.times.values()) if ended and snap.times else None
    cancel_at = record.schedule.cancel_requested_at
    status = "ended" if ended else ("canceling" if snap.phase is Phase.CANCELLING
                                    else "in_progress")
    return {
        "id": record.id, "type": "message_batch", "processing_status": status,
        "request_counts": counts,
        "ended_at": rfc3339(ended_at) if ended_at is not None else None,
        "created_at": rfc3339(record.created_at),
        "expires_at": rfc3339(record.schedule.deadline),
        "archived_at": None,
        "cancel_initiated_at": rfc3339(cancel_at) if cancel_at is not None else None,
        "results_url": (f"{base_url}/v1/messages/batches/{record.id}/results"
                        if ended else None),
    }
