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
from datetime import datetime, timedelta

from llmbatch.domain.limits import WAITING_CODES, WaitReason
from llmbatch.domain.states import BatchStatus, JobStatus, is_terminal
from llmbatch.service_layer.read_models.values import BatchSummary, JobDetail

__all__ = ["local_owner_alive", "why_waiting"]

OwnerAlive = Callable[[str], bool | None]

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


def _batch_reason(batch: BatchSummary, now: datetime, owner_alive: OwnerAlive) -> str | None:
    name = batch.id
    if batch.error_code in WAITING_CODES:
        return (f"{name} waiting for quota ({_WAITS.get(batch.error_code or '', '')}); "
                f"looked at again at {_at(batch.next_poll_at)}")
    if batch.call_failures and batch.error:
        return (f"{name}: provider call failing ({batch.call_failures} in a row: provider "
                f"unreachable or refusing): {batch.error}; next try at "
                f"{_at(batch.next_poll_at)}")
    if (batch.status is BatchStatus.PLANNED and batch.error and batch.next_poll_at
            and batch.next_poll_at > now):
        return (f"{name} waiting for quota: the provider refused it ({batch.error}); "
                f"tried again at {_at(batch.next_poll_at)}")
    if batch.lease_owner and batch.lease_until is not None:
        if batch.lease_until > now and owner_alive(batch.lease_owner) is False:
            return (f"{name} {batch.status}: waiting for the lease of a worker that died "
                    f"({batch.lease_owner}) until {_at(batch.lease_until)}, then another "
                    f"worker takes over")
        if batch.lease_until <= now and batch.status in (BatchStatus.SUBMITTING,
                                                         BatchStatus.ENDED):
            return (f"{name} {batch.status}: its worker's lease ran out at "
                    f"{_at(batch.lease_until)}; the next scheduler tick hands it to another "
                    f"worker (is a worker with --beat running?)")
    return None


def why_waiting(job: JobDetail, now: datetime,
                owner_alive: OwnerAlive = local_owner_alive) -> list[str]:
    """One line per reason the job is held up (empty when it simply runs or has ended)."""
    if is_terminal(job.status):
        return []
    reasons = [r for b in job.batches if not is_terminal(b.status)
               for r in (_batch_reason(b, now, owner_alive),) if r]
    if (job.status is JobStatus.PENDING and not job.batches
            and now - job.created_at > NO_WORKER_AFTER):
        reasons.append(f"no worker has picked the job up since {_at(job.created_at)}: is one "
                       f"running for this database? (llmbatch worker --beat, or "
                       f"llmbatch wait {job.id})")
    return reasons
