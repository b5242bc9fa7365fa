"""``cache_control`` breakpoints (Anthropic's prompt-caching markers, accepted in the neutral
format on messages, content parts and function tools) for providers that have no such marker.

OpenAI and Gemini cache prompt prefixes on their own (OpenAI from 1,024 tokens; Gemini's
implicit caching on 2.5 and later models), report the tokens served from cache in their usage
(``cached_tokens``, ``cachedContentTokenCount``), and llmbatch prices them at the cached rate.
That automatic caching is the documented equivalent of a breakpoint, so their adapters remove
the markers, which those APIs would otherwise refuse or ignore (docs/cost.md, "Prompt
caching"). A marker that is not a breakpoint at all is still an ``InputError``, as it would be
for Anthropic, so a job does not pass here and fail there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmbatch.errors import InputError

__all__ = ["without_cache_markers"]


def _check(value: Any, where: str) -> None:
    if not isinstance(value, Mapping) or value.get("type") != "ephemeral" or set(value) - {
            "type", "ttl"} or value.get("ttl", "5m") not in ("5m", "1h"):
        raise InputError('cache_control must be {"type": "ephemeral"} with an optional "ttl" '
                         "of 5m or 1h", field=f"{where}.cache_control")


def _strip(item: Any, where: str) -> Any:
    if not isinstance(item, (dict, Mapping)) or "cache_control" not in item:
        return item
    _check(item["cache_control"], where)
    return {k: v for k, v in item.items() if k != "cache_control"}


def without_cache_markers(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` without ``cache_control`` on its messages, content parts and tools (the same
    object's contents when there is none; never modified in place). Run on every line of a
    job at submit: a part without a marker costs one lookup."""
    out = dict(body)
    messages = body.get("messages")
    if isinstance(messages, list):
        cleaned = []
        for i, msg in enumerate(messages):
            if not isinstance(msg, (dict, Mapping)):  # dict first: the common case, fast
                cleaned.append(msg)
                continue
            if "cache_control" in msg:
                msg = _strip(msg, f"body.messages[{i}]")
            content = msg.get("content")
            if isinstance(content, list) and any(
                    isinstance(p, Mapping) and "cache_control" in p for p in content):
                where = f"body.messages[{i}]"
                msg = {**msg, "content": [_strip(p, f"{where}.content[{j}]")
                                          for j, p in enumerate(content)]}
            cleaned.append(msg)
        out["messages"] = cleaned
    tools = body.get("tools")
    if isinstance(tools, list):
        out["tools"] = [_strip(t, f"body.tools[{k}]") for k, t in enumerate(tools)]
    return out
