"""Change values: what one transition of a job or provider batch writes, decided in the domain.

A service asks the domain object for a change (``batch.accepted(...)``) and hands it to the
unit of work's one ``save``, which persists it: the status move guarded by the transition table
(``WHERE status IN sources_of(to)``), the fields, the lease rule and the event, in the same
transaction. A change that no longer applies (the row moved on, or someone else holds the
lease) is reported by ``save`` as not applied, never dropped silently.

The lease rule. Every change to a provider batch is made by the holder of its lease: a token
minted for one task execution when it claims the batch (``Runtime.new_lease_owner``), so two
threads of one process are two holders. ``save`` matches the token; a step that is over
releases the lease and hands the batch back to the tick (``dispatched_at`` cleared), a step
that goes on (a submission, a cancel followed by a poll) holds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from llmbatch.domain.events import Event
from llmbatch.domain.states import BatchStatus, JobStatus

__all__ = ["BatchChange", "JobChange", "LeaseRule"]


class LeaseRule(StrEnum):
    """What a saved batch change does to the lease its owner holds."""

    RELEASE = "release"  # the step is over: lease freed, batch due for the tick again
    HOLD = "hold"  # the owner goes on working on the batch (renewed by its heartbeat)


@dataclass(frozen=True)
class BatchChange:
    """One transition of a provider batch, as the domain decided it.

    ``owner`` is the lease token the change was decided under; ``expect`` adds column values
    the row must still have (a guard against two deciders of the same one-time change).
    """

    batch_id: str
    owner: str | None
    at: datetime
    to: BatchStatus | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    event: Event | None = None
    lease: LeaseRule = LeaseRule.RELEASE
    expect: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobChange:
    """One status transition of a job (jobs carry no lease: ``lock_job`` orders them)."""

    job_id: str
    at: datetime
    to: JobStatus
    values: Mapping[str, Any] = field(default_factory=dict)
    event: Event | None = None
