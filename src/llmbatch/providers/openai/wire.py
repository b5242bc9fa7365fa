"""The OpenAI batch wire format, as plain functions: request lines out, batch objects and result
lines in. No SDK, no I/O.

Kept apart from the client code so the format rules (what a success is, which failures are
worth another batch, how usage maps) read in one place and are tested without a network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from llmbatch.domain.models import (
    BatchFailure,
    BatchPhase,
    BatchProgress,
    Endpoint,
    FailureKind,
    ItemError,
    ItemResult,
    RequestLine,
    Usage,
    new_tuple,
)
from llmbatch.domain.requests import ENDPOINT_URLS
from llmbatch.domain.states import ItemStatus
from llmbatch.errors import InputError
from llmbatch.providers.base import EncodedLine, PlainEncoder
from llmbatch.providers.cache_markers import without_cache_markers
from llmbatch.providers.jsonl import compact_json, read_result_line, split_lines

__all__ = [
    "ENDED_STATUSES",
    "PHASES",
    "RUNNING_STATUSES",
    "TOKEN_LIMIT_CODE",
    "batch_failure",
    "classify_item_failure",
    "encode_line",
    "parse_result_line",
    "plain_line_encoder",
    "progress_from_batch",
    "split_lines",
    "usage_from_body",
]

RUNNING_STATUSES: Final = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
ENDED_STATUSES: Final = frozenset({"completed", "failed", "expired", "cancelled"})
# The enqueued-token quota of a model is full: a batch-level error of a failed batch, or (some
# accounts) a synchronous refusal of create.
TOKEN_LIMIT_CODE: Final = "token_limit_exceeded"
# Batch.status -> phase; a status not listed counts as running (see ``progress_from_batch``).
PHASES: Final = {"validating": BatchPhase.VALIDATING, "in_progress": BatchPhase.RUNNING,
                 "finalizing": BatchPhase.FINALIZING, "cancelling": BatchPhase.CANCELLING,
                 **dict.fromkeys(ENDED_STATUSES, BatchPhase.ENDED)}

# Codes that say "the batch machinery or capacity failed, not your request": another batch can
# succeed. ``insufficient_quota`` arrives as a 429 but is a billing state, not a burst: retrying
# it only burns attempts, so it is permanent until a user runs ``llmbatch retry``.
RETRYABLE_CODES: Final = frozenset({
    "batch_expired", "batch_cancelled", "rate_limit_exceeded", "server_error", "internal_error",
    "timeout", "service_unavailable", "engine_overloaded", "overloaded",
})
PERMANENT_CODES: Final = frozenset({"insufficient_quota"})
RETRYABLE_HTTP: Final = frozenset({408, 409, 429})

_MAX_BATCH_ERRORS: Final = 20
# Reads the custom_id out of a line that is not valid JSON as a whole (e.g. cut short).


def encode_line(request: RequestLine, *, endpoint: Endpoint, model: str,
                max_line_bytes: int) -> EncodedLine:
    """One OpenAI batch line as compact UTF-8 JSON (no newline); ``provider_key`` = custom_id.

    A ``native`` body is sent as given, with only ``model`` added when absent. Anything OpenAI
    would refuse for the whole file (another model, streaming, a line over the file limit) is an
    ``InputError`` naming the field, so it is caught at submit time and not 24 h later.
    """
    url = ENDPOINT_URLS.get(endpoint)
    if url is None:
        raise InputError(f"OpenAI batches do not support the {endpoint!r} endpoint",
                         field="endpoint")
    if not isinstance(request.custom_id, str) or not request.custom_id:
        raise InputError("must be a non-empty string", field="custom_id")
    field, source = ("native", request.native) if request.native is not None else (
        "body", request.body)
    if not isinstance(source, (dict, Mapping)):
        raise InputError("missing or not a JSON object", field=field)
    # Neutral bodies may carry Anthropic-style cache breakpoints: OpenAI caches prefixes on
    # its own, so they are removed (providers.cache_markers); a native body is sent as given.
    body = dict(source) if request.native is not None else without_cache_markers(source)
    if body.get("model") is None:
        body["model"] = model
    elif body["model"] != model:
        given = body["model"]
        raise InputError(f"model {given!r} differs from the job's model {model!r}; "
                         "an OpenAI batch runs one model", field=f"{field}.model")
    if body.get("stream"):
        raise InputError("streaming is not possible in a batch", field=f"{field}.stream")

    return _line(request.custom_id, url, body, field=field, max_line_bytes=max_line_bytes)


def plain_line_encoder(*, endpoint: Endpoint, model: str, max_line_bytes: int) -> PlainEncoder:
    """``encode_line`` for the plain chat lines of one job (``domain.plain_chat``), the same
    bytes: such a body has no cache markers, no ``model``, no ``stream`` and a non-empty
    ``custom_id``, so only the line is written and measured. It is spliced around the body's
    JSON (as ``orjson`` writes it) in a frame made here, once: the method and URL before the
    body, the model that ends it. That is what ``compact_json`` writes for the whole line,
    except when ``null`` appears in it (``compact_json`` then takes the standard encoder,
    whose floats differ): such a line is written as ``encode_line`` writes it."""
    url = ENDPOINT_URLS[endpoint]
    head = b',"method":"POST","url":' + orjson.dumps(url) + b',"body":'
    tail = b',"model":' + orjson.dumps(model) + b"}}"
    dumps, join = orjson.dumps, b"".join

    def encode(request: RequestLine, body_json: bytes) -> EncodedLine:
        custom_id = request.custom_id
        data = join((b'{"custom_id":', dumps(custom_id), head, body_json[:-1], tail))
        if data.find(b"null") >= 0 or body_json == b"{}":  # ``find``: see plain_chat
            assert request.body is not None
            return _line(custom_id, url, {**request.body, "model": model}, field="body",
                         max_line_bytes=max_line_bytes)
        if len(data) >= max_line_bytes:
            return _measured(custom_id, data, field="body", max_line_bytes=max_line_bytes)
        return new_tuple(EncodedLine, (custom_id, data))  # once per line: see new_tuple

    return encode


def _line(custom_id: str, url: str, body: dict[str, Any], *, field: str,
          max_line_bytes: int) -> EncodedLine:
    data = compact_json({"custom_id": custom_id, "method": "POST", "url": url, "body": body},
                        field=field)
    return _measured(custom_id, data, field=field, max_line_bytes=max_line_bytes)


def _measured(custom_id: str, data: bytes, *, field: str, max_line_bytes: int) -> EncodedLine:
    """The line ``data``, or the refusal of one larger than a batch file takes."""
    if len(data) + 1 > max_line_bytes:
        raise InputError(f"the request is {len(data) + 1} bytes encoded; an OpenAI batch file "
                         f"holds at most {max_line_bytes}", field=field)
    return new_tuple(EncodedLine, (custom_id, data))  # once per line: see new_tuple


def progress_from_batch(batch: Mapping[str, Any]) -> BatchProgress:
    """A Batch object (as JSON) in neutral terms.

    A status this code does not know counts as running: polling a little longer is harmless,
    fetching before the result files are final would lose results.
    """
    status = str(batch.get("status") or "")
    counts = batch.get("request_counts")
    counts = counts if isinstance(counts, Mapping) else {}
    refs = {key: value for key in ("input_file_id", "output_file_id", "error_file_id")
            if isinstance(value := batch.get(key), str) and value}  # "" means absent
    return BatchProgress(
        phase=PHASES.get(status, BatchPhase.RUNNING),
        provider_status=status,
        total=_count(counts.get("total")),
        completed=_count(counts.get("completed")),
        failed=_count(counts.get("failed")),
        result_refs=refs,
        failure=batch_failure(status, batch.get("errors")),
        raw=dict(batch),
    )


def batch_failure(status: str, errors: Any) -> BatchFailure | None:
    """The failure of a batch that ended ``failed`` or ``expired``; ``None`` otherwise.

    ``failed`` means the input file failed validation: nothing ran. It is a quota refusal
    (retryable, the batch waits for room) when an error says ``token_limit_exceeded``, else
    invalid input. ``expired`` ran part of the batch: the requests left over come back as
    ``batch_expired`` lines, and any item without a line may go again.
    """
    if status == "expired":
        return BatchFailure(kind=FailureKind.EXPIRED, code="batch_expired", retryable=True,
                            items_ran=True, message="the batch expired (24 h) before every "
                                                    "request ran")
    if status != "failed":
        return None
    message, codes = _batch_errors(errors)
    quota = TOKEN_LIMIT_CODE in codes
    return BatchFailure(kind=FailureKind.QUOTA if quota else FailureKind.INVALID_INPUT,
                        message=message, retryable=quota, items_ran=False,
                        code=TOKEN_LIMIT_CODE if quota else next(iter(codes), None))


def _batch_errors(errors: Any) -> tuple[str, list[str]]:
    """A message listing the batch's validation errors, and their codes in order."""
    data = errors.get("data") if isinstance(errors, Mapping) else None
    entries = [e for e in data if isinstance(e, Mapping)] if isinstance(data, list) else []
    if not entries:
        return "the batch failed at validation (OpenAI gave no details)", []
    parts = []
    for entry in entries[:_MAX_BATCH_ERRORS]:
        where = f"line {entry['line']}: " if entry.get("line") is not None else ""
        code = f" ({entry['code']})" if entry.get("code") else ""
        parts.append(f"{where}{entry.get('message') or 'no message'}{code}")
    if len(entries) > _MAX_BATCH_ERRORS:
        parts.append(f"... and {len(entries) - _MAX_BATCH_ERRORS} more")
    return "; ".join(parts), [str(e["code"]) for e in entries if e.get("code")]


def parse_result_line(raw: bytes, line_no: int | None = None) -> ItemResult | None:
    """One line of an output or error file (``line_no``: where it is, 1-based, when known).
    ``None`` when not even the custom_id is readable.

    A line is a success only if ``error`` is null and ``response.status_code`` is 2xx. Both
    failure shapes (top-level ``error`` for non-HTTP failures such as ``batch_expired``; a
    non-2xx ``response`` carrying the endpoint's error body) become a failed ``ItemResult``.
    A line that is readable only in part fails its item as retryable: the provider garbled the
    answer, the request was never shown to be bad.
    """
    line = read_result_line(raw)
    if line is None:
        return None
    if line.obj is None:
        return _malformed(line.custom_id, "the line is not valid JSON")
    custom_id, obj = line.custom_id, line.obj

    error, response = obj.get("error"), obj.get("response")
    if error is not None:
        if not isinstance(error, dict):
            return _malformed(custom_id, "'error' is not an object")
        body = response.get("body") if isinstance(response, dict) else None
        return _failure(custom_id, status_code=None, error=error, body=body)
    if not isinstance(response, dict):
        return _malformed(custom_id, "neither 'response' nor 'error' is given")
    status_code, body = response.get("status_code"), response.get("body")
    if not isinstance(status_code, int) or isinstance(status_code, bool):
        return _malformed(custom_id, "'response.status_code' is not an integer")
    if 200 <= status_code < 300:
        if not isinstance(body, dict):
            return _malformed(custom_id, "a 2xx response without a JSON body")
        return _success(custom_id, body, plain=line.plain, line=line_no)
    http_error = body.get("error") if isinstance(body, dict) else None
    return _failure(custom_id, status_code=status_code,
                    error=http_error if isinstance(http_error, dict) else {}, body=body)


def _success(custom_id: str, body: dict[str, Any], *, plain: bool = False,
             line: int | None = None) -> ItemResult:
    """A 2xx body of any batch endpoint as the neutral result: a chat completion's first
    choice, a legacy completion's first ``text``, a Response's ``output_text`` parts (see
    ``_response_text``); embeddings and moderations have no text (the vectors and the
    verdicts stay in ``response``). ``plain``: the line's verdict (``ResultLine.plain``),
    passed on with ``line`` so the stream need not scan the line again nor copy the result."""
    if body.get("object") == "response":
        return _response_success(custom_id, body)
    output_text = finish_reason = None
    choices = body.get("choices")
    # ``type(...) is``: parsed JSON holds exactly dict, list and str (and this runs per line).
    if type(choices) is list and choices and type(choice := choices[0]) is dict:
        message = choice.get("message")
        content = (message.get("content") if type(message) is dict
                   else choice.get("text"))  # legacy completions: choices[].text
        output_text = content if type(content) is str else None
        reason = choice.get("finish_reason")
        finish_reason = reason if type(reason) is str else None
    # Every field given, through ``tuple.__new__``: a NamedTuple's own ``__new__`` is a
    # Python function, and this runs once per result line.
    return new_tuple(ItemResult, (custom_id, ItemStatus.SUCCEEDED, body, output_text,
                                  finish_reason, usage_from_body(body), None, line, plain, None))


def _response_success(custom_id: str, body: dict[str, Any]) -> ItemResult:
    """A ``/v1/responses`` body (PROVIDER_APIS A.8). ``status: "incomplete"`` is a truncated
    success: its finish reason is ``incomplete_details.reason`` (``max_output_tokens``, ``length``
    in chat terms). ``status: "failed"`` under a 200 carries the Response's own ``error``; it
    fails the item like an HTTP error would."""
    status = body.get("status")
    if status == "failed":
        error = body.get("error")
        given = error if isinstance(error, dict) else {"message": "the response failed"}
        return _failure(custom_id, status_code=200, body=body,
                        error={"type": "response_failed", **given})
    finish_reason: str | None = "stop" if status == "completed" else None
    if status == "incomplete":
        details = body.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        finish_reason = "length" if reason == "max_output_tokens" else (
            reason if isinstance(reason, str) else "incomplete")
    if finish_reason == "stop" and any(isinstance(item, dict) and item.get("type") ==
                                       "function_call" for item in _items(body)):
        finish_reason = "tool_calls"
    return ItemResult(provider_key=custom_id, status=ItemStatus.SUCCEEDED, response=body,
                      output_text=_response_text(body), finish_reason=finish_reason,
                      usage=usage_from_body(body))


def _items(body: Mapping[str, Any]) -> list[Any]:
    output = body.get("output")
    return output if isinstance(output, list) else []


def _response_text(body: Mapping[str, Any]) -> str | None:
    """The text of a Response: its ``message`` items' ``output_text`` parts, joined, as the
    SDK's computed ``output_text`` property does (the JSON has no such field). None when the
    output holds no text (only tool calls, say)."""
    texts = [part["text"] for item in _items(body)
             if isinstance(item, dict) and item.get("type") == "message"
             for part in _items({"output": item.get("content")})
             if isinstance(part, dict) and part.get("type") == "output_text"
             and isinstance(part.get("text"), str)]
    return "".join(texts) if texts else None


def _failure(custom_id: str, *, status_code: int | None, error: Mapping[str, Any],
             body: Any) -> ItemResult:
    code = str(error["code"]) if error.get("code") is not None else None
    if status_code is None:  # non-HTTP failure: the batch machinery, not the endpoint
        kind = {"batch_expired": "expired", "batch_cancelled": "cancelled"}.get(code or "",
                                                                                "batch_error")
    elif isinstance(error.get("type"), str):
        kind = error["type"]
    else:
        kind = ("rate_limit_error" if status_code == 429
                else "server_error" if status_code >= 500 else "invalid_request_error")
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = f"HTTP {status_code}" if status_code is not None else "request failed"
    status = {"batch_expired": ItemStatus.EXPIRED,
              "batch_cancelled": ItemStatus.CANCELLED}.get(code or "", ItemStatus.FAILED)
    return ItemResult(
        provider_key=custom_id, status=status,
        response=body if isinstance(body, dict) else None,
        error=ItemError(type=kind, message=message, code=code,
                        retryable=classify_item_failure(status_code, code)),
    )


def _malformed(custom_id: str, reason: str) -> ItemResult:
    return ItemResult(
        provider_key=custom_id, status=ItemStatus.FAILED,
        error=ItemError(type="invalid_result_line", code="malformed_result_line",
                        message=f"OpenAI's result line could not be read: {reason}",
                        retryable=True),
    )


def classify_item_failure(status_code: int | None, code: str | None) -> bool:
    """Whether an item that failed this way can succeed in another batch.

    Codes decide first (a 429 ``insufficient_quota`` is permanent); then HTTP: 408/409/429 and
    5xx are retryable, other 4xx (invalid request, content policy) are not. A non-HTTP failure
    with an unknown code is retryable: OpenAI reserves that shape for failures of the batch
    machinery, not rejections of the request, and ``retry.item_max_attempts`` bounds the cost
    of being wrong.
    """
    if code in PERMANENT_CODES:
        return False
    if code in RETRYABLE_CODES:
        return True
    if status_code is None:
        return not (code or "").startswith("invalid")
    return status_code in RETRYABLE_HTTP or status_code >= 500


def usage_from_body(body: Mapping[str, Any]) -> Usage | None:
    """Token usage of a chat or embeddings body, as OpenAI counts it.

    ``input_tokens`` includes ``cached_tokens`` and ``cache_write_tokens`` (disjoint parts of
    the prompt, PROVIDER_APIS A.7) and ``output_tokens`` includes ``reasoning_tokens``
    (OpenAI's convention, the one ``Usage`` keeps). Embeddings report only ``prompt_tokens``.
    Responses-style names are read too, so a native body from another endpoint does not lose
    its usage. OpenAI's write retention classes (30 min / 12 h) are not priced apart, so they
    are not the Anthropic one-hour class: ``cache_write_1h_tokens`` stays 0.
    """
    usage = body.get("usage")
    if not isinstance(usage, dict):  # parsed JSON: a dict, never another Mapping
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    ins, outs = usage.get("prompt_tokens_details"), usage.get("completion_tokens_details")
    if (type(prompt) is int and type(completion) is int and type(ins) is dict and ins
            and type(outs) is dict and outs):
        # The chat shape every line of a chat batch has, read with no lookup or call more than
        # it needs (this runs once per result); the same figures as the general path below.
        prompt_n = prompt if prompt > 0 else 0
        completion_n = completion if completion > 0 else 0
        cached, reasoning = ins.get("cached_tokens"), outs.get("reasoning_tokens")
        written = ins.get("cache_write_tokens")
        if (type(cached) is int and 0 <= cached <= prompt_n and type(reasoning) is int
                and 0 <= reasoning <= completion_n and written is None):
            # Counts that nest (every field given: see ``_success``).
            return new_tuple(Usage, (prompt_n, completion_n, cached, reasoning, 0, 0))
        cached = min(_count(cached), prompt_n)
        return Usage(prompt_n, completion_n, cached, min(_count(reasoning), completion_n),
                     min(_count(written), prompt_n - cached))
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    in_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    out_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    ins = in_details if isinstance(in_details, dict) else {}
    outs = out_details if isinstance(out_details, dict) else {}
    prompt_n, completion_n = _count(prompt), _count(completion)
    cached = min(_count(ins.get("cached_tokens")), prompt_n)
    return Usage(
        input_tokens=prompt_n,
        output_tokens=completion_n,
        cached_tokens=cached,
        reasoning_tokens=min(_count(outs.get("reasoning_tokens")), completion_n),
        cache_write_tokens=min(_count(ins.get("cache_write_tokens")), prompt_n - cached),
    )


def _count(value: Any) -> int:
    """A token count as reported, or 0 for anything that is not a positive integer (a bool is
    not a count; ``type(...) is int`` excludes it)."""
    return value if type(value) is int and value > 0 else 0
