"""The job's data at the provider once its results are stored: deleted (the default), or kept
until the provider expires it (docs/privacy.md).

When a batch is fetched (``progress.fetch_batch``), ``on_fetched`` marks it in the same
transaction: deletion pending (and a ``CLEANUP`` task published), or kept (an event says so).
``delete_provider_data`` runs the adapter's ``cleanup`` and records every outcome on the job's
timeline. A failure never touches the job (its outcome was settled by the results); it is
retried by the tick after a backoff, at most ``retention.delete_attempts`` times in all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import structlog
from pydantic import ValidationError

from llmbatch.bootstrap import Runtime
from llmbatch.config import RetentionConfig
from llmbatch.db.provider_data import claim_cleanup
from llmbatch.domain.batch import ProviderBatch
from llmbatch.domain.changes import BatchChange
from llmbatch.domain.models import BatchPhase, BatchProgress
from llmbatch.domain.retention import (
    CleanupState,
    Deletion,
    DeletionOutcome,
    cleanup_events,
    kept_event,
    retry_delay_s,
)
from llmbatch.errors import InputError
from llmbatch.providers.base import BatchProvider
from llmbatch.service_layer import tasks
from llmbatch.service_layer.leases import held_lease
from llmbatch.service_layer.limits import CallDeferred, provider_call
from llmbatch.service_layer.unit_of_work import UnitOfWork

__all__ = ["delete_provider_data", "job_retention", "on_fetched", "retention_for_job"]

log = structlog.get_logger("llmbatch.provider_data")

_EXPIRIES = ("input_expires_after_s", "output_expires_after_s")


def job_retention(rt: Runtime, snapshot: dict[str, Any], provider: str) -> RetentionConfig:
    """The retention a job was created with (its config snapshot, which holds the job's own
    ``retention`` when it gave one). Jobs stored before retention settings existed keep what
    ``delete_files_after_fetch`` promised them; a snapshot that no longer reads falls back to
    the provider's current settings."""
    raw = snapshot.get("retention")
    if isinstance(raw, dict):
        try:
            return RetentionConfig.model_validate(raw)
        except ValidationError:
            log.warning("llmbatch.provider_data.unreadable_snapshot", provider=provider)
    elif "delete_files_after_fetch" in snapshot:
        return RetentionConfig(delete_when_stored=bool(snapshot["delete_files_after_fetch"]))
    return rt.config.provider(provider).retention


def retention_for_job(adapter: BatchProvider, base: RetentionConfig,
                      overrides: Mapping[str, Any]) -> RetentionConfig:
    """The provider's ``base`` retention with a job's own ``overrides`` (unset keys keep the
    provider's values), checked as config is: an unknown key, a bad value or a setting the
    provider cannot honour is an ``InputError`` naming ``retention.<key>``."""
    try:
        retention = RetentionConfig.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise InputError(first["msg"], field=f"retention.{key}" if key else "retention") from exc
    problems = adapter.retention_problems(retention, where="retention")
    if problems:
        field, _, message = problems[0].partition(": ")
        raise InputError(message, field=field)
    return retention


def on_fetched(uow: UnitOfWork, rt: Runtime, batch: ProviderBatch,
               fetched: BatchChange) -> BatchChange:
    """``fetched`` (the change that marks ``batch`` fetched) with what becomes of the
    provider's copy: deletion pending and a task published after commit, or kept and said so
    on the timeline."""
    retention = job_retention(rt, uow.repo.config_snapshot(batch.job_id), batch.provider)
    values = dict(fetched.values)
    if retention.delete_when_stored:
        values.update(cleanup_state=str(CleanupState.PENDING), next_poll_at=fetched.at)
        uow.publish_after_commit(tasks.CLEANUP, batch.id)
    else:
        values.update(cleanup_state=str(CleanupState.KEPT))
        expiry = {key: value for key in _EXPIRIES
                  if (value := getattr(retention, key)) is not None}
        uow.record(kept_event(batch.job_id, batch.id, fetched.at, expiry=expiry))
    return replace(fetched, values=values)


def delete_provider_data(rt: Runtime, batch_id: str) -> CleanupState | None:
    """One deletion attempt for a fetched batch whose deletion is due; None when there is
    nothing to do (done, kept, not due yet, or another task holds the batch)."""
    now = rt.clock()
    owner = rt.new_lease_owner()
    with rt.uow() as uow:
        attempts = claim_cleanup(uow.repo.conn, batch_id, owner, now, rt.config.worker.lease_s)
        if attempts is None:
            return None
        batch = uow.repo.get_batch(batch_id)
        retention = job_retention(rt, uow.repo.config_snapshot(batch.job_id), batch.provider)
        uow.commit()
    provider_batch_id = batch.provider_batch_id or ""
    progress = BatchProgress(phase=BatchPhase.ENDED, provider_status=batch.provider_status or "",
                             result_refs=batch.result_refs, failure=batch.failure)
    adapter = rt.registry.get(batch.provider)
    try:
        with (provider_call(rt, batch.provider, "cleanup") as call,
              held_lease(rt, batch_id, owner, call.renew)):
            deletions = adapter.cleanup(provider_batch_id, progress)
    except CallDeferred as exc:  # nothing was sent: not an attempt
        _save(rt, BatchChange(batch_id=batch_id, owner=owner, at=rt.clock(), values={
            "next_poll_at": rt.clock() + timedelta(seconds=exc.retry_after_s)}), [])
        return CleanupState.PENDING
    except Exception as exc:  # an adapter's bug: an attempt that failed, like any other
        log.exception("llmbatch.provider_data.cleanup_crashed", batch_id=batch_id)
        deletions = [Deletion("batch", provider_batch_id, DeletionOutcome.FAILED,
                              error=f"unexpected error while deleting: {exc!r}")]
    attempt = attempts + 1
    at = rt.clock()
    state, events = cleanup_events(batch.job_id, batch_id, at, deletions, attempt=attempt,
                                   max_attempts=retention.delete_attempts)
    values: dict[str, Any] = {"cleanup_state": str(state), "cleanup_attempts": attempt}
    if state is CleanupState.PENDING:
        values["next_poll_at"] = at + timedelta(seconds=retry_delay_s(attempt))
    for deletion in deletions:
        if deletion.outcome is DeletionOutcome.FAILED:
            log.warning("llmbatch.provider_data.delete_failed", batch_id=batch_id,
                        kind=deletion.kind, object_id=deletion.object_id, error=deletion.error,
                        attempt=attempt, will_retry=state is CleanupState.PENDING)
    _save(rt, BatchChange(batch_id=batch_id, owner=owner, at=at, values=values), events)
    return state


def _save(rt: Runtime, change: BatchChange, events: list[Any]) -> None:
    with rt.uow() as uow:
        if uow.save(change):
            for event in events:
                uow.record(event)
        uow.commit()
