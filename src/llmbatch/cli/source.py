"""Where the job commands get and send their data: the local database (through the services
and read models) or, with ``--api-url`` / ``$LLMBATCH_API_URL`` (key: ``$LLMBATCH_API_KEY``), a
remote ``llmbatch api``.

Both hand the commands the read models' own values (``JobDetail``, ``JobProgress``,
``ResultRecord``...), so a command prints the same thing whichever it talks to.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from llmbatch.bootstrap import Runtime
from llmbatch.domain.models import Endpoint, Usage
from llmbatch.domain.states import JobStatus
from llmbatch.errors import InputError
from llmbatch.service_layer.jobs import RetryOutcome
from llmbatch.service_layer.model_checks import job_options_of
from llmbatch.service_layer.read_models import (
    BatchSummary,
    EventRecord,
    ItemAttempt,
    JobDetail,
    JobSummary,
    Page,
    ResultRecord,
)
from llmbatch.service_layer.read_models.job_progress import JobProgress
from llmbatch.service_layer.read_models.stalls import Stall
from llmbatch.service_layer.submit_options import NO_OPTIONS, SubmitOptions

if TYPE_CHECKING:
    from llmbatch.api.models import JobDetailOut, Result
    from llmbatch.api.validation_models import ValidationOut

__all__ = ["API_KEY_ENV", "API_URL_ENV", "JobSource", "LocalSource", "RemoteSource",
           "api_url", "job_source", "local_only", "remote_source", "set_api_url"]

API_URL_ENV = "LLMBATCH_API_URL"
API_KEY_ENV = "LLMBATCH_API_KEY"
_api_url: str | None = None


def set_api_url(url: str | None) -> None:
    """The root ``--api-url`` option (it wins over ``$LLMBATCH_API_URL``)."""
    global _api_url
    _api_url = url


def api_url() -> str | None:
    """The remote API the job commands talk to, or None (the local database)."""
    return _api_url or os.environ.get(API_URL_ENV) or None


def local_only(option: str) -> None:
    """Refuse an option that only makes sense on the local database (exit 2)."""
    if api_url():
        raise InputError(f"{option} is local-only: with --api-url the API's own workers run "
                         f"the job; drop it, or run without --api-url")


class JobSource(Protocol):
    embedded_broker: bool
    """Whether waiting should start a worker (the embedded SQLite broker, nobody else runs
    one)."""

    def job_summary(self, job_id: str) -> JobSummary: ...
    def job_detail(self, job_id: str) -> JobDetail: ...
    def job_progress(self, job_id: str) -> JobProgress: ...
    def list_jobs(self, *, limit: int, status: JobStatus | None = None,
                  parent_job_id: str | None = None) -> Page[JobSummary]: ...
    def job_results(self, job_id: str, *, lineage: bool = False) -> Iterator[ResultRecord]: ...
    def iter_job_events(self, job_id: str) -> Iterator[EventRecord]: ...
    def create_job(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
                   name: str | None, idempotency_key: str | None,
                   retention: dict[str, Any] | None = None,
                   betas: list[str] | None = None,
                   options: SubmitOptions = ...) -> tuple[str, bool]: ...
    def validate(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
                 strict_model: bool, betas: list[str] | None = None) -> ValidationOut: ...
    def cancel_job(self, job_id: str) -> JobStatus: ...
    def cost_note(self, provider: str, model: str) -> str | None: ...
    def retry_lineage(self, job_id: str, *, name: str | None,
                      include_cancelled: bool) -> RetryOutcome: ...


def remote_source() -> RemoteSource | None:
    """The remote API when one is named (``--api-url`` / ``$LLMBATCH_API_URL``), else None:
    for commands that are not about stored jobs (``validate``, ``estimate``, ``usage``)."""
    url = api_url()
    return RemoteSource(url, os.environ.get(API_KEY_ENV)) if url else None


def job_source(config: Path | None, *, publish: bool = False,
               new: bool = False) -> JobSource:
    """The remote API when one is named, else the local database (``new``: a command that
    may create the database, ``submit``; otherwise it must exist). ``--config`` is not read
    in remote mode: nothing local is needed, nor created."""
    url = api_url()
    if url:
        return RemoteSource(url, os.environ.get(API_KEY_ENV))
    from llmbatch.cli.runtime import ensure_schema, runtime, stored_runtime

    if new:
        rt = runtime(config, publish=publish)
        ensure_schema(rt)
    else:
        rt = stored_runtime(config, publish=publish)
    return LocalSource(rt)


class LocalSource:
    """The local database: the services and read models on one runtime."""

    def __init__(self, rt: Runtime) -> None:
        from llmbatch.cli.runtime import is_embedded

        self.rt = rt
        self.embedded_broker = is_embedded(rt.config)

    def job_summary(self, job_id: str) -> JobSummary:
        from llmbatch.service_layer.read_models import job_summary

        return job_summary(self.rt, job_id)

    def job_detail(self, job_id: str) -> JobDetail:
        from llmbatch.service_layer.read_models import job_detail

        return job_detail(self.rt, job_id)

    def job_progress(self, job_id: str) -> JobProgress:
        from llmbatch.service_layer.read_models.job_progress import job_progress

        return job_progress(self.rt, job_id)

    def list_jobs(self, *, limit: int, status: JobStatus | None = None,
                  parent_job_id: str | None = None) -> Page[JobSummary]:
        from llmbatch.service_layer.read_models import list_jobs

        return list_jobs(self.rt, limit=limit, status=status, parent_job_id=parent_job_id)

    def job_results(self, job_id: str, *, lineage: bool = False) -> Iterator[ResultRecord]:
        from llmbatch.service_layer.read_models import job_results, lineage_results

        return (lineage_results if lineage else job_results)(self.rt, job_id)

    def iter_job_events(self, job_id: str) -> Iterator[EventRecord]:
        from llmbatch.service_layer.read_models import iter_job_events

        return iter_job_events(self.rt, job_id)

    def create_job(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
                   name: str | None, idempotency_key: str | None,
                   retention: dict[str, Any] | None = None,
                   betas: list[str] | None = None,
                   options: SubmitOptions = NO_OPTIONS) -> tuple[str, bool]:
        from llmbatch.service_layer.jobs import create_job

        return create_job(self.rt, path, provider=provider, model=model, endpoint=endpoint,
                          name=name, idempotency_key=idempotency_key, retention=retention,
                          job_options=job_options_of(betas),
                          strict_model=options.strict_model, max_cost=options.max_cost,
                          webhook_url=options.webhook_url)

    def validate(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
                 strict_model: bool, betas: list[str] | None = None) -> ValidationOut:
        from llmbatch.api.validation_models import ValidationOut

        return ValidationOut.of_file(self.rt, path, provider=provider, model=model,
                                     endpoint=endpoint, strict_model=strict_model,
                                     job_options=job_options_of(betas))

    def cancel_job(self, job_id: str) -> JobStatus:
        from llmbatch.service_layer.jobs import cancel_job

        return cancel_job(self.rt, job_id)

    def cost_note(self, provider: str, model: str) -> str | None:
        from llmbatch.cli.costs import unpriced_note

        return unpriced_note(self.rt, provider, model)

    def retry_lineage(self, job_id: str, *, name: str | None,
                      include_cancelled: bool) -> RetryOutcome:
        from llmbatch.service_layer.jobs import retry_lineage

        return retry_lineage(self.rt, job_id, name=name, include_cancelled=include_cancelled)


class RemoteSource:
    """A remote ``llmbatch api``, its answers turned back into the read models' values."""

    embedded_broker = False

    def __init__(self, url: str, api_key: str | None) -> None:
        from llmbatch.cli.runtime import close_when_done
        from llmbatch.client.backends import RemoteBackend

        # One command makes a few requests and ends: no connection is kept open after a
        # response (a kept one would outlive the command when it runs in-process), and the
        # client is closed when the command ends.
        self.backend = RemoteBackend(url, api_key, transport=httpx.HTTPTransport(
            limits=httpx.Limits(max_keepalive_connections=0)))
        close_when_done(self.backend.close)

    def job_summary(self, job_id: str) -> JobSummary:
        return self.job_detail(job_id)

    def job_detail(self, job_id: str) -> JobDetail:
        return _detail(self.backend.detail(job_id))

    def job_progress(self, job_id: str) -> JobProgress:
        p = self.backend.progress(job_id)
        return JobProgress(job=_detail(p.job), fetched=p.fetched,
                           at_provider_done=p.at_provider_done,
                           at_provider_total=p.at_provider_total, eta_s=p.eta_s,
                           reasons=tuple(Stall(s.kind, s.batch_id, s.message)
                                         for s in p.waiting))

    def list_jobs(self, *, limit: int, status: JobStatus | None = None,
                  parent_job_id: str | None = None) -> Page[JobSummary]:
        page = self.backend.list(limit=limit, cursor=None, status=status,
                                 parent_job_id=parent_job_id)
        return Page(tuple(JobSummary(**_summary_fields(j)) for j in page.data),
                    page.next_cursor)

    def job_results(self, job_id: str, *, lineage: bool = False) -> Iterator[ResultRecord]:
        return (_record(r) for r in self.backend.results(job_id, lineage=lineage))

    def iter_job_events(self, job_id: str) -> Iterator[EventRecord]:
        for e in self.backend.events(job_id):
            yield EventRecord(id=e.id, job_id=e.job_id, type=e.type, at=e.at,
                              batch_id=e.batch_id, from_status=e.from_status,
                              to_status=e.to_status, data=e.data)

    def create_job(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
                   name: str | None, idempotency_key: str | None,
                   retention: dict[str, Any] | None = None,
                   betas: list[str] | None = None,
                   options: SubmitOptions = NO_OPTIONS) -> tuple[str, bool]:
        from llmbatch.cli.common import warn

        job, created = self.backend.create(path, provider=provider, model=model,
                                           endpoint=endpoint, name=name, metadata=None,
                                           idempotency_key=idempotency_key,
                                           retention=retention, betas=betas, options=options)
        for line in getattr(job, "warnings", ()):  # as the local submit prints them
            warn(line)
        return job.id, created

    def validate(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
                 strict_model: bool, betas: list[str] | None = None) -> ValidationOut:
        return self.backend.validate(path, provider=provider, model=model, endpoint=endpoint,
                                     strict_model=strict_model, betas=betas)

    def cancel_job(self, job_id: str) -> JobStatus:
        return self.backend.cancel(job_id)

    def cost_note(self, provider: str, model: str) -> str | None:
        return None  # the API's prices are its own; a job it did not price has no cost

    def retry_lineage(self, job_id: str, *, name: str | None,
                      include_cancelled: bool) -> RetryOutcome:
        out = self.backend.retry_lineage(job_id, name=name,
                                         include_cancelled=include_cancelled)
        return RetryOutcome(child_id=out.job.id, count=out.items,
                            already_succeeded=out.already_succeeded, in_flight=out.in_flight)


def _detail(job: JobDetailOut) -> JobDetail:
    return JobDetail(
        **_summary_fields(job), submitted_at=job.submitted_at, error=job.error,
        metadata=job.metadata, usage=Usage(**job.usage.model_dump()),
        cost_usd=_decimal(job.cost_usd), sync_cost_usd=_decimal(job.sync_cost_usd),
        batches=tuple(BatchSummary(**b.model_dump(), lease_until=None) for b in job.batches))


def _record(r: Result) -> ResultRecord:
    return ResultRecord(
        custom_id=r.custom_id, status=r.status, output_text=r.output_text,
        finish_reason=r.finish_reason, response=r.response,
        usage=Usage(**r.usage.model_dump()), cost_usd=_decimal(r.cost_usd), error=r.error,
        provider=r.provider, model=r.model, attempts=r.attempts, job_id=r.job_id,
        history=tuple(ItemAttempt(attempt=h["attempt"], batch_id=h["batch_id"],
                                  outcome=h["outcome"], error=h["error"],
                                  at=datetime.fromisoformat(h["at"]))
                      for h in r.history))


def _summary_fields(job: Any) -> dict[str, Any]:
    return {"id": job.id, "tenant": job.tenant, "name": job.name, "provider": job.provider,
            "model": job.model, "endpoint": job.endpoint, "status": job.status,
            "item_count": job.item_count, "created_at": job.created_at,
            "completed_at": job.completed_at, "parent_job_id": job.parent_job_id,
            "counts": dict(job.counts)}


def _decimal(value: str | None) -> Decimal | None:
    """A cost the API sent (an exact decimal string), as the read models hold it."""
    return None if value is None else Decimal(value)
