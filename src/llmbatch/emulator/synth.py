"""Deterministic stand-ins for model output, shared by every emulated provider.

Everything here is a pure function of the request body (through ``digest``), so the same
request yields the same reply in any batch, on any run, on any provider emulator: tests can
assert exact outputs and re-runs compare equal. Token counts are plausible rather than exact:
about four characters per prompt token, replies of 8 to 64 tokens capped by the request's
own limit, prompt caching only past 1,024 tokens (as the real services do).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Mapping
from typing import Any

__all__ = [
    "chat_prompt_tokens",
    "digest",
    "embedding",
    "estimate_tokens",
    "json_instance",
    "pick_tool",
    "reply_length",
    "reply_words",
    "stream",
    "wants_tool_call",
]

_WORDS = (
    "the", "model", "answers", "with", "a", "short", "and", "plausible", "reply", "about",
    "data", "batch", "emulator", "test", "value", "result", "token", "request", "response",
    "clear", "simple", "steady", "careful", "quick", "offline", "local", "fixed", "order",
    "signal", "queue", "window", "limit", "share", "cost", "price", "half", "stream", "line",
    "file", "record", "sample", "check", "again", "later", "ready", "done", "well", "noted",
    "summary", "point", "detail", "example", "context", "number", "answer", "moment", "plain",
)
CACHE_MIN_TOKENS = 1024
CACHE_BLOCK = 128


def digest(obj: Any) -> bytes:
    """SHA-256 of the canonical JSON of ``obj`` (key order and spacing do not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).digest()


def stream(seed: bytes, n: int, label: str = "") -> bytes:
    """``n`` pseudo-random bytes derived from ``seed`` (and a label to separate uses)."""
    return hashlib.shake_256(seed + label.encode()).digest(n)


def estimate_tokens(text: str) -> int:
    """Rough token count of a text: one per four characters, at least one if non-empty."""
    return math.ceil(len(text) / 4) if text else 0


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return " ".join(parts)
    return ""


def chat_prompt_tokens(messages: Any, *, system: Any = None) -> int:
    """Prompt tokens of a chat conversation: text tokens plus a few per message framing."""
    total = 3
    if system is not None:
        total += 4 + estimate_tokens(_content_text(system))
    if isinstance(messages, list):
        for message in messages:
            content = message.get("content") if isinstance(message, Mapping) else None
            total += 4 + estimate_tokens(_content_text(content))
    return total


def cached_tokens(seed: bytes, prompt_tokens: int) -> int:
    """Tokens served from the prompt cache: none below 1,024, else 0 or half, in 128-blocks."""
    if prompt_tokens < CACHE_MIN_TOKENS or stream(seed, 1, "cache")[0] % 2:
        return 0
    return (prompt_tokens // 2) // CACHE_BLOCK * CACHE_BLOCK


def reply_length(seed: bytes, max_tokens: int | None) -> tuple[int, bool]:
    """Reply tokens and whether the request's limit cut it short (finish reason 'length')."""
    wanted = 8 + int.from_bytes(stream(seed, 2, "len"), "big") % 57
    if max_tokens is not None and max_tokens < wanted:
        return max(max_tokens, 1), True
    return wanted, False


def reply_words(seed: bytes, n: int) -> str:
    """A reply of ``n`` words (about ``n`` tokens) picked by the seed."""
    picks = stream(seed, max(n, 1), "words")
    words = [_WORDS[b % len(_WORDS)] for b in picks[:n]]
    if words:
        words[0] = words[0].capitalize()
    return " ".join(words) + ("." if words else "")


def embedding(seed: bytes, dim: int) -> list[float]:
    """A unit vector of ``dim`` floats derived from the seed."""
    raw = stream(seed, 4 * dim, "embedding")
    values = [(v / 2**31) - 1.0 for v in struct.unpack(f">{dim}I", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 8) for v in values]


_FORMATS = {"date": "2026-01-15", "date-time": "2026-01-15T12:00:00Z", "time": "12:00:00",
            "email": "user@example.com", "uuid": "123e4567-e89b-42d3-a456-426614174000",
            "uri": "https://example.com/", "hostname": "example.com", "ipv4": "192.0.2.1",
            "ipv6": "2001:db8::1", "duration": "P1D"}


def _int_field(schema: Mapping[str, Any], *names: str) -> int | None:
    """An integer keyword under any of its spellings (Gemini writes int64 as strings)."""
    for name in names:
        value = schema.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def _num_field(schema: Mapping[str, Any], name: str) -> float | None:
    value = schema.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` (``#/$defs/x``, ``#/definitions/x``, ``#``) within ``root``."""
    seen = 0
    while isinstance(schema.get("$ref"), str) and seen < 16:
        ref = schema["$ref"]
        target: Any = root
        if not ref.startswith("#"):
            return {}
        for part in (p for p in ref[1:].split("/") if p):
            target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(
                target, Mapping) else None
        if not isinstance(target, Mapping):
            return {}
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    return schema


def _kind_of(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    if isinstance(kind, str):
        return kind.lower()  # Gemini's Schema spells types in capitals
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def _number(schema: Mapping[str, Any], seed: bytes, integer: bool) -> int | float:
    """A number inside [minimum, maximum] (exclusive bounds honoured), a multiple of
    ``multipleOf`` when asked."""
    low, high = _num_field(schema, "minimum"), _num_field(schema, "maximum")
    ex_low, ex_high = _num_field(schema, "exclusiveMinimum"), _num_field(
        schema, "exclusiveMaximum")
    step = 1e-2 if not integer else 1
    if ex_low is not None:
        low = max(low, ex_low + step) if low is not None else ex_low + step
    if ex_high is not None:
        high = min(high, ex_high - step) if high is not None else ex_high - step
    if low is None and high is None:
        low, high = 0.0, 100.0
    elif low is None:
        low = high - 100.0 if high is not None else 0.0
    elif high is None:
        high = low + 100.0
    assert low is not None and high is not None
    fraction = int.from_bytes(stream(seed, 4, "num"), "big") / 2**32
    multiple = _num_field(schema, "multipleOf")
    if integer:
        lo, hi = math.ceil(low), math.floor(high)
        if multiple:
            m = max(int(multiple), 1)
            lo, hi = -(-lo // m), hi // m
            return (lo + int(fraction * (hi - lo + 1))) * m if hi >= lo else lo * m
        return lo + int(fraction * (hi - lo + 1)) if hi >= lo else lo
    if multiple:
        lo, hi = math.ceil(low / multiple), math.floor(high / multiple)
        return (lo + int(fraction * (hi - lo + 1))) * multiple if hi >= lo else lo * multiple
    return round(low + fraction * (high - low), 2) if high - low >= 0.01 else low


def _string(schema: Mapping[str, Any], seed: bytes) -> str:
    """A string of the right ``format``, trimmed or padded to [minLength, maxLength]."""
    fmt = schema.get("format")
    text = _FORMATS.get(fmt, "") if isinstance(fmt, str) else ""
    text = text or reply_words(seed, 3)
    low = _int_field(schema, "minLength", "min_length") or 0
    high = _int_field(schema, "maxLength", "max_length")
    text = text.ljust(low, "x")
    if high is not None:
        text = text[:high]
    return text


def json_instance(schema: Any, seed: bytes, depth: int = 0,
                  root: Mapping[str, Any] | None = None) -> Any:
    """A value that satisfies a JSON schema, for structured-output and tool-call requests.

    Covers what structured outputs use: objects (every property filled, so every ``required``
    one is), arrays sized inside [minItems, maxItems], ``enum``/``const``, numbers and integers
    inside their bounds (exclusive ones and ``multipleOf`` too), strings inside their length
    bounds and of a known ``format``, ``anyOf``/``oneOf``/``type`` lists (the first non-null
    branch), ``allOf`` (merged), and local ``$ref`` into ``$defs``. Gemini's ``Schema`` works
    as well (``STRING``/``OBJECT`` types, int64 bounds as strings). ``pattern`` is not
    honoured. Recursion stops at depth 8 with the smallest value the schema allows.
    """
    root = root if root is not None else (schema if isinstance(schema, Mapping) else {})
    if not isinstance(schema, Mapping):
        return reply_words(seed, 3)
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        options = schema["enum"]
        return options[stream(seed, 1, "enum")[0] % len(options)]
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            if isinstance(part, Mapping):
                part = _resolve(part, root)
                props = {**merged.get("properties", {}), **part.get("properties", {})}
                merged = {**merged, **part, **({"properties": props} if props else {})}
        return json_instance(merged, seed, depth, root)
    for union in ("anyOf", "oneOf"):
        branches = schema.get(union)
        if isinstance(branches, list) and branches:
            non_null = [b for b in branches if not (
                isinstance(b, Mapping) and _kind_of(_resolve(b, root)) == "null")]
            return json_instance((non_null or branches)[0], seed, depth + 1, root)
    kind = _kind_of(schema)
    if kind == "object":
        props = schema.get("properties") or {}
        required = schema.get("required")
        if depth > 8 and isinstance(required, list):
            props = {k: v for k, v in props.items() if k in required}
        return {name: json_instance(sub, stream(seed, 16, f"prop:{name}"), depth + 1, root)
                for name, sub in props.items()}
    if kind == "array":
        low = _int_field(schema, "minItems", "min_items") or 0
        high = _int_field(schema, "maxItems", "max_items")
        count = low if depth > 8 else max(low, 1 + stream(seed, 1, "count")[0] % 3)
        if high is not None:
            count = min(count, high)
        prefix = schema.get("prefixItems")
        items = [json_instance(sub, stream(seed, 16, f"item:{i}"), depth + 1, root)
                 for i, sub in enumerate(prefix)] if isinstance(prefix, list) else []
        items += [json_instance(schema.get("items"), stream(seed, 16, f"item:{i}"), depth + 1,
                                root) for i in range(len(items), count)]
        return items
    if kind == "integer":
        return _number(schema, seed, integer=True)
    if kind == "number":
        return _number(schema, seed, integer=False)
    if kind == "boolean":
        return bool(stream(seed, 1, "bool")[0] % 2)
    if kind == "null":
        return None
    return _string(schema, seed)


def wants_tool_call(seed: bytes, choice: str) -> bool:
    """Whether a request offering tools gets a tool call: always when the request requires
    one (``choice`` ``required``), never when it forbids them (``none``), else for about half
    the requests, decided by the request itself (so reruns agree)."""
    if choice == "required":
        return True
    if choice == "none":
        return False
    return stream(seed, 1, "tool")[0] % 2 == 0


def pick_tool(seed: bytes, names: list[str], forced: str | None = None) -> int:
    """Index of the tool to call: the forced one when named, else one picked by the seed."""
    if forced is not None and forced in names:
        return names.index(forced)
    return stream(seed, 1, "pick")[0] % len(names)
