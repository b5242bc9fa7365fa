"""``OpenAIProvider``: the OpenAI Batch API (``/v1/files`` + ``/v1/batches``) on the official SDK.

The wire format lives in ``wire`` and the exception mapping in ``errors``; this module holds the
calls. The SDK is imported, and its client built, on first use (a process that only checks and
stores jobs, ``submit``, never loads it) from ``ProviderConfig`` only: the adapter never
reads the environment, and the base URL is always passed so that ``OPENAI_BASE_URL`` in a
worker's environment cannot silently redirect batches. Its own settings
(``providers.openai.options``) are ``OpenAIOptions``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, cast

import structlog

from llmbatch.config import LatencyPrior, ProviderConfig, RetentionConfig
from llmbatch.domain.model_rules import ModelRules
from llmbatch.domain.models import (
    BatchProgress,
    Endpoint,
    ItemResult,
    RequestLine,
    SubmittedBatch,
)
from llmbatch.domain.requests import ENDPOINT_URLS, NEUTRAL_SCHEMAS
from llmbatch.domain.retention import Deletion
from llmbatch.errors import InputError, ProviderError
from llmbatch.providers.base import BatchProvider, EncodedLine, PlainEncoder, ProviderOptions
from llmbatch.providers.cleanup import delete_each, delete_orphan
from llmbatch.providers.jsonl import display_name, parse_result_stream, spool_jsonl
from llmbatch.providers.openai import webhooks as openai_webhooks
from llmbatch.providers.openai.errors import PROVIDER, calling
from llmbatch.providers.openai.model_rules import (
    CHAT_MODEL,
    EMBEDDING_MODEL,
    REASONING_HINTS,
    REASONING_MODEL,
    REASONING_REFUSED,
)
from llmbatch.providers.openai.wire import (
    encode_line,
    parse_result_line,
    plain_line_encoder,
    progress_from_batch,
)
from llmbatch.providers.sdk_client import LazyClient
from llmbatch.providers.webhooks import WebhookNotice
from llmbatch.schemas import neutral_schemas

if TYPE_CHECKING:
    import openai
    from openai.types import Batch

__all__ = ["DEFAULT_BASE_URL", "TAG_METADATA_KEY", "OpenAIOptions", "OpenAIProvider"]

log = structlog.get_logger(__name__)

DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
TAG_METADATA_KEY: Final = "llmbatch_batch_id"
_METADATA_VALUE_MAX: Final = 512

# find_by_tag scans the batch list newest first and stops at whichever bound comes first.
# Adoption runs from repair minutes after a crashed submit (a lease is 2 min), so the batch, if
# it exists, is near the top. The horizon covers a worker fleet that was down for days; the
# page cap (5,000 batches, i.e. 2.5 h at OpenAI's maximum of 2,000 creations per hour) keeps a
# busy organisation from turning each repair into hundreds of list calls.
FIND_BY_TAG_HORIZON_S: Final = 7 * 24 * 3600
FIND_BY_TAG_PAGE_SIZE: Final = 100  # the API's maximum
FIND_BY_TAG_MAX_PAGES: Final = 50

# File ``expires_after`` and batch ``output_expires_after`` take 1 hour to 30 days
# (PROVIDER_APIS A.9). The input must outlive the batch, which may run 24 h: what happens to a
# running batch whose input expired is not documented, so a shorter input expiry is refused.
EXPIRY_MIN_S: Final = 3600
EXPIRY_MAX_S: Final = 30 * 24 * 3600
INPUT_EXPIRY_MIN_S: Final = 24 * 3600


class OpenAIOptions(ProviderOptions):
    """``providers.openai.options``."""

    completion_window: Literal["24h"] = "24h"  # the only value the Batch API takes


class OpenAIProvider(BatchProvider):
    """OpenAI batches for chat completions, embeddings, responses, legacy completions and
    moderations.

    ``max_bytes`` is 200 MB read as decimal megabytes (200,000,000 bytes): OpenAI does not say
    whether "200 MB" means MB or MiB, and the smaller reading cannot be refused for size.
    """

    name: ClassVar[str] = "openai"
    label: ClassVar[str] = "OpenAI"
    max_requests: ClassVar[int] = 50_000
    max_bytes: ClassVar[int] = 200 * 1000 * 1000
    # Every batch endpoint of PROVIDER_APIS A.1.2 whose body is JSON text (A.8).
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(Endpoint)
    requires_api_key: ClassVar[bool] = True
    # submit: upload + create; fetch: output and error files; cleanup: three file deletes.
    call_costs: ClassVar[Mapping[str, int]] = MappingProxyType(
        {"submit": 2, "fetch": 2, "cleanup": 3})
    options_model: ClassVar[type[ProviderOptions]] = OpenAIOptions
    options: OpenAIOptions
    # Counts move live; "finalizing" after them takes a few percent of the run.
    # Prices: genai-prices lists this vendor as 'openai'; a batch bills half of every
    # synchronous rate (PROVIDER_APIS A.7: 50% of the rate that applies to each token class).
    price_catalogue_id: ClassVar[str | None] = 'openai'
    batch_price_factor: ClassVar[Decimal] = Decimal("0.5")
    latency_prior: ClassVar[LatencyPrior] = LatencyPrior(median_s=1200, sigma=1.1,
                                                         finalize_fraction=0.05)

    def __init__(self, config: ProviderConfig, *, client: openai.OpenAI | None = None) -> None:
        """``client`` injects a ready SDK client (tests, custom transports); otherwise one is
        built from ``config`` on first use."""
        super().__init__(config)
        self._client = LazyClient(self._build_client, _close, injected=client)

    @property
    def client(self) -> openai.OpenAI:
        """The SDK client, built once on first use (a missing key fails here)."""
        return self._client.get()


    webhook_events: ClassVar[frozenset[str]] = openai_webhooks.BATCH_EVENTS

    def read_webhook(self, secret: str, body: bytes,
                     headers: Mapping[str, str]) -> WebhookNotice | None:
        """OpenAI project webhooks (A.10): ``providers/openai/webhooks.py``."""
        return openai_webhooks.read_webhook(secret, body, headers)
    def close(self) -> None:
        """Close the SDK client this adapter built (an injected one belongs to its owner)."""
        self._client.close()

    def preload(self) -> None:
        import openai  # noqa: F401

    def _build_client(self) -> openai.OpenAI:
        import openai

        return openai.OpenAI(
            api_key=self.require_api_key(),
            base_url=self.config.base_url or DEFAULT_BASE_URL,
            timeout=openai.Timeout(self.config.timeout_s, connect=self.config.connect_timeout_s),
            # llmbatch retries whole tasks with backoff; SDK retries on top would multiply.
            max_retries=self.config.sdk_max_retries,
        )

    def model_rules(self, model: str, *, endpoint: Endpoint) -> ModelRules:
        """The catalogue's context window, plus ``model_rules``: what reasoning models refuse,
        and which endpoints embedding and chat models serve."""
        rules = super().model_rules(model, endpoint=endpoint)
        if EMBEDDING_MODEL.match(model):
            return replace(rules, endpoints=frozenset({Endpoint.EMBEDDINGS}))
        if CHAT_MODEL.match(model):
            rules = replace(rules, endpoints=self.endpoints - {Endpoint.EMBEDDINGS})
        if REASONING_MODEL.match(model):
            rules = replace(rules, refused=REASONING_REFUSED, hints=REASONING_HINTS,
                            sources=(*rules.sources, "llmbatch providers/openai/model_rules.py"))
        return rules

    def native_problems(self, native: Mapping[str, Any], *, endpoint: Endpoint,
                        model: str) -> list[InputError]:
        """A native OpenAI body is checked against the same schemas as the neutral form (which
        is OpenAI's body by design), ``model`` filled in as ``encode`` does."""
        name = NEUTRAL_SCHEMAS.get(endpoint)
        if name is None:
            return []
        schemas = neutral_schemas()
        found = schemas.input_errors(name, {"model": model, **native}, prefix="native")
        if not found:
            allowed = schemas.property_names(name)
            found = [InputError(f"unknown field '{key}' (not in OpenAI's {name})",
                                field=f"native.{key}") for key in native if key not in allowed]
        return found

    def encode(self, request: RequestLine, *, endpoint: Endpoint, model: str) -> EncodedLine:
        """The OpenAI batch line for ``request`` (see ``wire.encode_line``)."""
        if endpoint not in self.endpoints:
            raise InputError(f"OpenAI batches do not support the {endpoint!r} endpoint",
                             field="endpoint")
        return encode_line(request, endpoint=endpoint, model=model,
                           max_line_bytes=self.effective_limits(model).max_bytes)

    def plain_encoder(self, *, endpoint: Endpoint, model: str) -> PlainEncoder:
        """``encode`` for a job's plain chat lines: only the line is written, around the
        body's JSON, in a frame made once (``wire.plain_line_encoder``)."""
        if endpoint not in self.endpoints:
            return super().plain_encoder(endpoint=endpoint, model=model)
        return plain_line_encoder(endpoint=endpoint, model=model,
                                  max_line_bytes=self.effective_limits(model).max_bytes)

    def retention_problems(self, retention: RetentionConfig, *, where: str) -> list[str]:
        """Expiries within OpenAI's bounds (1 h to 30 days), the input's at least 24 h."""
        problems = []
        for key, low in (("input_expires_after_s", INPUT_EXPIRY_MIN_S),
                         ("output_expires_after_s", EXPIRY_MIN_S)):
            value = getattr(retention, key)
            if value is not None and not low <= value <= EXPIRY_MAX_S:
                why = (" (the input must outlive the batch's 24 h window)"
                       if low == INPUT_EXPIRY_MIN_S else "")
                problems.append(f"{where}.{key}: {value} is outside OpenAI's range, {low} to "
                                f"{EXPIRY_MAX_S} seconds{why}")
        return problems

    def submit_for_job(self, lines: Iterable[bytes], *, tag: str, endpoint: Endpoint,
                       model: str, retention: RetentionConfig) -> SubmittedBatch:
        """``submit`` with the job's expiries (``expires_after``, ``output_expires_after``)."""
        return self.submit(lines, tag=tag, endpoint=endpoint, model=model, retention=retention)

    def submit(self, lines: Iterable[bytes], *, tag: str, endpoint: Endpoint,
               model: str, retention: RetentionConfig | None = None) -> SubmittedBatch:
        """Spool ``lines`` to a temporary file, upload it and create a batch tagged ``tag``.

        The file is spooled to disk (``TMPDIR``), never memory, and the SDK uploads it in 64 KiB
        chunks. If the create call fails, the uploaded file is deleted: besides tidiness, when
        the failure was a timeout after OpenAI did create the batch, a vanished input file may
        make that phantom batch fail validation rather than run next to the retry (whether
        OpenAI reads the file before answering is not documented). So callers must still
        ``find_by_tag`` before re-submitting after an ambiguous (transient) failure.

        ``retention`` (else the provider config's) sets the input file's ``expires_after`` and
        the batch's ``output_expires_after`` when it names them (PROVIDER_APIS A.9).
        """
        retention = retention or self.config.retention
        if len(tag) > _METADATA_VALUE_MAX:
            raise ValueError(f"tag longer than {_METADATA_VALUE_MAX} characters: {tag[:40]}...")
        url = ENDPOINT_URLS[endpoint]
        client = self.client  # a missing key fails before any work
        with tempfile.TemporaryFile(prefix="llmbatch-openai-", suffix=".jsonl") as spool:
            spool_jsonl(lines, spool, self.effective_limits(model), vendor="OpenAI")
            spool.seek(0)
            with calling("files.create"):
                upload = (display_name(tag) + ".jsonl", spool, "application/jsonl")
                uploaded = client.files.create(
                    file=upload, purpose="batch",
                    **_expiry("expires_after", retention.input_expires_after_s))
        try:
            with calling("batches.create"):
                batch = client.batches.create(
                    input_file_id=uploaded.id,
                    endpoint=cast(Any, url),
                    completion_window=self.options.completion_window,
                    metadata={TAG_METADATA_KEY: tag},
                    **_expiry("output_expires_after", retention.output_expires_after_s),
                )
        except ProviderError:
            delete_orphan(uploaded.id, self._delete_file, provider=PROVIDER)
            raise
        log.info("llmbatch.openai.batch_created", provider_batch_id=batch.id, tag=tag,
                 input_file_id=uploaded.id)
        return _submitted(batch)

    def find_by_tag(self, tag: str) -> SubmittedBatch | None:
        """The newest batch whose metadata carries ``tag``, looking back a bounded distance.

        ``None`` means "none within ``FIND_BY_TAG_HORIZON_S`` or the newest
        ``FIND_BY_TAG_MAX_PAGES`` pages", the only kind of absence a list without a metadata
        filter can prove (the bounds are explained where they are defined).
        """
        horizon = time.time() - FIND_BY_TAG_HORIZON_S
        with calling("batches.list"):
            page = self.client.batches.list(limit=FIND_BY_TAG_PAGE_SIZE)
            for _ in range(FIND_BY_TAG_MAX_PAGES):
                for batch in page.data:
                    if (batch.metadata or {}).get(TAG_METADATA_KEY) == tag:
                        return _submitted(batch)
                # The list is newest first (observed; the API reference does not promise it),
                # so only a page made entirely of old batches ends the search: a page that is
                # not strictly ordered cannot stop it early.
                if not page.has_next_page() or all(b.created_at < horizon for b in page.data):
                    return None
                page = page.get_next_page()
        log.warning("llmbatch.openai.find_by_tag_capped", tag=tag,
                    pages=FIND_BY_TAG_MAX_PAGES, page_size=FIND_BY_TAG_PAGE_SIZE)
        return None

    def poll(self, provider_batch_id: str) -> BatchProgress:
        """Status, live counts, result file ids and (for ``failed``) the validation errors."""
        with calling("batches.retrieve"):
            batch = self.client.batches.retrieve(provider_batch_id)
        return progress_from_batch(batch.model_dump(mode="json"))

    def iter_results(self, provider_batch_id: str, progress: BatchProgress) -> Iterator[ItemResult]:
        """Stream the output file, then the error file, one parsed line at a time.

        ``progress`` must come from a poll that saw the batch ended. A batch that ``failed``
        validation ran nothing and yields nothing. A line whose custom_id cannot be read is
        logged and skipped (``parse_result_stream``). A file OpenAI no longer has (deleted,
        past its expiry) raises ``ResourceGoneError``.
        """
        if progress.provider_status == "failed":
            return
        for key in ("output_file_id", "error_file_id"):
            file_id = progress.result_refs.get(key)
            if file_id:
                yield from self._iter_file(provider_batch_id, file_id)

    def _iter_file(self, provider_batch_id: str, file_id: str) -> Iterator[ItemResult]:
        with calling("files.content"), \
                self.client.files.with_streaming_response.content(file_id) as response:
            yield from parse_result_stream(response.iter_bytes(), parse_result_line,
                                           provider=PROVIDER,
                                           provider_batch_id=provider_batch_id, file=file_id)

    def cancel(self, provider_batch_id: str) -> BatchProgress:
        """Ask OpenAI to cancel. Cancelling a batch that already ended is not an error: its
        progress is returned, so a late user cancel cannot fail a finished job's cleanup."""
        try:
            with calling("batches.cancel"):
                batch = self.client.batches.cancel(provider_batch_id)
        except ProviderError as exc:
            return self.progress_if_ended(provider_batch_id, exc)
        return progress_from_batch(batch.model_dump(mode="json"))

    def cleanup(self, provider_batch_id: str, progress: BatchProgress) -> list[Deletion]:
        """Delete the input, output and error files (OpenAI has no batch delete, A.1.4)."""
        return delete_each(((kind, progress.result_refs.get(f"{kind}_id"))
                            for kind in ("input_file", "output_file", "error_file")),
                           self._delete_file)

    def _delete_file(self, file_id: str) -> None:
        with calling("files.delete"):
            self.client.files.delete(file_id)


def _close(client: openai.OpenAI) -> None:
    client.close()


def _expiry(param: str, seconds: int | None) -> dict[str, Any]:
    """``param`` as the SDK takes it (anchored at the file's creation), or nothing."""
    if seconds is None:
        return {}
    return {param: {"anchor": "created_at", "seconds": seconds}}


def _submitted(batch: Batch) -> SubmittedBatch:
    return SubmittedBatch(provider_batch_id=batch.id, provider_status=batch.status,
                          input_file_id=batch.input_file_id, raw=batch.model_dump(mode="json"))
