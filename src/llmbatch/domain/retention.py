"""Provider-side data after the results are stored: what was deleted, what failed, what is
kept, and when a failed deletion is tried again (``service_layer.provider_data`` runs it).

A deletion never decides a job's outcome: it happens after the results are stored, each
attempt is an event on the job's timeline, and after ``retention.delete_attempts`` failures it
stops (the provider's own expiry still applies; docs/privacy.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from llmbatch.domain.events import Event, EventType

__all__ = [
    "CleanupState",
    "Deletion",
    "DeletionOutcome",
    "cleanup_events",
    "kept_event",
    "retry_delay_s",
]

# Seconds before the second deletion attempt; each further one waits four times longer,
# capped at an hour (three attempts by default: about 20 minutes in all).
FIRST_RETRY_S = 60.0
MAX_RETRY_S = 3600.0


class CleanupState(StrEnum):
    """``provider_batches.cleanup_state``."""

    PENDING = "pending"  # results stored; the provider's copy is to be deleted
    DELETED = "deleted"  # everything deleted (or already gone)
    KEPT = "kept"  # the job asked to keep it; the provider's expiry applies
    FAILED = "failed"  # gave up after ``delete_attempts``; the provider's expiry applies


class DeletionOutcome(StrEnum):
    DELETED = "deleted"
    GONE = "gone"  # the provider no longer had it: nothing left to delete
    FAILED = "failed"


@dataclass(frozen=True)
class Deletion:
    """One provider-side object an adapter tried to delete.

    ``kind`` says what it held (``batch``, ``input_file``, ``output_file``, ``error_file``,
    ``result_file``); ``object_id`` is the provider's id for it.
    """

    kind: str
    object_id: str
    outcome: DeletionOutcome
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "id": self.object_id,
                                "outcome": str(self.outcome)}
        if self.error is not None:
            data["error"] = self.error
        return data


def retry_delay_s(attempts: int) -> float:
    """Wait before deletion attempt ``attempts + 1`` after ``attempts`` failed ones."""
    return min(MAX_RETRY_S, FIRST_RETRY_S * 4.0 ** max(0, attempts - 1))


def cleanup_events(job_id: str, batch_id: str, at: datetime, deletions: list[Deletion], *,
                   attempt: int, max_attempts: int) -> tuple[CleanupState, list[Event]]:
    """The state a cleanup attempt leaves the batch in and its timeline entries: one event
    for what was deleted (objects already gone included), one per object that failed, saying
    whether it will be tried again."""
    failed = [d for d in deletions if d.outcome is DeletionOutcome.FAILED]
    done = [d for d in deletions if d.outcome is not DeletionOutcome.FAILED]
    events = []
    if done:
        events.append(Event(job_id=job_id, type=EventType.BATCH_PROVIDER_DATA_DELETED, at=at,
                            batch_id=batch_id, data={"objects": [d.as_dict() for d in done],
                                                     "attempt": attempt}))
    final = attempt >= max_attempts
    for deletion in failed:
        events.append(Event(job_id=job_id, type=EventType.BATCH_PROVIDER_DATA_DELETE_FAILED,
                            at=at, batch_id=batch_id, data={
                                **deletion.as_dict(), "attempt": attempt,
                                "max_attempts": max_attempts, "will_retry": not final}))
    if not failed:
        return CleanupState.DELETED, events
    return (CleanupState.FAILED if final else CleanupState.PENDING), events


def kept_event(job_id: str, batch_id: str, at: datetime, *,
               expiry: dict[str, int]) -> Event:
    """The job keeps its data at the provider: say so on the timeline, with the expiries it
    asked for (empty: the provider's defaults, docs/privacy.md)."""
    return Event(job_id=job_id, type=EventType.BATCH_PROVIDER_DATA_KEPT, at=at,
                 batch_id=batch_id, data={"expires_after_s": expiry})
