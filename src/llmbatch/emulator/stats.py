"""Counters the control endpoint reports (``GET /_emulator/stats``).

They exist so tests can assert what a client *did* to a provider, not just what it reports:
how many calls per operation (retries included), how many batches were created and with
which tags (a second create for the same tag is a duplicate, billed batch), which faults
fired, the peak number of requests in flight (to check client concurrency limits), and the
beta headers calls carried (``betas``: per provider, ``operation beta`` -> calls).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

__all__ = ["Stats"]


class Stats:
    """Thread-safe counters, grouped by provider."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()
        self.reset()

    def reset(self) -> None:
        """Zero everything (the in-flight gauge keeps counting requests still running)."""
        with self._lock:
            self._calls: Counter[tuple[str, str]] = Counter()
            self._faults: Counter[tuple[str, str]] = Counter()
            self._auth_failures: Counter[str] = Counter()
            self._batches: Counter[str] = Counter()
            self._tags: Counter[tuple[str, str]] = Counter()
            self._betas: Counter[tuple[str, str]] = Counter()
            self._max_in_flight: Counter[str] = Counter(self._in_flight)
            self._max_total = sum(self._in_flight.values())

    def call(self, provider: str, operation: str) -> None:
        """An authenticated call reached ``operation``."""
        with self._lock:
            self._calls[provider, operation] += 1

    def fault(self, provider: str, operation: str) -> None:
        """A call fault fired on ``operation``."""
        with self._lock:
            self._faults[provider, operation] += 1

    def auth_failure(self, provider: str) -> None:
        """A call was refused for its credentials."""
        with self._lock:
            self._auth_failures[provider] += 1

    def batch_created(self, provider: str, tags: dict[str, str]) -> None:
        """A batch was accepted; count it under each of its ``key=value`` tags."""
        with self._lock:
            self._batches[provider] += 1
            for key, value in tags.items():
                self._tags[provider, f"{key}={value}"] += 1

    def betas_seen(self, provider: str, operation: str, betas: tuple[str, ...]) -> None:
        """A call to ``operation`` carried these betas (Anthropic's ``anthropic-beta``)."""
        with self._lock:
            for beta in betas:
                self._betas[provider, f"{operation} {beta}"] += 1

    def enter(self, provider: str) -> None:
        """A provider request started."""
        with self._lock:
            self._in_flight[provider] += 1
            self._max_in_flight[provider] = max(
                self._max_in_flight[provider], self._in_flight[provider]
            )
            self._max_total = max(self._max_total, sum(self._in_flight.values()))

    def leave(self, provider: str) -> None:
        """A provider request finished (its response fully sent)."""
        with self._lock:
            self._in_flight[provider] -= 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy: see the module docstring for what each part is for."""

        def nested(counter: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for (provider, key), n in sorted(counter.items()):
                out.setdefault(provider, {})[key] = n
            return out

        with self._lock:
            return {
                "calls": nested(self._calls),
                "faults_injected": nested(self._faults),
                "auth_failures": dict(self._auth_failures),
                "batches_created": dict(self._batches),
                "creates_by_tag": nested(self._tags),
                "betas": nested(self._betas),
                "in_flight": sum(self._in_flight.values()),
                "max_in_flight": self._max_total,
                "max_in_flight_by_provider": {k: v for k, v in self._max_in_flight.items() if v},
            }
