"""The timeline: every kind of event a job's history can hold, and the event value itself.

Event types are an enumeration so that a reader (CLI, API, metrics, webhooks) can rely on the
full list; the value stored in the database is the enum's string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["Event", "EventType"]


class EventType(StrEnum):
    """What happened. ``job.*`` events concern the job as a whole, ``batch.*`` one provider
    batch of it."""

    JOB_CREATED = "job.created"
    JOB_RUNNING = "job.running"
    JOB_CANCEL_REQUESTED = "job.cancel_requested"
    JOB_COMPLETED = "job.completed"
    JOB_RETRIED = "job.retried"
    BATCH_PLANNED = "batch.planned"
    BATCH_WAITING_FOR_QUOTA = "batch.waiting_for_quota"
    BATCH_SUBMITTED = "batch.submitted"
    BATCH_ADOPTED = "batch.adopted"
    BATCH_SUBMIT_RETRY = "batch.submit_retry"
    BATCH_SUBMIT_FAILED = "batch.submit_failed"
    BATCH_SUBMIT_INTERRUPTED = "batch.submit_interrupted"
    BATCH_LEASE_LOST = "batch.lease_lost"
    BATCH_CANCEL_SENT = "batch.cancel_sent"
    BATCH_STUCK = "batch.stuck"
    BATCH_ENDED = "batch.ended"
    BATCH_FETCHED = "batch.fetched"
    BATCH_ABANDONED = "batch.abandoned"
    BATCH_RESULTS_UNAVAILABLE = "batch.results_unavailable"
    BATCH_RESULTS_ESCAPED = "batch.results_escaped"
    BATCH_RESULTS_UNSTORABLE = "batch.results_unstorable"
    BATCH_PROVIDER_DATA_DELETED = "batch.provider_data_deleted"
    BATCH_PROVIDER_DATA_DELETE_FAILED = "batch.provider_data_delete_failed"
    BATCH_PROVIDER_DATA_KEPT = "batch.provider_data_kept"
    ITEMS_TOO_LARGE = "items.too_large"


@dataclass(frozen=True)
class Event:
    """One entry of the append-only timeline."""

    job_id: str
    type: EventType
    at: datetime
    batch_id: str | None = None
    from_status: str | None = None
    to_status: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
