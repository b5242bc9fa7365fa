"""A provider batch and its transitions: every way a batch changes, as a method that returns
the change (``domain.changes``) instead of writing it.

The methods check the move against the transition table (``InvalidTransition`` for a move the
table forbids: a bug, not a race) and say which event the timeline gets. Services decide
*when* (after which provider call); these methods decide *what* is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from llmbatch.domain.changes import BatchChange, LeaseRule
from llmbatch.domain.events import Event, EventType
from llmbatch.domain.limits import WAITING_CODES, WaitReason
from llmbatch.domain.models import BatchFailure, BatchProgress, FailureKind, SubmittedBatch
from llmbatch.domain.retry import PROVIDER_UNREACHABLE_CODE, RESULTS_UNAVAILABLE_CODE
from llmbatch.domain.states import BatchStatus, check_transition
from llmbatch.domain.storable import UNSTORABLE_CODE, escape_text
from llmbatch.observability.redaction import redact

__all__ = ["ProviderBatch"]


@dataclass
class ProviderBatch:
    """One submission to a provider: a slice of a job's items."""

    id: str
    job_id: str
    provider: str
    model: str
    status: BatchStatus
    attempt: int
    item_count: int
    byte_count: int
    created_at: datetime
    estimated_tokens: int = 0
    provider_batch_id: str | None = None
    provider_status: str | None = None
    input_file_id: str | None = None
    result_refs: dict[str, str] = field(default_factory=dict)
    request_counts: dict[str, int] = field(default_factory=dict)
    lease_owner: str | None = None
    lease_until: datetime | None = None
    next_poll_at: datetime | None = None
    dispatched_at: datetime | None = None
    poll_count: int = 0
    submit_attempts: int = 0
    call_failures: int = 0
    cancel_reason: str | None = None
    submitted_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    error_code: str | None = None
    failure: BatchFailure | None = None  # why the provider failed it as a whole, if it did

    # ---- the mechanics ----------------------------------------------------------------------
    def _change(self, at: datetime, *, to: BatchStatus | None = None,
                event: EventType | None = None, data: dict[str, Any] | None = None,
                lease: LeaseRule = LeaseRule.RELEASE, expect: dict[str, Any] | None = None,
                **values: Any) -> BatchChange:
        if to is not None:
            check_transition(self.status, to)
        # Provider messages are quoted on the batch and in its event and may hold text no
        # database stores (NUL, lone surrogates), and a prompt's personal data the provider
        # echoed: escaped and redacted here, before anything stores them.
        for fields in (values, data or {}):
            if isinstance(fields.get("error"), str):
                fields["error"] = redact(escape_text(fields["error"]))
        failure = values.get("failure")
        if isinstance(failure, BatchFailure):
            values["failure"] = replace(failure, message=redact(escape_text(failure.message)))
        ev = None
        if event is not None:
            ev = Event(job_id=self.job_id, batch_id=self.id, type=event, at=at,
                       from_status=str(self.status) if to is not None else None,
                       to_status=str(to) if to is not None else None, data=data or {})
        return BatchChange(batch_id=self.id, owner=self.lease_owner, at=at, to=to,
                           values=values, event=ev, lease=lease, expect=expect or {})

    def after(self, change: BatchChange) -> ProviderBatch:
        """This batch as it is once ``change`` is saved (for the next decision in the same
        task)."""
        status = change.to if change.to is not None else self.status
        return replace(self, status=status, **dict(change.values))

    # ---- submission -------------------------------------------------------------------------
    def release(self, at: datetime) -> BatchChange:
        """Nothing to change now (e.g. still backing off): hand the batch back to the tick."""
        return self._change(at)

    def start_submission(self, at: datetime) -> BatchChange:
        """About to call the provider: from now on a copy may exist there, so a later attempt
        must look for it first (``submit_attempts > 0``)."""
        return self._change(at, to=BatchStatus.SUBMITTING, lease=LeaseRule.HOLD,
                            submit_attempts=self.submit_attempts + 1)

    def wait_for_room(self, at: datetime, *, reason: str, detail: dict[str, Any],
                      recheck_s: float) -> BatchChange:
        """The provider's limits have no room: stay planned, look again later; the timeline
        says so once per wait, not at every recheck."""
        first = self.error_code not in WAITING_CODES
        return self._change(at, event=EventType.BATCH_WAITING_FOR_QUOTA if first else None,
                            data={"reason": reason, **detail}, error_code=reason,
                            next_poll_at=at + timedelta(seconds=recheck_s))

    def submission_deferred(self, at: datetime, retry_after_s: float) -> BatchChange:
        """Our own call limits said "not now" before anything was sent: back to planned with
        the submit attempt given back."""
        return self._change(at, to=BatchStatus.PLANNED,
                            submit_attempts=max(self.submit_attempts - 1, 0),
                            next_poll_at=at + timedelta(seconds=retry_after_s))

    def accepted(self, at: datetime, submitted: SubmittedBatch, *, adopted: bool) -> BatchChange:
        """The provider holds the batch (we sent it, or adopted the copy an earlier attempt
        made); the first poll is due at once."""
        return self._change(
            at, to=BatchStatus.IN_PROGRESS,
            event=EventType.BATCH_ADOPTED if adopted else EventType.BATCH_SUBMITTED,
            data={"provider_batch_id": submitted.provider_batch_id},
            provider_batch_id=submitted.provider_batch_id,
            provider_status=submitted.provider_status, input_file_id=submitted.input_file_id,
            submitted_at=at, next_poll_at=at, error=None, error_code=None, call_failures=0)

    def wait_for_quota(self, at: datetime, *, error: str, code: str | None,
                       hold_s: float) -> BatchChange:
        """The provider refused the create for quota: nothing was created, so no adoption is
        needed and the submit attempt is given back; wait like a gated batch."""
        return self._change(at, to=BatchStatus.PLANNED, event=EventType.BATCH_WAITING_FOR_QUOTA,
                            data={"reason": str(WaitReason.QUOTA_HOLD), "code": code,
                                  "retry_in_s": hold_s}, error=error,
                            error_code=code, submit_attempts=max(self.submit_attempts - 1, 0),
                            next_poll_at=at + timedelta(seconds=hold_s))

    def retry_submission(self, at: datetime, *, error: str, code: str | None, failures: int,
                         delay_s: float) -> BatchChange:
        """The submission failed in a way worth another try after ``delay_s``."""
        return self._change(at, to=BatchStatus.PLANNED, event=EventType.BATCH_SUBMIT_RETRY,
                            data={"error": error, "retry_in_s": round(delay_s, 3),
                                  "failures_in_a_row": failures},
                            error=error, error_code=code, call_failures=failures,
                            next_poll_at=at + timedelta(seconds=delay_s))

    def submission_failed(self, at: datetime, *, error: str, code: str | None) -> BatchChange:
        """The provider will never take this batch as it is."""
        return self._change(at, to=BatchStatus.FAILED, event=EventType.BATCH_SUBMIT_FAILED,
                            data={"error": error}, error=error, error_code=code, ended_at=at)

    def submission_interrupted(self, at: datetime, previous_owner: str | None) -> BatchChange:
        """Repair: the submitting task's lease ran out (it died). Back to planned with
        ``submit_attempts > 0``, so the next attempt adopts the provider's copy if one exists."""
        return self._change(at, to=BatchStatus.PLANNED,
                            event=EventType.BATCH_SUBMIT_INTERRUPTED,
                            data={"lease_owner": previous_owner})

    def cancel_unsent(self, at: datetime) -> BatchChange:
        """The job is being cancelled and the provider has nothing of this batch."""
        return self._change(at, to=BatchStatus.CANCELLED, ended_at=at)

    # ---- at the provider --------------------------------------------------------------------
    def cancel_sent(self, at: datetime) -> BatchChange:
        """The provider was asked to cancel; the same task goes on to record what it said."""
        return self._change(at, to=BatchStatus.CANCELLING, event=EventType.BATCH_CANCEL_SENT,
                            lease=LeaseRule.HOLD)

    def mark_for_cancel(self, at: datetime, *, reason: str, deadline_s: float) -> BatchChange:
        """Still running well past the provider's own deadline: stuck. The next poll (due at
        once) cancels it, so its partial results are fetched and the rest re-batched."""
        return self._change(at, event=EventType.BATCH_STUCK,
                            data={"reason": reason, "deadline_s": deadline_s},
                            cancel_reason=reason, next_poll_at=at,
                            expect={"cancel_reason": None})

    def come_back_at(self, at: datetime, delay_s: float) -> BatchChange:
        """Nothing learned (our call limits deferred the call): look again after ``delay_s``."""
        return self._change(at, next_poll_at=at + timedelta(seconds=delay_s))

    def call_failed(self, at: datetime, *, error: str, failures: int,
                    delay_s: float) -> BatchChange:
        """A poll, cancel or fetch call failed: keep the status and back off."""
        return self._change(at, error=error, call_failures=failures,
                            next_poll_at=at + timedelta(seconds=delay_s))

    def polled(self, at: datetime, progress: BatchProgress, *, delay_s: float) -> BatchChange:
        """Still running at the provider: remember the counts, poll again after ``delay_s``."""
        return self._change(at, provider_status=progress.provider_status,
                            request_counts=_counts(progress), poll_count=self.poll_count + 1,
                            next_poll_at=at + timedelta(seconds=delay_s), call_failures=0)

    def ended(self, at: datetime, progress: BatchProgress) -> BatchChange:
        """The provider is done with the batch: its results are due for fetching now."""
        counts = _counts(progress)
        failure = progress.failure
        said = ({"error": failure.message, "failure": str(failure.kind),
                 "retryable": failure.retryable} if failure else {})
        return self._change(
            at, to=BatchStatus.ENDED, event=EventType.BATCH_ENDED,
            data={"provider_status": progress.provider_status, **counts, **said},
            provider_status=progress.provider_status, request_counts=counts,
            result_refs=progress.result_refs, error=failure.message if failure else None,
            error_code=failure.code if failure else None, failure=failure,
            poll_count=self.poll_count + 1, ended_at=at, call_failures=0, next_poll_at=at)

    def fetched(self, at: datetime, *, results: int, without_result: int,
                unstorable: str | None = None) -> BatchChange:
        """Every item of the batch has its result (or was settled without one).

        ``unstorable`` summarises results that could not be stored as they came; it goes on
        the batch's error unless a batch-level failure is there already, which matters more.
        It is written only now: earlier, a fetch run again after a crash would read it as the
        batch's failure and settle the items without a result by it.
        """
        noted: dict[str, Any] = ({"error": unstorable, "error_code": UNSTORABLE_CODE}
                                 if unstorable and self.error_code is None else {})
        return self._change(at, to=BatchStatus.FETCHED, event=EventType.BATCH_FETCHED,
                            data={"results": results, "without_result": without_result},
                            fetched_at=at, **noted)

    def results_unavailable(self, at: datetime, *, reason: str, failures: int) -> BatchChange:
        """The download failed ``retry.max_call_failures`` times in a row: fetching goes on
        without it, and the items without a stored result are settled as unreported."""
        failure = BatchFailure(kind=FailureKind.LOST, message=reason, retryable=True,
                               items_ran=True, code=RESULTS_UNAVAILABLE_CODE)
        return self._change(at, event=EventType.BATCH_RESULTS_UNAVAILABLE,
                            data={"error": reason, "failures": failures},
                            lease=LeaseRule.HOLD, error=reason,
                            error_code=RESULTS_UNAVAILABLE_CODE, failure=failure,
                            call_failures=failures)

    def abandon(self, at: datetime, *, reason: str, failures: int) -> BatchChange:
        """Nobody can ask the provider about the batch any more (``retry.max_call_failures``
        polls or cancels failed in a row). It may still run there, so it is closed here as
        ended with the reason; the same task then settles its items and marks it fetched."""
        return self._change(at, to=BatchStatus.ENDED, event=EventType.BATCH_ABANDONED,
                            data={"error": reason, "failures": failures},
                            lease=LeaseRule.HOLD, error=reason,
                            error_code=PROVIDER_UNREACHABLE_CODE, call_failures=failures,
                            ended_at=at)


def _counts(progress: BatchProgress) -> dict[str, int]:
    return {"total": progress.total, "completed": progress.completed, "failed": progress.failed}
