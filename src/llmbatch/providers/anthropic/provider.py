"""``AnthropicProvider``: Anthropic Message Batches (``/v1/messages/batches``) on the official SDK.

The format lives in ``translate`` and ``wire``, the exception mapping in ``errors``, the memory
of our own submissions in ``journal``; this module holds the calls. The SDK is imported, and
its client built, on first use (``submit`` only checks and stores jobs: it never loads it),
from ``ProviderConfig`` only (never the environment); the base URL is always passed so
``ANTHROPIC_BASE_URL`` in a worker's environment cannot redirect batches. Its own settings
(``providers.anthropic.options``) are ``AnthropicOptions``.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any, ClassVar, Final

import structlog
from pydantic import Field, ValidationInfo, field_validator

from llmbatch.config import LatencyPrior, ProviderConfig
from llmbatch.domain.journal import JournalEntry, SubmitJournal
from llmbatch.domain.model_rules import ModelRules
from llmbatch.domain.models import (
    BatchProgress,
    Endpoint,
    ItemResult,
    RequestLine,
    SubmittedBatch,
)
from llmbatch.domain.retention import Deletion
from llmbatch.errors import (
    InputError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from llmbatch.providers.anthropic import betas as batch_betas
from llmbatch.providers.anthropic.errors import PROVIDER, RESULTS, calling
from llmbatch.providers.anthropic.journal import MemoryJournal
from llmbatch.providers.anthropic.request_schema import native_problems
from llmbatch.providers.anthropic.translate import API_VERSIONS, DEFAULT_API_VERSION
from llmbatch.providers.anthropic.wire import encode_line, parse_result_line, progress_from_batch
from llmbatch.providers.base import (
    BatchLimits,
    BatchProvider,
    EncodedLine,
    ProviderOptions,
    output_limit,
)
from llmbatch.providers.cleanup import delete_each
from llmbatch.providers.jsonl import parse_result_stream
from llmbatch.providers.responses_body import encode_as_chat
from llmbatch.providers.sdk_client import LazyClient

if TYPE_CHECKING:
    import anthropic
    from anthropic.types.messages import MessageBatch

__all__ = ["DEFAULT_BASE_URL", "AnthropicJobOptions", "AnthropicOptions", "AnthropicProvider",
           "keys_digest"]

log = structlog.get_logger(__name__)

DEFAULT_BASE_URL: Final = "https://api.anthropic.com"
# The create call's window on our clock, widened by this much for clock skew against
# Anthropic's ``created_at``. Small on purpose: a candidate outside it is not adopted (the
# safe failure is a duplicate batch, never someone else's results).
ADOPT_SKEW_S: Final = 5.0
ADOPT_PAGE_SIZE: Final = 100
ADOPT_MAX_PAGES: Final = 10
_BODY_HEAD: Final = b'{"requests":['
_BODY_TAIL: Final = b"]}"
_KEY_RE: Final = re.compile(rb'^\{"custom_id":"([A-Za-z0-9_-]{1,64})"')


def keys_digest(keys: Iterable[str]) -> str:
    """An order-independent digest of a set of custom_ids (sum of their SHA-256 mod 2^256), so
    it can be computed while streaming and compared with a results file in any order."""
    total = 0
    for key in keys:
        total = (total + int.from_bytes(hashlib.sha256(key.encode()).digest(), "big")) % 2**256
    return f"{total:064x}"


class AnthropicOptions(ProviderOptions):
    """``providers.anthropic.options``."""

    api_version: str | None = Field(
        None, description="anthropic-version sent with every call; the SDK's own when unset")
    default_max_tokens: int = Field(
        1024, gt=0, description="max_tokens for requests without one (Anthropic requires it)")
    # Before ``betas``: its check reads this.
    allow_unlisted_betas: bool = Field(
        False, description="Send betas not known to work in batches (at your own risk)")
    betas: tuple[str, ...] = Field(
        (), description="anthropic-beta values sent with every batch created (betas.py lists "
                        "those known to work in batches)")

    @field_validator("betas")
    @classmethod
    def _known_betas(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        allow = bool(info.data.get("allow_unlisted_betas"))
        for beta in value:
            problem = batch_betas.beta_problem(beta, allow_unlisted=allow)
            if problem is not None:
                raise ValueError(problem)
        return value


class AnthropicJobOptions(ProviderOptions):
    """What one job may add (``submit --beta``, the API's ``betas``): more betas, each known
    to work in batches (``providers.anthropic.options.allow_unlisted_betas`` is the config's
    alone to grant)."""

    betas: tuple[str, ...] = ()


class AnthropicProvider(BatchProvider):
    """Anthropic Message Batches for chat (Messages) requests.

    ``max_bytes`` is 256 MB read as decimal megabytes and counts the whole JSON body
    (``{"requests":[...]}``, commas included), the thing Anthropic measures; 100,000 requests.

    Adoption (``find_by_tag``): Anthropic batches carry no tag, so the adapter journals its own
    submissions (``journal``) and adopts only what it can prove: the id recorded when create
    answered, or, after a create whose outcome is unknown (timeout, 5xx), a batch created within
    that call's time window with the same request count whose results (once ended) hold exactly
    our custom_ids. Anything less is not adopted and a warning names the candidates: the
    residual risk is a duplicate billed batch, never someone else's results.
    """

    name: ClassVar[str] = "anthropic"
    requires_api_key: ClassVar[bool] = True
    label: ClassVar[str] = "Anthropic"
    max_requests: ClassVar[int] = 100_000
    max_bytes: ClassVar[int] = 256 * 1000 * 1000
    # Responses bodies are translated through their chat meaning (``responses_body``).
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.CHAT, Endpoint.RESPONSES})
    needs_submit_journal: ClassVar[bool] = True
    options_model: ClassVar[type[ProviderOptions]] = AnthropicOptions
    job_options_model: ClassVar[type[ProviderOptions] | None] = AnthropicJobOptions
    options: AnthropicOptions
    # Counts stay still until the end: the poller has the prior alone.
    # Prices: genai-prices lists this vendor as 'anthropic'; a batch bills half of every
    # synchronous rate (PROVIDER_APIS B.7: 50% of each class's own standard rate).
    price_catalogue_id: ClassVar[str | None] = 'anthropic'
    batch_price_factor: ClassVar[Decimal] = Decimal("0.5")
    latency_prior: ClassVar[LatencyPrior] = LatencyPrior(median_s=2400, sigma=0.9,
                                                         counts_live=False)

    def __init__(self, config: ProviderConfig, *, client: anthropic.Anthropic | None = None,
                 journal: SubmitJournal | None = None) -> None:
        """``client`` injects a ready SDK client (tests, custom transports); ``journal`` a
        durable submission journal (default: in memory, for the life of the adapter)."""
        super().__init__(config)
        version = self.options.api_version
        if version is not None and version not in API_VERSIONS:
            log.warning("llmbatch.anthropic.unknown_api_version", api_version=version)
        self._client = LazyClient(self._build_client, _close, injected=client)
        self.journal: SubmitJournal = journal or MemoryJournal()

    @property
    def api_version(self) -> str:
        """The ``anthropic-version`` sent: the options', else the SDK's default."""
        return self.options.api_version or _sdk_api_version()

    @property
    def client(self) -> anthropic.Anthropic:
        """The SDK client, built once on first use (a missing key fails here, not at start)."""
        return self._client.get()

    def close(self) -> None:
        """Close the SDK client this adapter built (an injected one belongs to its owner)."""
        self._client.close()

    def preload(self) -> None:
        import anthropic  # noqa: F401

    def _build_client(self) -> anthropic.Anthropic:
        import anthropic

        version = self.options.api_version
        return anthropic.Anthropic(
            api_key=self.require_api_key(),
            base_url=self.config.base_url or DEFAULT_BASE_URL,
            timeout=anthropic.Timeout(self.config.timeout_s,
                                      connect=self.config.connect_timeout_s),
            max_retries=self.config.sdk_max_retries,  # tasks retry; SDK retries would multiply
            default_headers={"anthropic-version": version} if version else None,
        )

    def job_options(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Per-job betas, each refused (``InputError`` naming it) unless known to work in
        batches or the config allows unlisted ones."""
        options = super().job_options(values)
        for beta in options.get("betas", ()):
            problem = batch_betas.beta_problem(
                beta, allow_unlisted=self.options.allow_unlisted_betas)
            if problem is not None:
                raise InputError(problem, field="betas")
        return options

    def merge_job_options(self, job_options: Mapping[str, Any]) -> AnthropicOptions:
        """A job's betas are added to the configured ones (in order, once each)."""
        added = tuple(job_options.get("betas", ()))
        merged = tuple(dict.fromkeys((*self.options.betas, *added)))
        return self.options.model_copy(update={"betas": merged})

    def model_rules(self, model: str, *, endpoint: Endpoint) -> ModelRules:
        """The catalogue's context window, and the most ``max_tokens`` the job's betas allow
        the model (``betas.max_output_tokens``)."""
        rules = super().model_rules(model, endpoint=endpoint)
        cap = batch_betas.max_output_tokens(model, self.options.betas)
        return ModelRules(model=model, max_output_tokens=cap,
                          context_window=rules.context_window,
                          sources=(*rules.sources, "llmbatch providers/anthropic/betas.py"))

    @property
    def beta_header(self) -> dict[str, str]:
        """The ``anthropic-beta`` header of this job's batch calls (none without betas)."""
        return {"anthropic-beta": ",".join(self.options.betas)} if self.options.betas else {}

    def max_output_tokens(self, request: RequestLine, *, endpoint: Endpoint) -> int | None:
        """``max_tokens`` (required by Anthropic: the configured default when a neutral body
        has none); it includes any extended-thinking budget."""
        if request.native is not None:
            return output_limit(request.native, "max_tokens")
        return (output_limit(request.body, "max_completion_tokens", "max_tokens",
                             "max_output_tokens")
                or self.options.default_max_tokens)

    def native_problems(self, native: Mapping[str, Any], *, endpoint: Endpoint,
                        model: str) -> list[InputError]:
        """``native`` checked against the vendored request description (``request_schema``)."""
        return native_problems(native, model=model)

    def encode(self, request: RequestLine, *, endpoint: Endpoint, model: str) -> EncodedLine:
        """The ``{"custom_id", "params"}`` item for ``request`` (see ``wire.encode_line``)."""
        if endpoint not in self.endpoints:
            raise InputError(f"Anthropic batches do not support the {endpoint!r} endpoint",
                             field="endpoint")
        encoded = encode_as_chat(request, endpoint, lambda req, _: encode_line(
            req, model=model, api_version=self.api_version,
            default_max_tokens=self.options.default_max_tokens))
        limit = self.effective_limits(model).max_bytes - len(_BODY_HEAD) - len(_BODY_TAIL)
        if len(encoded.data) > limit:
            raise InputError(f"the request is {len(encoded.data)} bytes encoded; an Anthropic "
                             f"batch body holds at most {limit}", field="body")
        return encoded

    def submit(self, lines: Iterable[bytes], *, tag: str, endpoint: Endpoint,
               model: str) -> SubmittedBatch:
        """Spool the JSON body to a temporary file and create the batch in one request.

        The body is streamed to disk (``TMPDIR``) and from there to the socket, so memory stays
        flat up to the 256 MB limit. The create call never retries inside the SDK whatever
        ``sdk_max_retries`` says: Anthropic has no idempotency key, so a retried create after a
        lost answer is a second billed batch; the task-level retry goes through
        ``find_by_tag`` first.
        """
        from anthropic.types.messages import MessageBatch

        client = self.client  # a missing key fails before any work
        with tempfile.TemporaryFile(prefix="llmbatch-anthropic-", suffix=".json") as spool:
            count, size, digest = _spool(lines, spool, self.effective_limits(model))
            spool.seek(0)
            started = time.time()
            self.journal.begin(JournalEntry(tag=tag, count=count, keys_digest=digest,
                                            started_at=started))
            try:
                with calling("messages.batches.create"):
                    batch = client.post(
                        "/v1/messages/batches", cast_to=MessageBatch, content=spool,
                        options={"max_retries": 0, "headers": {
                            "content-type": "application/json", "content-length": str(size),
                            **self.beta_header}})
            except ProviderError as exc:
                if _ambiguous(exc):
                    self.journal.ambiguous(tag, time.time())
                else:
                    self.journal.forget(tag)
                raise
        self.journal.created(tag, batch.id)
        log.info("llmbatch.anthropic.batch_created", provider_batch_id=batch.id, tag=tag,
                 requests=count, bytes=size)
        return _submitted(batch)

    def find_by_tag(self, tag: str) -> SubmittedBatch | None:
        """The batch an earlier ``submit`` of ``tag`` created, if it can be proven (see the
        class docstring); ``None`` when nothing is known or nothing can be proven."""
        entry = self.journal.get(tag)
        if entry is None:
            return None
        if entry.batch_id is not None:
            with calling("messages.batches.retrieve"):
                return _submitted(self.client.messages.batches.retrieve(entry.batch_id))
        if entry.ambiguous or entry.interrupted:
            return self._adopt_ambiguous(entry)
        return None

    def _adopt_ambiguous(self, entry: JournalEntry) -> SubmittedBatch | None:
        low = entry.started_at - ADOPT_SKEW_S
        # A call that never finished (the worker died in it) may have been answered as late
        # as its timeout allowed.
        finished = entry.finished_at or entry.started_at + self.config.timeout_s
        high = finished + ADOPT_SKEW_S
        unproven: list[str] = []
        ended: list[tuple[float, MessageBatch]] = []
        with calling("messages.batches.list"):
            page = self.client.messages.batches.list(limit=ADOPT_PAGE_SIZE)
            for _ in range(ADOPT_MAX_PAGES):
                for batch in page.data:
                    created = _timestamp(batch.created_at)
                    counts = batch.request_counts
                    total = (counts.processing + counts.succeeded + counts.errored
                             + counts.canceled + counts.expired)
                    if (not low <= created <= high or total != entry.count
                            or batch.id in entry.excluded):
                        continue
                    if batch.processing_status != "ended":
                        unproven.append(batch.id)
                    else:
                        ended.append((abs(created - entry.started_at), batch))
                if not page.has_next_page() or all(_timestamp(b.created_at) < low
                                                   for b in page.data):
                    break
                page = page.get_next_page()
        # Closest to our call first (most likely ours); each one proven foreign is journalled,
        # so an error halfway through loses nothing already checked.
        for _, batch in sorted(ended, key=lambda pair: pair[0]):
            if self._holds_keys(batch.id, entry.keys_digest):
                self.journal.created(entry.tag, batch.id)
                log.warning("llmbatch.anthropic.adopted", tag=entry.tag,
                            provider_batch_id=batch.id)
                return _submitted(batch)
            self.journal.exclude(entry.tag, batch.id)
        if unproven:
            # One of them may be ours: sending again now could pay twice, and "none" cannot
            # be proven before they end. Say "not yet": the submission backs off and asks
            # again, and adopts or re-sends once the candidates have ended.
            log.warning("llmbatch.anthropic.adoption_pending", tag=entry.tag,
                        candidates=unproven)
            raise TransientProviderError(
                f"a batch created during an interrupted submission may be ours "
                f"({', '.join(unproven)}); waiting for it to end to check its ids",
                provider=PROVIDER, code="adoption_pending")
        return None

    def _holds_keys(self, batch_id: str, digest: str) -> bool:
        keys = (r.provider_key for r in self._iter_raw(batch_id))
        return keys_digest(keys) == digest

    def poll(self, provider_batch_id: str) -> BatchProgress:
        """Status and progress (``processing`` only, until the end)."""
        with calling("messages.batches.retrieve"):
            batch = self.client.messages.batches.retrieve(provider_batch_id)
        return progress_from_batch(batch.model_dump(mode="json"))

    def iter_results(self, provider_batch_id: str, progress: BatchProgress) -> Iterator[ItemResult]:
        """Stream the results JSONL, one parsed line at a time.

        The body is read as raw bytes and split here, not by the SDK's decoder: one unreadable
        line is then logged and skipped (``parse_result_stream``) instead of aborting the whole
        stream on every fetch attempt. Results Anthropic no longer keeps (29 days after
        creation) or a batch it no longer knows raise ``ResourceGoneError``.
        """
        yield from self._iter_raw(provider_batch_id)

    def _iter_raw(self, provider_batch_id: str) -> Iterator[ItemResult]:
        with calling(RESULTS), self.client.messages.batches.with_streaming_response.results(
                provider_batch_id) as response:
            yield from parse_result_stream(response.iter_bytes(), parse_result_line,
                                           provider=PROVIDER,
                                           provider_batch_id=provider_batch_id)

    def cancel(self, provider_batch_id: str) -> BatchProgress:
        """Ask Anthropic to cancel (the batch shows ``canceling``, then ``ended`` with partial
        results). Cancelling a batch that already ended returns its progress."""
        try:
            with calling("messages.batches.cancel"):
                batch = self.client.messages.batches.cancel(provider_batch_id)
        except ProviderError as exc:
            return self.progress_if_ended(provider_batch_id, exc)
        return progress_from_batch(batch.model_dump(mode="json"))

    def cleanup(self, provider_batch_id: str, progress: BatchProgress) -> list[Deletion]:
        """Delete the ended batch: Anthropic keeps its requests and results for 29 days
        otherwise, and batches are not zero-data-retention eligible (PROVIDER_APIS B.9)."""
        return delete_each([("batch", provider_batch_id)], self._delete_batch)

    def _delete_batch(self, provider_batch_id: str) -> None:
        with calling("messages.batches.delete"):
            self.client.messages.batches.delete(provider_batch_id)


def _ambiguous(exc: ProviderError) -> bool:
    """Whether a failed create may still have created the batch (timeouts, broken
    connections, 5xx); a 429 or a 4xx is the service refusing before doing anything."""
    return isinstance(exc, TransientProviderError) and not isinstance(exc, RateLimitedError)


def _sdk_api_version() -> str:
    try:
        from anthropic._constants import ANTHROPIC_API_VERSION
    except ImportError:  # pragma: no cover - a future SDK layout
        return DEFAULT_API_VERSION
    return str(ANTHROPIC_API_VERSION)


def _timestamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _spool(lines: Iterable[bytes], spool: IO[bytes], limits: BatchLimits) -> tuple[int, int,
                                                                                    str]:
    """Write ``{"requests":[l1,l2,...]}``; returns (count, body bytes, custom_id digest)."""
    count, size, total = 0, len(_BODY_HEAD) + len(_BODY_TAIL), 0
    spool.write(_BODY_HEAD)
    for line in lines:
        match = _KEY_RE.match(line)
        if match is None:
            raise ValueError(f"item {count + 1} is not an encoded Anthropic request")
        count += 1
        size += len(line) + (1 if count > 1 else 0)
        if count > limits.max_requests or size > limits.max_bytes:
            raise ValueError(f"batch exceeds the Anthropic limits ({limits.max_requests} "
                             f"requests, {limits.max_bytes} bytes) at item {count}")
        if count > 1:
            spool.write(b",")
        spool.write(line)
        total = (total + int.from_bytes(hashlib.sha256(match.group(1)).digest(), "big")) % 2**256
    spool.write(_BODY_TAIL)
    if count == 0:
        raise ValueError("a batch needs at least one request")
    return count, size, f"{total:064x}"


def _close(client: anthropic.Anthropic) -> None:
    client.close()


def _submitted(batch: MessageBatch) -> SubmittedBatch:
    return SubmittedBatch(provider_batch_id=batch.id, provider_status=batch.processing_status,
                          raw=batch.model_dump(mode="json"))
