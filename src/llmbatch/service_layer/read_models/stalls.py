"""Why a job is not moving, in words: the provider cannot be reached, a quota makes a batch
wait, a worker that died still holds a batch's lease, or no worker has picked the job up.

Everything needed is already on the job's provider batches (``error``, ``error_code``,
``call_failures``, ``next_poll_at``, ``lease_owner``, ``lease_until``); this module only reads
them. The progress bar, ``llmbatch status`` and ``llmbatch events`` all print these lines, so
a stuck job says the same thing wherever one looks.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from llmbatch.domain.limits import WAITING_CODES, WaitReason
from llmbatch.domain.states import BatchStatus, JobStatus, is_terminal
from llmbatch.service_layer.read_models.values import BatchSummary, JobDetail

__all__ = ["Stall", "local_owner_alive", "why_waiting"]

OwnerAlive = Callable[[str], bool | None]


@dataclass(frozen=True, slots=True)
class Stall:
    """One reason a job is held up. ``kind`` is stable (``provider_failing``, ``quota``,
    ``dead_worker_lease``, ``lease_expired``, ``no_worker``) so that a display can tell a new
    reason from the same one with fresher numbers; ``message`` says it in full."""

    kind: str
    batch_id: str | None
    message: str

    def __str__(self) -> str:
        return self.message

    @property
    def short(self) -> str:
        """A few words for beside a progress bar."""
        return _SHORT[self.kind]

    def as_dict(self) -> dict[str, str | None]:
        return {"kind": self.kind, "batch_id": self.batch_id, "message": self.message}


_SHORT = {"provider_failing": "provider unreachable", "quota": "waiting for quota",
          "dead_worker_lease": "waiting for a dead worker's lease",
          "lease_expired": "waiting for a worker", "no_worker": "no worker"}

NO_WORKER_AFTER = timedelta(seconds=15)
"""A job still pending this long after it was created has not been seen by any worker."""


def local_owner_alive(owner: str) -> bool | None:
    """Whether the process holding a lease (``host:pid:token``) lives, when it ran on this
    machine; None when it cannot be told from here (another host, an odd owner string)."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return None
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


_WAITS = {
    str(WaitReason.ENQUEUED_TOKENS): "the model's enqueued-token quota is full",
    str(WaitReason.BATCHES_IN_FLIGHT): "rate_limits.max_batches_in_flight reached",
    str(WaitReason.QUOTA_HOLD): "holding off after the provider's token limit",
}


def _at(moment: datetime | None) -> str:
    return moment.strftime("%H:%M:%S") if moment else "?"


def _holder_gone(batch: BatchSummary, now: datetime, owner_alive: OwnerAlive,
                 lease_s: float | None) -> bool:
    """Whether the task holding the lease is dead: its process is gone (this machine), or
    its heartbeat, which renews the lease every third of ``lease_s``, has missed two beats."""
    assert batch.lease_owner is not None and batch.lease_until is not None
    alive = owner_alive(batch.lease_owner)
    if alive is not None:
        return not alive
    return lease_s is not None and (batch.lease_until - now).total_seconds() < lease_s / 3


def _batch_reason(batch: BatchSummary, now: datetime, owner_alive: OwnerAlive,
                  lease_s: float | None) -> Stall | None:
    name = batch.id
    if batch.error_code in WAITING_CODES:
        return Stall("quota", name, f"{name} waiting for quota "
                     f"({_WAITS.get(batch.error_code or '', '')}); looked at again at "
                     f"{_at(batch.next_poll_at)}")
    if batch.call_failures and batch.error:
        return Stall("provider_failing", name,
                     f"{name}: provider call failing ({batch.call_failures} in a row: provider "
                     f"unreachable or refusing): {batch.error}; next try at "
                     f"{_at(batch.next_poll_at)}")
    if (batch.status is BatchStatus.PLANNED and batch.error and batch.next_poll_at
            and batch.next_poll_at > now):
        return Stall("quota", name, f"{name} waiting for quota: the provider refused it "
                     f"({batch.error}); tried again at {_at(batch.next_poll_at)}")
    if batch.lease_owner and batch.lease_until is not None:
        if batch.lease_until > now and _holder_gone(batch, now, owner_alive, lease_s):
            return Stall("dead_worker_lease", name,
                         f"{name} {batch.status}: waiting for the lease of a worker that died "
                         f"({batch.lease_owner}) until {_at(batch.lease_until)}, then another "
                         f"worker takes over")
        if batch.lease_until <= now and batch.status in (BatchStatus.SUBMITTING,
                                                         BatchStatus.ENDED):
            return Stall("lease_expired", name,
                         f"{name} {batch.status}: its worker's lease ran out at "
                         f"{_at(batch.lease_until)}; the next scheduler tick hands it to "
                         f"another worker (is a worker with --beat running?)")
    return None


def why_waiting(job: JobDetail, now: datetime, owner_alive: OwnerAlive = local_owner_alive,
                *, lease_s: float | None = None) -> list[Stall]:
    """Each reason the job is held up (empty when it simply runs or has ended). ``lease_s``
    (``worker.lease_s``) lets a lease whose heartbeat stopped be told from a live one when
    its holder runs on another machine."""
    if is_terminal(job.status):
        return []
    reasons = [r for b in job.batches if not is_terminal(b.status)
               for r in (_batch_reason(b, now, owner_alive, lease_s),) if r]
    if (job.status is JobStatus.PENDING and not job.batches
            and now - job.created_at > NO_WORKER_AFTER):
        reasons.append(Stall("no_worker", None,
                             f"no worker has picked the job up since {_at(job.created_at)}: is "
                             f"one running for this database? (llmbatch worker --beat, or "
                             f"llmbatch wait {job.id})"))
    return reasons
