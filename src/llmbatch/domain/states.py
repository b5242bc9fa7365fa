"""Status enums and their transition tables: the one place that says which changes are legal.

Production reads these tables: domain methods check a move with ``check_transition`` (a move
the table forbids is a bug), the repository's ``save`` puts ``sources_of(target)`` in the WHERE
clause of its conditional update, and bulk item updates name their source statuses through
``moving`` (so a replayed or late task cannot move a job, batch or item backwards).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from llmbatch.errors import InvalidTransition

__all__ = [
    "BATCH_TRANSITIONS",
    "ITEM_TRANSITIONS",
    "JOB_TRANSITIONS",
    "BatchStatus",
    "ItemStatus",
    "JobStatus",
    "can_transition",
    "check_transition",
    "is_terminal",
    "moving",
    "sources_of",
]


class JobStatus(StrEnum):
    """What a user submitted, as a whole."""

    PENDING = "pending"  # stored, not yet planned
    RUNNING = "running"  # at least one provider batch planned
    CANCELLING = "cancelling"  # user asked to cancel; provider batches being cancelled
    SUCCEEDED = "succeeded"  # every item succeeded
    COMPLETED_WITH_FAILURES = "completed_with_failures"  # some items not succeeded
    CANCELLED = "cancelled"  # cancelled by the user (items that finished keep their results)
    FAILED = "failed"  # failed at job level (e.g. provider refused every submission)


class BatchStatus(StrEnum):
    """One submission to a provider."""

    PLANNED = "planned"  # items assigned, nothing sent yet
    SUBMITTING = "submitting"  # a worker is uploading/creating; provider copy may exist
    IN_PROGRESS = "in_progress"  # the provider has it (any phase before ended)
    CANCELLING = "cancelling"  # cancel sent, provider not terminal yet
    ENDED = "ended"  # provider terminal; results waiting to be fetched
    FETCHED = "fetched"  # results stored (item_results, beside the items)
    FAILED = "failed"  # never accepted by the provider
    CANCELLED = "cancelled"  # cancelled before it was submitted


class ItemStatus(StrEnum):
    """One request line."""

    PENDING = "pending"  # waiting for a provider batch
    QUEUED = "queued"  # assigned to a planned batch
    SUBMITTED = "submitted"  # inside a provider batch
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, JobStatus.CANCELLING, JobStatus.CANCELLED,
                                  JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset({JobStatus.CANCELLING, JobStatus.SUCCEEDED,
                                  JobStatus.COMPLETED_WITH_FAILURES, JobStatus.CANCELLED,
                                  JobStatus.FAILED}),
    JobStatus.CANCELLING: frozenset({JobStatus.CANCELLED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.COMPLETED_WITH_FAILURES: frozenset(),
    JobStatus.CANCELLED: frozenset(),
    JobStatus.FAILED: frozenset(),
}

BATCH_TRANSITIONS: dict[BatchStatus, frozenset[BatchStatus]] = {
    BatchStatus.PLANNED: frozenset({BatchStatus.SUBMITTING, BatchStatus.CANCELLED}),
    # back to PLANNED when the provider call failed transiently and nothing was created
    BatchStatus.SUBMITTING: frozenset({BatchStatus.PLANNED, BatchStatus.IN_PROGRESS,
                                       BatchStatus.FAILED, BatchStatus.CANCELLED}),
    BatchStatus.IN_PROGRESS: frozenset({BatchStatus.CANCELLING, BatchStatus.ENDED}),
    BatchStatus.CANCELLING: frozenset({BatchStatus.ENDED}),
    BatchStatus.ENDED: frozenset({BatchStatus.FETCHED}),
    BatchStatus.FETCHED: frozenset(),
    BatchStatus.FAILED: frozenset(),
    BatchStatus.CANCELLED: frozenset(),
}

ITEM_TRANSITIONS: dict[ItemStatus, frozenset[ItemStatus]] = {
    ItemStatus.PENDING: frozenset({ItemStatus.QUEUED, ItemStatus.CANCELLED, ItemStatus.FAILED}),
    ItemStatus.QUEUED: frozenset({ItemStatus.PENDING, ItemStatus.SUBMITTED, ItemStatus.FAILED,
                                  ItemStatus.CANCELLED}),
    # back to PENDING when a retryable failure is re-batched
    ItemStatus.SUBMITTED: frozenset({ItemStatus.PENDING, ItemStatus.SUCCEEDED, ItemStatus.FAILED,
                                     ItemStatus.CANCELLED, ItemStatus.EXPIRED}),
    ItemStatus.SUCCEEDED: frozenset(),
    ItemStatus.FAILED: frozenset(),
    ItemStatus.CANCELLED: frozenset(),
    ItemStatus.EXPIRED: frozenset(),
}

_TABLES: dict[type, dict] = {  # type: ignore[type-arg]
    JobStatus: JOB_TRANSITIONS,
    BatchStatus: BATCH_TRANSITIONS,
    ItemStatus: ITEM_TRANSITIONS,
}

S = TypeVar("S", JobStatus, BatchStatus, ItemStatus)


def can_transition(current: S, target: S) -> bool:
    """Whether ``current -> target`` is in the transition table of their enum."""
    if type(current) is not type(target):
        return False
    return target in _TABLES[type(current)][current]


def check_transition(current: S, target: S) -> None:
    """Raise ``InvalidTransition`` unless ``current -> target`` is allowed."""
    if not can_transition(current, target):
        raise InvalidTransition(f"{type(current).__name__}: {current} -> {target} is not allowed")


def is_terminal(status: JobStatus | BatchStatus | ItemStatus) -> bool:
    """A status with no way out."""
    return not _TABLES[type(status)][status]


def sources_of(target: S) -> frozenset[S]:
    """Every status that may move to ``target``: the WHERE clause of a conditional update."""
    table = _TABLES[type(target)]
    return frozenset(s for s, outs in table.items() if target in outs)


def moving(target: S, *sources: S) -> list[str]:
    """The WHERE-clause values of a bulk update that moves rows in ``sources`` to ``target``;
    ``InvalidTransition`` if the table forbids any of those moves (a query written against
    the table, not beside it)."""
    for source in sources:
        check_transition(source, target)
    return [str(source) for source in sources]
