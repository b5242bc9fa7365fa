"""``MiniBatchProvider``: the calls, over plain httpx2, and the one translation of what goes
wrong into ``llmbatch.errors``.

What it takes from llmbatch is what any provider package would: the ``BatchProvider`` base
(options model, latency prior, missing-key error), the shared helpers (``LazyClient``, the
result-stream reader, ``parse_retry_after``) and the neutral values. It decides on its own
what its answers mean: a 404 is ``ResourceGoneError``, a 429 ``RateLimitedError``.

Adoption is per process: ``find_by_tag`` knows the batches this adapter created (enough for
the contract; a real package would ask the API or keep a durable journal).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import httpx2
from pydantic import Field

from llmbatch.config import LatencyPrior, ProviderConfig
from llmbatch.domain.models import BatchProgress, Endpoint, ItemResult, RequestLine, SubmittedBatch
from llmbatch.errors import (
    AuthenticationError,
    ConfigError,
    InputError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    ResourceGoneError,
    TransientProviderError,
)
from llmbatch.providers.base import BatchProvider, EncodedLine, ProviderOptions
from llmbatch.providers.jsonl import parse_result_stream
from llmbatch.providers.retry_after import parse_retry_after
from llmbatch.providers.sdk_client import LazyClient
from plugin_provider.minibatch.wire import encode_line, parse_result_line, progress_from_batch

__all__ = ["MiniBatchOptions", "MiniBatchProvider"]

BATCHES = "/v1/messages/batches"


class MiniBatchOptions(ProviderOptions):
    """``providers.minibatch.options``."""

    api_version: str = Field("2023-06-01", description="Sent as anthropic-version")
    default_max_tokens: int = Field(256, gt=0, description="For requests without max_tokens")


class MiniBatchProvider(BatchProvider):
    """A small provider: chat only, adoption within the process."""

    name: ClassVar[str] = "minibatch"
    label: ClassVar[str] = "MiniBatch"
    max_requests: ClassVar[int] = 100_000
    max_bytes: ClassVar[int] = 256 * 1000 * 1000
    options_model: ClassVar[type[ProviderOptions]] = MiniBatchOptions
    options: MiniBatchOptions
    latency_prior: ClassVar[LatencyPrior] = LatencyPrior(median_s=900, sigma=1.0,
                                                         counts_live=False)

    def __init__(self, config: ProviderConfig, *, transport: httpx2.BaseTransport | None = None,
                 on_request: Callable[[httpx2.Request], None] | None = None) -> None:
        """``transport`` and ``on_request`` are the test seams: the HTTP transport, and a hook
        that sees every request before it is sent."""
        super().__init__(config)
        self._transport = transport
        self._hooks = [on_request] if on_request else []
        self._http = LazyClient(self._build_client, httpx2.Client.close)
        self._created: dict[str, str] = {}  # tag -> batch id

    def _build_client(self) -> httpx2.Client:
        if not self.config.base_url:
            raise ConfigError(f"providers.{self.name}.base_url: required (no public endpoint)")
        return httpx2.Client(
            base_url=self.config.base_url, transport=self._transport,
            timeout=httpx2.Timeout(self.config.timeout_s, connect=self.config.connect_timeout_s),
            headers={"x-api-key": self.require_api_key(),
                     "anthropic-version": self.options.api_version},
            event_hooks={"request": self._hooks})

    def close(self) -> None:
        self._http.close()

    def encode(self, request: RequestLine, *, endpoint: Endpoint, model: str) -> EncodedLine:
        if endpoint not in self.endpoints:
            raise InputError(f"minibatch does not support the {endpoint!r} endpoint",
                             field="endpoint")
        return encode_line(request, model=model,
                           default_max_tokens=self.options.default_max_tokens)

    def submit(self, lines: Iterable[bytes], *, tag: str, endpoint: Endpoint,
               model: str) -> SubmittedBatch:
        """One create call carrying every request (built in memory: a small provider)."""
        limits = self.effective_limits(model)
        body, count = bytearray(b'{"requests":['), 0
        for line in lines:
            count += 1
            body += (b"," if count > 1 else b"") + line
        body += b"]}"
        if not 0 < count <= limits.max_requests or len(body) > limits.max_bytes:
            raise ValueError(f"{count} requests / {len(body)} bytes do not fit one batch")
        batch = self._json("POST", BATCHES, "batches.create", content=bytes(body),
                           headers={"content-type": "application/json"})
        self._created[tag] = str(batch["id"])
        return _submitted(batch)

    def find_by_tag(self, tag: str) -> SubmittedBatch | None:
        batch_id = self._created.get(tag)
        if batch_id is None:
            return None
        return _submitted(self._json("GET", f"{BATCHES}/{batch_id}", "batches.retrieve"))

    def poll(self, provider_batch_id: str) -> BatchProgress:
        return progress_from_batch(self._json("GET", f"{BATCHES}/{provider_batch_id}",
                                              "batches.retrieve"))

    def iter_results(self, provider_batch_id: str, progress: BatchProgress) -> Iterator[ItemResult]:
        operation = "batches.results"
        with self._translated(operation), self._http.get().stream(
                "GET", f"{BATCHES}/{provider_batch_id}/results") as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response, operation, self.name)
            yield from parse_result_stream(response.iter_bytes(), parse_result_line,
                                           provider=self.name,
                                           provider_batch_id=provider_batch_id)

    def cancel(self, provider_batch_id: str) -> BatchProgress:
        try:
            batch = self._json("POST", f"{BATCHES}/{provider_batch_id}/cancel",
                               "batches.cancel")
        except ProviderError as exc:
            return self.progress_if_ended(provider_batch_id, exc)
        return progress_from_batch(batch)

    def _json(self, method: str, path: str, operation: str, **request: Any) -> dict[str, Any]:
        with self._translated(operation):
            response = self._http.get().request(method, path, **request)
        if response.status_code >= 400:
            raise _error(response, operation, self.name)
        body: dict[str, Any] = response.json()
        return body

    @contextmanager
    def _translated(self, operation: str) -> Iterator[None]:
        """Transport failures as transient errors (``from`` the cause)."""
        try:
            yield
        except httpx2.TimeoutException as exc:
            raise TransientProviderError(f"{operation}: request timed out", provider=self.name,
                                         code="timeout") from exc
        except httpx2.HTTPError as exc:
            raise TransientProviderError(f"{operation}: {exc!r}", provider=self.name,
                                         code="connection_error") from exc


def _error(response: httpx2.Response, operation: str, provider: str) -> ProviderError:
    """An error answer in the tree: 404 gone, 429 rate limited, 401/403 credentials, 408/409
    and 5xx transient, any other status permanent."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    status, code = response.status_code, error.get("type")
    message = f"{operation}: {error.get('message') or response.reason_phrase}"
    if status == 429:
        return RateLimitedError(message, provider=provider, status_code=status, code=code,
                                retry_after=parse_retry_after(response.headers))
    cls: type[ProviderError] = (
        ResourceGoneError if status == 404 else AuthenticationError if status in (401, 403)
        else TransientProviderError if status in (408, 409) or status >= 500
        else PermanentProviderError)
    return cls(message, provider=provider, status_code=status, code=code)


def _submitted(batch: dict[str, Any]) -> SubmittedBatch:
    return SubmittedBatch(provider_batch_id=str(batch["id"]),
                          provider_status=str(batch.get("processing_status")), raw=batch)
