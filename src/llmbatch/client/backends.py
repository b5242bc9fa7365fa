"""Where a ``Client``'s operations go: the local database through the same services and read
models as the CLI (embedded), or a remote ``llmbatch api`` over HTTP. Both answer with the
API's own models (``llmbatch.api.models``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx

from llmbatch.api.cost_models import EstimateOut, UsageReportOut
from llmbatch.api.models import (
    CancelOut,
    CreatedJobOut,
    EventOut,
    JobDetailOut,
    JobOut,
    PageOut,
    ProgressOut,
    Result,
    RetryOut,
)
from llmbatch.api.validation_models import ValidationOut
from llmbatch.domain.models import Endpoint
from llmbatch.domain.states import JobStatus
from llmbatch.errors import (
    ConflictError,
    InfrastructureError,
    InputError,
    InputProblems,
    LLMBatchError,
    NotFoundError,
)
from llmbatch.service_layer.model_checks import job_options_of
from llmbatch.service_layer.submit_options import NO_OPTIONS, SubmitOptions

__all__ = ["ApiError", "Backend", "EmbeddedBackend", "RemoteBackend", "SubmitOptions",
           "day_start"]


def day_start(day: date | None) -> datetime | None:
    """Midnight UTC of ``day`` (how the usage report's days are bounded)."""
    return None if day is None else datetime.combine(day, time(), UTC)


class ApiError(LLMBatchError):
    """A remote API's answer that is no llmbatch error of its own (401, 413, 429...)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.detail}"


class Backend(Protocol):
    embedded: bool

    def create(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
               name: str | None, metadata: dict[str, Any] | None,
               idempotency_key: str | None,
               retention: dict[str, Any] | None = None,
               betas: list[str] | None = None,
               options: SubmitOptions = ...) -> tuple[JobOut, bool]: ...
    def validate(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
                 strict_model: bool, betas: list[str] | None = None) -> ValidationOut: ...
    def estimate(self, path: Path, *, provider: str, model: str,
                 endpoint: Endpoint) -> EstimateOut: ...
    def usage(self, *, by: Sequence[str], start: date | None, end: date | None,
              tenant: str | None) -> UsageReportOut: ...
    def detail(self, job_id: str) -> JobDetailOut: ...
    def list(self, *, limit: int, cursor: str | None,
             status: JobStatus | None) -> PageOut[JobOut]: ...
    def results(self, job_id: str) -> Iterator[Result]: ...
    def events(self, job_id: str) -> Iterator[EventOut]: ...
    def cancel(self, job_id: str) -> JobStatus: ...
    def retry(self, job_id: str) -> tuple[JobOut, int]: ...
    def close(self) -> None: ...


class EmbeddedBackend:
    """The local database, as the key-less CLI sees it (the default tenant; reads all)."""

    embedded = True

    def __init__(self, config_path: Path | None) -> None:
        from llmbatch.cli.runtime import ensure_schema, runtime

        self.config_path = config_path
        self.rt = runtime(config_path, publish=True)
        ensure_schema(self.rt)

    @property
    def starts_worker(self) -> bool:
        """Whether waiting starts a worker (the SQLite broker: nobody else runs one)."""
        return self.rt.config.broker.url.startswith("sqla+sqlite")

    def create(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
               name: str | None, metadata: dict[str, Any] | None,
               idempotency_key: str | None,
               retention: dict[str, Any] | None = None,
               betas: list[str] | None = None,
               options: SubmitOptions = NO_OPTIONS) -> tuple[JobOut, bool]:
        from llmbatch.service_layer import read_models
        from llmbatch.service_layer.jobs import create_job

        warnings: list[str] = []
        job_id, created = create_job(self.rt, path, provider=provider, model=model,
                                     endpoint=endpoint, name=name, metadata=metadata,
                                     idempotency_key=idempotency_key, retention=retention,
                                     job_options=job_options_of(betas),
                                     strict_model=options.strict_model,
                                     max_cost=options.max_cost,
                                     webhook_url=options.webhook_url, warn=warnings.append)
        job = JobOut.from_summary(read_models.job_summary(self.rt, job_id))
        return CreatedJobOut(**job.model_dump(), warnings=warnings), created

    def validate(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
                 strict_model: bool, betas: list[str] | None = None) -> ValidationOut:
        return ValidationOut.of_file(self.rt, path, provider=provider, model=model,
                                     endpoint=endpoint, strict_model=strict_model,
                                     job_options=job_options_of(betas))

    def estimate(self, path: Path, *, provider: str, model: str,
                 endpoint: Endpoint) -> EstimateOut:
        from llmbatch.service_layer.estimates import estimate_file

        est = estimate_file(self.rt, path, provider=provider, model=model, endpoint=endpoint)
        return EstimateOut.from_estimate(est, endpoint)

    def usage(self, *, by: Sequence[str], start: date | None, end: date | None,
              tenant: str | None) -> UsageReportOut:
        from llmbatch.service_layer.read_models.usage import usage_report

        rows = usage_report(self.rt, by, tenant=tenant, start=day_start(start),
                            end=day_start(end + timedelta(days=1))
                            if end and end < date.max else None)
        return UsageReportOut.build(list(by), rows, start=start, end=end, tenant=tenant)

    def detail(self, job_id: str) -> JobDetailOut:
        from llmbatch.service_layer import read_models

        return JobDetailOut.from_detail(read_models.job_detail(self.rt, job_id))

    def list(self, *, limit: int, cursor: str | None,
             status: JobStatus | None) -> PageOut[JobOut]:
        from llmbatch.service_layer import read_models

        page = read_models.list_jobs(self.rt, limit=limit, cursor=cursor, status=status)
        return PageOut[JobOut](data=[JobOut.from_summary(j) for j in page.entries],
                               next_cursor=page.next_cursor)

    def results(self, job_id: str) -> Iterator[Result]:
        from llmbatch.service_layer import read_models

        return (Result.from_record(r) for r in read_models.job_results(self.rt, job_id))

    def events(self, job_id: str) -> Iterator[EventOut]:
        from llmbatch.service_layer import read_models

        return (EventOut.from_record(e) for e in read_models.iter_job_events(self.rt, job_id))

    def cancel(self, job_id: str) -> JobStatus:
        from llmbatch.service_layer.jobs import cancel_job

        return cancel_job(self.rt, job_id)

    def retry(self, job_id: str) -> tuple[JobOut, int]:
        from llmbatch.service_layer import read_models
        from llmbatch.service_layer.jobs import retry_job

        child_id, count = retry_job(self.rt, job_id)
        return JobOut.from_summary(read_models.job_summary(self.rt, child_id)), count

    def close(self) -> None:
        """The runtime's provider clients, broker connections and database pool."""
        self.rt.close()


def raise_for_problem(response: httpx.Response) -> None:
    """The llmbatch error a problem answer stands for (422 an ``InputError`` with its file,
    line and field; 404, 409, 503 their own), or ``ApiError``."""
    if response.is_success:
        return
    with contextlib.suppress(httpx.ResponseNotRead):
        response.read()
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    detail = str(problem.get("detail") or response.reason_phrase)
    status = response.status_code
    if status == 422:
        errors = problem.get("errors") or [{}]
        listed = [InputError(e.get("message", detail), file=e.get("file"), line=e.get("line"),
                             field=e.get("field")) for e in errors]
        total = problem.get("problem_count")
        if len(listed) > 1 or (isinstance(total, int) and total > 1):
            # Every problem of a file, as the local command raises them.
            raise InputProblems(listed, total=total if isinstance(total, int) else None,
                                file=listed[0].file)
        raise listed[0]
    if status == 404:
        raise NotFoundError(detail)
    if status == 409:
        raise ConflictError(detail)
    if status == 503:
        raise InfrastructureError(detail)
    raise ApiError(status, detail)


class RemoteBackend:
    """A remote ``llmbatch api`` (``url`` up to the host; ``/v1`` is added)."""

    embedded = False
    starts_worker = False

    def __init__(self, url: str, api_key: str | None, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/") + "/v1", headers=headers,
                                 timeout=timeout, transport=transport)

    @contextlib.contextmanager
    def _reaching(self) -> Iterator[None]:
        """A transport failure (refused, timed out) as llmbatch's own: the API is
        unreachable, nothing about the input is wrong."""
        try:
            yield
        except httpx.TransportError as exc:
            raise InfrastructureError(
                f"cannot reach the llmbatch API at {self.http.base_url}: {exc}") from exc

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._reaching():
            response = self.http.request(method, path, **kwargs)
        raise_for_problem(response)
        return response.json()

    def _upload(self, route: str, path: Path, fields: dict[str, str],
                headers: dict[str, str] | None = None) -> httpx.Response:
        """``path`` as the multipart ``file`` part (httpx streams it in chunks), named as
        the user named it, so the API's problems name it the same way."""
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read input: {exc.strerror}", file=str(path)) from exc
        with handle, self._reaching():
            response = self.http.post(route, data=fields, headers=headers or {}, files={
                "file": (str(path), handle, "application/x-ndjson")})
        raise_for_problem(response)
        return response

    def create(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
               name: str | None, metadata: dict[str, Any] | None,
               idempotency_key: str | None,
               retention: dict[str, Any] | None = None,
               betas: list[str] | None = None,
               options: SubmitOptions = NO_OPTIONS) -> tuple[JobOut, bool]:
        fields = {"provider": provider, "model": model, "endpoint": str(endpoint)}
        if name is not None:
            fields["name"] = name
        if betas:
            fields["betas"] = ",".join(betas)
        if metadata is not None:
            fields["metadata"] = json.dumps(metadata)
        if options.strict_model:
            fields["strict_model"] = "true"
        if options.max_cost is not None:
            fields["max_cost"] = format(options.max_cost, "f")  # never 1E-8
        if options.webhook_url is not None:
            fields["webhook_url"] = options.webhook_url
        if retention:
            fields["retention"] = json.dumps(retention)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self._upload("/jobs", path, fields, headers)
        return CreatedJobOut.model_validate(response.json()), response.status_code == 201

    def validate(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
                 strict_model: bool, betas: list[str] | None = None) -> ValidationOut:
        fields = {"provider": provider, "model": model, "endpoint": str(endpoint),
                  "strict_model": "true" if strict_model else "false"}
        if betas:
            fields["betas"] = ",".join(betas)
        return ValidationOut.model_validate(self._upload("/validations", path, fields).json())

    def estimate(self, path: Path, *, provider: str, model: str,
                 endpoint: Endpoint) -> EstimateOut:
        fields = {"provider": provider, "model": model, "endpoint": str(endpoint)}
        return EstimateOut.model_validate(self._upload("/estimates", path, fields).json())

    def usage(self, *, by: Sequence[str], start: date | None, end: date | None,
              tenant: str | None) -> UsageReportOut:
        params: dict[str, str] = {"by": ",".join(by)}
        if start is not None:
            params["from"] = start.isoformat()
        if end is not None:
            params["to"] = end.isoformat()
        if tenant is not None:
            params["tenant"] = tenant
        return UsageReportOut.model_validate(self._json("GET", "/usage", params=params))

    def detail(self, job_id: str) -> JobDetailOut:
        return JobDetailOut.model_validate(self._json("GET", f"/jobs/{job_id}"))

    def progress(self, job_id: str) -> ProgressOut:
        """The job with its provider-side counts, ETA and why it waits (the progress bar's)."""
        return ProgressOut.model_validate(self._json("GET", f"/jobs/{job_id}/progress"))

    def list(self, *, limit: int, cursor: str | None, status: JobStatus | None,
             parent_job_id: str | None = None) -> PageOut[JobOut]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if status:
            params["status"] = str(status)
        if parent_job_id:
            params["parent_job_id"] = parent_job_id
        return PageOut[JobOut].model_validate(self._json("GET", "/jobs", params=params))

    def results(self, job_id: str, *, lineage: bool = False) -> Iterator[Result]:
        """``lineage``: merged over the job and its retries, each line naming its job."""
        params = {"lineage": "true"} if lineage else {}
        with self._reaching(), self.http.stream("GET", f"/jobs/{job_id}/results", params=params,
                                                headers={"Accept-Encoding": "gzip"}) as response:
            raise_for_problem(response)
            for line in response.iter_lines():
                if line:
                    yield Result.model_validate_json(line)

    def events(self, job_id: str) -> Iterator[EventOut]:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = PageOut[EventOut].model_validate(
                self._json("GET", f"/jobs/{job_id}/events", params=params))
            yield from page.data
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: str) -> JobStatus:
        return CancelOut.model_validate(self._json("POST", f"/jobs/{job_id}/cancel")).status

    def retry(self, job_id: str) -> tuple[JobOut, int]:
        out = self.retry_lineage(job_id)
        return out.job, out.items

    def retry_lineage(self, job_id: str, *, name: str | None = None,
                      include_cancelled: bool = False) -> RetryOut:
        """The retry with what it left out (lines a later retry already carried)."""
        params: dict[str, Any] = {"include_cancelled": "true"} if include_cancelled else {}
        if name is not None:
            params["name"] = name
        return RetryOut.model_validate(self._json("POST", f"/jobs/{job_id}/retry",
                                                  params=params))

    def close(self) -> None:
        self.http.close()
