"""The API's JSON shapes (pydantic): what the routes answer, what the OpenAPI description
shows, and what ``llmbatch.Client`` hands back - one set of types on both sides of the wire.

Built from the read models' frozen values (``service_layer.read_models``) by the ``from_*``
constructors; nothing here reads a database.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from llmbatch.domain.models import Endpoint
from llmbatch.domain.retention import CleanupState
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus, is_terminal
from llmbatch.service_layer.read_models import (
    BatchSummary,
    EventRecord,
    ItemSummary,
    JobDetail,
    JobSummary,
    ResultRecord,
)
from llmbatch.service_layer.read_models.job_progress import JobProgress
from llmbatch.service_layer.read_models.stalls import Stall

__all__ = ["BatchOut", "CancelOut", "CreateJobJson", "CreatedJobOut", "EventOut", "ItemOut",
           "JobDetailOut", "JobOut", "PageOut", "ProblemError", "ProblemOut", "ProgressOut",
           "Result", "RetentionIn", "RetryOut", "StallOut", "UsageOut"]

T = TypeVar("T")

_JOB_EXAMPLE: dict[str, Any] = {
    "id": "job_0193a1b2c3d4e5f6a7b8c9", "tenant": "acme", "name": "nightly-eval",
    "provider": "openai", "model": "gpt-4o-mini", "endpoint": "chat", "status": "running",
    "item_count": 3, "created_at": "2026-11-30T12:00:00Z", "completed_at": None,
    "parent_job_id": None, "counts": {"succeeded": 1, "in_flight": 2}, "finished_items": 1}


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class UsageOut(_Out):
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


class JobOut(_Out):
    """A job as a list shows it: status and item counts per status."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [_JOB_EXAMPLE]})

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
    counts: dict[ItemStatus, int]
    finished_items: int = Field(description="Items in a final status")

    @property
    def ended(self) -> bool:
        """Whether the job is in a terminal status."""
        return is_terminal(self.status)

    @classmethod
    def from_summary(cls, job: JobSummary) -> JobOut:
        return cls(**_summary(job))


class CreatedJobOut(JobOut):
    """``POST /v1/jobs``'s answer: the job, and what was done unasked (the warnings
    ``llmbatch submit`` prints, naming the uploaded file)."""

    warnings: list[str] = Field(default_factory=list, description=(
        "One line per thing done unasked, e.g. lines whose body.model names another model "
        "and run on the job's model (strict_model refuses them instead)"))


class BatchOut(_Out):
    """One provider batch of a job."""

    id: str
    status: BatchStatus
    attempt: int
    item_count: int
    provider_batch_id: str | None
    provider_status: str | None
    request_counts: dict[str, int]
    poll_count: int
    error: str | None
    error_code: str | None
    created_at: datetime
    submitted_at: datetime | None
    ended_at: datetime | None
    next_poll_at: datetime | None
    cleanup_state: CleanupState | None = Field(None, description=(
        "The batch's data at the provider once its results are stored: pending (to be "
        "deleted, or a failed deletion to be tried again), deleted, kept (the job keeps it; "
        "the provider's expiry applies), failed (gave up after retention.delete_attempts); "
        "null before the results are stored. Each attempt is on the job's events"))
    cleanup_attempts: int = Field(0, description="Deletion attempts made so far")

    @classmethod
    def from_summary(cls, b: BatchSummary) -> BatchOut:
        return cls(id=b.id, status=b.status, attempt=b.attempt, item_count=b.item_count,
                   provider_batch_id=b.provider_batch_id, provider_status=b.provider_status,
                   request_counts=dict(b.request_counts), poll_count=b.poll_count,
                   error=b.error, error_code=b.error_code, created_at=b.created_at,
                   submitted_at=b.submitted_at, ended_at=b.ended_at,
                   next_poll_at=b.next_poll_at, cleanup_state=b.cleanup_state,
                   cleanup_attempts=b.cleanup_attempts)


class JobDetailOut(JobOut):
    """A job's status in full: counts, usage, cost and provider batches."""

    submitted_at: datetime | None
    error: str | None
    metadata: dict[str, Any]
    usage: UsageOut
    cost_usd: str | None = Field(description="Batch cost in USD, an exact decimal written as a "
                                             "string; null when the model has no price")
    sync_cost_usd: str | None = Field(None, description="What the same tokens would have cost "
                                                        "synchronously, USD (exact decimal)")
    batches: list[BatchOut]

    @classmethod
    def from_detail(cls, job: JobDetail) -> JobDetailOut:
        return cls(**_summary(job), submitted_at=job.submitted_at, error=job.error,
                   metadata=dict(job.metadata), usage=UsageOut(**job.usage.as_dict()),
                   cost_usd=_usd(job.cost_usd), sync_cost_usd=_usd(job.sync_cost_usd),
                   batches=[BatchOut.from_summary(b) for b in job.batches])


class ItemOut(_Out):
    """One item of a job, without request or response bodies."""

    seq: int = Field(description="Position among the job's requests (0-based)")
    custom_id: str
    status: ItemStatus
    attempts: int
    batch_id: str | None
    finish_reason: str | None
    usage: UsageOut
    cost_usd: str | None = Field(description="Batch cost in USD, an exact decimal written as a "
                                             "string; null when the model has no price")
    error: dict[str, Any] | None
    completed_at: datetime | None

    @classmethod
    def from_summary(cls, i: ItemSummary) -> ItemOut:
        return cls(seq=i.seq, custom_id=i.custom_id, status=i.status, attempts=i.attempts,
                   batch_id=i.batch_id, finish_reason=i.finish_reason,
                   usage=UsageOut(**i.usage.as_dict()), cost_usd=_usd(i.cost_usd),
                   error=dict(i.error) if i.error is not None else None,
                   completed_at=i.completed_at)


class EventOut(_Out):
    """One entry of a job's timeline; ``id`` is the cursor (and the SSE event id)."""

    id: int
    job_id: str
    type: str
    at: datetime
    batch_id: str | None
    from_status: str | None
    to_status: str | None
    data: dict[str, Any]

    @classmethod
    def from_record(cls, e: EventRecord) -> EventOut:
        return cls(id=e.id, job_id=e.job_id, type=e.type, at=e.at, batch_id=e.batch_id,
                   from_status=e.from_status, to_status=e.to_status, data=dict(e.data))


class Result(_Out):
    """One line of ``GET /jobs/{id}/results``: the outcome of one input line, in input order
    (the same object ``llmbatch results`` writes)."""

    custom_id: str
    status: ItemStatus
    output_text: str | None
    finish_reason: str | None
    response: Any = None
    usage: UsageOut
    cost_usd: str | None = Field(description="Batch cost in USD, an exact decimal written as a "
                                             "string; null when the model has no price")
    error: dict[str, Any] | None
    provider: str
    model: str
    attempts: int
    history: list[dict[str, Any]] = Field(default_factory=list)
    job_id: str | None = Field(None, description="With lineage=true: the job (the one named "
                                                 "or a retry of it) whose attempt this is")

    @classmethod
    def from_record(cls, r: ResultRecord) -> Result:
        return cls.model_validate(r.as_dict())


class PageOut(_Out, Generic[T]):
    """One page of a listing; pass ``next_cursor`` as ``cursor`` for the next (null: last)."""

    data: list[T]
    next_cursor: str | None


class CancelOut(_Out):
    id: str
    status: JobStatus


class RetryOut(_Out):
    job: JobOut = Field(description="The new child job")
    items: int = Field(description="Failed and expired items it retries")
    already_succeeded: int = Field(0, description="Items left out: a later retry of the "
                                                  "lineage already succeeded at them")
    in_flight: int = Field(0, description="Items left out: a later retry of the lineage is "
                                          "still running them")


class StallOut(_Out):
    """One reason a job is held up (``kind`` is stable; ``message`` says it in full)."""

    kind: str = Field(description="provider_failing, quota, dead_worker_lease, "
                                  "lease_expired or no_worker")
    batch_id: str | None
    message: str

    @classmethod
    def from_stall(cls, s: Stall) -> StallOut:
        return cls(kind=s.kind, batch_id=s.batch_id, message=s.message)


class ProgressOut(_Out):
    """A job's progress as honestly as it can be told: the job in full, what the provider
    says it has done on batches whose results are not stored yet, an ETA, and why it waits."""

    job: JobDetailOut
    fetched: int = Field(description="Items in a final status (results stored)")
    at_provider_done: int = Field(description="Requests the provider reports done on batches "
                                              "not fetched yet")
    at_provider_total: int = Field(description="Requests in the batches not fetched yet")
    eta_s: float | None = Field(description="Estimated seconds left (null: no estimate)")
    waiting: list[StallOut] = Field(description="Why the job is held up (empty: it is not)")

    @classmethod
    def from_progress(cls, p: JobProgress) -> ProgressOut:
        return cls(job=JobDetailOut.from_detail(p.job), fetched=p.fetched,
                   at_provider_done=p.at_provider_done, at_provider_total=p.at_provider_total,
                   eta_s=p.eta_s, waiting=[StallOut.from_stall(s) for s in p.reasons])


class RetentionIn(BaseModel):
    """How long the job's data may live at the provider (docs/privacy.md). Values the
    provider cannot honour are refused with 422 naming ``retention.<key>``."""

    model_config = ConfigDict(extra="forbid")

    delete_when_stored: bool | None = Field(
        None, description="Delete the provider's copy once the results are stored (default: "
                          "the provider's retention.delete_when_stored, normally true)")
    input_expires_after_s: int | None = Field(
        None, gt=0, description="Ask the provider to expire the uploaded input after this "
                                "many seconds (OpenAI: 86400 to 2592000)")
    output_expires_after_s: int | None = Field(
        None, gt=0, description="Ask the provider to expire the result files after this many "
                                "seconds (OpenAI: 3600 to 2592000)")


class CreateJobJson(BaseModel):
    """``POST /v1/jobs`` with a JSON body: the requests inline (for small jobs; upload a
    JSONL file as multipart/form-data for large ones)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "provider": "openai", "model": "gpt-4o-mini", "name": "greetings",
        "requests": [{"custom_id": "q1", "body": {"messages": [
            {"role": "user", "content": "Say hello"}]}}]}]})

    provider: str = Field(min_length=1, max_length=50)
    model: str = Field(min_length=1, max_length=200)
    endpoint: Endpoint = Endpoint.CHAT
    name: str | None = Field(None, max_length=200)
    metadata: dict[str, Any] | None = None
    strict_model: bool = Field(False, description=(
        "Refuse lines whose body.model differs from model (default: they run on model)"))
    max_cost: Decimal | None = Field(None, ge=0, description=(
        "USD cap on the job's batch cost: refused if its upper bound is over"))
    webhook_url: str | None = Field(None, max_length=2000, description=(
        "Notified (signed, Standard Webhooks) when the job ends; host must be allowed"))
    retention: RetentionIn | None = Field(
        None, description="The job's own retention settings (unset keys: the provider's "
                          "configuration); docs/privacy.md")
    betas: list[str] | None = Field(
        None, max_length=20, description="Provider betas for this job (Anthropic: "
                                         "anthropic-beta values known to work in batches)")
    requests: list[dict[str, Any]] = Field(
        min_length=1, description="Request lines, as in a JSONL file (custom_id, body)")


class ProblemError(_Out):
    """Where one input problem is: the same file, line and field the CLI prints."""

    message: str
    file: str | None = None
    line: int | None = None
    field: str | None = None
    text: str = Field(description="The line the CLI prints for this problem")


class ProblemOut(_Out):
    """RFC 9457 problem details (``application/problem+json``)."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [{
        "type": "about:blank", "title": "Unprocessable Content", "status": 422,
        "detail": "prompts.jsonl:3: field 'body' must be a JSON object",
        "errors": [{"message": "must be a JSON object", "file": "prompts.jsonl", "line": 3,
                    "field": "body",
                    "text": "prompts.jsonl:3: field 'body' must be a JSON object"}]}]})

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ProblemError] | None = None
    problem_count: int | None = Field(None, description=(
        "Bad input: how many problems there are in all ('errors' lists the first 20)"))


def _summary(job: JobSummary) -> dict[str, Any]:
    return {"id": job.id, "tenant": job.tenant, "name": job.name, "provider": job.provider,
            "model": job.model, "endpoint": job.endpoint, "status": job.status,
            "item_count": job.item_count, "created_at": job.created_at,
            "completed_at": job.completed_at, "parent_job_id": job.parent_job_id,
            "counts": dict(job.counts), "finished_items": job.finished_items}


def _usd(cost: Decimal | None) -> str | None:
    """A cost as the API writes it: the exact decimal, as a string (a JSON number would be a
    binary float, and the sums of item costs would no longer add up)."""
    return None if cost is None else str(cost)
