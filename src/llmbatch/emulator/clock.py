"""Clocks for the emulator.

Batch state is never advanced by a background thread: every request computes it from the
creation time and "now". Whoever controls "now" therefore controls the whole lifecycle, which
is why the clock is injectable. ``SystemClock`` is wall time, ``ShiftableClock`` is wall time
plus an offset that the control endpoint can move forward (so an end-to-end test can jump past
a 24 h deadline), and ``FakeClock`` only moves when told to (unit tests).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["AdvanceableClock", "Clock", "FakeClock", "ShiftableClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Source of the current time, in Unix seconds."""

    def now(self) -> float:
        """The current time."""
        ...


@runtime_checkable
class AdvanceableClock(Clock, Protocol):
    """A clock that can be moved forward (never back: batch timestamps must stay ordered)."""

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` and return the new time."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> float:
        """``time.time()``."""
        return time.time()


class ShiftableClock:
    """Wall-clock time plus an offset that only grows.

    The default clock of a served emulator: it behaves like real time, and
    ``POST /_emulator/clock`` can still skip ahead to test expiry or retention.
    """

    def __init__(self, base: Clock | None = None) -> None:
        self._base = base or SystemClock()
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Base time plus the accumulated offset."""
        return self._base.now() + self._offset

    def advance(self, seconds: float) -> float:
        """Add ``seconds`` (>= 0) to the offset."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._offset += seconds
        return self.now()


class FakeClock:
    """A clock that stands still until advanced; for deterministic unit tests."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        """The time set so far."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds
        return self._now
