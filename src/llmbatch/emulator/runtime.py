"""The state every emulated provider shares: settings, clock, blobs, ids, faults, stats.

One ``EmulatorRuntime`` lives per app. Provider modules hold their own records but register a
reset hook here, so ``POST /_emulator/reset`` can wipe all providers at once, and they raise
``EmulatorHTTPError`` with a body already in their provider's error format; the app turns it
into a response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmbatch.emulator.clock import AdvanceableClock, Clock, ShiftableClock
from llmbatch.emulator.faults import CallFaults, FaultInjector
from llmbatch.emulator.settings import EmulatorSettings
from llmbatch.emulator.stats import Stats
from llmbatch.emulator.store import BlobStore, IdFactory
from llmbatch.emulator.webhooks import WebhookSender

__all__ = ["EmulatorHTTPError", "EmulatorRuntime"]


class EmulatorHTTPError(Exception):
    """An HTTP error response, body already in the provider's own error shape."""

    def __init__(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, dict(body))
        self.status = status
        self.body = dict(body)
        self.headers = dict(headers or {})


@dataclass
class EmulatorRuntime:
    """Shared services of one emulator app."""

    settings: EmulatorSettings
    clock: Clock
    blobs: BlobStore
    ids: IdFactory
    faults: FaultInjector
    stats: Stats
    webhooks: WebhookSender
    _state_resetters: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: EmulatorSettings, clock: Clock | None = None) -> EmulatorRuntime:
        """Wire the shared services from settings; wall time (shiftable) unless given a clock."""
        clock = clock or ShiftableClock()
        return cls(
            settings=settings,
            clock=clock,
            blobs=BlobStore(settings.data_dir),
            ids=IdFactory(settings.seed, reproducible=settings.reproducible_ids),
            faults=FaultInjector(settings.faults),
            stats=Stats(),
            webhooks=WebhookSender(settings.webhooks, clock.now),
        )

    def key_accepted(self, key: str | None) -> bool:
        """Whether an API key may call: any non-empty key, or one of the configured keys."""
        if not key:
            return False
        return self.settings.api_keys is None or key in self.settings.api_keys

    def on_reset_state(self, resetter: Callable[[], None]) -> None:
        """Register a provider's "forget every file and batch" hook."""
        self._state_resetters.append(resetter)

    def reset(self, *, faults: bool = True, stats: bool = True, state: bool = False) -> None:
        """Restore the profile's faults, zero the stats, and optionally drop all state."""
        if faults:
            self.faults.reset()
        if stats:
            self.stats.reset()
        if state:
            for resetter in self._state_resetters:
                resetter()
            self.blobs.clear()
            self.webhooks.forget()

    def advance_clock(self, seconds: float) -> float:
        """Move the clock forward, if it can be moved; returns the new time."""
        if not isinstance(self.clock, AdvanceableClock):
            raise TypeError("this emulator's clock cannot be advanced")
        return self.clock.advance(seconds)

    def call_faults(self, provider: str, operation: str, tags: Mapping[str, str]) -> CallFaults:
        """Count a call and draw its faults (recording the ones that fire)."""
        self.stats.call(provider, operation)
        drawn = self.faults.for_call(provider, operation, tags)
        if drawn.error is not None or drawn.delay_s:
            self.stats.fault(provider, operation)
        return drawn

    async def apply_call_faults(
        self,
        provider: str,
        operation: str,
        tags: Mapping[str, str],
        error_for: Callable[[int, str | None], EmulatorHTTPError],
    ) -> None:
        """Count the call, sleep any drawn delay, raise any drawn HTTP error.

        ``error_for(status, message)`` builds the provider-shaped error; ``Retry-After`` (whole
        seconds, rounded up) and ``retry-after-ms`` (exact) are added here for every provider.
        """
        drawn = self.call_faults(provider, operation, tags)
        if drawn.delay_s:
            await asyncio.sleep(drawn.delay_s)
        if drawn.error is not None:
            error = error_for(drawn.error.status, drawn.error.message)
            if drawn.error.retry_after_s is not None:
                seconds = drawn.error.retry_after_s
                error.headers["retry-after"] = str(max(1, int(-(-seconds // 1))))
                error.headers["retry-after-ms"] = str(int(seconds * 1000))
            raise error

    def close(self) -> None:
        """Release the blob directory."""
        self.blobs.close()
