"""Contract: a provider adapter against the emulator, over real HTTP, with the official SDK.

The scenarios are written against ``ProviderHarness`` (an adapter plus the emulator-side knobs a
scenario needs: fault matching by tag, the name of the create call, the clock), and the
``harness`` fixture is parametrised by provider name. Adding Anthropic or Gemini means adding a
``_build_<name>`` function and a parameter; the scenarios stay as they are. OpenAI-only checks
(both error-line shapes, file clean-up, list paging) are marked as such.

Nothing here sleeps for a batch: the harness moves the emulator's clock forward instead, so the
module runs in a few seconds whatever timing profile the emulator was started with.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

pytest.importorskip("openai")  # the llmbatch[openai] extra

import httpx2
import openai

from llmbatch.config import ProviderConfig
from llmbatch.domain.models import (
    BatchProgress,
    Endpoint,
    FailureKind,
    ItemResult,
    RequestLine,
    SubmittedBatch,
)
from llmbatch.domain.states import ItemStatus
from llmbatch.emulator.server import EmulatorServer
from llmbatch.errors import (
    PermanentProviderError,
    RateLimitedError,
    TransientProviderError,
)
from llmbatch.providers.base import BatchProvider

pytestmark = pytest.mark.contract

TEST_API_KEY = "sk-emulator-test"  # the session emulator accepts any non-empty key


# --- the harness: one per provider -----------------------------------------------------------


def _openai_vector(response: dict[str, Any]) -> Any:
    return response["data"][0]["embedding"]


def _gemini_vector(response: dict[str, Any]) -> Any:
    return response["embedding"]["values"]


@dataclass
class ProviderHarness:
    """One adapter wired to the emulator, and what the scenarios need to steer that provider.

    ``tag_match`` turns an llmbatch tag into the emulator's fault ``match`` for batches carrying
    it; ``operations`` names the provider's API calls as the emulator counts them;
    ``item_error_shapes`` lists the per-item error shapes the provider has.
    """

    name: str
    emulator: EmulatorServer
    model: str
    build_adapter: Callable[..., tuple[BatchProvider, Callable[[], None]]]
    tag_match: Callable[[str], dict[str, str]]
    operations: dict[str, str]
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
        rule: dict[str, Any] = {"kind": kind, "provider": self.name, **fields}
        if tag is not None:
            rule["match"] = self.tag_match(tag)
        if operation is not None:
            rule["operation"] = self.operations[operation]
        self.emulator.set_faults([rule], mode="append")

    def calls(self, operation: str) -> int:
        counts: dict[str, int] = self.emulator.stats()["calls"].get(self.name, {})
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


def _build_openai(emulator: EmulatorServer) -> ProviderHarness:
    return ProviderHarness(
        name="openai", emulator=emulator, model="gpt-4o-mini",
        build_adapter=lambda **options: _openai_adapter(emulator, **options),
        tag_match=lambda tag: {"llmbatch_batch_id": tag},
        operations={"upload": "files.create", "create": "batches.create",
                    "poll": "batches.retrieve", "cancel": "batches.cancel",
                    "list": "batches.list", "download": "files.content",
                    "delete_file": "files.delete"},
        item_error_shapes=("error", "response"),
    )


class _TagHeader:
    """Sends the harness's current tag to the Anthropic emulator as ``x-emulator-tags`` (its
    batches have no metadata to carry a tag; real Anthropic never sees this header)."""

    def __init__(self) -> None:
        self.current: str | None = None

    def hook(self, request: Any) -> None:
        if self.current is not None and request.method == "POST":
            request.headers["x-emulator-tags"] = f"llmbatch_tag={self.current}"

    def bind(self, tag: str) -> AbstractContextManager[None]:
        from contextlib import contextmanager

        @contextmanager
        def bound() -> Iterator[None]:
            self.current = tag
            try:
                yield
            finally:
                self.current = None

        return bound()


def _anthropic_adapter(emulator: EmulatorServer, tagger: _TagHeader, *, transport: Any = None,
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


def _build_anthropic(emulator: EmulatorServer) -> ProviderHarness:
    pytest.importorskip("anthropic")
    tagger = _TagHeader()
    return ProviderHarness(
        name="anthropic", emulator=emulator, model="claude-haiku-4-5",
        build_adapter=lambda **options: _anthropic_adapter(emulator, tagger, **options),
        tag_match=lambda tag: {"llmbatch_tag": tag},
        operations={"create": "batches.create", "poll": "batches.retrieve",
                    "cancel": "batches.cancel", "list": "batches.list",
                    "download": "batches.results"},
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


def _build_gemini(emulator: EmulatorServer) -> ProviderHarness:
    return ProviderHarness(
        name="gemini", emulator=emulator, model="gemini-2.5-flash",
        build_adapter=lambda **options: _gemini_adapter(emulator, **options),
        tag_match=lambda tag: {"displayName": tag},
        operations={"upload": "files.upload", "create": "batches.create",
                    "poll": "batches.get", "cancel": "batches.cancel", "list": "batches.list",
                    "download": "files.download", "delete_file": "files.delete"},
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


def _running_harness(name: str, emulator: EmulatorServer) -> Iterator[ProviderHarness]:
    """An adapter against the session emulator with no fault rules active (the profile's
    rules are restored afterwards, whatever the test left behind)."""
    emulator.clear_faults()
    built = BUILDERS[name](emulator)
    try:
        yield built
    finally:
        built.close()
        emulator.reset(faults=True, stats=False)


@pytest.fixture(params=sorted(BUILDERS))
def harness(request: pytest.FixtureRequest, emulator: EmulatorServer) -> Iterator[ProviderHarness]:
    """Every provider: the scenarios all of them must pass."""
    yield from _running_harness(request.param, emulator)


@pytest.fixture(params=EMBEDDINGS_PROVIDERS)
def embeddings_harness(request: pytest.FixtureRequest,
                       emulator: EmulatorServer) -> Iterator[ProviderHarness]:
    """Providers whose adapter declares embeddings batches."""
    yield from _running_harness(request.param, emulator)


@pytest.fixture(params=BATCH_FAILURE_PROVIDERS)
def batch_failure_harness(request: pytest.FixtureRequest,
                          emulator: EmulatorServer) -> Iterator[ProviderHarness]:
    """Providers that can fail a batch as a whole."""
    for built in _running_harness(request.param, emulator):
        assert built.batch_failure, f"{built.name} is listed but declares no batch failure"
        yield built


@pytest.fixture
def openai_harness(emulator: EmulatorServer) -> Iterator[ProviderHarness]:
    """The OpenAI harness alone, for checks of OpenAI-specific behaviour."""
    emulator.clear_faults()
    built = _build_openai(emulator)
    try:
        yield built
    finally:
        built.close()
        emulator.reset(faults=True, stats=False)


# --- scenarios every provider passes ----------------------------------------------------------


def test_a_batch_runs_to_completion_and_every_result_is_read(harness: ProviderHarness) -> None:
    tag = harness.new_tag()
    submitted = harness.submit(harness.requests(6), tag=tag)
    assert submitted.provider_batch_id

    progress = harness.run_to_end(submitted.provider_batch_id, 6)
    assert (progress.total, progress.completed, progress.failed) == (6, 6, 0)
    assert progress.failure is None

    results = harness.results(submitted.provider_batch_id, progress)
    assert sorted(results) == [f"q-{i}" for i in range(6)]
    for result in results.values():
        assert result.status is ItemStatus.SUCCEEDED
        assert result.output_text
        assert result.finish_reason in ("stop", "length")
        assert result.usage is not None
        assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
        assert result.response is not None and result.error is None


def test_embeddings_keep_their_vectors_in_the_response(
        embeddings_harness: ProviderHarness) -> None:
    harness = embeddings_harness
    requests = [RequestLine(i, f"e-{i}", {"input": f"text {i}"}) for i in range(3)]
    submitted = harness.submit(requests, tag=harness.new_tag(), endpoint=Endpoint.EMBEDDINGS,
                               model=harness.embeddings_model)
    results = harness.results(submitted.provider_batch_id,
                              harness.run_to_end(submitted.provider_batch_id, 3))
    assert len(results) == 3
    for result in results.values():
        assert result.status is ItemStatus.SUCCEEDED and result.output_text is None
        assert result.response is not None and harness.vector_of(result.response)
        assert result.usage is not None and result.usage.input_tokens > 0


def test_a_partly_failed_batch_separates_permanent_and_retryable_failures(
        harness: ProviderHarness) -> None:
    requests = harness.requests(3)
    requests.append(RequestLine(3, "bad-0", {"messages": [{"role": "user", "content": "x"}],
                                             "max_tokens": 0}))
    submitted = harness.submit(requests, tag=harness.new_tag())
    progress = harness.run_to_end(submitted.provider_batch_id, 4)
    assert (progress.total, progress.completed, progress.failed) == (4, 3, 1)

    results = harness.results(submitted.provider_batch_id, progress)
    assert {k for k, r in results.items() if r.status is ItemStatus.SUCCEEDED} == {
        "q-0", "q-1", "q-2"}
    bad = results["bad-0"]
    assert bad.status is ItemStatus.FAILED and bad.error is not None
    assert bad.error.retryable is False
    assert bad.error.type == "invalid_request_error"
    assert harness.invalid_field in bad.error.message


@pytest.mark.parametrize("status", [500, 429])
def test_per_item_provider_errors_are_retryable_in_every_error_shape(
        harness: ProviderHarness, status: int) -> None:
    for shape in harness.item_error_shapes:
        tag = harness.new_tag()
        harness.fault("item_errors", tag=tag, rate=1.0, shape=shape, status_code=status)
        submitted = harness.submit(harness.requests(3, prefix=shape), tag=tag)
        progress = harness.run_to_end(submitted.provider_batch_id, 3)
        assert progress.failed == 3

        results = harness.results(submitted.provider_batch_id, progress)
        assert sorted(results) == [f"{shape}-{i}" for i in range(3)], shape
        for result in results.values():
            assert result.status is ItemStatus.FAILED, shape
            assert result.error is not None and result.error.retryable, (shape, result.error)
            assert result.error.code in harness.item_error_codes, result.error
            assert result.output_text is None and result.usage is None


def test_a_4xx_at_create_is_a_permanent_error(harness: ProviderHarness) -> None:
    harness.fault("http", operation="create", status=400, times=1,
                  message="Invalid 'metadata': too many keys.")
    tag = harness.new_tag()
    with pytest.raises(PermanentProviderError) as err:
        harness.submit(harness.requests(2), tag=tag)
    assert err.value.provider == harness.name
    assert err.value.status_code == 400
    assert not err.value.retryable
    assert "too many keys" in str(err.value)
    assert harness.adapter.find_by_tag(tag) is None


def test_a_5xx_surfaces_as_transient_and_the_next_call_succeeds(
        harness: ProviderHarness) -> None:
    tag = harness.new_tag()
    submitted = harness.submit(harness.requests(2), tag=tag)
    harness.fault("http", operation="poll", tag=tag, status=503, times=1)

    with pytest.raises(TransientProviderError) as err:
        harness.adapter.poll(submitted.provider_batch_id)
    assert (err.value.provider, err.value.status_code, err.value.retryable) == (
        harness.name, 503, True)
    assert harness.adapter.poll(submitted.provider_batch_id).provider_status


def test_a_5xx_at_create_is_transient_and_a_resubmission_succeeds(
        harness: ProviderHarness) -> None:
    harness.fault("http", operation="create", status=502, times=1)
    tag = harness.new_tag()
    with pytest.raises(TransientProviderError):
        harness.submit(harness.requests(2), tag=tag)
    assert harness.adapter.find_by_tag(tag) is None  # nothing to adopt: safe to re-submit

    submitted = harness.submit(harness.requests(2), tag=tag)
    found = harness.adapter.find_by_tag(tag)
    assert found is not None and found.provider_batch_id == submitted.provider_batch_id


def test_a_429_carries_retry_after_and_the_sdk_does_not_retry_by_itself(
        harness: ProviderHarness) -> None:
    tag = harness.new_tag()
    submitted = harness.submit(harness.requests(2), tag=tag)
    harness.fault("http", operation="poll", tag=tag, status=429, retry_after_s=0.25, times=1)
    before = harness.calls("poll")

    with pytest.raises(RateLimitedError) as err:
        harness.adapter.poll(submitted.provider_batch_id)
    assert err.value.retry_after == pytest.approx(0.25)
    assert (err.value.status_code, err.value.provider) == (429, harness.name)
    assert harness.calls("poll") == before + 1  # sdk_max_retries=0: one call, no hidden retry
    assert harness.adapter.poll(submitted.provider_batch_id).provider_status


def test_a_client_timeout_is_transient(harness: ProviderHarness) -> None:
    tag = harness.new_tag()
    submitted = harness.submit(harness.requests(1), tag=tag)
    impatient = harness.make_adapter(timeout_s=0.2)
    harness.fault("delay", operation="poll", tag=tag, delay_s=1.0, times=1)
    with pytest.raises(TransientProviderError) as err:
        impatient.poll(submitted.provider_batch_id)
    assert err.value.code == "timeout"


def test_cancel_keeps_the_partial_results(harness: ProviderHarness) -> None:
    n = 40
    submitted = harness.submit(harness.requests(n), tag=harness.new_tag())
    timing = harness.emulator.runtime.settings.timing
    harness.advance(timing.validate_s + timing.run_s(n) / 2)

    cancelling = harness.adapter.cancel(submitted.provider_batch_id)
    assert not cancelling.ended or cancelling.provider_status == "cancelled"
    progress = harness.run_to_end(submitted.provider_batch_id, n)
    assert progress.provider_status in ("cancelled", "canceled", "ended")

    results = harness.results(submitted.provider_batch_id, progress)
    done = [r for r in results.values() if r.status is ItemStatus.SUCCEEDED]
    cancelled = [r for r in results.values() if r.status is ItemStatus.CANCELLED]
    assert 0 < len(done) < n
    assert len(done) == progress.completed
    assert len(done) + len(cancelled) == len(results) <= n
    for result in cancelled:
        assert result.error is not None and result.error.retryable

    assert progress.failure is None  # cancelled on request: not a failure
    again = harness.adapter.cancel(submitted.provider_batch_id)  # already ended: not an error
    assert again.ended


def test_expiry_keeps_the_partial_results(harness: ProviderHarness) -> None:
    n, tag = 40, harness.new_tag()
    harness.fault("expire", tag=tag, at_fraction=0.5)
    submitted = harness.submit(harness.requests(n), tag=tag)
    progress = harness.run_to_end(submitted.provider_batch_id, n)
    assert progress.provider_status == harness.expired_status

    results = harness.results(submitted.provider_batch_id, progress)
    done = [r for r in results.values() if r.status is ItemStatus.SUCCEEDED]
    expired = [r for r in results.values() if r.status is ItemStatus.EXPIRED]
    assert 0 < len(done) < n
    assert len(done) + len(expired) == n
    for result in expired:
        assert result.error is not None and result.error.retryable
        assert result.error.code == "batch_expired"


def test_a_batch_that_fails_validation_reports_why_and_yields_no_results(
        batch_failure_harness: ProviderHarness) -> None:
    harness = batch_failure_harness
    tag = harness.new_tag()
    harness.fault("fail_batch", tag=tag, code="invalid_json_line",
                  message="Line 1 is not parseable as valid JSON.")
    submitted = harness.submit(harness.requests(2), tag=tag)
    progress = harness.run_to_end(submitted.provider_batch_id, 2)
    failure = progress.failure
    assert progress.ended and failure is not None
    assert (failure.kind, failure.retryable, failure.items_ran) == (
        FailureKind.INVALID_INPUT, False, False)
    assert failure.code == "invalid_json_line"
    assert "not parseable" in failure.message
    assert harness.results(submitted.provider_batch_id, progress) == {}


def test_find_by_tag_adopts_the_batch_carrying_the_tag(harness: ProviderHarness) -> None:
    tag = harness.new_tag()
    submitted = harness.submit(harness.requests(1), tag=tag)
    harness.submit(harness.requests(1), tag=harness.new_tag())  # a newer, unrelated batch

    found = harness.adapter.find_by_tag(tag)
    assert found is not None
    assert found.provider_batch_id == submitted.provider_batch_id
    assert harness.adapter.find_by_tag(harness.new_tag()) is None


def test_a_large_result_file_is_streamed_line_by_line(harness: ProviderHarness) -> None:
    n = 8_000
    counting = CountingTransport()
    adapter = harness.make_adapter(transport=counting)
    submitted = harness.submit(harness.requests(n, max_tokens=100), tag=harness.new_tag(),
                               adapter=adapter)
    progress = harness.run_to_end(submitted.provider_batch_id, n)

    stream = adapter.iter_results(submitted.provider_batch_id, progress)
    counting.received = 0
    first = next(stream)
    received_at_first = counting.received
    seen = {first.provider_key} | {result.provider_key for result in stream}
    total = counting.received

    assert len(seen) == n
    assert total > 2_000_000, total  # the file is big enough for the check to mean something
    assert received_at_first < total / 4, (received_at_first, total)


# --- OpenAI specifics -------------------------------------------------------------------------


def test_a_failed_create_deletes_the_uploaded_file(openai_harness: ProviderHarness) -> None:
    h = openai_harness
    h.fault("http", operation="create", status=400, times=1)
    deletes = h.calls("delete_file")
    with pytest.raises(PermanentProviderError):
        h.submit(h.requests(1), tag=h.new_tag())
    assert h.calls("delete_file") == deletes + 1


def test_find_by_tag_pages_back_and_stops_at_the_page_cap_or_the_horizon(
        openai_harness: ProviderHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmbatch.providers.openai import provider as module

    h = openai_harness
    oldest = h.new_tag()
    first = h.submit(h.requests(1), tag=oldest)
    for _ in range(4):
        h.submit(h.requests(1), tag=h.new_tag())
    monkeypatch.setattr(module, "FIND_BY_TAG_PAGE_SIZE", 2)

    lists = h.calls("list")
    found = h.adapter.find_by_tag(oldest)
    assert found is not None and found.provider_batch_id == first.provider_batch_id
    assert h.calls("list") - lists == 3

    monkeypatch.setattr(module, "FIND_BY_TAG_MAX_PAGES", 2)
    assert h.adapter.find_by_tag(oldest) is None

    monkeypatch.setattr(module, "FIND_BY_TAG_MAX_PAGES", 50)
    monkeypatch.setattr(module, "FIND_BY_TAG_HORIZON_S", -10**9)  # every batch is "too old"
    lists = h.calls("list")
    assert h.adapter.find_by_tag(oldest) is None
    assert h.calls("list") - lists == 1  # a page entirely past the horizon ends the search


def test_cleanup_deletes_every_file_of_the_batch(openai_harness: ProviderHarness) -> None:
    h = openai_harness
    adapter = h.make_adapter(delete_files_after_fetch=True)
    tag = h.new_tag()
    h.fault("item_errors", tag=tag, rate=0.5, shape="error", status_code=500)
    submitted = h.submit(h.requests(10), tag=tag, adapter=adapter)
    progress = h.run_to_end(submitted.provider_batch_id, 10)
    refs = progress.result_refs
    assert {"input_file_id", "output_file_id", "error_file_id"} <= set(refs)

    adapter.cleanup(submitted.provider_batch_id, progress)
    with openai.OpenAI(api_key=TEST_API_KEY, base_url=h.emulator.openai_base_url,
                       max_retries=0) as client:
        for file_id in refs.values():
            with pytest.raises(openai.NotFoundError):
                client.files.retrieve(file_id)
    adapter.cleanup(submitted.provider_batch_id, progress)  # again: already gone is fine


# --- test plumbing ----------------------------------------------------------------------------


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
