"""``OpenAIProvider``: the OpenAI Batch API (``/v1/files`` + ``/v1/batches``) on the official SDK.

The wire format lives in ``wire`` and the exception mapping in ``errors``; this module holds the
calls. The SDK client is built on first use from ``ProviderConfig`` only: the adapter never
reads the environment, and the base URL is always passed so that ``OPENAI_BASE_URL`` in a
worker's environment cannot silently redirect batches.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal, cast

import openai
import structlog
from openai.types import Batch

from llmbatch.config import ProviderConfig
from llmbatch.domain.models import (
    BatchProgress,
    Endpoint,
    ItemResult,
    RequestLine,
    SubmittedBatch,
)
from llmbatch.domain.requests import ENDPOINT_URLS
from llmbatch.errors import AuthenticationError, InputError, ProviderError
from llmbatch.providers.base import BatchProvider, EncodedLine
from llmbatch.providers.jsonl import display_name, spool_jsonl
from llmbatch.providers.openai.errors import PROVIDER, SDK_ERRORS, calling
from llmbatch.providers.openai.wire import (
    encode_line,
    parse_result_line,
    progress_from_batch,
    split_lines,
)

__all__ = ["DEFAULT_BASE_URL", "TAG_METADATA_KEY", "OpenAIProvider"]

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


class OpenAIProvider(BatchProvider):
    """OpenAI batches for chat completions and embeddings.

    ``max_bytes`` is 200 MB read as decimal megabytes (200,000,000 bytes): OpenAI does not say
    whether "200 MB" means MB or MiB, and the smaller reading cannot be refused for size.
    """

    name: ClassVar[str] = "openai"
    max_requests: ClassVar[int] = 50_000
    max_bytes: ClassVar[int] = 200 * 1000 * 1000
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.CHAT, Endpoint.EMBEDDINGS})
    # submit: upload + create; fetch: output and error files; cleanup: three file deletes.
    call_costs: ClassVar[Mapping[str, int]] = MappingProxyType(
        {"submit": 2, "fetch": 2, "cleanup": 3})

    def __init__(self, config: ProviderConfig, *, client: openai.OpenAI | None = None) -> None:
        """``client`` injects a ready SDK client (tests, custom transports); otherwise one is
        built from ``config`` on first use."""
        super().__init__(config)
        self._client = self._injected = client
        self._client_lock = threading.Lock()

    @property
    def client(self) -> openai.OpenAI:
        """The SDK client, built once on first use (a missing key fails here, not at start-up,
        so a worker that never talks to OpenAI does not need its key)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._build_client()
        return self._client

    def close(self) -> None:
        """Close the SDK client this adapter built (an injected one belongs to its owner).

        Long-lived workers keep one adapter per process; whoever builds short-lived ones
        (tests, one-off CLI commands) closes them so pooled connections are not leaked."""
        with self._client_lock:
            client, self._client = self._client, self._injected
        if client is not None and client is not self._injected:
            client.close()

    def _build_client(self) -> openai.OpenAI:
        key = self.config.resolved_api_key()
        if not key:
            env = self.config.api_key_env
            hint = (f"set the environment variable {env} (named by providers.openai.api_key_env)"
                    if env else "set providers.openai.api_key_env to the name of the "
                    "environment variable that holds the key")
            raise AuthenticationError(f"no OpenAI API key: {hint}", provider=PROVIDER,
                                      code="missing_api_key")
        return openai.OpenAI(
            api_key=key,
            base_url=self.config.base_url or DEFAULT_BASE_URL,
            timeout=openai.Timeout(self.config.timeout_s, connect=self.config.connect_timeout_s),
            # llmbatch retries whole tasks with backoff; SDK retries on top would multiply.
            max_retries=self.config.sdk_max_retries,
        )

    def encode(self, request: RequestLine, *, endpoint: Endpoint, model: str) -> EncodedLine:
        """The OpenAI batch line for ``request`` (see ``wire.encode_line``)."""
        if endpoint not in self.endpoints:
            raise InputError(f"OpenAI batches do not support the {endpoint!r} endpoint",
                             field="endpoint")
        return encode_line(request, endpoint=endpoint, model=model,
                           max_line_bytes=self.effective_limits(model).max_bytes)

    def submit(self, lines: Iterable[bytes], *, tag: str, endpoint: Endpoint,
               model: str) -> SubmittedBatch:
        """Spool ``lines`` to a temporary file, upload it and create a batch tagged ``tag``.

        The file is spooled to disk (``TMPDIR``), never memory, and the SDK uploads it in 64 KiB
        chunks. If the create call fails, the uploaded file is deleted: besides tidiness, when
        the failure was a timeout after OpenAI did create the batch, a vanished input file may
        make that phantom batch fail validation rather than run next to the retry (whether
        OpenAI reads the file before answering is not documented). So callers must still
        ``find_by_tag`` before re-submitting after an ambiguous (transient) failure.
        """
        if len(tag) > _METADATA_VALUE_MAX:
            raise ValueError(f"tag longer than {_METADATA_VALUE_MAX} characters: {tag[:40]}...")
        url = ENDPOINT_URLS[endpoint]
        client = self.client  # a missing key fails before any work
        with tempfile.TemporaryFile(prefix="llmbatch-openai-", suffix=".jsonl") as spool:
            spool_jsonl(lines, spool, self.effective_limits(model), vendor="OpenAI")
            spool.seek(0)
            with calling("files.create"):
                upload = (display_name(tag) + ".jsonl", spool, "application/jsonl")
                uploaded = client.files.create(file=upload, purpose="batch")
        try:
            with calling("batches.create"):
                batch = client.batches.create(
                    input_file_id=uploaded.id,
                    endpoint=cast(Any, url),
                    completion_window=cast(Literal["24h"], self.config.completion_window),
                    metadata={TAG_METADATA_KEY: tag},
                )
        except ProviderError:
            self._delete_quietly(uploaded.id)
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
        logged and skipped, not raised: its item simply has no result, which the service layer
        must treat like any item a provider did not return (retryable), whereas raising would
        make one garbled line block every other result of the batch on every fetch attempt.
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
            for line_no, raw in enumerate(split_lines(response.iter_bytes()), start=1):
                if not raw.strip():
                    continue
                result = parse_result_line(raw)
                if result is None:
                    log.error("llmbatch.openai.result_line_unreadable",
                              provider_batch_id=provider_batch_id, file_id=file_id,
                              line=line_no, length=len(raw))
                    continue
                yield result.at_line(line_no)

    def cancel(self, provider_batch_id: str) -> BatchProgress:
        """Ask OpenAI to cancel. Cancelling a batch that already ended is not an error: its
        progress is returned, so a late user cancel cannot fail a finished job's cleanup."""
        try:
            with calling("batches.cancel"):
                batch = self.client.batches.cancel(provider_batch_id)
        except ProviderError as exc:
            return self.progress_if_ended(provider_batch_id, exc)
        return progress_from_batch(batch.model_dump(mode="json"))

    def cleanup(self, provider_batch_id: str, progress: BatchProgress) -> None:
        """Delete the input, output and error files when ``delete_files_after_fetch`` is set.

        Tries every file before raising the first failure; a file already gone (404) is fine.
        """
        if not self.config.delete_files_after_fetch:
            return
        first_error: ProviderError | None = None
        for key in ("input_file_id", "output_file_id", "error_file_id"):
            file_id = progress.result_refs.get(key)
            if not file_id:
                continue
            try:
                with calling("files.delete"):
                    self.client.files.delete(file_id)
            except ProviderError as exc:
                if exc.status_code != 404 and first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error

    def _delete_quietly(self, file_id: str) -> None:
        try:
            self.client.files.delete(file_id)
        except SDK_ERRORS as exc:
            log.warning("llmbatch.openai.orphan_file", file_id=file_id, error=repr(exc))


def _submitted(batch: Batch) -> SubmittedBatch:
    return SubmittedBatch(provider_batch_id=batch.id, provider_status=batch.status,
                          input_file_id=batch.input_file_id, raw=batch.model_dump(mode="json"))
