"""Where the job commands get and send their data: the local database (through the services
and read models) or, with ``--api-url`` / ``$LLMBATCH_API_URL`` (key: ``$LLMBATCH_API_KEY``), a
remote ``llmbatch api``.

Both hand the commands the read models' own values (``JobDetail``, ``ResultRecord``...), so a
command prints the same thing whichever it talks to.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from llmbatch.bootstrap import Runtime
from llmbatch.domain.models import Endpoint, Usage
from llmbatch.domain.states import JobStatus
from llmbatch.service_layer.read_models import (
    BatchSummary,
    EventRecord,
    ItemAttempt,
    JobDetail,
    JobSummary,
    Page,
    ResultRecord,
)

__all__ = ["API_KEY_ENV", "API_URL_ENV", "JobSource", "LocalSource", "RemoteSource",
           "job_source", "set_api_url"]

API_URL_ENV = "LLMBATCH_API_URL"
API_KEY_ENV = "LLMBATCH_API_KEY"
_api_url: str | None = None


def set_api_url(url: str | None) -> None:
    """The root ``--api-url`` option (it wins over ``$LLMBATCH_API_URL``)."""
    global _api_url
    _api_url = url


class JobSource(Protocol):
    embedded_broker: bool
    """Whether waiting should start a worker (the embedded SQLite broker, nobody else runs
    one)."""

    def job_summary(self, job_id: str) -> JobSummary: ...
    def job_detail(self, job_id: str) -> JobDetail: ...
    def list_jobs(self, *, limit: int, status: JobStatus | None) -> Page[JobSummary]: ...
    def job_results(self, job_id: str) -> Iterator[ResultRecord]: ...
    def iter_job_events(self, job_id: str) -> Iterator[EventRecord]: ...
    def create_job(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
                   name: str | None, idempotency_key: str | None) -> tuple[str, bool]: ...
    def cancel_job(self, job_id: str) -> JobStatus: ...
    def retry_job(self, job_id: str) -> tuple[str, int]: ...


def job_source(config: Path | None, *, publish: bool = False,
               new: bool = False) -> JobSource:
    """The remote API when one is named, else the local database (``new``: a command that
    may create the database, ``submit``; otherwise it must exist)."""
    url = _api_url or os.environ.get(API_URL_ENV)
    if url:
        return RemoteSource(url, os.environ.get(API_KEY_ENV))
    from llmbatch.cli.main import _ensure_schema, _runtime, _stored_runtime

    if new:
        rt = _runtime(config, publish=publish)
        _ensure_schema(rt)
    else:
        rt = _stored_runtime(config, publish=publish)
    return LocalSource(rt)


class LocalSource:
    """The local database: the services and read models on one runtime."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.embedded_broker = rt.config.broker.url.startswith("sqla+sqlite")

    def job_summary(self, job_id: str) -> JobSummary:
        from llmbatch.service_layer.read_models import job_summary

        return job_summary(self.rt, job_id)

    def job_detail(self, job_id: str) -> JobDetail:
        from llmbatch.service_layer.read_models import job_detail

        return job_detail(self.rt, job_id)

    def list_jobs(self, *, limit: int, status: JobStatus | None) -> Page[JobSummary]:
        from llmbatch.service_layer.read_models import list_jobs

        return list_jobs(self.rt, limit=limit, status=status)

    def job_results(self, job_id: str) -> Iterator[ResultRecord]:
        from llmbatch.service_layer.read_models import job_results

        return job_results(self.rt, job_id)

    def iter_job_events(self, job_id: str) -> Iterator[EventRecord]:
        from llmbatch.service_layer.read_models import iter_job_events

        return iter_job_events(self.rt, job_id)

    def create_job(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
                   name: str | None, idempotency_key: str | None) -> tuple[str, bool]:
        from llmbatch.service_layer.jobs import create_job

        return create_job(self.rt, path, provider=provider, model=model, endpoint=endpoint,
                          name=name, idempotency_key=idempotency_key)

    def cancel_job(self, job_id: str) -> JobStatus:
        from llmbatch.service_layer.jobs import cancel_job

        return cancel_job(self.rt, job_id)

    def retry_job(self, job_id: str) -> tuple[str, int]:
        from llmbatch.service_layer.jobs import retry_job

        return retry_job(self.rt, job_id)


class RemoteSource:
    """A remote ``llmbatch api``, its answers turned back into the read models' values."""

    embedded_broker = False

    def __init__(self, url: str, api_key: str | None) -> None:
        from llmbatch.client.backends import RemoteBackend

        self.backend = RemoteBackend(url, api_key)

    def job_summary(self, job_id: str) -> JobSummary:
        return self.job_detail(job_id)

    def job_detail(self, job_id: str) -> JobDetail:
        job = self.backend.detail(job_id)
        return JobDetail(
            **_summary_fields(job), submitted_at=job.submitted_at, error=job.error,
            metadata=job.metadata, usage=Usage(**job.usage.model_dump()),
            cost_usd=_decimal(job.cost_usd),
            batches=tuple(BatchSummary(**b.model_dump(), lease_until=None)
                          for b in job.batches))

    def list_jobs(self, *, limit: int, status: JobStatus | None) -> Page[JobSummary]:
        page = self.backend.list(limit=limit, cursor=None, status=status)
        return Page(tuple(JobSummary(**_summary_fields(j)) for j in page.data),
                    page.next_cursor)

    def job_results(self, job_id: str) -> Iterator[ResultRecord]:
        for r in self.backend.results(job_id):
            yield ResultRecord(
                custom_id=r.custom_id, status=r.status, output_text=r.output_text,
                finish_reason=r.finish_reason, response=r.response,
                usage=Usage(**r.usage.model_dump()), cost_usd=_decimal(r.cost_usd), error=r.error,
                provider=r.provider, model=r.model, attempts=r.attempts,
                history=tuple(ItemAttempt(attempt=h["attempt"], batch_id=h["batch_id"],
                                          outcome=h["outcome"], error=h["error"],
                                          at=datetime.fromisoformat(h["at"]))
                              for h in r.history))

    def iter_job_events(self, job_id: str) -> Iterator[EventRecord]:
        for e in self.backend.events(job_id):
            yield EventRecord(id=e.id, job_id=e.job_id, type=e.type, at=e.at,
                              batch_id=e.batch_id, from_status=e.from_status,
                              to_status=e.to_status, data=e.data)

    def create_job(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
                   name: str | None, idempotency_key: str | None) -> tuple[str, bool]:
        job, created = self.backend.create(path, provider=provider, model=model,
                                           endpoint=endpoint, name=name, metadata=None,
                                           idempotency_key=idempotency_key)
        return job.id, created

    def cancel_job(self, job_id: str) -> JobStatus:
        return self.backend.cancel(job_id)

    def retry_job(self, job_id: str) -> tuple[str, int]:
        job, count = self.backend.retry(job_id)
        return job.id, count


def _summary_fields(job: Any) -> dict[str, Any]:
    return {"id": job.id, "tenant": job.tenant, "name": job.name, "provider": job.provider,
            "model": job.model, "endpoint": job.endpoint, "status": job.status,
            "item_count": job.item_count, "created_at": job.created_at,
            "completed_at": job.completed_at, "parent_job_id": job.parent_job_id,
            "counts": dict(job.counts)}


def _decimal(value: float | None) -> Decimal | None:
    """A cost the API sent as a JSON number, as the read models hold it."""
    return None if value is None else Decimal(str(value))
