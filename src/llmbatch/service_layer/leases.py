"""Keeping a batch's lease alive while its holder works on it.

A lease is taken for ``worker.lease_s``; a provider call can take longer (a 200 MB upload on a
slow link, a create the provider is slow to answer, a long result download). Were the lease to
run out meanwhile, the tick would take the submission for interrupted and another task would
send the batch a second time, billed twice. So every task that holds a batch's lease across
provider calls runs them inside ``held_lease``: a heartbeat thread renews the lease every third
of ``lease_s`` for as long as the holder lives. Only a holder that stops living (killed, hung
past the lease with its heartbeat dead) loses the lease, and then what it started is found by
adoption, never sent again blind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import structlog

from llmbatch.bootstrap import Runtime
from llmbatch.db.repository import Repository

__all__ = ["LeaseWatch", "held_lease"]

log = structlog.get_logger("llmbatch.leases")


class LeaseWatch:
    """What the heartbeat learned: ``lost`` once another task took the lease."""

    def __init__(self) -> None:
        self.lost = False
        self.renewals = 0


@contextmanager
def held_lease(rt: Runtime, batch_id: str, owner: str,
               *also_renew: Callable[[], None]) -> Iterator[LeaseWatch]:
    """Renew ``owner``'s lease on ``batch_id`` (and run ``also_renew``, e.g. a call slot's
    renewal) every ``lease_s / 3`` seconds while the body runs."""
    lease_s = rt.config.worker.lease_s
    watch = LeaseWatch()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(lease_s / 3):
            try:
                with rt.engine.begin() as conn:
                    kept = Repository(conn).renew_lease(
                        batch_id, owner, rt.clock() + timedelta(seconds=lease_s))
                for renew in also_renew:
                    renew()
            except Exception as exc:  # a database hiccup: the next beat tries again
                log.warning("llmbatch.lease.renew_failed", batch_id=batch_id, error=str(exc))
                continue
            if not kept:
                watch.lost = True
                log.error("llmbatch.lease.lost", batch_id=batch_id, owner=owner)
                return
            watch.renewals += 1

    thread = threading.Thread(target=beat, name=f"lease-{batch_id}", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        stop.set()
        thread.join()
