"""Where a ``Client``'s operations go: the local database through the same services and read
models as the CLI (embedded), or a remote ``llmbatch api`` over HTTP. Both answer with the
API's own models (``llmbatch.api.models``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx

from llmbatch.api.models import (
    CancelOut,
    EventOut,
    JobDetailOut,
    JobOut,
    PageOut,
    ProgressOut,
    Result,
    RetryOut,
)
from llmbatch.domain.models import Endpoint
from llmbatch.domain.states import JobStatus
from llmbatch.errors import (
    ConflictError,
    InfrastructureError,
    InputError,
    LLMBatchError,
    NotFoundError,
)

__all__ = ["ApiError", "Backend", "EmbeddedBackend", "RemoteBackend"]


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
               betas: list[str] | None = None) -> tuple[JobOut, bool]: ...
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
               betas: list[str] | None = None) -> tuple[JobOut, bool]:
        from llmbatch.service_layer import read_models
        from llmbatch.service_layer.jobs import create_job

        job_id, created = create_job(self.rt, path, provider=provider, model=model,
                                     endpoint=endpoint, name=name, metadata=metadata,
                                     idempotency_key=idempotency_key, retention=retention,
                                     job_options={"betas": betas} if betas else None)
        return JobOut.from_summary(read_models.job_summary(self.rt, job_id)), created

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
        self.rt.engine.dispose()


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
        first = errors[0]
        raise InputError(first.get("message", detail), file=first.get("file"),
                         line=first.get("line"), field=first.get("field"))
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

    def create(self, path: Path, *, provider: str, model: str, endpoint: Endpoint,
               name: str | None, metadata: dict[str, Any] | None,
               idempotency_key: str | None,
               retention: dict[str, Any] | None = None,
               betas: list[str] | None = None) -> tuple[JobOut, bool]:
        fields = {"provider": provider, "model": model, "endpoint": str(endpoint)}
        if name is not None:
            fields["name"] = name
        if betas:
            fields["betas"] = ",".join(betas)
        if metadata is not None:
            fields["metadata"] = json.dumps(metadata)
        if retention:
            fields["retention"] = json.dumps(retention)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read input: {exc.strerror}", file=str(path)) from exc
        with handle, self._reaching():  # httpx streams the file part in chunks
            response = self.http.post("/jobs", data=fields, headers=headers, files={
                "file": (str(path), handle, "application/x-ndjson")})
        raise_for_problem(response)
        return JobOut.model_validate(response.json()), response.status_code == 201

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
