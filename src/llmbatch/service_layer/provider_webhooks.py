"""A provider's webhook as an early wake-up: poll the batch it names at once.

The adapter has verified the delivery (``BatchProvider.read_webhook``); here the batch is made
due (``db.early_polls``) and a poll message is published after the commit, marked dispatched
so the tick does not send a second one. A batch a poll holds right now gets a second poll
``BUSY_RECHECK_S`` later: the running one may have read the batch just before it ended.
Nothing else changes: the poll reads the batch's state from the provider as always, so a
forged event that slipped through could only cause an extra poll, and a lost one only leaves
the batch to its scheduled poll.

A delivery the vendor sends again (its ``webhook-id`` already acted on, ``db.webhook_receipts``)
is acknowledged and does nothing: the receipt is written in the wake-up's own transaction, so
a delivery counts as seen exactly when its wake-up committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from llmbatch.bootstrap import Runtime
from llmbatch.db.early_polls import bring_polls_forward
from llmbatch.db.webhook_receipts import first_receipt
from llmbatch.providers.webhooks import WebhookNotice
from llmbatch.service_layer import tasks

__all__ = ["RECEIPTS_KEPT_S", "Received", "read_and_wake", "wake_for"]

log = structlog.get_logger("llmbatch.provider_webhooks")

# A batch a poll holds while the event arrives may have been read just before it ended, and
# that poll then schedules the next one as usual: ask again once it is likely done.
BUSY_RECHECK_S = 10.0
# How long a delivery's id is remembered: longer than any vendor retries one (72 h at most,
# docs/webhooks.md); a repeat after that is one more poll, harmless.
RECEIPTS_KEPT_S = 4 * 24 * 3600.0


@dataclass(frozen=True)
class Received:
    """What a verified delivery did: ``accepted`` (``batches``: ours it made due),
    ``ignored`` (an event about no batch) or ``duplicate`` (a repeat: nothing done)."""

    status: str
    batches: list[str] = field(default_factory=list)


def wake_for(rt: Runtime, provider: str, notice: WebhookNotice) -> list[str] | None:
    """Make the batch of ``notice`` due now and wake a poller; the ids of our batches it
    names (none: a batch of another system on the same project, or one already ended), or
    None for a delivery already acted on."""
    now = rt.clock()
    with rt.uow() as uow:
        if notice.delivery_id is not None and not first_receipt(
                uow.repo.conn, provider, notice.delivery_id, now, RECEIPTS_KEPT_S):
            log.info("llmbatch.provider_webhook.duplicate", provider=provider,
                     webhook_event=notice.event, delivery_id=notice.delivery_id,
                     provider_batch_id=notice.provider_batch_id)
            return None
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
                  headers: Mapping[str, str]) -> Received:
    """Verify a delivery with the provider's adapter and act on it. Raises what
    ``read_webhook`` raises."""
    notice = rt.registry.get(provider).read_webhook(secret, body, headers)
    if notice is None:
        return Received("ignored")
    woken = wake_for(rt, provider, notice)
    return Received("duplicate") if woken is None else Received("accepted", woken)
