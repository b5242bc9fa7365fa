"""JSON text in and out on the hot paths: written with ``orjson``, read with ``msgspec``.

Result lines are parsed (``providers.jsonl``) and every JSON column (requests at ingest,
responses at fetch, events) is written and read through here: ``orjson`` encodes a chat
response about ten times faster than the standard library. What ``orjson`` cannot write, the
standard encoder writes the same way as before: integers past 64 bits (kept exact) and strings
with lone surrogates (written as ``\\ud800`` escapes, which SQLite keeps and PostgreSQL
refuses, a refusal that ``item_queries.is_refused_value`` recognises).

Reading, ``msgspec`` is the strict parser (``strict_loads``): as fast as ``orjson`` and as
strict (it refuses NaN and Infinity, numbers that overflow a float, raw control characters,
lone surrogates, invalid UTF-8), but it reads an integer of any size exactly, where ``orjson``
reads one past 64 bits as a float, so no text is scanned for long digit runs before it is
parsed. What it refuses, the standard parser reads as before (``loads``).
"""

from __future__ import annotations

import json
from typing import Any, Final

import msgspec
import orjson

__all__ = ["ORJSON_MAX_DEPTH", "dumps", "dumps_shallow", "loads", "strict_loads"]

# The deepest nesting ``orjson`` writes (containers within containers); it refuses more.
ORJSON_MAX_DEPTH: Final = 254

# Untyped: dicts, lists, str, int (exact), float, bool, None, as the standard parser gives.
_STRICT: Final = msgspec.json.Decoder()


def dumps(value: Any) -> str:
    """``value`` as compact JSON text."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"))


def dumps_shallow(value: Any) -> str | None:
    """``value`` as compact JSON text by ``orjson`` alone; None for what it will not write:
    nested deeper than ``ORJSON_MAX_DEPTH`` (under ``storable.MAX_JSON_DEPTH``, so a response
    it writes needs no depth check), an integer past 64 bits, a lone surrogate. The writer of
    a fetch's plain results (``storable.storable_result``), which then check the rest."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return None


def strict_loads(text: str | bytes) -> Any:
    """Parse strict JSON text (see the module docstring); raises ``ValueError`` for anything
    else, ``RecursionError`` for text nested deeper than the interpreter goes."""
    return _STRICT.decode(text)


def loads(text: str | bytes) -> Any:
    """Parse JSON text; what the strict parser refuses (NaN, lone surrogates) is read with
    ``json``, exactly as before; those values are judged later (``domain.storable``), not lost
    here."""
    try:
        return _STRICT.decode(text)
    except (ValueError, RecursionError):
        return json.loads(text)
