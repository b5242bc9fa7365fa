"""The provider harness of the contract scenarios: an adapter wired to the emulator, and the
emulator-side knobs a scenario needs to steer that provider (faults matched by tag, API call
counts, the clock).

``BUILDERS`` holds one builder per built-in provider; a provider package outside llmbatch joins
the scenarios by building its own ``ProviderHarness`` (see ``tests/plugin_provider``). Nothing
here sleeps for a batch: the harness moves the emulator's clock forward instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
import pytest
from pydantic import SecretStr

from llmbatch.config import ProviderConfig
from llmbatch.domain.models import (
    BatchProgress,
    Endpoint,
    ItemResult,
    RequestLine,
    SubmittedBatch,
)
from llmbatch.emulator.server import EmulatorServer
from llmbatch.providers.base import BatchProvider

__all__ = ["BATCH_FAILURE_PROVIDERS", "BUILDERS", "EMBEDDINGS_PROVIDERS", "TEST_API_KEY",
           "CountingTransport", "ProviderHarness", "TagHeader", "running_harness"]

TEST_API_KEY = "sk-emulator-test"  # the session emulator accepts any non-empty key


def _openai_vector(response: dict[str, Any]) -> Any:
    return response["data"][0]["embedding"]


def _gemini_vector(response: dict[str, Any]) -> Any:
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
    emulator: EmulatorServer
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
    vector_of: Callable[[dict[str, Any]], Any] = _openai_vector
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

    def batch_seconds(self, n: int) -> float:
        """How long a batch of ``n`` requests takes on the emulator's clock, end to end."""
        t = self.emulator.runtime.settings.timing
        return t.validate_s + t.run_s(n) + t.finalize_s + t.cancel_s

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


def _openai_adapter(emulator: EmulatorServer, *, transport: Any = None,
                    **config: Any) -> tuple[BatchProvider, Callable[[], None]]:
    """The adapter as the registry builds it; ``transport`` swaps the SDK's HTTP transport."""
    from llmbatch.providers.openai import OpenAIProvider

    provider_config = ProviderConfig(**{"base_url": emulator.openai_base_url,
                                        "api_key": SecretStr(TEST_API_KEY), "timeout_s": 30.0,
                                        "sdk_max_retries": 0, **config})
    if transport is None:
        adapter = OpenAIProvider(provider_config)
        return adapter, adapter.close
    client = openai.OpenAI(api_key=TEST_API_KEY, base_url=emulator.openai_base_url,
                           max_retries=0, http_client=httpx2.Client(transport=transport))
    return OpenAIProvider(provider_config, client=client), client.close


def _delete_openai_files(adapter: BatchProvider, batch_id: str,
                        progress: BatchProgress) -> None:
    from llmbatch.providers.openai import OpenAIProvider

    assert isinstance(adapter, OpenAIProvider)
    for key in ("output_file_id", "error_file_id"):
        if file_id := progress.result_refs.get(key):
            adapter.client.files.delete(file_id)


def _build_openai(emulator: EmulatorServer) -> ProviderHarness:
    return ProviderHarness(
        name="openai", emulator=emulator, model="gpt-4o-mini",
        build_adapter=lambda **options: _openai_adapter(emulator, **options),
        tag_match=lambda tag: {"llmbatch_batch_id": tag},
        operations={"upload": "files.create", "create": "batches.create",
                    "poll": "batches.retrieve", "cancel": "batches.cancel",
                    "list": "batches.list", "download": "files.content",
                    "delete_file": "files.delete"},
        unknown_batch_id="batch_neverissued",
        forget_results=_delete_openai_files,
        item_error_shapes=("error", "response"),
    )


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


def _anthropic_adapter(emulator: EmulatorServer, tagger: TagHeader, *, transport: Any = None,
                       **config: Any) -> tuple[BatchProvider, Callable[[], None]]:
    """The adapter on an injected SDK client (for the tag hook; ``transport`` swaps the HTTP
    transport); timeouts come from the same config the registry would use."""
    import anthropic

    from llmbatch.providers.anthropic import AnthropicProvider

    base_url = f"{emulator.url}/anthropic"
    provider_config = ProviderConfig(**{"base_url": base_url, "api_key": SecretStr(TEST_API_KEY),
                                        "timeout_s": 30.0, "sdk_max_retries": 0, **config})
    http = httpx2.Client(transport=transport or httpx2.HTTPTransport(),
                         event_hooks={"request": [tagger.hook]})
    client = anthropic.Anthropic(
        api_key=TEST_API_KEY, base_url=base_url, max_retries=0, http_client=http,
        timeout=anthropic.Timeout(provider_config.timeout_s,
                                  connect=provider_config.connect_timeout_s))
    return AnthropicProvider(provider_config, client=client), client.close


def _delete_anthropic_batch(adapter: BatchProvider, batch_id: str,
                            progress: BatchProgress) -> None:
    from llmbatch.providers.anthropic import AnthropicProvider

    assert isinstance(adapter, AnthropicProvider)
    adapter.client.messages.batches.delete(batch_id)


def _build_anthropic(emulator: EmulatorServer) -> ProviderHarness:
    pytest.importorskip("anthropic")
    tagger = TagHeader()
    return ProviderHarness(
        name="anthropic", emulator=emulator, model="claude-haiku-4-5",
        build_adapter=lambda **options: _anthropic_adapter(emulator, tagger, **options),
        tag_match=lambda tag: {"llmbatch_tag": tag},
        operations={"create": "batches.create", "poll": "batches.retrieve",
                    "cancel": "batches.cancel", "list": "batches.list",
                    "download": "batches.results"},
        unknown_batch_id="msgbatch_neverissued",
        forget_results=_delete_anthropic_batch,
        item_error_codes=("api_error", "rate_limit_error"),
        expired_status="ended",
        batch_failure=False,
        tag_context=tagger.bind,
    )


def _gemini_adapter(emulator: EmulatorServer, *, transport: Any = None,
                    **config: Any) -> tuple[BatchProvider, Callable[[], None]]:
    """The adapter as the registry builds it. With ``transport`` (only the large-result
    scenario swaps it) the batch goes through the Files API, whose result file is streamed;
    otherwise small batches go inline, as they would for real."""
    pytest.importorskip("google.genai")
    from llmbatch.providers.gemini import GeminiProvider

    if transport is not None:
        config.setdefault("options", {"inline_max_bytes": 1024})
    provider_config = ProviderConfig(**{"base_url": f"{emulator.url}/gemini",
                                        "api_key": SecretStr(TEST_API_KEY), "timeout_s": 30.0,
                                        "sdk_max_retries": 0, **config})
    adapter = GeminiProvider(provider_config, transport=transport)
    return adapter, adapter.close


def _delete_gemini_results(adapter: BatchProvider, batch_id: str,
                           progress: BatchProgress) -> None:
    """The result file when there is one (Google then answers 403), else the batch that holds
    the inline responses."""
    from llmbatch.providers.gemini import GeminiProvider

    assert isinstance(adapter, GeminiProvider)
    if "responses_file" not in progress.result_refs:
        adapter.delete_batch(batch_id)
        return
    url = f"{adapter.base_url}/{adapter.api_version}/{progress.result_refs['responses_file']}"
    httpx2.delete(url, headers={"x-goog-api-key": TEST_API_KEY}).raise_for_status()


def _build_gemini(emulator: EmulatorServer) -> ProviderHarness:
    return ProviderHarness(
        name="gemini", emulator=emulator, model="gemini-2.5-flash",
        build_adapter=lambda **options: _gemini_adapter(emulator, **options),
        tag_match=lambda tag: {"displayName": tag},
        operations={"upload": "files.upload", "create": "batches.create",
                    "poll": "batches.get", "cancel": "batches.cancel", "list": "batches.list",
                    "download": "files.download", "delete_file": "files.delete"},
        unknown_batch_id="batches/neverissued",
        forget_results=_delete_gemini_results,
        item_error_shapes=("error",),
        item_error_codes=("INTERNAL", "RESOURCE_EXHAUSTED"),
        invalid_field="max_output_tokens",
        embeddings_model="gemini-embedding-001",
        vector_of=_gemini_vector,
    )


BUILDERS: dict[str, Callable[[EmulatorServer], ProviderHarness]] = {
    "openai": _build_openai, "anthropic": _build_anthropic, "gemini": _build_gemini}


def _endpoints_of(name: str) -> frozenset[Endpoint]:
    from llmbatch.providers.registry import available_providers

    module, _, cls = available_providers()[name].partition(":")
    provider_class = getattr(__import__(module, fromlist=[cls]), cls)
    return frozenset(provider_class.endpoints)


# Providers that can fail a whole batch at validation (Anthropic's errors are per request).
BATCH_FAILURE_PROVIDERS = ("gemini", "openai")
EMBEDDINGS_PROVIDERS = tuple(n for n in sorted(BUILDERS)
                             if Endpoint.EMBEDDINGS in _endpoints_of(n))


def running_harness(build: Callable[[EmulatorServer], ProviderHarness],
                    emulator: EmulatorServer) -> Iterator[ProviderHarness]:
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
