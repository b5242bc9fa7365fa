"""A provider's webhook as an early wake-up: poll the batch it names at once.

The adapter has verified the delivery (``BatchProvider.read_webhook``); here the batch is made
due (``db.early_polls``) and a poll message is published after the commit, marked dispatched
so the tick does not send a second one. A batch a poll holds right now gets a second poll
``BUSY_RECHECK_S`` later: the running one may have read the batch just before it ended.
Nothing else changes: the poll reads the batch's state from the provider as always, so a
forged event that slipped through could only cause an extra poll, and a lost one only leaves
the batch to its scheduled poll.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from llmbatch.bootstrap import Runtime
from llmbatch.db.early_polls import bring_polls_forward
from llmbatch.providers.webhooks import WebhookNotice
from llmbatch.service_layer import tasks

__all__ = ["read_and_wake", "wake_for"]

log = structlog.get_logger("llmbatch.provider_webhooks")

# A batch a poll holds while the event arrives may have been read just before it ended, and
# that poll then schedules the next one as usual: ask again once it is likely done.
BUSY_RECHECK_S = 10.0


def wake_for(rt: Runtime, provider: str, notice: WebhookNotice) -> list[str]:
    """Make the batch of ``notice`` due now and wake a poller; the ids of our batches it
    names (none: a batch of another system on the same project, or one already ended)."""
    now = rt.clock()
    with rt.uow() as uow:
        due, free = bring_polls_forward(uow.repo.conn, provider, notice.provider_batch_id, now)
        if free:
            uow.repo.mark_dispatched(free, now)
            uow.publish_after_commit(tasks.POLL, *free)
        if busy := [batch_id for batch_id in due if batch_id not in free]:
            uow.publish_after_commit(tasks.POLL, *busy, countdown=BUSY_RECHECK_S)
        uow.commit()
    log.info("llmbatch.provider_webhook.received", provider=provider, webhook_event=notice.event,
             provider_batch_id=notice.provider_batch_id, batches=due)
    return due


def read_and_wake(rt: Runtime, provider: str, secret: str, body: bytes,
                  headers: Mapping[str, str]) -> list[str] | None:
    """Verify a delivery with the provider's adapter and act on it; None for an event that
    is about no batch. Raises what ``read_webhook`` raises."""
    notice = rt.registry.get(provider).read_webhook(secret, body, headers)
    if notice is None:
        return None
    return wake_for(rt, provider, notice)
