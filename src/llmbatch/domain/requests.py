"""Parsing input lines into ``RequestLine`` values: the neutral request format.

Accepted per line (a JSON object):
- ``{"custom_id", "body": {...chat body...}}`` - the neutral form;
- a batch-file line ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}``
  (the neutral form is that body, so such a file is taken unchanged);
- ``{"custom_id", "native": {...}}`` - a provider-native body passed through untouched.
A missing ``custom_id`` becomes ``line-<n>``. ``model`` inside a body must match the job's model.
"""

from __future__ import annotations

import json
from typing import Any

from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.errors import InputError

__all__ = ["ENDPOINT_URLS", "parse_request_line"]

ENDPOINT_URLS = {Endpoint.CHAT: "/v1/chat/completions", Endpoint.EMBEDDINGS: "/v1/embeddings"}
_KNOWN_KEYS = {"custom_id", "method", "url", "body", "native"}


def _fail(message: str, file: str, line: int, field: str | None = None) -> InputError:
    return InputError(message, file=file, line=line, field=field)


def parse_request_line(
    text: str, *, line: int, index: int, file: str, endpoint: Endpoint, model: str
) -> RequestLine:
    """Validate one JSONL line. ``line`` is 1-based (for messages); ``index`` is the item's
    position among non-blank lines (its order in the output)."""
    try:
        obj: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(f"not valid JSON: {exc.msg} (column {exc.colno})", file, line) from exc
    if not isinstance(obj, dict):
        raise _fail("each line must be a JSON object", file, line)
    unknown = sorted(set(obj) - _KNOWN_KEYS)
    if unknown:
        raise _fail(f"unknown key(s): {', '.join(unknown)}", file, line, unknown[0])

    custom_id = obj.get("custom_id", f"line-{line}")
    if not isinstance(custom_id, str) or not custom_id:
        raise _fail("must be a non-empty string", file, line, "custom_id")

    if "method" in obj and obj["method"] != "POST":
        raise _fail("only POST is supported", file, line, "method")
    if "url" in obj and obj["url"] != ENDPOINT_URLS[endpoint]:
        raise _fail(f"must be {ENDPOINT_URLS[endpoint]} for a {endpoint} job, got {obj['url']!r}",
                    file, line, "url")

    native = obj.get("native")
    body = obj.get("body")
    if native is not None and body is not None:
        raise _fail("give either 'body' or 'native', not both", file, line, "native")
    if native is not None:
        if not isinstance(native, dict):
            raise _fail("must be a JSON object", file, line, "native")
        return RequestLine(index=index, custom_id=custom_id, body=None, native=native)
    if not isinstance(body, dict):
        raise _fail("missing or not a JSON object", file, line, "body")

    body = dict(body)
    body_model = body.pop("model", None)
    if body_model is not None and body_model != model:
        raise _fail(f"model {body_model!r} differs from the job's model {model!r}",
                    file, line, "body.model")
    if body.get("stream"):
        raise _fail("streaming is not possible in a batch", file, line, "body.stream")
    if endpoint is Endpoint.CHAT:
        _check_messages(body.get("messages"), file, line)
    elif "input" not in body:
        raise _fail("an embeddings request needs 'input'", file, line, "body.input")
    return RequestLine(index=index, custom_id=custom_id, body=body)


def _check_messages(messages: Any, file: str, line: int) -> None:
    if not isinstance(messages, list) or not messages:
        raise _fail("a chat request needs a non-empty 'messages' list", file, line,
                    "body.messages")
    for i, msg in enumerate(messages):
        where = f"body.messages[{i}]"
        if not isinstance(msg, dict):
            raise _fail("must be an object", file, line, where)
        if msg.get("role") not in {"system", "developer", "user", "assistant", "tool"}:
            raise _fail(f"unknown role {msg.get('role')!r}", file, line, f"{where}.role")
        if "content" not in msg and not msg.get("tool_calls"):
            raise _fail("needs 'content'", file, line, f"{where}.content")
