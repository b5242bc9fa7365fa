"""The provider harness of the contract scenarios: an adapter wired to an emulated provider
API, and the server-side knobs a scenario needs to steer that provider (faults matched by tag,
API call counts, the clock).

The server is anything with the emulator's control API (``EmulatorHandle``): an in-process
``llmbatch.emulator.EmulatorServer``, or ``llmbatch.testing.control.EmulatorControl`` for a
server running elsewhere (a provider package's own server, as long as it serves
``/_emulator``). ``llmbatch.testing.contract.builtin`` builds harnesses for the built-in
providers; a provider package outside llmbatch builds its own ``ProviderHarness`` (see
``tests/plugin_provider``). Nothing here sleeps for a batch: the harness moves the server's
clock forward instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import httpx2

from llmbatch.domain.models import (
    BatchProgress,
    Endpoint,
    ItemResult,
    RequestLine,
    SubmittedBatch,
)
from llmbatch.providers.base import BatchProvider
from llmbatch.testing.control import EmulatorHandle

__all__ = ["TEST_API_KEY", "CountingTransport", "EmulatorHandle", "ProviderHarness",
           "TagHeader", "gemini_vector", "openai_vector", "running_harness"]

TEST_API_KEY = "sk-emulator-test"  # the session emulator accepts any non-empty key


def openai_vector(response: dict[str, Any]) -> Any:
    """The vector of an OpenAI embeddings response."""
    return response["data"][0]["embedding"]


def gemini_vector(response: dict[str, Any]) -> Any:
    """The vector of a Gemini ``SingleEmbedContentResponse``."""
    return response["embedding"]["values"]


@dataclass
class ProviderHarness:
    """One adapter wired to the emulator, and what the scenarios need to steer that provider.

    ``name`` is the provider's (its errors carry it); ``emulated_as`` the emulator surface it
    talks to, when that is another name (a provider package written against one of the
    emulated APIs). ``tag_match`` turns an llmbatch tag into the emulator's fault ``match`` for
    batches carrying it; ``operations`` names the provider's API calls as the emulator counts
    them; ``item_error_shapes`` lists the per-item error shapes the provider has;
    ``unknown_batch_id`` is an id of the provider's form that it never issued;
    ``forget_results`` makes the provider lose what an ended batch's results are read from
    (delete the files or the batch), the way retention or an operator would.
    """

    name: str
    emulator: EmulatorHandle
    model: str
    build_adapter: Callable[..., tuple[BatchProvider, Callable[[], None]]]
    tag_match: Callable[[str], dict[str, str]]
    operations: dict[str, str]
    unknown_batch_id: str
    forget_results: Callable[[BatchProvider, str, BatchProgress], None]
    emulated_as: str = ""
    item_error_shapes: tuple[str, ...] = ("response",)
    item_error_codes: tuple[str, ...] = ("server_error", "rate_limit_exceeded")
    expired_status: str = "expired"
    batch_failure: bool = True  # the provider can fail a whole batch at validation
    invalid_field: str = "max_tokens"  # named in the error of a request with max_tokens 0
    # Ties a submit to its tag on the emulator side, for providers without batch metadata.
    tag_context: Callable[[str], AbstractContextManager[None]] | None = None
    # Embeddings: the model to ask for, and where the vector sits in the provider's response.
    embeddings_model: str = "text-embedding-3-small"
    vector_of: Callable[[dict[str, Any]], Any] = openai_vector
    adapter: BatchProvider = field(init=False)
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.emulated_as = self.emulated_as or self.name
        self.adapter = self.make_adapter()

    def make_adapter(self, **options: Any) -> BatchProvider:
        """Another adapter on the same emulator: config overrides, or ``transport=`` to swap
        the SDK's HTTP transport. Closed with the harness."""
        adapter, close = self.build_adapter(**options)
        self._closers.append(close)
        return adapter

    def close(self) -> None:
        for close in reversed(self._closers):
            close()

    @staticmethod
    def new_tag() -> str:
        return f"ct-{uuid.uuid4().hex[:16]}"

    def requests(self, n: int, *, prefix: str = "q", **body: Any) -> list[RequestLine]:
        return [RequestLine(i, f"{prefix}-{i}", {
            "messages": [{"role": "user", "content": f"Question {i}: why is the sky blue?"}],
            "max_tokens": 40, **body}) for i in range(n)]

    def submit(self, requests: list[RequestLine], *, tag: str,
               endpoint: Endpoint = Endpoint.CHAT, model: str | None = None,
               adapter: BatchProvider | None = None) -> SubmittedBatch:
        """Encode and submit, streaming the lines as the service layer does."""
        adapter, model = adapter or self.adapter, model or self.model
        lines = (adapter.encode(r, endpoint=endpoint, model=model).data for r in requests)
        with self.tag_context(tag) if self.tag_context else nullcontext():
            return adapter.submit(lines, tag=tag, endpoint=endpoint, model=model)

    def fault(self, kind: str, *, tag: str | None = None, operation: str | None = None,
              **fields: Any) -> None:
        """Add one fault rule for this provider (``operation`` is a key of ``operations``)."""
        rule: dict[str, Any] = {"kind": kind, "provider": self.emulated_as, **fields}
        if tag is not None:
            rule["match"] = self.tag_match(tag)
        if operation is not None:
            rule["operation"] = self.operations[operation]
        self.emulator.set_faults([rule], mode="append")

    def calls(self, operation: str) -> int:
        counts: dict[str, int] = self.emulator.stats()["calls"].get(self.emulated_as, {})
        return counts.get(self.operations[operation], 0)

    def timing(self) -> dict[str, float]:
        """The server's batch timing (``validate_s``, ``run_base_s``, ``run_per_item_s``,
        ``finalize_s``, ``cancel_s``), as its control API reports it."""
        timing: dict[str, float] = self.emulator.settings()["timing"]
        return timing

    def run_seconds(self, n: int) -> float:
        """How long the running phase of a batch of ``n`` requests lasts."""
        t = self.timing()
        return t["run_base_s"] + t["run_per_item_s"] * n

    def batch_seconds(self, n: int) -> float:
        """How long a batch of ``n`` requests takes on the emulator's clock, end to end."""
        t = self.timing()
        return t["validate_s"] + self.run_seconds(n) + t["finalize_s"] + t["cancel_s"]

    def advance(self, seconds: float) -> None:
        self.emulator.advance_clock(seconds)

    def run_to_end(self, batch_id: str, n: int) -> BatchProgress:
        """Poll, moving the emulator's clock on, until the provider says the batch ended."""
        for _ in range(5):
            progress = self.adapter.poll(batch_id)
            if progress.ended:
                return progress
            self.advance(self.batch_seconds(n) + 1)
        raise AssertionError(f"{batch_id} did not end: {progress}")

    def results(self, batch_id: str, progress: BatchProgress) -> dict[str, ItemResult]:
        results: dict[str, ItemResult] = {}
        for result in self.adapter.iter_results(batch_id, progress):
            assert result.provider_key not in results, f"{result.provider_key} twice"
            results[result.provider_key] = result
        return results


class TagHeader:
    """Sends the harness's current tag to the Anthropic emulator as ``x-emulator-tags`` (its
    batches have no metadata to carry a tag; real Anthropic never sees this header): install
    ``hook`` as an httpx2 request hook, pass ``bind`` as the harness's ``tag_context``."""

    def __init__(self) -> None:
        self.current: str | None = None

    def hook(self, request: Any) -> None:
        if self.current is not None and request.method == "POST":
            request.headers["x-emulator-tags"] = f"llmbatch_tag={self.current}"

    def bind(self, tag: str) -> AbstractContextManager[None]:
        @contextmanager
        def bound() -> Iterator[None]:
            self.current = tag
            try:
                yield
            finally:
                self.current = None

        return bound()


def running_harness(build: Callable[[Any], ProviderHarness],
                    emulator: EmulatorHandle) -> Iterator[ProviderHarness]:
    """A harness against the session emulator with no fault rules active (the profile's
    rules are restored afterwards, whatever the test left behind)."""
    emulator.clear_faults()
    built = build(emulator)
    try:
        yield built
    finally:
        built.close()
        emulator.reset(faults=True, stats=False)



class CountingStream(httpx2.SyncByteStream):
    """A response body that reports how many bytes have come off the wire so far."""

    def __init__(self, inner: Any, owner: CountingTransport) -> None:
        self.inner, self.owner = inner, owner

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.owner.received += len(chunk)
            yield chunk

    def close(self) -> None:
        self.inner.close()


class CountingTransport(httpx2.BaseTransport):
    """The real transport, counting response body bytes as they are read."""

    def __init__(self) -> None:
        self.inner = httpx2.HTTPTransport()
        self.received = 0

    def handle_request(self, request: Any) -> Any:
        response = self.inner.handle_request(request)
        return httpx2.Response(response.status_code, headers=response.headers,
                               stream=CountingStream(response.stream, self),
                               extensions=response.extensions)

    def close(self) -> None:
        self.inner.close()
