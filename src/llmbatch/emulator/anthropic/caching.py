"""Anthropic prompt caching as the emulator plays it: only prompts that carry
``cache_control`` breakpoints are cached (as at Anthropic), and the prefix up to the last
breakpoint is written on first sight and read afterwards.

The prefix is the system prompt then the messages, in order, up to and including the last block
marked ``cache_control``; it is counted as ``synth.chat_prompt_tokens`` counts the whole prompt,
so the parts add up. Below ``synth.CACHE_MIN_TOKENS`` nothing is cached (Anthropic has a
per-model minimum). The TTL class follows the markers: tokens up to the last ``ttl: "1h"``
breakpoint are one-hour writes, the rest five-minute writes (Anthropic requires 1h entries
before 5m ones). Which prefixes were written is kept per emulator (``PromptCache``), reset with
its state; entries do not expire (a batch runs well inside either TTL in tests).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmbatch.emulator import synth

__all__ = ["CacheUsage", "PromptCache"]


@dataclass(frozen=True)
class CacheUsage:
    """How many of a prompt's tokens were read from, or written to, the cache."""

    read: int = 0
    write_5m: int = 0
    write_1h: int = 0

    @property
    def written(self) -> int:
        return self.write_5m + self.write_1h


def _blocks(content: Any) -> list[Mapping[str, Any]]:
    if isinstance(content, list):
        return [b for b in content if isinstance(b, Mapping)]
    return []


def _breakpoints(params: Mapping[str, Any]) -> tuple[list[tuple[int, str, int]], list[Any]]:
    """``[(tokens so far, ttl, pieces so far)]`` at each breakpoint, and the prompt pieces."""
    marks: list[tuple[int, str, int]] = []
    pieces: list[Any] = []
    total = 3
    system = params.get("system")
    if system is not None:
        total += 4
        text = ""
        for block in _blocks(system) if isinstance(system, list) else []:
            text = f"{text} {block.get('text', '')}" if text else str(block.get("text", ""))
            pieces.append(block)
            if isinstance(block.get("cache_control"), Mapping):
                marks.append((total + synth.estimate_tokens(text),
                              str(block["cache_control"].get("ttl", "5m")), len(pieces)))
        total += synth.estimate_tokens(synth._content_text(system))
        if not isinstance(system, list):
            pieces.append(system)
    messages = params.get("messages")
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, Mapping) else None
        total += 4
        text = ""
        for block in _blocks(content):
            text = f"{text} {block.get('text', '')}" if text else str(block.get("text", ""))
            pieces.append(block)
            if isinstance(block.get("cache_control"), Mapping):
                marks.append((total + synth.estimate_tokens(text),
                              str(block["cache_control"].get("ttl", "5m")), len(pieces)))
        total += synth.estimate_tokens(synth._content_text(content))
        if not isinstance(content, list):
            pieces.append(content)
    return marks, pieces


class PromptCache:
    """The prefixes written so far (by digest of the model and the prefix)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._written: set[bytes] = set()

    def clear(self) -> None:
        with self._lock:
            self._written.clear()

    def use(self, params: Mapping[str, Any]) -> CacheUsage:
        """Read the marked prefix if written before, else write it."""
        marks, pieces = _breakpoints(params)
        if not marks:
            return CacheUsage()
        prefix, _, count = marks[-1]
        if prefix < synth.CACHE_MIN_TOKENS:
            return CacheUsage()
        key = synth.digest({"model": params.get("model"), "prefix": pieces[:count],
                            "tokens": prefix})
        with self._lock:
            seen = key in self._written
            self._written.add(key)
        if seen:
            return CacheUsage(read=prefix)
        one_hour = max((t for t, ttl, _ in marks if ttl == "1h"), default=0)
        return CacheUsage(write_5m=prefix - one_hour, write_1h=one_hour)
