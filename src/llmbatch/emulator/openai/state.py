"""The OpenAI emulator's records: files and batches, plus their JSON views.

Records are small (bytes live in the blob store); the batch record keeps what validation
learned and the schedule its lifecycle is computed from. ``OpenAIState`` guards the two
dictionaries with one lock; each batch has its own lock so that writing one batch's result
files does not stall requests about other batches.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from llmbatch.emulator.faults import ItemErrorsFault, PoisonOutputFault
from llmbatch.emulator.openai.endpoints import Usage
from llmbatch.emulator.openai.validation import ScanResult
from llmbatch.emulator.progress import FinishOrder, Phase, Schedule, Snapshot

__all__ = ["BatchRecord", "FileRecord", "OpenAIState", "Results", "render_batch"]

_STATUS = {Phase.RUNNING: "in_progress"}
_TIMESTAMPS = (
    ("in_progress_at", Phase.RUNNING),
    ("finalizing_at", Phase.FINALIZING),
    ("completed_at", Phase.COMPLETED),
    ("failed_at", Phase.FAILED),
    ("expired_at", Phase.EXPIRED),
    ("cancelling_at", Phase.CANCELLING),
    ("cancelled_at", Phase.CANCELLED),
)


@dataclass
class FileRecord:
    """An uploaded or generated file (spec ``OpenAIFile``)."""

    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    expires_at: int | None

    def expired(self, now: float) -> bool:
        """Past its expiry: the real service deletes it, so it reads as missing."""
        return self.expires_at is not None and now >= self.expires_at

    def render(self) -> dict[str, Any]:
        """The File object."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@dataclass(frozen=True)
class Results:
    """What result generation produced for a batch."""

    output_file_id: str | None
    error_file_id: str | None
    completed: int
    failed: int
    usage: Usage


@dataclass
class BatchRecord:
    """One batch: its parameters, validation outcome, schedule and (once made) results."""

    id: str
    endpoint: str
    input_file_id: str
    input_blob: str
    completion_window: str
    metadata: dict[str, str] | None
    output_expires_s: int | None
    created_at: float
    expires_at: int
    scan: ScanResult
    schedule: Schedule
    order: FinishOrder
    item_errors: ItemErrorsFault | None
    results: Results | None = None
    poison: PoisonOutputFault | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def tags(self) -> dict[str, str]:
        """What fault rules and stats match on: the metadata."""
        return dict(self.metadata or {})


class OpenAIState:
    """All files and batches of the OpenAI emulator."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.files: dict[str, FileRecord] = {}
        self.batches: dict[str, BatchRecord] = {}

    def reset(self) -> None:
        """Forget everything (the blob store is cleared by the runtime)."""
        with self.lock:
            self.files.clear()
            self.batches.clear()


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input,
        "input_tokens_details": {"cached_tokens": usage.cached},
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": usage.input + usage.output,
    }


def render_batch(batch: BatchRecord, snap: Snapshot) -> dict[str, Any]:
    """The Batch object for ``batch`` as of ``snap``.

    Counts are live while running (the real ones are); ``total`` stays 0 until the batch has
    started, as in the spec's create example. File ids appear only in terminal states, and a
    file with no lines is never created, so its id stays null.
    """
    started = Phase.RUNNING in snap.times
    if batch.results is not None:
        completed, failed = batch.results.completed, batch.results.failed
    else:
        failed = batch.order.failed_before(snap.finished) if started else 0
        completed = snap.finished - failed
    terminal = snap.phase.terminal and batch.results is not None
    body: dict[str, Any] = {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "model": batch.scan.model,
        "errors": ({"object": "list", "data": batch.scan.errors}
                   if snap.phase == Phase.FAILED else None),
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": _STATUS.get(snap.phase, snap.phase.value),
        "output_file_id": batch.results.output_file_id if terminal and batch.results else None,
        "error_file_id": batch.results.error_file_id if terminal and batch.results else None,
        "created_at": int(batch.created_at),
        "expires_at": batch.expires_at,
    }
    for name, phase in _TIMESTAMPS:
        moment = snap.times.get(phase)
        body[name] = int(moment) if moment is not None else None
    body["request_counts"] = {
        "total": batch.schedule.total if started else 0,
        "completed": completed,
        "failed": failed,
    }
    body["usage"] = _usage(batch.results.usage if batch.results else Usage())
    body["metadata"] = batch.metadata
    return body
