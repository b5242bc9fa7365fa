"""Parsing input lines into ``RequestLine`` values: the neutral request format.

Accepted per line (a JSON object):
- ``{"custom_id", "body": {...chat body...}}`` - the neutral form;
- a batch-file line ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}``
  (the neutral form is that body, so such a file is taken unchanged);
- ``{"custom_id", "native": {...}}`` - a provider-native body, checked by the provider's own
  request description (``BatchProvider.native_problems``) and otherwise passed through.
A missing ``custom_id`` becomes ``line-<n>``.

A neutral body is checked against the OpenAI request schema of the job's endpoint
(``NEUTRAL_SCHEMAS``: chat completions, embeddings, responses, completions, moderations;
``llmbatch.schemas``) and the limits of ``input_limits``; every
problem of the line is reported (``InputProblems``), not only the first.

``model`` inside a body: the job runs one model. A line naming another (every OpenAI batch
file names one) runs on the job's model; ``on_model_conflict`` is told, so that the caller can
say so once. Without that callback (``--strict-model``) the line is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, Final

from llmbatch.domain.input_limits import (
    MAX_CUSTOM_ID_CHARS,
    decode_storable_line,
    neutral_body_problems,
    neutral_limits_schema,
)
from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.errors import InputError, InputProblems
from llmbatch.schemas import neutral_schemas

__all__ = ["ENDPOINT_URLS", "NEUTRAL_SCHEMAS", "body_problems", "parse_request_line"]

ENDPOINT_URLS = {Endpoint.CHAT: "/v1/chat/completions", Endpoint.EMBEDDINGS: "/v1/embeddings",
                 Endpoint.RESPONSES: "/v1/responses", Endpoint.COMPLETIONS: "/v1/completions",
                 Endpoint.MODERATIONS: "/v1/moderations"}
# The schema each endpoint's neutral body is checked against.
NEUTRAL_SCHEMAS: Final = {Endpoint.CHAT: "CreateChatCompletionRequest",
                          Endpoint.EMBEDDINGS: "CreateEmbeddingRequest",
                          Endpoint.RESPONSES: "CreateResponse",
                          Endpoint.COMPLETIONS: "CreateCompletionRequest",
                          Endpoint.MODERATIONS: "CreateModerationRequest"}
_KNOWN_KEYS = {"custom_id", "method", "url", "body", "native"}


def _fail(message: str, file: str, line: int, field: str | None = None) -> InputError:
    return InputError(message, file=file, line=line, field=field)


def _at(problem: InputError, file: str, line: int) -> InputError:
    return InputError(problem.message, file=file, line=line, field=problem.field)


def parse_request_line(
    text: str, *, line: int, index: int, file: str, endpoint: Endpoint, model: str,
    on_model_conflict: Callable[[str], None] | None = None, raw: bytes | None = None,
) -> RequestLine:
    """Validate one JSONL line. ``line`` is 1-based (for messages); ``index`` is the item's
    position among non-blank lines (its order in the output); ``raw`` is ``text`` as UTF-8
    when the caller has it. Raises ``InputError`` (one problem) or ``InputProblems``
    (several), always naming file and line."""
    try:
        obj: Any = decode_storable_line(text, raw=raw)
    except InputError as exc:
        raise _at(exc, file, line) from None
    if not isinstance(obj, dict):
        raise _fail("each line must be a JSON object", file, line)
    if not obj.keys() <= _KNOWN_KEYS:
        unknown = sorted(set(obj) - _KNOWN_KEYS)
        raise _fail(f"unknown key(s): {', '.join(unknown)}", file, line, unknown[0])

    # Not ``obj.get(key, default)``: that would format the default for every line.
    custom_id = obj["custom_id"] if "custom_id" in obj else f"line-{line}"  # noqa: SIM401
    if not isinstance(custom_id, str) or not custom_id:
        raise _fail("must be a non-empty string", file, line, "custom_id")
    if len(custom_id) > MAX_CUSTOM_ID_CHARS:
        raise _fail(f"is {len(custom_id)} characters long; at most {MAX_CUSTOM_ID_CHARS} "
                    "are allowed", file, line, "custom_id")

    if "method" in obj and obj["method"] != "POST":
        raise _fail("only POST is supported", file, line, "method")
    if "url" in obj and obj["url"] != ENDPOINT_URLS[endpoint]:
        raise _fail(f"must be {ENDPOINT_URLS[endpoint]} for a {endpoint} job, got "
                    f"{_shown(obj['url'])}", file, line, "url")

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

    # The body is this line's own, just parsed: it is changed in place, not copied.
    body_model = body.pop("model", None)
    if body_model is not None and body_model != model:
        if on_model_conflict is None or not isinstance(body_model, str):
            raise _fail(f"model {_shown(body_model)} differs from the job's model {model!r} "
                        "(without --strict-model the line's model is ignored)",
                        file, line, "body.model")
        on_model_conflict(body_model)
    if body.get("stream"):
        raise _fail("streaming is not possible in a batch", file, line, "body.stream")
    problems = body_problems(body, endpoint=endpoint, model=model)
    if problems:
        located = [_at(p, file, line) for p in problems]
        raise located[0] if len(located) == 1 else InputProblems(located, file=file)
    return RequestLine(index=index, custom_id=custom_id, body=body)


def body_problems(body: dict[str, Any], *, endpoint: Endpoint, model: str) -> list[InputError]:
    """Every problem of a neutral body (without its ``model``, which is the job's): its
    schema, then the limits the schema cannot express. Fields are named ``body.…``."""
    instance = {**body, "model": model}
    if _certainly_clean(endpoint)(instance):
        return []
    schemas = neutral_schemas()
    name = NEUTRAL_SCHEMAS[endpoint]
    problems = [InputError(p.reason, field=f"body.{p.path}" if p.path else "body")
                for p in schemas.problems(name, instance)]
    allowed = schemas.property_names(name)
    if not problems and not body.keys() <= allowed:  # the chat schema is open (allOf parts)
        problems = [InputError(f"unknown field '{key}' (not in OpenAI's {name})",
                               field=f"body.{key}") for key in body if key not in allowed]
    if not problems:
        problems = neutral_body_problems(body, chat=endpoint is Endpoint.CHAT,
                                         embeddings=endpoint is Endpoint.EMBEDDINGS)
    return problems


@cache
def _certainly_clean(endpoint: Endpoint) -> Callable[[Any], bool]:
    """One call of a compiled validator that finds a body (``model`` in) clean of everything
    ``body_problems`` checks: the endpoint's schema, no field it does not declare, and the
    limits (``neutral_limits_schema``). Every line of a job is checked at submit, and a clean
    line, nearly every one, then costs no Python walk; any other goes through the checks one
    by one, which decide and say why (this verdict is sufficient, not necessary)."""
    schemas = neutral_schemas()
    name = NEUTRAL_SCHEMAS[endpoint]
    extra = neutral_limits_schema(chat=endpoint is Endpoint.CHAT,
                                  embeddings=endpoint is Endpoint.EMBEDDINGS)
    extra["propertyNames"] = {"enum": sorted(schemas.property_names(name))}
    return schemas.decider_with(name, extra)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"
