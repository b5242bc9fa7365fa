"""Proto-JSON strictness: the field names and value kinds Google's API accepts, and its refusals.

The real service parses a request body into protocol buffers, so a name that is not a field of
the message (``{"txt": "hi"}`` in a ``Part``) or a value of the wrong kind (a string where a
message belongs) refuses the whole body with 400 ``INVALID_ARGUMENT``::

    Invalid JSON payload received. Unknown name "txt" at
    'batch.input_config.requests.requests[0].request.contents[0].parts[0]': Cannot find field.

with a ``google.rpc.BadRequest`` detail naming the same path. Either spelling of a name is
accepted (``generationConfig`` or ``generation_config``); paths are written in the proto's
snake_case, as Google writes them. The messages and their fields come from Google's own API
export (``request_fields.json``, written by ``tests/fixtures/extract_gemini_request_fields.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["Violation", "check", "message_fields"]

_PACKAGE = "type.googleapis.com/google.ai.generativelanguage.v1beta"
_SCALAR_TYPES = {"string": "TYPE_STRING", "integer": "TYPE_INT32", "number": "TYPE_FLOAT",
                 "boolean": "TYPE_BOOL"}
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


class Violation(Exception):
    """One refused field: ``message`` is Google's text, ``field`` the proto path."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message, self.field = message, field


@cache
def _messages() -> dict[str, dict[str, str]]:
    raw = (resources.files("llmbatch.emulator.gemini") / "request_fields.json").read_text(
        encoding="utf-8")
    messages: dict[str, dict[str, str]] = json.loads(raw)["messages"]
    return messages


@cache
def message_fields(message: str) -> dict[str, str]:
    """Field name (camelCase and snake_case both) -> kind, for one message."""
    fields = _messages()[message]
    both = dict(fields)
    both.update({_snake(name): kind for name, kind in fields.items()})
    return both


def _snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def _join(path: str, name: str) -> str:
    return f"{path}.{_snake(name)}" if path else _snake(name)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def check(value: Any, message: str, path: str = "") -> None:
    """Raise ``Violation`` for the first unknown name or mistyped value under ``value``."""
    _check_kind(value, message, path)


def _check_kind(value: Any, kind: str, path: str) -> None:
    if kind == "any":
        return
    if kind.startswith("["):
        if not isinstance(value, list):
            raise _invalid(value, kind[1:-1], path)
        for i, item in enumerate(value):
            _check_kind(item, kind[1:-1], f"{path}[{i}]")
        return
    if kind.startswith("{"):
        if not isinstance(value, Mapping):
            raise _invalid(value, kind, path)
        for key, item in value.items():
            _check_kind(item, kind[1:-1], f"{path}[{key}]" if path else str(key))
        return
    if kind in _SCALAR_TYPES:
        if not _scalar_ok(value, kind):
            raise _invalid(value, kind, path)
        return
    if not isinstance(value, Mapping):
        raise _invalid(value, kind, path)
    fields = message_fields(kind)
    for name, item in value.items():
        sub = fields.get(name)
        if sub is None:
            where = f" at '{path}'" if path else ""
            raise Violation(f'Invalid JSON payload received. Unknown name "{name}"{where}: '
                            "Cannot find field.", path)
        if item is not None:
            _check_kind(item, sub, _join(path, name))


def _scalar_ok(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "integer":  # proto-JSON takes int64 as strings too
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer()) \
            or (isinstance(value, str) and value.lstrip("-").isdigit())
    return isinstance(value, int | float) or (isinstance(value, str) and _is_number(value))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _invalid(value: Any, kind: str, path: str) -> Violation:
    type_name = _SCALAR_TYPES.get(kind) or f"{_PACKAGE}.{kind}"
    return Violation(f"Invalid value at '{path}' ({type_name}), {_short(value)}", path)
