"""``llmbatch.Client``: submit, follow and read jobs from Python.

``Client()`` works on the local database, like the CLI (and, on the embedded SQLite broker,
starts a worker for as long as it waits, like ``submit --wait``); ``Client(url=...,
api_key=...)`` talks to a remote ``llmbatch api``. Both hand back the API's own models.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from types import TracebackType
from typing import Any

from llmbatch.api.models import EventOut, JobDetailOut, JobOut, Result
from llmbatch.client.backends import Backend, EmbeddedBackend, RemoteBackend
from llmbatch.client.requests import RequestsInput, as_jsonl
from llmbatch.domain.models import Endpoint
from llmbatch.domain.states import JobStatus

__all__ = ["Client", "Job"]


class Job:
    """A handle on one job: ``wait``, ``results``, ``cancel``, ``retry``."""

    def __init__(self, client: Client, job: JobOut, *, created: bool = True) -> None:
        self._client = client
        self.id = job.id
        self.created = created
        self.last: JobOut = job

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.last.status}>"

    def refresh(self) -> JobDetailOut:
        """The job's status now: counts, usage, cost, provider batches."""
        detail = self._client.backend.detail(self.id)
        self.last = detail
        return detail

    @property
    def status(self) -> JobStatus:
        return self.refresh().status

    def wait(self, *, progress: bool = False, timeout: float | None = None,
             interval: float = 0.5) -> JobDetailOut:
        """Block until the job has ended (or ``timeout`` seconds pass); with ``progress`` a
        bar (rich: in a terminal and in a notebook)."""
        backend = self._client.backend
        worker: Any = nullcontext()
        if isinstance(backend, EmbeddedBackend) and backend.starts_worker:
            from llmbatch.cli.embedded import EmbeddedWorker

            worker = EmbeddedWorker(backend.config_path)
        deadline = None if timeout is None else time.monotonic() + timeout
        with worker, _ProgressBar(progress, self) as update:
            while True:
                job = self.refresh()
                update(job)
                if job.ended or (deadline is not None and time.monotonic() > deadline):
                    return job
                time.sleep(interval)

    def results(self) -> Iterator[Result]:
        """One record per input line, in input order, streamed."""
        return self._client.backend.results(self.id)

    def events(self) -> Iterator[EventOut]:
        """The job's timeline so far."""
        return self._client.backend.events(self.id)

    def cancel(self) -> JobStatus:
        return self._client.backend.cancel(self.id)

    def retry(self) -> Job:
        """A child job of the failed and expired items."""
        child, _ = self._client.backend.retry(self.id)
        return Job(self._client, child)


class _ProgressBar:
    """A progress bar context yielding ``update(job)``; nothing when ``enabled`` is False."""

    def __init__(self, enabled: bool, job: Job) -> None:
        self._enabled = enabled
        self._job = job
        self._progress: Any = None

    def __enter__(self) -> Any:
        if not self._enabled:
            return lambda job: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TextColumn("{task.fields[detail]}"))
        self._progress.__enter__()
        task = self._progress.add_task(self._job.id, total=self._job.last.item_count,
                                       detail="")

        def update(job: JobOut) -> None:
            counts = " ".join(f"{s}={n}" for s, n in sorted(job.counts.items()) if n)
            self._progress.update(task, completed=job.finished_items,
                                  detail=f"{job.status} {counts}")

        return update

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)


class Client:
    """``Client()`` embedded, or ``Client(url=..., api_key=...)`` remote."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *,
                 config: str | Path | None = None, timeout: float = 60.0,
                 backend: Backend | None = None) -> None:
        if backend is not None:
            self.backend = backend
        elif url is not None:
            self.backend = RemoteBackend(url, api_key, timeout=timeout)
        else:
            self.backend = EmbeddedBackend(Path(config) if config is not None else None)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    def submit(self, requests: RequestsInput, *, provider: str, model: str,
               endpoint: Endpoint | str = Endpoint.CHAT, name: str | None = None,
               metadata: Mapping[str, Any] | None = None,
               idempotency_key: str | None = None,
               retention: Mapping[str, Any] | None = None,
               betas: Sequence[str] | None = None) -> Job:
        """Store a job from a JSONL path or any iterable of request dicts or strings.
        ``retention`` overrides the provider's retention settings for this job
        (``delete_when_stored``, ``input_expires_after_s``, ``output_expires_after_s``;
        docs/privacy.md); ``betas``: the provider's betas for this job (Anthropic's
        ``anthropic-beta``)."""
        path, temporary = as_jsonl(requests)
        try:
            job, created = self.backend.create(
                path, provider=provider, model=model, endpoint=Endpoint(endpoint), name=name,
                metadata=dict(metadata) if metadata is not None else None,
                idempotency_key=idempotency_key,
                retention=dict(retention) if retention else None,
                betas=list(betas) if betas else None)
        finally:
            if temporary:
                path.unlink(missing_ok=True)
        return Job(self, job, created=created)

    def job(self, job_id: str) -> Job:
        """A handle on an existing job."""
        return Job(self, self.backend.detail(job_id))

    def jobs(self, *, limit: int = 50, status: JobStatus | None = None) -> list[JobOut]:
        """The newest jobs."""
        return list(self.backend.list(limit=limit, cursor=None, status=status).data)

    def run(self, prompts: Iterable[Mapping[str, Any] | str], *, provider: str, model: str,
            progress: bool = False, timeout: float | None = None,
            **submit: Any) -> list[Result]:
        """Submit, wait and return every result in input order, in one call."""
        job = self.submit(prompts, provider=provider, model=model, **submit)
        job.wait(progress=progress, timeout=timeout)
        return list(job.results())
