"""The beat tick: enqueue whatever is due, and repair what a dead worker left behind.

Celery messages are only wake-up calls; the tick is what makes a lost message harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog

from llmbatch.bootstrap import Runtime
from llmbatch.db.provider_data import due_cleanups
from llmbatch.domain.states import BatchStatus, JobStatus
from llmbatch.service_layer import tasks
from llmbatch.service_layer.unit_of_work import UnitOfWork
from llmbatch.webhooks.outbox import WebhookOutbox

__all__ = ["TickReport", "tick", "wake_up_messages"]

log = structlog.get_logger("llmbatch.scheduler")

_TASK_FOR = {BatchStatus.PLANNED: tasks.SUBMIT, BatchStatus.IN_PROGRESS: tasks.POLL,
             BatchStatus.CANCELLING: tasks.POLL, BatchStatus.ENDED: tasks.FETCH}


def _cancel_overdue(rt: Runtime, uow: UnitOfWork, now: datetime, limit: int) -> int:
    """Batches still running well past the provider's own deadline are stuck: have the next
    poll cancel them, so their partial results are fetched and the rest re-batched."""
    count = 0
    for provider in uow.repo.providers_in_flight():
        adapter = rt.registry.get(provider)
        grace = rt.config.provider(provider).stuck_grace_s
        cutoff = now - timedelta(seconds=adapter.deadline_s + grace)
        for batch_id, _job_id in uow.repo.overdue_batches(provider, cutoff, limit):
            # Changes are made by a lease holder: a batch a poll holds right now is marked
            # by a later tick.
            batch = uow.repo.claim_batch(batch_id, [BatchStatus.IN_PROGRESS],
                                         rt.new_lease_owner(), now, rt.config.worker.lease_s)
            if batch is not None and uow.save(batch.mark_for_cancel(
                    now, reason="deadline_exceeded", deadline_s=adapter.deadline_s + grace)):
                count += 1
    return count


def wake_up_messages(due: Sequence[tuple[str, BatchStatus]],
                     per_kind: int) -> list[tuple[str, list[str]]]:
    """The task messages that wake workers up for ``due`` batches: one batch id per message
    while there are at most ``per_kind`` batches for a task, so they run in parallel;
    beyond that the ids are spread evenly over ``per_kind`` messages, so that dispatching
    10,000 batches costs a tick 200 publishes instead of 10,000 (about 3 ms each on the
    embedded broker). A message names work, never carries it: a lost one is replaced by a
    later tick once its batches' dispatch marks age out."""
    by_task: dict[str, list[str]] = {}
    for batch_id, status in due:
        by_task.setdefault(_TASK_FOR[status], []).append(batch_id)
    messages: list[tuple[str, list[str]]] = []
    for task, batch_ids in by_task.items():
        count = min(len(batch_ids), per_kind)
        messages.extend((task, batch_ids[start::count]) for start in range(count))
    return messages


class TickReport(dict[str, int]):
    """How many things of each kind the tick enqueued or repaired."""


def tick(rt: Runtime, limit: int = 500) -> TickReport:
    """One scheduler pass. Safe to run from several processes at once."""
    now = rt.clock()
    report = TickReport(repaired=0, overdue=0, planned=0, dispatched=0, finalized=0)
    redispatch_before = now - timedelta(seconds=rt.config.worker.lease_s)
    with rt.uow() as uow:
        for batch_id in uow.repo.stale_submissions(now, limit):
            previous_owner = uow.repo.get_batch(batch_id).lease_owner
            # The submitting task's heartbeat stopped renewing its lease: it is dead. Back to
            # PLANNED with submit_attempts > 0: the next submit adopts the provider's copy by
            # tag if the dead task got that far, and only then sends a new one.
            batch = uow.repo.claim_batch(batch_id, [BatchStatus.SUBMITTING],
                                         rt.new_lease_owner(), now, rt.config.worker.lease_s)
            if batch is not None and uow.save(batch.submission_interrupted(now, previous_owner)):
                report["repaired"] += 1
        report["overdue"] = _cancel_overdue(rt, uow, now, limit)
        for job_id in uow.repo.jobs_in_status([JobStatus.PENDING], limit):
            uow.publish_after_commit(tasks.PLAN, job_id)
            report["planned"] += 1
        due = uow.repo.due_batches(now, redispatch_before, rt.config.worker.dispatch_limit)
        uow.repo.mark_dispatched([batch_id for batch_id, _ in due], now)
        for task, batch_ids in wake_up_messages(due, rt.config.worker.dispatch_messages):
            uow.publish_after_commit(task, *batch_ids)
        report["dispatched"] = len(due)
        # Deletions of provider-side data: pending ones a lost message or a failed attempt left.
        cleanups = due_cleanups(uow.repo.conn, now, redispatch_before, limit)
        uow.repo.mark_dispatched(cleanups, now)
        for batch_id in cleanups:
            uow.publish_after_commit(tasks.CLEANUP, batch_id)
        if cleanups:
            report["cleanups"] = len(cleanups)
        for job_id in uow.repo.idle_running_jobs(limit):
            uow.publish_after_commit(tasks.FINALIZE, job_id)
            report["finalized"] += 1
        if WebhookOutbox(uow.repo.conn).any_due(now):  # retries and replays come due here
            uow.publish_after_commit(tasks.WEBHOOKS)
            report["webhooks"] = 1
        uow.commit()
    if any(report.values()):
        log.debug("llmbatch.tick", **report)
    return report
