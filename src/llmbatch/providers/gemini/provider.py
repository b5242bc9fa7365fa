"""``GeminiProvider``: Gemini Developer API Batch Mode on the official ``google-genai`` SDK.

Which calls go through the SDK and which are raw HTTP (same base URL, key and httpx2 client):

- SDK: the resumable file upload, file-mode ``batches.create``, ``batches.list`` (adoption),
  ``batches.cancel``/``delete`` and ``files.delete``.
- Raw: **inline** create, because the SDK only builds inline requests from its typed
  snake_case models (a REST body such as a ``native`` line would be re-serialised through
  ``GenerateContentConfig``, hoisting and dropping fields), so it could not pass a body
  through untouched; **get**, because the SDK hides ``batchStats`` and the Operation's
  ``error``; and the result-file **download**, which the SDK returns as one ``bytes``.

Inline vs file mode is chosen per batch by size: the whole create request must stay under
``INLINE_MAX_BYTES`` (Google's limit is 20 MB; ``options.inline_max_bytes`` can lower it). Its
own settings (``providers.gemini.options``) are ``GeminiOptions``.

Embeddings batches (``models/{model}:asyncBatchEmbedContent``, same ``batch`` envelope) always
go through the Files API, lines ``{"key", "request": EmbedContentRequest}``, whose result lines
carry the ``key`` back. Inline embedding items are ``{"request": EmbedContentRequest}`` and
nothing else: the item schema has no ``metadata`` (google-genai 3.6.1
``batches._EmbedContentBatch_to_mldev`` never sends one; the emulator refuses it as Google's
proto parser does), so inline results could only be joined by position, and llmbatch keeps no
per-batch order to join them with (docs/providers/gemini.md, "Embeddings"). Their Operations
are polled, listed, cancelled and read like chat ones. The create is raw: the SDK's
``batches.create_embeddings`` is marked experimental.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any, ClassVar, Final, Literal

import structlog
from pydantic import Field, field_validator

from llmbatch.config import LatencyPrior, ProviderConfig
from llmbatch.domain.models import (
    BatchProgress,
    Endpoint,
    ItemResult,
    RequestLine,
    SubmittedBatch,
)
from llmbatch.domain.retention import Deletion
from llmbatch.errors import InputError, ProviderError
from llmbatch.providers.base import BatchProvider, EncodedLine, ProviderOptions, output_limit
from llmbatch.providers.cleanup import delete_each, delete_orphan
from llmbatch.providers.gemini import webhooks as gemini_webhooks
from llmbatch.providers.gemini.errors import PROVIDER, calling
from llmbatch.providers.gemini.request_schema import native_problems
from llmbatch.providers.gemini.translate import (
    check_web_urls,
    to_embed_content,
    to_generate_content,
)
from llmbatch.providers.gemini.wire import (
    inline_entries,
    item_from_entry,
    progress_from_operation,
    short_state,
)
from llmbatch.providers.jsonl import compact_json, display_name, parse_result_stream, spool_jsonl
from llmbatch.providers.responses_body import encode_as_chat
from llmbatch.providers.sdk_client import LazyClient
from llmbatch.providers.webhooks import WebhookNotice

if TYPE_CHECKING:  # the SDK is imported where a call needs it: ``submit`` never loads it
    import httpx2
    from google import genai
    from google.genai import types

__all__ = ["DEFAULT_API_VERSION", "DEFAULT_BASE_URL", "INLINE_MAX_BYTES", "GeminiOptions",
           "GeminiProvider"]

log = structlog.get_logger(__name__)

DEFAULT_BASE_URL: Final = "https://generativelanguage.googleapis.com"
# The Batch Mode guide and Google's API description use v1beta; google-genai 3.x defaults to
# v1, where batch support is not documented. config.api_version can choose v1.
DEFAULT_API_VERSION: Final = "v1beta"
# "20 MB" read as decimal megabytes, the smaller reading (the emulator enforces 20 MiB).
INLINE_MAX_BYTES: Final = 20 * 1000 * 1000
_ENVELOPE_BYTES: Final = 256  # {"batch":{"displayName":...,"inputConfig":{"requests":...}}}
_INLINE_ITEM_OVERHEAD: Final = 32  # {"request":...,"metadata":{"key":...}} minus the line's
FIND_BY_TAG_MAX_BATCHES: Final = 5_000
FIND_BY_TAG_PAGE_SIZE: Final = 100
_CREATE_METHODS: Final = {Endpoint.CHAT: "batchGenerateContent",
                          Endpoint.RESPONSES: "batchGenerateContent",
                          Endpoint.EMBEDDINGS: "asyncBatchEmbedContent"}


class GeminiOptions(ProviderOptions):
    """``providers.gemini.options``."""

    api_version: Literal["v1beta", "v1"] = Field(
        DEFAULT_API_VERSION, description="The API version in every URL")
    inline_max_bytes: int | None = Field(
        None, gt=0, description="Largest create request sent inline; above it, the Files API "
                                "(can only lower Google's 20 MB)")

    @field_validator("inline_max_bytes")
    @classmethod
    def _not_above_google(cls, value: int | None) -> int | None:
        if value is not None and value > INLINE_MAX_BYTES:
            raise ValueError(f"{value} is above the provider's own limit of {INLINE_MAX_BYTES} "
                             "(config can only lower it)")
        return value


@dataclass(frozen=True)
class _Clients:
    """The SDK client and the raw client beneath it (one connection pool), with the key."""

    sdk: genai.Client
    http: httpx2.Client
    key: str


class GeminiProvider(BatchProvider):
    """Gemini batches for chat (``batchGenerateContent``) and embeddings
    (``asyncBatchEmbedContent``)."""

    name: ClassVar[str] = "gemini"
    requires_api_key: ClassVar[bool] = True
    label: ClassVar[str] = "Gemini"
    max_requests: ClassVar[int] = 1_000_000  # no documented count limit; size limits bind
    max_bytes: ClassVar[int] = 2 * 1000 * 1000 * 1000  # input file <= 2 GB
    # Responses bodies are translated through their chat meaning (``responses_body``).
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.CHAT, Endpoint.EMBEDDINGS,
                                                          Endpoint.RESPONSES})
    # Gemini limits the prompt alone (input token limit); output has its own cap.
    window_counts_output: ClassVar[bool] = False
    deadline_s: ClassVar[float] = 48 * 3600  # EXPIRED after 48 h pending or running (C.3)
    # File mode: start the resumable upload, send it, create; cleanup deletes input, output
    # and the batch.
    call_costs: ClassVar[Mapping[str, int]] = MappingProxyType({"submit": 3, "cleanup": 3})
    options_model: ClassVar[type[ProviderOptions]] = GeminiOptions
    options: GeminiOptions
    # Long queued phases read no progress: a smaller budget keeps the mean delay near 15 s.
    # Prices: genai-prices lists this vendor as 'google'; a batch bills half of every
    # synchronous rate (PROVIDER_APIS C.7: 50% of the standard price).
    price_catalogue_id: ClassVar[str | None] = 'google'
    batch_price_factor: ClassVar[Decimal] = Decimal("0.5")
    latency_prior: ClassVar[LatencyPrior] = LatencyPrior(
        median_s=7200, sigma=1.0, finalize_fraction=0.01, budget_scale=0.2)

    def __init__(self, config: ProviderConfig, *,
                 transport: httpx2.BaseTransport | None = None) -> None:
        """``transport`` swaps the HTTP transport under both the SDK and the raw calls."""
        super().__init__(config)
        self._transport = transport
        self._clients = LazyClient(self._build_clients, lambda built: built.http.close())

    @property
    def base_url(self) -> str:
        """Server root without the API version (``http://H:P/gemini`` for the emulator)."""
        return (self.config.base_url or DEFAULT_BASE_URL).rstrip("/")

    @property
    def api_version(self) -> str:
        return self.options.api_version

    @property
    def inline_max_bytes(self) -> int:
        return self.options.inline_max_bytes or INLINE_MAX_BYTES

    def preload(self) -> None:
        import httpx2  # noqa: F401
        from google import genai  # noqa: F401
        from google.genai import types  # noqa: F401

    def _build_clients(self) -> _Clients:
        """SDK client and raw client, built once on first use from config only."""
        import httpx2
        from google import genai
        from google.genai import types

        key = self.require_api_key()
        http = httpx2.Client(transport=self._transport, timeout=httpx2.Timeout(
            self.config.timeout_s, connect=self.config.connect_timeout_s))
        retries = self.config.sdk_max_retries
        sdk = genai.Client(api_key=key, http_options=types.HttpOptions(
            base_url=self.base_url, api_version=self.api_version,
            timeout=int(self.config.timeout_s * 1000), httpx_client=http,
            # None keeps the SDK default: no retries (llmbatch retries tasks).
            retry_options=types.HttpRetryOptions(attempts=retries + 1) if retries else None))
        return _Clients(sdk=sdk, http=http, key=key)


    webhook_events: ClassVar[frozenset[str]] = gemini_webhooks.BATCH_EVENTS

    def read_webhook(self, secret: str, body: bytes,
                     headers: Mapping[str, str]) -> WebhookNotice | None:
        """Gemini project webhooks (C.9): ``providers/gemini/webhooks.py``."""
        return gemini_webhooks.read_webhook(secret, body, headers)
    def close(self) -> None:
        """Close the HTTP client (long-lived workers keep one adapter; tests close theirs)."""
        self._clients.close()

    def _url(self, path: str) -> str:
        return f"{self.base_url}/{self.api_version}/{path}"

    def _raw(self, method: str, path: str, *, content: bytes | None = None) -> dict[str, Any]:
        clients = self._clients.get()
        http = clients.http
        headers = {"x-goog-api-key": clients.key}
        if content is not None:
            headers["content-type"] = "application/json"
        response = http.request(method, self._url(path), content=content, headers=headers)
        _raise_for_response(response)
        body = response.json() if response.content else {}
        return body if isinstance(body, dict) else {}

    # -- build and submit ------------------------------------------------------------------

    def max_output_tokens(self, request: RequestLine, *, endpoint: Endpoint) -> int | None:
        """A native body's ``generationConfig.maxOutputTokens`` (thinking included), else the
        neutral body's limit."""
        if endpoint is Endpoint.EMBEDDINGS:
            return 0
        if request.native is not None:
            config = request.native.get("generationConfig")
            return output_limit(config if isinstance(config, Mapping) else None,
                                "maxOutputTokens")
        return output_limit(request.body, "max_completion_tokens", "max_tokens",
                            "max_output_tokens")

    def native_problems(self, native: Mapping[str, Any], *, endpoint: Endpoint,
                        model: str) -> list[InputError]:
        """``native`` checked against the vendored request description (``request_schema``)."""
        return native_problems(native, model=model, endpoint=Endpoint.CHAT
                               if endpoint is Endpoint.RESPONSES else endpoint)

    def encode(self, request: RequestLine, *, endpoint: Endpoint, model: str) -> EncodedLine:
        """``{"key": custom_id, "request": GenerateContentRequest | EmbedContentRequest}``;
        ``native`` untouched."""
        if endpoint not in self.endpoints:
            raise InputError(f"Gemini batches are not supported for the {endpoint!r} "
                             "endpoint by llmbatch", field="endpoint")
        if not isinstance(request.custom_id, str) or not request.custom_id:
            raise InputError("must be a non-empty string", field="custom_id")
        payload = encode_as_chat(request, endpoint, _payload)
        if endpoint is not Endpoint.EMBEDDINGS:
            where = "native" if request.native is not None else \
                "body.input" if endpoint is Endpoint.RESPONSES else "body.messages"
            check_web_urls(payload, model=model, field=where)
        data = compact_json({"key": request.custom_id, "request": payload}, field="body")
        limit = self.effective_limits(model).max_bytes
        if len(data) + 1 > limit:
            raise InputError(f"the request is {len(data) + 1} bytes encoded; a Gemini batch "
                             f"input file holds at most {limit}", field="body")
        return EncodedLine(provider_key=request.custom_id, data=data)

    def submit(self, lines: Iterable[bytes], *, tag: str, endpoint: Endpoint,
               model: str) -> SubmittedBatch:
        """Spool the lines to disk, then send them inline when the whole create request fits
        under ``inline_max_bytes`` (chat only: embeddings always take the file, see the
        module docstring), else upload them (Files API) and create from the file.
        ``display_name`` carries ``tag`` for ``find_by_tag``. Create is not idempotent: after
        an ambiguous failure, callers look the tag up before sending again."""
        client = self._clients.get().sdk
        model_name = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        create_path = f"{model_name}:{_CREATE_METHODS[endpoint]}"
        from google.genai import types

        with tempfile.TemporaryFile(prefix="llmbatch-gemini-", suffix=".jsonl") as spool:
            count, size = spool_jsonl(lines, spool, self.effective_limits(model), vendor="Gemini")
            spool.seek(0)
            body = None
            inline_size = size + count * _INLINE_ITEM_OVERHEAD + len(tag) + _ENVELOPE_BYTES
            if endpoint is not Endpoint.EMBEDDINGS and inline_size <= self.inline_max_bytes:
                body = _inline_body(spool, tag)
            if body is not None and len(body) <= self.inline_max_bytes:
                with calling("batches.create"):
                    operation = self._raw("POST", create_path, content=body)
                log.info("llmbatch.gemini.batch_created", mode="inline", tag=tag,
                         endpoint=endpoint, provider_batch_id=operation.get("name"), requests=count)
                return _submitted(operation)
            spool.seek(0)
            with calling("files.upload"):
                uploaded = client.files.upload(file=spool, config=types.UploadFileConfig(
                    mime_type="application/jsonl", display_name=display_name(tag)))
        file_name = str(uploaded.name)
        job: types.BatchJob | None = None
        operation = {}
        try:
            with calling("batches.create"):
                if endpoint is Endpoint.EMBEDDINGS:
                    operation = self._raw("POST", create_path, content=compact_json({"batch": {
                        "displayName": tag, "inputConfig": {"fileName": file_name}}},
                        field="body"))
                else:
                    job = client.batches.create(
                        model=model_name, src=file_name,
                        config=types.CreateBatchJobConfig(display_name=tag))
        except ProviderError:
            delete_orphan(file_name, self._delete_file, provider=PROVIDER)
            raise
        if job is None:
            log.info("llmbatch.gemini.batch_created", mode="file", tag=tag, endpoint=endpoint,
                     provider_batch_id=operation.get("name"), input_file=file_name,
                     requests=count)
            return _submitted(operation, input_file=file_name)
        log.info("llmbatch.gemini.batch_created", mode="file", tag=tag, endpoint=endpoint,
                 provider_batch_id=job.name, input_file=file_name, requests=count)
        return SubmittedBatch(provider_batch_id=str(job.name),
                              provider_status=short_state(job.state), input_file_id=file_name,
                              raw=job.model_dump(mode="json", exclude_none=True))

    def find_by_tag(self, tag: str) -> SubmittedBatch | None:
        """The first listed batch whose ``display_name`` is ``tag``, among the newest
        ``FIND_BY_TAG_MAX_BATCHES`` (a list without a filter cannot prove more absence)."""
        from google.genai import types

        client = self._clients.get().sdk
        with calling("batches.list"):
            pager = client.batches.list(config=types.ListBatchJobsConfig(
                page_size=FIND_BY_TAG_PAGE_SIZE))
            for seen, job in enumerate(pager):
                if job.display_name == tag:
                    return SubmittedBatch(
                        provider_batch_id=str(job.name), provider_status=short_state(job.state),
                        raw=job.model_dump(mode="json", exclude_none=True))
                if seen + 1 >= FIND_BY_TAG_MAX_BATCHES:
                    log.warning("llmbatch.gemini.find_by_tag_capped", tag=tag)
                    break
        return None

    # -- follow up -------------------------------------------------------------------------

    def poll(self, provider_batch_id: str) -> BatchProgress:
        """State, ``batchStats`` counters, output reference and the Operation ``error``."""
        with calling("batches.get"):
            return progress_from_operation(self._raw("GET", _batch_name(provider_batch_id)))

    def iter_results(self, provider_batch_id: str, progress: BatchProgress) -> Iterator[ItemResult]:
        """Stream the result file line by line, or read the inline responses (bounded by the
        20 MB inline input). Entries without a readable key are logged and skipped: their items
        get no result, which the service layer treats as retryable. A result file Google no
        longer has raises ``ResourceGoneError`` (see ``errors``)."""
        refs, status = progress.result_refs, progress.provider_status
        if not progress.ended:
            raise ValueError(f"{provider_batch_id} has not ended ({status})")
        if "responses_file" in refs:
            yield from self._iter_file(provider_batch_id, refs["responses_file"], status)
        elif "inline" in refs:
            yield from self._iter_inline(provider_batch_id, status)

    def _iter_file(self, batch: str, file_name: str, status: str) -> Iterator[ItemResult]:
        clients = self._clients.get()
        url = self._url(f"{file_name}:download")

        def parse(raw: bytes, line_no: int) -> ItemResult | None:  # the stream numbers it
            try:
                entry = json.loads(raw)
            except (ValueError, RecursionError):  # not JSON, or nested past the parser
                return None
            key = entry.get("key") if isinstance(entry, dict) else None
            if not isinstance(key, str) or not isinstance(entry, dict):
                return None
            return item_from_entry(key, entry, batch_status=status)

        with calling("files.download"), clients.http.stream(
                "GET", url, params={"alt": "media"},
                headers={"x-goog-api-key": clients.key}) as response:
            _raise_for_response(response)
            yield from parse_result_stream(response.iter_bytes(), parse, provider=PROVIDER,
                                           provider_batch_id=batch, file=file_name)

    def _iter_inline(self, batch: str, status: str) -> Iterator[ItemResult]:
        with calling("batches.get"):
            operation = self._raw("GET", _batch_name(batch))
        for index, entry in enumerate(inline_entries(operation)):
            metadata = entry.get("metadata") if isinstance(entry, dict) else None
            key = metadata.get("key") if isinstance(metadata, dict) else None
            if not isinstance(key, str) or not isinstance(entry, dict):
                log.error("llmbatch.gemini.inline_response_without_key", provider_batch_id=batch,
                          index=index)
                continue
            yield item_from_entry(key, entry, batch_status=status).at_line(index + 1)

    def cancel(self, provider_batch_id: str) -> BatchProgress:
        """Ask Gemini to cancel; cancelling a batch that already ended returns its progress."""
        client = self._clients.get().sdk
        try:
            with calling("batches.cancel"):
                client.batches.cancel(name=_batch_name(provider_batch_id))
        except ProviderError as exc:
            return self.progress_if_ended(provider_batch_id, exc)
        return self.poll(provider_batch_id)

    def delete_batch(self, provider_batch_id: str) -> None:
        """Delete the batch resource (results go with it)."""
        client = self._clients.get().sdk
        with calling("batches.delete"):
            client.batches.delete(name=_batch_name(provider_batch_id))

    def cleanup(self, provider_batch_id: str, progress: BatchProgress) -> list[Deletion]:
        """Delete the uploaded input file, the result file and the batch (which holds inline
        results): whether deleting the batch also drops its result file is not documented
        (PROVIDER_APIS C.8), so each goes on its own."""
        files = delete_each(((kind, progress.result_refs.get(key)) for kind, key in
                             (("input_file", "input_file"), ("result_file", "responses_file"))),
                            self._delete_file)
        return files + delete_each([("batch", provider_batch_id)], self.delete_batch)

    def _delete_file(self, name: str) -> None:
        with calling("files.delete"):
            self._clients.get().sdk.files.delete(name=name)


def _payload(request: RequestLine, endpoint: Endpoint) -> dict[str, Any]:
    """The ``GenerateContentRequest`` / ``EmbedContentRequest`` of a request (a native body
    untouched); a Responses body arrives here as its chat meaning."""
    if request.native is not None:
        return request.native
    if not isinstance(request.body, dict):
        raise InputError("missing or not a JSON object", field="body")
    return to_embed_content(request.body) if endpoint is Endpoint.EMBEDDINGS \
        else to_generate_content(request.body)


def _raise_for_response(response: httpx2.Response) -> None:
    """The SDK's own error for a failed raw call (``errors.translate_error`` reads it)."""
    from google.genai import errors as genai_errors

    genai_errors.APIError.raise_for_response(response)


def _batch_name(provider_batch_id: str) -> str:
    return provider_batch_id if provider_batch_id.startswith("batches/") \
        else f"batches/{provider_batch_id}"


def _inline_body(spool: IO[bytes], tag: str) -> bytes:
    """The inline create body of a chat batch, built from the spooled lines (``key`` ->
    ``metadata.key``, which ``InlinedRequest`` has and ``InlinedEmbedContentRequest`` has not)."""
    items = []
    for raw in spool:
        line = json.loads(raw)
        items.append({"request": line["request"], "metadata": {"key": line["key"]}})
    return compact_json({"batch": {"displayName": tag,
                                   "inputConfig": {"requests": {"requests": items}}}},
                        field="body")


def _submitted(operation: dict[str, Any], *, input_file: str | None = None) -> SubmittedBatch:
    metadata = operation.get("metadata") or {}
    return SubmittedBatch(provider_batch_id=str(operation.get("name")),
                          provider_status=short_state(metadata.get("state")),
                          input_file_id=input_file, raw=progress_from_operation(operation).raw)
