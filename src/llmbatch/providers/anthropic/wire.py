"""The Anthropic Message Batches wire format as plain functions: request items out, batch
objects and result lines in. No SDK, no I/O.

Kept apart from the calls (``provider``) so the rules (which custom_id is sent, what a
success is, which failures another batch can fix, how usage adds up) read in one place and
are tested without a network.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

from llmbatch.domain.models import (
    BatchPhase,
    BatchProgress,
    ItemError,
    ItemResult,
    RequestLine,
    Usage,
)
from llmbatch.domain.states import ItemStatus
from llmbatch.errors import InputError
from llmbatch.providers.anthropic.translate import to_anthropic_params
from llmbatch.providers.base import EncodedLine
from llmbatch.providers.jsonl import compact_json, read_result_line, split_lines

__all__ = [
    "CUSTOM_ID_PATTERN",
    "PHASES",
    "RETRYABLE_ERROR_TYPES",
    "encode_line",
    "finish_reason",
    "parse_result_line",
    "progress_from_batch",
    "provider_key",
    "split_lines",
    "usage_from_message",
]

CUSTOM_ID_PATTERN: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Error types that say "the service failed, not your request": another batch can succeed.
RETRYABLE_ERROR_TYPES: Final = frozenset({
    "api_error", "overloaded_error", "rate_limit_error", "timeout_error", "internal_error",
    "server_error", "service_unavailable",
})
# processing_status -> phase; anything else counts as running.
PHASES: Final = {"in_progress": BatchPhase.RUNNING, "canceling": BatchPhase.CANCELLING,
                 "ended": BatchPhase.ENDED}
_STOP: Final = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                "tool_use": "tool_calls", "refusal": "content_filter", "pause_turn": "length",
                "model_context_window_exceeded": "length"}


def provider_key(request: RequestLine) -> str:
    """The custom_id sent to Anthropic: the user's when Anthropic accepts it, else
    ``i<index>-<hash>`` (deterministic, so a re-encode gives the same key; the index makes it
    unique within a job, the hash of the user's id guards against a reordered file)."""
    if CUSTOM_ID_PATTERN.match(request.custom_id):
        return request.custom_id
    digest = hashlib.sha256(request.custom_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"i{request.index}-{digest[:16]}"


def encode_line(request: RequestLine, *, model: str, api_version: str,
                default_max_tokens: int) -> EncodedLine:
    """One ``{"custom_id", "params"}`` item as compact UTF-8 JSON (no newline).

    A ``native`` body is Anthropic's own Messages body: sent untouched, with only ``model``
    added when absent (a different model is refused: the job runs one model).
    """
    if request.native is not None:
        if not isinstance(request.native, Mapping):
            raise InputError("must be a JSON object", field="native")
        params = dict(request.native)
        if params.get("model") is None:
            params["model"] = model
        elif params["model"] != model:
            raise InputError(f"model {params['model']!r} differs from the job's model "
                             f"{model!r}", field="native.model")
        if params.get("stream"):
            raise InputError("streaming is not possible in a batch", field="native.stream")
        field = "native"
    else:
        if not isinstance(request.body, Mapping):
            raise InputError("missing or not a JSON object", field="body")
        params = to_anthropic_params(request.body, model=model, api_version=api_version,
                                     default_max_tokens=default_max_tokens)
        field = "body"
    key = provider_key(request)
    return EncodedLine(provider_key=key,
                       data=compact_json({"custom_id": key, "params": params}, field=field))


def progress_from_batch(batch: Mapping[str, Any]) -> BatchProgress:
    """A MessageBatch (as JSON) in neutral terms.

    While in progress Anthropic moves only ``processing`` (the other counters stay 0 until the
    end), so ``completed`` is ``total - processing`` (done, whatever the outcome) and ``failed``
    is known only at the end. An unknown status counts as running: fetching before the end
    would lose results. Anthropic has no batch-level failure (expiry and cancellation are
    results of single requests), so ``failure`` stays ``None``.
    """
    status = str(batch.get("processing_status") or "")
    raw_counts = batch.get("request_counts")
    counts: Mapping[str, Any] = raw_counts if isinstance(raw_counts, Mapping) else {}
    numbers = {k: _count(counts.get(k)) for k in
               ("processing", "succeeded", "errored", "canceled", "expired")}
    total = sum(numbers.values())
    ended = status == "ended"
    refs = {}
    if isinstance(batch.get("results_url"), str) and batch["results_url"]:
        refs["results_url"] = batch["results_url"]
    return BatchProgress(
        phase=PHASES.get(status, BatchPhase.RUNNING),
        provider_status=status,
        total=total,
        completed=numbers["succeeded"] if ended else total - numbers["processing"],
        failed=numbers["errored"] if ended else 0,
        result_refs=refs,
        raw=dict(batch),
    )


def parse_result_line(raw: bytes, line_no: int | None = None) -> ItemResult | None:
    """One results line (``line_no``: where it is, 1-based, when known). ``None`` when not
    even the custom_id is readable.

    A success is ``result.type == "succeeded"`` with a message. ``errored`` carries the standard
    error envelope; ``canceled``/``expired`` requests never ran and are retryable. A line that
    is readable only in part fails its item as retryable (the request was never shown bad).
    """
    line = read_result_line(raw)
    if line is None:
        return None
    if line.obj is None:
        return _malformed(line.custom_id, "the line is not valid JSON")
    custom_id, obj = line.custom_id, line.obj
    result = obj.get("result")
    kind = result.get("type") if isinstance(result, Mapping) else None
    if kind == "succeeded":
        message = result.get("message") if isinstance(result, Mapping) else None
        if not isinstance(message, dict):
            return _malformed(custom_id, "a succeeded result without a message")
        # The line's verdict and number, so the stream neither scans the line again nor
        # copies the result (``jsonl.parse_result_stream``).
        return ItemResult(provider_key=custom_id, status=ItemStatus.SUCCEEDED, response=message,
                          output_text=_text(message), finish_reason=finish_reason(message),
                          usage=usage_from_message(message), line=line_no, plain=line.plain)
    if kind == "errored":
        assert isinstance(result, Mapping)
        return _errored(custom_id, result)
    if kind in ("canceled", "expired"):
        status = ItemStatus.CANCELLED if kind == "canceled" else ItemStatus.EXPIRED
        code = "batch_cancelled" if kind == "canceled" else "batch_expired"
        text = ("not processed: the batch was canceled" if kind == "canceled"
                else "not processed before the batch expired (24 h)")
        return ItemResult(provider_key=custom_id, status=status, response=dict(obj),
                          error=ItemError(type=kind, code=code, message=text, retryable=True))
    return _malformed(custom_id, f"unknown result type {kind!r}")


def _errored(custom_id: str, result: Mapping[str, Any]) -> ItemResult:
    envelope = result.get("error")
    inner = envelope.get("error") if isinstance(envelope, Mapping) else None
    inner = inner if isinstance(inner, Mapping) else {}
    kind = str(inner["type"]) if isinstance(inner.get("type"), str) else "api_error"
    message = str(inner["message"]) if isinstance(inner.get("message"), str) else "failed"
    details = inner.get("details")
    code = details.get("error_code") if isinstance(details, Mapping) else None
    return ItemResult(
        provider_key=custom_id, status=ItemStatus.FAILED,
        response=dict(envelope) if isinstance(envelope, Mapping) else None,
        error=ItemError(type=kind, message=message, code=str(code) if code else kind,
                        retryable=kind in RETRYABLE_ERROR_TYPES),
    )


def _malformed(custom_id: str, reason: str) -> ItemResult:
    return ItemResult(
        provider_key=custom_id, status=ItemStatus.FAILED,
        error=ItemError(type="invalid_result_line", code="malformed_result_line",
                        message=f"Anthropic's result line could not be read: {reason}",
                        retryable=True),
    )


def _text(message: Mapping[str, Any]) -> str | None:
    content = message.get("content")
    if not isinstance(content, list):
        return None
    texts = [b["text"] for b in content
             if isinstance(b, Mapping) and b.get("type") == "text" and isinstance(b.get("text"),
                                                                                    str)]
    return "".join(texts) if texts else None


def finish_reason(message: Mapping[str, Any]) -> str | None:
    """Anthropic's ``stop_reason`` in OpenAI's ``finish_reason`` words (unknown ones kept)."""
    reason = message.get("stop_reason")
    if not isinstance(reason, str):
        return None
    return _STOP.get(reason, reason)


def usage_from_message(message: Mapping[str, Any]) -> Usage | None:
    """Usage with OpenAI's convention: ``input_tokens`` is the whole prompt.

    Anthropic's ``input_tokens`` counts only what follows the last cache breakpoint, so the
    cache writes and reads are added back; ``cached_tokens`` is the cache reads,
    ``cache_write_tokens`` the cache writes (``cache_creation_input_tokens``), of which
    ``cache_creation.ephemeral_1h_input_tokens`` is the one-hour TTL class (priced 2x base
    input, the five-minute class 1.25x). Thinking tokens are part of ``output_tokens`` already.
    """
    usage = message.get("usage")
    if not isinstance(usage, Mapping):
        return None
    details = usage.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, Mapping) else None
    read = _count(usage.get("cache_read_input_tokens"))
    creation = usage.get("cache_creation")
    by_ttl = creation if isinstance(creation, Mapping) else {}
    written = _count(usage.get("cache_creation_input_tokens"))
    if not written:  # only the breakdown reported
        written = (_count(by_ttl.get("ephemeral_5m_input_tokens"))
                   + _count(by_ttl.get("ephemeral_1h_input_tokens")))
    return Usage(
        input_tokens=_count(usage.get("input_tokens")) + written + read,
        output_tokens=_count(usage.get("output_tokens")),
        cached_tokens=read,
        reasoning_tokens=min(_count(thinking), _count(usage.get("output_tokens"))),
        cache_write_tokens=written,
        cache_write_1h_tokens=min(_count(by_ttl.get("ephemeral_1h_input_tokens")), written),
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
