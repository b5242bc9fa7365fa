"""The values the read models return: frozen, typed, and holding no database row or
connection, so the CLI can print them, the API can serialise them and a client can keep them
after the transaction that read them has ended."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from llmbatch.domain.models import Endpoint, Usage
from llmbatch.domain.retention import CleanupState
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus, is_terminal

__all__ = [
    "FINAL_ITEM_STATUSES",
    "BatchSummary",
    "EventRecord",
    "ItemAttempt",
    "ItemSummary",
    "JobDetail",
    "JobSummary",
    "Page",
    "ResultRecord",
]

FINAL_ITEM_STATUSES = frozenset(s for s in ItemStatus if is_terminal(s))
"""Item statuses with no way out: what a progress bar counts as done."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing. ``next_cursor`` is what to pass as ``cursor`` for the next
    page; None when this page is the last."""

    entries: tuple[T, ...]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class JobSummary:
    """A job as a list shows it, and as a progress bar follows it: its item counts per
    status, no sums."""

    id: str
    tenant: str
    name: str | None
    provider: str
    model: str
    endpoint: Endpoint
    status: JobStatus
    item_count: int
    created_at: datetime
    completed_at: datetime | None
    parent_job_id: str | None
    counts: Mapping[ItemStatus, int] = field(default_factory=dict)

    @property
    def finished_items(self) -> int:
        """Items in a final status (succeeded, failed, cancelled, expired)."""
        return sum(n for s, n in self.counts.items() if s in FINAL_ITEM_STATUSES)

    @property
    def ended(self) -> bool:
        """Whether the job is in a terminal status."""
        return is_terminal(self.status)


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """One provider batch of a job, as an operator reads it. ``request_counts`` are the
    provider's own live counts when it reports them; ``next_poll_at`` and ``lease_until`` say
    what it waits for."""

    id: str
    status: BatchStatus
    attempt: int
    item_count: int
    provider_batch_id: str | None
    provider_status: str | None
    request_counts: Mapping[str, int]
    poll_count: int
    error: str | None
    error_code: str | None
    created_at: datetime
    submitted_at: datetime | None
    ended_at: datetime | None
    next_poll_at: datetime | None
    lease_until: datetime | None
    lease_owner: str | None = None
    """The task holding the batch: ``host:pid:token`` (who to wait for while it works)."""
    call_failures: int = 0
    """Provider calls of the batch's current step that failed in a row (unreachable...)."""
    cleanup_state: CleanupState | None = None
    """What became of the batch's data at the provider once its results were stored:
    ``pending`` (to be deleted, or a failed deletion to be tried again), ``deleted``, ``kept``
    (the job keeps it), ``failed`` (gave up); None before the results are stored (and for
    batches fetched before deletions existed). docs/privacy.md."""
    cleanup_attempts: int = 0
    """Deletion attempts made so far (bounded by ``retention.delete_attempts``)."""


@dataclass(frozen=True, slots=True)
class JobDetail(JobSummary):
    """A job's status in full: counts, usage and cost totals, and its provider batches.
    ``cost_usd`` (the batch price billed) and ``sync_cost_usd`` (what the same tokens cost
    synchronously) are exact sums of the item costs, None when no item has a price."""

    submitted_at: datetime | None = None
    error: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal | None = None
    sync_cost_usd: Decimal | None = None
    batches: tuple[BatchSummary, ...] = ()


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One entry of a job's timeline. ``id`` grows with time: it is the cursor of the next
    page and what a live stream resumes from."""

    id: int
    job_id: str
    type: str
    at: datetime
    batch_id: str | None
    from_status: str | None
    to_status: str | None
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ItemSummary:
    """One item of a job without its request or response bodies. ``seq`` is its position
    among the job's requests (0-based)."""

    seq: int
    custom_id: str
    status: ItemStatus
    attempts: int
    batch_id: str | None
    finish_reason: str | None
    usage: Usage
    cost_usd: Decimal | None
    error: Mapping[str, Any] | None
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ItemAttempt:
    """An earlier provider batch an item rode in without succeeding there."""

    attempt: int
    batch_id: str
    outcome: str
    error: Mapping[str, Any] | None
    at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "batch_id": self.batch_id, "outcome": self.outcome,
                "error": self.error, "at": self.at.isoformat()}


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """The outcome of one input line: what ``llmbatch results`` writes, one per line, in
    input order (``as_dict`` is that JSON object)."""

    custom_id: str
    status: ItemStatus
    output_text: str | None
    finish_reason: str | None
    response: Any
    usage: Usage
    cost_usd: Decimal | None
    error: Mapping[str, Any] | None
    provider: str
    model: str
    attempts: int
    history: tuple[ItemAttempt, ...] = ()
    job_id: str | None = None
    """The job whose attempt this is, in a lineage's merged results (else None, not shown)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            **({"job_id": self.job_id} if self.job_id else {}),
            "custom_id": self.custom_id, "status": str(self.status),
            "output_text": self.output_text, "finish_reason": self.finish_reason,
            "response": self.response, "usage": self.usage.as_dict(),
            "cost_usd": None if self.cost_usd is None else str(self.cost_usd),
            "error": self.error, "provider": self.provider,
            "model": self.model, "attempts": self.attempts,
            "history": [h.as_dict() for h in self.history],
        }
