"""The Gemini Batch Mode wire format as plain functions: request lines out, Operations and
result lines in. No SDK, no I/O.

Decisions kept here so they read in one place:

- A line is ``{"key": custom_id, "request": GenerateContentRequest}`` (the file-mode format);
  inline mode re-wraps it as ``{"request", "metadata": {"key"}}``.
- ``provider_status`` is the state without its prefix, lower-cased (``BATCH_STATE_EXPIRED`` and
  the SDK's ``JOB_STATE_EXPIRED`` both read ``expired``); the full Operation stays in ``raw``.
- An item succeeded iff it has a ``response`` and no ``error``. A response whose candidate (or
  prompt) was blocked for safety, recitation, blocklist or prohibited content is a *permanent*
  ``content_filter`` failure: the same prompt will be blocked again, so retrying only costs.
- ``error.code`` may be an HTTP status (observed: 400) or a gRPC code (google.rpc.Status);
  both are read. 408/429/499/5xx (and their gRPC twins) are retryable, other 4xx are not.
- Usage: ``input = promptTokenCount + toolUsePromptTokenCount`` (cached part included, as the
  OpenAI adapter counts it), ``output = candidatesTokenCount + thoughtsTokenCount`` (thinking
  is billed as output; the OpenAI adapter also counts reasoning inside output),
  ``reasoning = thoughtsTokenCount``, ``cached = cachedContentTokenCount``.
- Embeddings: a response holding ``embedding`` is an embeddings result (the SDK tells them
  apart the same way, ``_transformers.t_recv_batch_job_destination``). The vector stays in
  ``response`` (``embedding.values``), ``output_text`` and ``finish_reason`` are None, and
  ``input = tokenCount`` when Gemini reports it, else a zero ``Usage``. Inline outputs are read
  under ``inlinedResponses`` (what the API sends) or ``inlinedEmbedContentResponses`` (the
  name the SDK renames it to, and some API descriptions use).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from llmbatch.domain.models import (
    BatchFailure,
    BatchPhase,
    BatchProgress,
    FailureKind,
    ItemError,
    ItemResult,
    Usage,
)
from llmbatch.domain.states import ItemStatus
from llmbatch.providers.gemini.translate import candidate_text, finish_reason
from llmbatch.providers.jsonl import split_lines

__all__ = [
    "ENDED_STATES",
    "GRPC_TO_HTTP",
    "INLINE_KEYS",
    "PHASES",
    "batch_failure",
    "classify",
    "inline_entries",
    "item_from_entry",
    "progress_from_operation",
    "short_state",
    "split_lines",
    "usage_from_response",
]

ENDED_STATES: Final = frozenset({"succeeded", "failed", "cancelled", "expired"})
# short_state -> phase; anything else counts as running. A ``succeeded`` batch whose output is
# not attached yet is still finalizing (see ``progress_from_operation``).
PHASES: Final = {"pending": BatchPhase.QUEUED, "running": BatchPhase.RUNNING,
                 **dict.fromkeys(ENDED_STATES, BatchPhase.ENDED)}
BLOCKED: Final = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
                            "IMAGE_SAFETY"})
# google.rpc.Code -> HTTP status (https://cloud.google.com/apis/design/errors#handling_errors).
GRPC_TO_HTTP: Final = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400,
                       10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401}
_STATUS_NAMES: Final = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                        404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED",
                        499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
                        503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_INLINE_ELIDED: Final = "llmbatch:elided"
INLINE_KEYS: Final = ("inlinedResponses", "inlinedEmbedContentResponses")


def short_state(state: Any) -> str:
    """``BATCH_STATE_RUNNING`` / ``JOB_STATE_RUNNING`` -> ``running``."""
    text = str(getattr(state, "value", state) or "unspecified")
    for prefix in ("BATCH_STATE_", "JOB_STATE_"):
        text = text.removeprefix(prefix)
    return text.lower()


def _count(value: Any) -> int:
    """int64 counters arrive as JSON strings; anything unreadable is 0."""
    if isinstance(value, bool):
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return max(number, 0)


def _output(operation: Mapping[str, Any]) -> Mapping[str, Any]:
    """The batch output: ``metadata.output`` (what the SDK reads) or the Operation
    ``response`` (where the same output also appears)."""
    metadata = operation.get("metadata")
    for holder in (metadata.get("output") if isinstance(metadata, Mapping) else None,
                   operation.get("response")):
        if isinstance(holder, Mapping) and (holder.get("responsesFile") or any(
                holder.get(key) for key in INLINE_KEYS)):
            return holder
    return {}


def inline_entries(operation: Mapping[str, Any]) -> list[Any]:
    """The inline responses of an Operation (chat or embeddings), or []."""
    output = _output(operation)
    for key in INLINE_KEYS:
        container = output.get(key)
        entries = container.get("inlinedResponses") if isinstance(container, Mapping) else None
        if isinstance(entries, list):
            return entries
    return []


def _error_code(error: Mapping[str, Any]) -> str | None:
    """ErrorInfo ``reason`` when given (most specific), else the status name or number."""
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, Mapping) and isinstance(detail.get("reason"), str):
            return str(detail["reason"])
    if isinstance(error.get("status"), str):
        return str(error["status"])
    return str(error["code"]) if error.get("code") is not None else None


def progress_from_operation(operation: Mapping[str, Any]) -> BatchProgress:
    """A batch Operation (REST JSON) in neutral terms.

    ENDED needs a terminal state *and*, for ``succeeded``, an output reference: a client
    has been seen polling on while a SUCCEEDED job's output was not yet attached, and reading
    results before it is would lose them (until then the phase is FINALIZING). Inline
    responses are elided from ``raw`` (they can be megabytes and ``raw`` is stored);
    ``iter_results`` fetches them again.
    """
    metadata = operation.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    status = short_state(metadata.get("state"))
    stats = metadata.get("batchStats")
    stats = stats if isinstance(stats, Mapping) else {}
    output = _output(operation)
    refs: dict[str, str] = {}
    if isinstance(output.get("responsesFile"), str):
        refs["responses_file"] = output["responsesFile"]
    elif any(output.get(key) for key in INLINE_KEYS):
        refs["inline"] = "true"
    input_config = metadata.get("inputConfig")
    if isinstance(input_config, Mapping) and isinstance(input_config.get("fileName"), str):
        refs["input_file"] = input_config["fileName"]
    phase = PHASES.get(status, BatchPhase.RUNNING)
    if status == "succeeded" and not refs.keys() - {"input_file"}:
        phase = BatchPhase.FINALIZING
    return BatchProgress(
        phase=phase,
        provider_status=status,
        total=_count(stats.get("requestCount")),
        completed=_count(stats.get("successfulRequestCount")),
        failed=_count(stats.get("failedRequestCount")),
        result_refs=refs,
        failure=batch_failure(status, operation.get("error")),
        raw=_elide_inline(operation),
    )


def batch_failure(status: str, op_error: Any) -> BatchFailure | None:
    """The failure of a batch that ended ``failed`` or ``expired``; ``None`` otherwise.

    ``expired``: 48 h pending or running, and no results, so nothing is known to have run.
    ``failed``: the Operation ``error`` (a google.rpc.Status) says why; its code decides:
    ``RESOURCE_EXHAUSTED`` is a quota refusal, ``INVALID_ARGUMENT`` and its 400 siblings
    invalid input, anything else ``OTHER``, retryable when the code is (internal,
    unavailable...).
    """
    if status == "expired":
        return BatchFailure(kind=FailureKind.EXPIRED, code="BATCH_STATE_EXPIRED",
                            retryable=True, items_ran=False,
                            message="the batch expired (48 h pending or running) without "
                                    "results")
    if status != "failed":
        return None
    if not isinstance(op_error, Mapping):
        return BatchFailure(kind=FailureKind.OTHER, retryable=False, items_ran=False,
                            message="the batch failed (Gemini gave no error)")
    http, _, retryable = classify(op_error.get("code"), op_error.get("status"))
    kind = (FailureKind.QUOTA if http == 429 else FailureKind.INVALID_INPUT if http == 400
            else FailureKind.OTHER)
    return BatchFailure(kind=kind, retryable=retryable and http is not None,
                        items_ran=False, code=_error_code(op_error),
                        message=str(op_error.get("message") or "the batch failed (no message)"))


def _elide_inline(operation: Mapping[str, Any]) -> dict[str, Any]:
    raw = json.loads(json.dumps(operation))
    holders = [raw.get("response"), (raw.get("metadata") or {}).get("output")]
    for holder in holders:
        for key in INLINE_KEYS:
            inline = holder.get(key) if isinstance(holder, dict) else None
            if isinstance(inline, dict) and isinstance(inline.get("inlinedResponses"), list):
                inline["inlinedResponses"] = [{_INLINE_ELIDED: len(inline["inlinedResponses"])}]
    return dict(raw)


def usage_from_response(response: Mapping[str, Any]) -> Usage | None:
    """Neutral usage from ``usageMetadata`` (see the module docstring for the mapping)."""
    meta = response.get("usageMetadata")
    if not isinstance(meta, Mapping):
        return None
    thoughts = _count(meta.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=_count(meta.get("promptTokenCount"))
        + _count(meta.get("toolUsePromptTokenCount")),
        output_tokens=_count(meta.get("candidatesTokenCount")) + thoughts,
        cached_tokens=min(_count(meta.get("cachedContentTokenCount")),
                          _count(meta.get("promptTokenCount"))),
        reasoning_tokens=thoughts,
    )


def classify(code: Any, status: Any = None) -> tuple[int | None, str | None, bool]:
    """(HTTP status, status name, retryable) of a per-item error code."""
    http: int | None = None
    if isinstance(code, int) and not isinstance(code, bool):
        http = code if code >= 100 else GRPC_TO_HTTP.get(code, 500)
    name = status if isinstance(status, str) else (_STATUS_NAMES.get(http) if http else None)
    if http is None and isinstance(name, str):
        http = next((h for h, n in _STATUS_NAMES.items() if n == name), None)
    retryable = http is None or http in (408, 429, 499) or (http >= 500 and http != 501)
    return http, name, retryable


def _error_type(http: int | None) -> str:
    if http == 429:
        return "rate_limit_error"
    if http is None or http >= 500 or http == 499:
        return "server_error"
    return "invalid_request_error"


def item_from_entry(key: str, entry: Mapping[str, Any], *, batch_status: str) -> ItemResult:
    """One result (file line or inline response) as an ``ItemResult``.

    In an ``expired``/``cancelled`` batch, an error saying DEADLINE_EXCEEDED/CANCELLED marks a
    request that never ran: it becomes EXPIRED/CANCELLED (code ``batch_expired`` /
    ``batch_cancelled``, retryable), like a request missing from such a batch.
    """
    error, response = entry.get("error"), entry.get("response")
    if error is not None or not isinstance(response, Mapping):
        error = error if isinstance(error, Mapping) else {}
        http, name, retryable = classify(error.get("code"), error.get("status"))
        message = str(error.get("message") or "the request failed (no message)")
        if batch_status == "expired" and name == "DEADLINE_EXCEEDED":
            return _unrun(key, ItemStatus.EXPIRED, "batch_expired", message)
        if name == "CANCELLED" and batch_status == "cancelled":
            return _unrun(key, ItemStatus.CANCELLED, "batch_cancelled", message)
        if not error:
            message = "Gemini's result had neither 'response' nor 'error'"
        return ItemResult(provider_key=key, status=ItemStatus.FAILED, error=ItemError(
            type=_error_type(http) if error else "invalid_result_line",
            code=name or (str(http) if http else "malformed_result"), message=message,
            retryable=retryable))
    body = dict(response)
    if isinstance(body.get("embedding"), Mapping):
        if not isinstance(body["embedding"].get("values"), list):
            return ItemResult(provider_key=key, status=ItemStatus.FAILED, response=body,
                              error=ItemError(type="invalid_result_line", code="malformed_result",
                                              message="Gemini's embedding had no 'values'",
                                              retryable=True))
        return ItemResult(provider_key=key, status=ItemStatus.SUCCEEDED, response=body,
                          usage=Usage(input_tokens=_count(body.get("tokenCount"))))
    usage = usage_from_response(body)
    blocked = _blocked(body)
    if blocked is not None:
        return ItemResult(provider_key=key, status=ItemStatus.FAILED, response=body,
                          finish_reason="content_filter", usage=usage, error=ItemError(
                              type="content_filter", code=blocked, retryable=False,
                              message=f"Gemini blocked the output ({blocked})"))
    return ItemResult(provider_key=key, status=ItemStatus.SUCCEEDED, response=body,
                      output_text=candidate_text(body), finish_reason=finish_reason(body),
                      usage=usage)


def _blocked(body: Mapping[str, Any]) -> str | None:
    """The block reason when the prompt or the first candidate was blocked."""
    feedback = body.get("promptFeedback")
    if isinstance(feedback, Mapping) and feedback.get("blockReason") and not body.get(
            "candidates"):
        return str(feedback["blockReason"])
    candidates = body.get("candidates")
    first = candidates[0] if isinstance(candidates, list) and candidates else None
    reason = first.get("finishReason") if isinstance(first, Mapping) else None
    return reason if reason in BLOCKED else None


def _unrun(key: str, status: ItemStatus, code: str, message: str) -> ItemResult:
    return ItemResult(provider_key=key, status=status, error=ItemError(
        type=status.value, code=code, message=message, retryable=True))
