"""A request's ``params`` checked against Anthropic's own description of the Messages API, and
refused the way the API words it (pydantic style: ``messages.0.content.0.txt: Extra inputs are
not permitted``).

The schemas (``params_schema.json``: ``CreateMessageParamsWithoutStream`` and, for creates
carrying ``anthropic-beta``, ``BetaCreateMessageParams``) are the closure extracted from the API
description by ``tests/fixtures/extract_anthropic_params_schema.py``; every object in them is
closed (``additionalProperties: false``), as the API is. A content block or tool whose ``type``
names no known variant is refused by that tag, as pydantic's discriminated unions do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

__all__ = ["params_error"]

_TYPE_WORDS = {"string": "a valid string", "integer": "a valid integer",
               "number": "a valid number", "boolean": "a valid boolean",
               "object": "a valid dictionary", "array": "a valid list", "null": "None"}


@cache
def _validator(beta: bool) -> Draft202012Validator:
    text = (resources.files("llmbatch.emulator.anthropic") / "params_schema.json").read_text(
        encoding="utf-8")
    document = json.loads(text)
    root = "BetaCreateMessageParams" if beta else "CreateMessageParamsWithoutStream"
    return Draft202012Validator({"$defs": document["$defs"], "$ref": f"#/$defs/{root}"})


def params_error(params: Mapping[str, Any], *, beta: bool = False) -> str | None:
    """The ``invalid_request_error`` message for ``params``, or None when they are valid.
    (``stream`` is the caller's to judge: batches refuse it with their own message.)"""
    body = {k: v for k, v in params.items() if k != "stream"}
    error = best_match(_validator(beta).iter_errors(body))
    return None if error is None else _describe(error)


def _where(error: ValidationError, *extra: object) -> str:
    return ".".join(str(p) for p in (*error.absolute_path, *extra))


def _describe(error: ValidationError) -> str:
    instance = error.instance
    schema = error.schema
    if error.validator == "additionalProperties" and isinstance(instance, Mapping):
        allowed = set(schema.get("properties", {})) if isinstance(schema, Mapping) else set()
        extra = next((k for k in instance if k not in allowed), "?")
        return f"{_where(error, extra)}: Extra inputs are not permitted"
    if error.validator == "required" and isinstance(instance, Mapping):
        names = error.validator_value if isinstance(error.validator_value, list) else []
        missing = next((k for k in names if k not in instance), "?")
        return f"{_where(error, missing)}: Field required"
    if error.validator == "type":
        wanted = error.validator_value
        word = _TYPE_WORDS.get(wanted if isinstance(wanted, str) else "", f"of type {wanted}")
        return f"{_where(error)}: Input should be {word}"
    if error.validator in ("oneOf", "anyOf") and error.context:
        return _describe_union(error)
    return f"{_where(error) or 'params'}: {error.message}"


def _describe_union(error: ValidationError) -> str:
    """A union of tagged variants: the errors of the variant the ``type`` tag picks."""
    instance = error.instance
    branches: dict[object, list[ValidationError]] = {}
    for sub in error.context or []:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    if isinstance(instance, Mapping) and "type" in instance:
        tagged = [errors for errors in branches.values()
                  if not any(list(e.relative_path) == ["type"] for e in errors)]
        if not tagged:
            return (f"{_where(error)}: Input tag '{instance['type']}' found using 'type' does "
                    "not match any of the expected tags")
        if len(tagged) == 1:
            inner = best_match(tagged[0])
            if inner is not None:
                return _describe(inner)
    inner = best_match(error.context or [])
    return _describe(inner) if inner is not None else f"{_where(error)}: {error.message}"
