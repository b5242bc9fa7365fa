"""minibatch's wire format as plain functions: request items out, batches and result lines in.

A request item is ``{"custom_id", "params"}`` with Messages-style params; a batch reports
``processing_status`` (``in_progress``, ``canceling``, ``ended``); a result line is
``{"custom_id", "result": {"type": succeeded | errored | canceled | expired, ...}}``.
"""

from __future__ import annotations

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
from llmbatch.providers.base import EncodedLine
from llmbatch.providers.jsonl import compact_json, read_result_line

__all__ = ["encode_line", "parse_result_line", "progress_from_batch"]

CUSTOM_ID: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
PHASES: Final = {"in_progress": BatchPhase.RUNNING, "canceling": BatchPhase.CANCELLING,
                 "ended": BatchPhase.ENDED}
SENDABLE: Final = frozenset({"messages", "max_tokens", "temperature"})
RETRYABLE: Final = frozenset({"api_error", "overloaded_error", "rate_limit_error",
                              "timeout_error"})
FINISH: Final = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}
NOT_RUN: Final = {"canceled": (ItemStatus.CANCELLED, "batch_cancelled"),
                  "expired": (ItemStatus.EXPIRED, "batch_expired")}


def encode_line(request: RequestLine, *, model: str, default_max_tokens: int) -> EncodedLine:
    """The request item; a field the API has no place for is refused, not dropped."""
    if not CUSTOM_ID.match(request.custom_id):
        raise InputError("must match ^[a-zA-Z0-9_-]{1,64}$", field="custom_id")
    body = request.native if request.native is not None else request.body
    if not isinstance(body, Mapping):
        raise InputError("missing or not a JSON object", field="body")
    for key in body:
        if key not in SENDABLE:
            raise InputError("not supported by minibatch", field=f"body.{key}")
    params = {"max_tokens": default_max_tokens, **body, "model": model}
    return EncodedLine(provider_key=request.custom_id,
                       data=compact_json({"custom_id": request.custom_id, "params": params},
                                         field="body"))


def progress_from_batch(batch: Mapping[str, Any]) -> BatchProgress:
    """A batch in neutral terms. Only ``processing`` moves until the end; there is no
    batch-level failure (expiry and cancellation are results of single requests)."""
    status = str(batch.get("processing_status") or "")
    counts = batch.get("request_counts")
    counts = counts if isinstance(counts, Mapping) else {}
    numbers = {key: int(counts.get(key) or 0)
               for key in ("processing", "succeeded", "errored", "canceled", "expired")}
    total = sum(numbers.values())
    ended = status == "ended"
    return BatchProgress(phase=PHASES.get(status, BatchPhase.RUNNING), provider_status=status,
                         total=total,
                         completed=numbers["succeeded"] if ended else total - numbers["processing"],
                         failed=numbers["errored"] if ended else 0, raw=dict(batch))


def parse_result_line(raw: bytes, line_no: int | None = None) -> ItemResult | None:
    """One result line; ``None`` when not even its custom_id is readable (``line_no``, given
    by ``parse_result_stream``, is left to the stream to set)."""
    line = read_result_line(raw)
    if line is None:
        return None
    result = line.obj.get("result") if line.obj is not None else None
    kind = result.get("type") if isinstance(result, Mapping) else None
    if kind == "succeeded" and isinstance(result, Mapping):
        message = result.get("message")
        if isinstance(message, dict):
            return _succeeded(line.custom_id, message)
    if kind == "errored" and isinstance(result, Mapping):
        envelope = result.get("error")
        error = envelope.get("error") if isinstance(envelope, Mapping) else None
        error = error if isinstance(error, Mapping) else {}
        etype = str(error.get("type") or "api_error")
        return ItemResult(provider_key=line.custom_id, status=ItemStatus.FAILED, error=ItemError(
            type=etype, code=etype, message=str(error.get("message") or "failed"),
            retryable=etype in RETRYABLE))
    if kind in NOT_RUN:
        status, code = NOT_RUN[str(kind)]
        return ItemResult(provider_key=line.custom_id, status=status, error=ItemError(
            type=str(kind), code=code, message=f"not run: the batch was {kind}", retryable=True))
    return ItemResult(provider_key=line.custom_id, status=ItemStatus.FAILED, error=ItemError(
        type="invalid_result_line", code="malformed_result_line", retryable=True,
        message="minibatch's result line could not be read"))


def _succeeded(custom_id: str, message: dict[str, Any]) -> ItemResult:
    blocks = message.get("content")
    text = "".join(str(b.get("text", "")) for b in blocks if isinstance(b, Mapping)
                   and b.get("type") == "text") if isinstance(blocks, list) else ""
    usage = message.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    return ItemResult(provider_key=custom_id, status=ItemStatus.SUCCEEDED, response=message,
                      output_text=text, finish_reason=FINISH.get(str(message.get("stop_reason")),
                                                                 "stop"),
                      usage=Usage(input_tokens=int(usage.get("input_tokens") or 0),
                                  output_tokens=int(usage.get("output_tokens") or 0)))
