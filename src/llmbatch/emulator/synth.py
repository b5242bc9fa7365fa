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
    "reply_length",
    "reply_words",
    "stream",
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


def json_instance(schema: Any, seed: bytes, depth: int = 0) -> Any:
    """A small value that satisfies a (simple) JSON schema, for structured-output requests.

    Handles the subset structured outputs allow: objects with properties (all filled),
    arrays (one item), enums and consts, strings, numbers, integers, booleans, nullable
    unions (``anyOf``/``type`` lists: the first non-null branch). ``$ref`` is not followed;
    an unknown shape yields a string.
    """
    if not isinstance(schema, Mapping) or depth > 8:
        return reply_words(seed, 3)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        options = schema["enum"]
        return options[stream(seed, 1, "enum")[0] % len(options)]
    for union in ("anyOf", "oneOf"):
        branches = schema.get(union)
        if isinstance(branches, list) and branches:
            non_null = [b for b in branches if not (isinstance(b, Mapping)
                                                    and b.get("type") == "null")]
            return json_instance((non_null or branches)[0], seed, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {
            name: json_instance(sub, stream(seed, 16, f"prop:{name}"), depth + 1)
            for name, sub in props.items()
        }
    if kind == "array":
        return [json_instance(schema.get("items"), stream(seed, 16, "item"), depth + 1)]
    if kind == "integer":
        return int.from_bytes(stream(seed, 2, "int"), "big") % 100
    if kind == "number":
        return round(int.from_bytes(stream(seed, 2, "num"), "big") / 655.36, 2)
    if kind == "boolean":
        return bool(stream(seed, 1, "bool")[0] % 2)
    if kind == "null":
        return None
    return reply_words(seed, 3)
