"""A job and its transitions, as change values (``domain.changes``) a service saves."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from llmbatch.domain.changes import JobChange
from llmbatch.domain.events import Event, EventType
from llmbatch.domain.models import Endpoint, Usage
from llmbatch.domain.states import ItemStatus, JobStatus, check_transition
from llmbatch.observability.redaction import redact

__all__ = ["Job"]


@dataclass
class Job:
    """A user's submission."""

    id: str
    name: str | None
    provider: str
    model: str
    endpoint: Endpoint
    status: JobStatus
    item_count: int
    created_at: datetime
    tenant: str = "default"
    idempotency_key: str | None = None
    parent_job_id: str | None = None
    submitted_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    counts: dict[ItemStatus, int] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal | None = None  # exact sum of the items' batch costs

    def _change(self, at: datetime, to: JobStatus, event: EventType, data: dict[str, Any],
                **values: Any) -> JobChange:
        check_transition(self.status, to)
        return JobChange(job_id=self.id, at=at, to=to, values=values, event=Event(
            job_id=self.id, type=event, at=at, from_status=str(self.status), to_status=str(to),
            data=data))

    def start_running(self, at: datetime, *, batches: int) -> JobChange:
        """The first provider batches are planned."""
        return self._change(at, JobStatus.RUNNING, EventType.JOB_RUNNING, {"batches": batches},
                            submitted_at=at)

    def request_cancel(self, at: datetime, *, unsent_items_cancelled: int) -> JobChange:
        """The user cancelled: batches at the provider are cancelled by their next poll."""
        return self._change(at, JobStatus.CANCELLING, EventType.JOB_CANCEL_REQUESTED,
                            {"unsent_items_cancelled": unsent_items_cancelled})

    def complete(self, at: datetime, outcome: JobStatus, *, counts: dict[ItemStatus, int],
                 error: str | None) -> JobChange:
        """Every item is final: the job ends with ``outcome``."""
        return self._change(at, outcome, EventType.JOB_COMPLETED,
                            {str(k): v for k, v in counts.items()}, completed_at=at,
                            error=redact(error) if error else error)
