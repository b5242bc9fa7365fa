"""``llmbatch.AsyncClient``: the ``Client``'s methods as coroutines.

Each call runs the blocking ``Client`` in a worker thread (``asyncio.to_thread``), so an event
loop (a notebook's, a web service's) is never blocked, while both modes keep one
implementation; results come through an async iterator fed a chunk at a time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from llmbatch.api.cost_models import EstimateOut, UsageReportOut
from llmbatch.api.models import EventOut, JobDetailOut, JobOut, Result
from llmbatch.api.validation_models import ValidationOut
from llmbatch.client.client import Client, Job
from llmbatch.client.requests import RequestsInput
from llmbatch.domain.states import JobStatus

__all__ = ["AsyncClient", "AsyncJob"]

_CHUNK = 1000


async def _iterate(make: Any) -> AsyncIterator[Any]:
    """``make()``'s items, taken in chunks in a worker thread. The inner iterator is closed
    when this one ends, is closed (``aclose``, ``break`` out of ``async for`` in an
    ``aclosing``) or is finalized abandoned: a remote one holds a streamed HTTP response, an
    embedded one a database cursor, which would otherwise stay open until the garbage
    collector closes them (with a ``ResourceWarning``, in whatever code runs then)."""
    iterator: Iterator[Any] = await asyncio.to_thread(make)
    # A chunk still being taken in its thread (the caller was cancelled while waiting)
    # must end before the iterator is closed: a generator cannot be closed while it runs.
    busy = threading.Lock()

    def take() -> list[Any]:
        out = []
        with busy:
            for item in iterator:
                out.append(item)
                if len(out) >= _CHUNK:
                    break
        return out

    def close() -> None:
        with busy:
            closer = getattr(iterator, "close", None)
            if callable(closer):
                closer()

    try:
        while True:
            chunk = await asyncio.to_thread(take)
            for item in chunk:
                yield item
            if len(chunk) < _CHUNK:
                return
    finally:
        await asyncio.to_thread(close)


class AsyncJob:
    """``Job`` with coroutine methods; ``results()`` and ``events()`` are async iterators."""

    def __init__(self, job: Job) -> None:
        self._job = job
        self.id = job.id
        self.created = job.created

    @property
    def last(self) -> JobOut:
        return self._job.last

    async def refresh(self) -> JobDetailOut:
        return await asyncio.to_thread(self._job.refresh)

    async def wait(self, *, progress: bool = False, timeout: float | None = None,
                   interval: float = 0.5) -> JobDetailOut:
        return await asyncio.to_thread(self._job.wait, progress=progress, timeout=timeout,
                                       interval=interval)

    def results(self) -> AsyncIterator[Result]:
        return _iterate(self._job.results)

    def events(self) -> AsyncIterator[EventOut]:
        return _iterate(self._job.events)

    async def cancel(self) -> JobStatus:
        return await asyncio.to_thread(self._job.cancel)

    async def retry(self) -> AsyncJob:
        return AsyncJob(await asyncio.to_thread(self._job.retry))


class AsyncClient:
    """``AsyncClient()`` embedded or ``AsyncClient(url=..., api_key=...)`` remote."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *,
                 config: str | Path | None = None, timeout: float = 60.0) -> None:
        self._client = Client(url, api_key, config=config, timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def submit(self, requests: RequestsInput, *, provider: str, model: str,
                     **options: Any) -> AsyncJob:
        job = await asyncio.to_thread(self._client.submit, requests, provider=provider,
                                      model=model, **options)
        return AsyncJob(job)

    async def validate(self, requests: RequestsInput, *, provider: str, model: str,
                       **options: Any) -> ValidationOut:
        return await asyncio.to_thread(self._client.validate, requests, provider=provider,
                                       model=model, **options)

    async def estimate(self, requests: RequestsInput, *, provider: str, model: str,
                       **options: Any) -> EstimateOut:
        return await asyncio.to_thread(self._client.estimate, requests, provider=provider,
                                       model=model, **options)

    async def usage(self, *, by: Sequence[str] = ("provider", "model"),
                    start: date | None = None, end: date | None = None,
                    tenant: str | None = None) -> UsageReportOut:
        return await asyncio.to_thread(self._client.usage, by=by, start=start, end=end,
                                       tenant=tenant)

    async def job(self, job_id: str) -> AsyncJob:
        return AsyncJob(await asyncio.to_thread(self._client.job, job_id))

    async def jobs(self, *, limit: int = 50, status: JobStatus | None = None) -> list[JobOut]:
        return await asyncio.to_thread(self._client.jobs, limit=limit, status=status)

    async def run(self, prompts: Iterable[Mapping[str, Any] | str], *, provider: str,
                  model: str, progress: bool = False, timeout: float | None = None,
                  **submit: Any) -> list[Result]:
        return await asyncio.to_thread(self._client.run, prompts, provider=provider,
                                       model=model, progress=progress, timeout=timeout,
                                       **submit)
