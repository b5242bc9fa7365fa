"""Provider limits that hold across every worker process and machine, kept in the database
(no Redis: the embedded mode has none).

* ``provider_call``: every provider API call a service makes runs inside it. It leases one of
  ``max_concurrent_calls`` slots and takes the call's cost from the ``calls_per_minute``
  bucket. When neither comes free within ``rate_limits.max_wait_s`` (short, jittered sleeps)
  it raises ``CallDeferred``: the service then hands the batch back to the tick a little later
  instead of blocking a worker. Slots are leases, so a killed worker cannot leak one for
  longer than ``worker.lease_s``.
* ``submission_gate``: decides, under a per-provider lock and in the caller's transaction,
  whether a planned batch may go now (enqueued-token quota, ``max_batches_in_flight``, the
  hold after a quota failure; rules in ``domain.limits``).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from llmbatch.bootstrap import Runtime
from llmbatch.db.limits import LimitsRepository
from llmbatch.domain.batch import ProviderBatch
from llmbatch.domain.limits import SubmissionBlock, bucket_shape, submission_block
from llmbatch.errors import LLMBatchError
from llmbatch.observability.calls import timed_call
from llmbatch.service_layer.unit_of_work import UnitOfWork

__all__ = ["CallDeferred", "CallLease", "provider_call", "submission_gate"]

log = structlog.get_logger("llmbatch.limits")

Sleep = Callable[[float], None]


class CallDeferred(LLMBatchError):
    """No call slot or rate budget came free in time; try again in ``retry_after_s``."""

    def __init__(self, provider: str, retry_after_s: float) -> None:
        super().__init__(provider, retry_after_s)
        self.provider, self.retry_after_s = provider, retry_after_s

    def __str__(self) -> str:
        return f"{self.provider}: provider call limit reached; retry in {self.retry_after_s:.2f}s"


@dataclass
class CallLease:
    """A held call slot (``slot`` is None when concurrency is not capped)."""

    rt: Runtime
    provider: str
    owner: str
    slot: int | None = None

    def renew(self) -> None:
        """Keep the slot through a long operation (a download written in chunks)."""
        if self.slot is None:
            return
        until = self.rt.clock() + timedelta(seconds=self.rt.config.worker.lease_s)
        with self.rt.engine.begin() as conn:
            LimitsRepository(conn).renew_slot(self.provider, self.slot, self.owner, until)


def _try_acquire(rt: Runtime, lease: CallLease, operation: str, cost: int) -> float:
    """One attempt in one short transaction: 0.0 if acquired, else a hint of how long to
    wait."""
    limits = rt.config.provider(lease.provider).rate_limits
    now = rt.clock()
    with rt.engine.begin() as conn:
        repo = LimitsRepository(conn)
        if limits.max_concurrent_calls is not None:
            lease.slot = repo.take_slot(lease.provider, limits.max_concurrent_calls,
                                        lease.owner, now, rt.config.worker.lease_s)
            if lease.slot is None:
                return 0.05
        if limits.calls_per_minute is not None:
            shape = bucket_shape(limits.calls_per_minute)
            wait = repo.take_calls(lease.provider, shape.charge(cost), shape.capacity,
                                   shape.rate_per_s, now.timestamp())
            if wait > 0:
                if lease.slot is not None:  # do not sit on a slot while the bucket refills
                    repo.release_slot(lease.provider, lease.slot, lease.owner)
                    lease.slot = None
                return wait
    return 0.0


@contextmanager
def provider_call(rt: Runtime, provider: str, operation: str, *, extra_cost: int = 0,
                  sleep: Sleep = time.sleep) -> Iterator[CallLease]:
    """Run one provider operation within the provider's rate limits (see module docstring).

    ``extra_cost`` adds requests made in the same breath (a lookup before a submit). Raises
    ``CallDeferred`` before the body runs if no slot or budget came free in time.
    """
    with (timed_call(provider, operation),
          _limited_call(rt, provider, operation, extra_cost, sleep) as lease):
        yield lease


@contextmanager
def _limited_call(rt: Runtime, provider: str, operation: str, extra_cost: int,
                  sleep: Sleep) -> Iterator[CallLease]:
    limits = rt.config.provider(provider).rate_limits
    owner = f"{rt.worker_id}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"
    lease = CallLease(rt, provider, owner)
    if limits.max_concurrent_calls is None and limits.calls_per_minute is None:
        yield lease
        return
    cost = rt.registry.get(provider).call_cost(operation) + extra_cost
    deadline = time.monotonic() + limits.max_wait_s
    rng = random.Random()
    while True:
        wait = _try_acquire(rt, lease, operation, cost)
        if wait == 0.0:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            # Spread the retries so deferred tasks do not come back in lockstep.
            retry_after = max(wait, 0.2) * rng.uniform(1.0, 2.0)
            log.info("llmbatch.limits.deferred", provider=provider, operation=operation,
                     retry_in_s=round(retry_after, 3))
            raise CallDeferred(provider, retry_after)
        sleep(min(remaining, wait * rng.uniform(0.5, 1.5)))
    try:
        yield lease
    finally:
        if lease.slot is not None:
            with rt.engine.begin() as conn:
                LimitsRepository(conn).release_slot(provider, lease.slot, owner)


def submission_gate(uow: UnitOfWork, rt: Runtime, batch: ProviderBatch,
                    now: datetime) -> SubmissionBlock | None:
    """Whether ``batch`` must wait, decided under the provider's submission lock in ``uow``'s
    transaction (commit the move to SUBMITTING in that same transaction)."""
    repo = uow.limits
    repo.lock_submissions(batch.provider)
    pconf = rt.config.provider(batch.provider)
    model = pconf.model(batch.model)
    tokens, batches = repo.in_flight(batch.provider, batch.model)
    last_failure = repo.last_quota_failure(batch.provider, batch.model)
    hold = pconf.rate_limits.quota_hold_s
    return submission_block(
        batch_tokens=batch.estimated_tokens, tokens_in_flight=tokens,
        token_limit=model.enqueued_token_limit if model else None,
        batches_in_flight=batches,
        max_batches_in_flight=pconf.rate_limits.max_batches_in_flight,
        hold_until=last_failure + timedelta(seconds=hold) if last_failure and hold else None,
        now=now)
