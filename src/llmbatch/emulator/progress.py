"""Where a batch is in its life at a given moment, computed, never stored.

Every provider's batch goes through the same phases (validate, run, finalize, or be cancelled,
expire, fail); only the status names differ. A ``Schedule`` holds the few facts fixed at
creation (durations, number of requests, drawn faults) plus the one thing a client can change
later (when cancel was requested), and ``snapshot(now)`` derives the phase, the phase-entry
times and how many requests are done. No background thread advances anything, so a fake
clock drives the whole lifecycle in unit tests.

Requests finish in a shuffled order (``FinishOrder``): request ``i`` is done once
``finished > rank(i)``. The rank is an affine permutation of the line index, so it costs no
memory for 50,000 lines and partial results (cancel, expiry) are a cheap, exact cut.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["FinishOrder", "Phase", "Schedule", "Snapshot"]


class Phase(StrEnum):
    """Provider-neutral batch phases."""

    VALIDATING = "validating"
    FAILED = "failed"
    RUNNING = "running"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        """No further change is possible."""
        return self in (Phase.FAILED, Phase.COMPLETED, Phase.CANCELLED, Phase.EXPIRED)

    @property
    def has_results(self) -> bool:
        """Result files exist (or are being prepared) in this phase."""
        return self in (Phase.FINALIZING, Phase.COMPLETED, Phase.CANCELLED, Phase.EXPIRED)


@dataclass(frozen=True)
class Snapshot:
    """The state of a batch at one instant.

    ``times`` maps each phase entered so far (by value: ``"running"``, ``"finalizing"``, ...)
    to when it was entered; ``finished`` counts requests done, successes and failures alike.
    """

    phase: Phase
    finished: int
    times: dict[str, float]


@dataclass
class Schedule:
    """The fixed plan of one batch; ``cancel_requested_at`` is its only mutable fact."""

    created_at: float
    validate_s: float
    run_s: float
    finalize_s: float
    cancel_s: float
    deadline: float
    total: int
    fails_validation: bool = False
    halt_fraction: float | None = None
    expire_fraction: float | None = None
    cancel_requested_at: float | None = field(default=None)

    def _finished(self, t: float) -> int:
        start = self.created_at + self.validate_s
        if t < start:
            return 0
        progress = 1.0 if self.run_s <= 0 else min(1.0, (t - start) / self.run_s)
        if self.halt_fraction is not None:
            progress = min(progress, self.halt_fraction)
        return min(self.total, math.floor(self.total * progress + 1e-9))

    def _cancelled(self, now: float, finished: int, times: dict[str, float]) -> Snapshot:
        assert self.cancel_requested_at is not None
        times[Phase.CANCELLING] = self.cancel_requested_at
        done_at = self.cancel_requested_at + self.cancel_s
        if now < done_at:
            return Snapshot(Phase.CANCELLING, finished, times)
        times[Phase.CANCELLED] = done_at
        return Snapshot(Phase.CANCELLED, finished, times)

    def snapshot(self, now: float) -> Snapshot:
        """Phase, phase-entry times and finished count at ``now``."""
        times: dict[str, float] = {}
        cancel = self.cancel_requested_at
        start = self.created_at + self.validate_s
        if cancel is not None and cancel < start:
            return self._cancelled(now, 0, times)
        if now < start:
            return Snapshot(Phase.VALIDATING, 0, times)
        if self.fails_validation:
            times[Phase.FAILED] = start
            return Snapshot(Phase.FAILED, 0, times)
        times[Phase.RUNNING] = start
        run_end = math.inf if self.halt_fraction is not None else start + self.run_s
        expire_at = self.deadline
        if self.expire_fraction is not None:
            expire_at = min(expire_at, start + self.expire_fraction * self.run_s)
        if cancel is not None and cancel < min(run_end, expire_at):
            return self._cancelled(now, self._finished(cancel), times)
        if expire_at < run_end:
            if now < expire_at:
                return Snapshot(Phase.RUNNING, self._finished(now), times)
            times[Phase.EXPIRED] = expire_at
            return Snapshot(Phase.EXPIRED, self._finished(expire_at), times)
        if now < run_end:
            return Snapshot(Phase.RUNNING, self._finished(now), times)
        times[Phase.FINALIZING] = run_end
        done_at = run_end + self.finalize_s
        if cancel is not None and cancel < done_at:
            return self._cancelled(now, self.total, times)
        if now < done_at:
            return Snapshot(Phase.FINALIZING, self.total, times)
        times[Phase.COMPLETED] = done_at
        return Snapshot(Phase.COMPLETED, self.total, times)

    def request_cancel(self, now: float) -> bool:
        """Record a cancel at ``now`` if the batch is still cancellable; say whether it was.

        Cancellable means validating, running or finalizing. A second cancel while
        cancelling is accepted and changes nothing (the real APIs are idempotent here).
        """
        phase = self.snapshot(now).phase
        if phase == Phase.CANCELLING:
            return True
        if phase not in (Phase.VALIDATING, Phase.RUNNING, Phase.FINALIZING):
            return False
        self.cancel_requested_at = now
        return True


class FinishOrder:
    """The order in which a batch's requests finish: ``rank(i)`` for line index ``i``.

    ``failed_before(k)`` counts failing requests among the first ``k`` to finish, from the
    sorted ranks of the failing ones, so live counters cost a bisect.
    """

    def __init__(self, total: int, key: str, failing_lines: Sequence[int] = ()) -> None:
        self.total = max(total, 1)
        digest = hashlib.sha256(key.encode()).digest()
        step = int.from_bytes(digest[:8], "big") % self.total or 1
        while math.gcd(step, self.total) != 1:
            step += 1
        self._step = step
        self._offset = int.from_bytes(digest[8:16], "big") % self.total
        self._failing_ranks = sorted(self.rank(i) for i in failing_lines)

    def rank(self, index: int) -> int:
        """Position (0-based) at which line ``index`` finishes."""
        return (self._step * index + self._offset) % self.total

    def failed_before(self, finished: int) -> int:
        """How many of the first ``finished`` requests to finish are failures."""
        return bisect_left(self._failing_ranks, finished)

    @property
    def failures(self) -> int:
        """Failing requests in the whole batch."""
        return len(self._failing_ranks)
