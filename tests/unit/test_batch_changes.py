"""Batch and job transitions as change values: what each writes, and moves the table forbids."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmbatch.domain.batch import ProviderBatch
from llmbatch.domain.changes import LeaseRule
from llmbatch.domain.events import EventType
from llmbatch.domain.job import Job
from llmbatch.domain.models import Endpoint, SubmittedBatch
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus, moving
from llmbatch.errors import InvalidTransition

T = datetime(2026, 1, 1, tzinfo=UTC)


def batch(status: BatchStatus, **values: object) -> ProviderBatch:
    return ProviderBatch(id="pb_1", job_id="job_1", provider="p", model="m", status=status,
                         attempt=1, item_count=3, byte_count=10, created_at=T,
                         lease_owner="task-1", **values)  # type: ignore[arg-type]


def test_starting_a_submission_holds_the_lease_and_counts_the_attempt() -> None:
    change = batch(BatchStatus.PLANNED, submit_attempts=1).start_submission(T)
    assert (change.to, change.lease, change.owner) == (BatchStatus.SUBMITTING, LeaseRule.HOLD,
                                                       "task-1")
    assert change.values == {"submit_attempts": 2}
    assert change.event is None


def test_an_accepted_batch_records_whether_it_was_adopted() -> None:
    submitting = batch(BatchStatus.SUBMITTING)
    sent = submitting.accepted(T, SubmittedBatch("prov-1", "validating"), adopted=False)
    adopted = submitting.accepted(T, SubmittedBatch("prov-1", "validating"), adopted=True)
    assert sent.event is not None and sent.event.type is EventType.BATCH_SUBMITTED
    assert adopted.event is not None and adopted.event.type is EventType.BATCH_ADOPTED
    assert (sent.event.from_status, sent.event.to_status) == ("submitting", "in_progress")
    assert sent.values["next_poll_at"] == T and sent.lease is LeaseRule.RELEASE


def test_a_deferred_submission_gives_its_attempt_back() -> None:
    change = batch(BatchStatus.SUBMITTING, submit_attempts=1).submission_deferred(T, 5.0)
    assert change.to is BatchStatus.PLANNED and change.values["submit_attempts"] == 0


@pytest.mark.parametrize(("status", "method"), [
    (BatchStatus.PLANNED, lambda b: b.accepted(T, SubmittedBatch("x", "y"), adopted=False)),
    (BatchStatus.FETCHED, lambda b: b.start_submission(T)),
    (BatchStatus.ENDED, lambda b: b.cancel_sent(T)),
    (BatchStatus.IN_PROGRESS, lambda b: b.fetched(T, results=1, without_result=0)),
])
def test_a_move_the_table_forbids_is_refused_before_anything_is_written(
        status: BatchStatus, method: object) -> None:
    with pytest.raises(InvalidTransition):
        method(batch(status))  # type: ignore[operator]


def test_waiting_for_room_is_announced_once_per_wait() -> None:
    first = batch(BatchStatus.PLANNED).wait_for_room(T, reason="waiting_for_token_quota", detail={},
                                                     recheck_s=10)
    again = batch(BatchStatus.PLANNED, error_code="waiting_for_token_quota").wait_for_room(
        T, reason="waiting_for_token_quota", detail={}, recheck_s=10)
    assert first.event is not None and again.event is None


def test_marking_a_stuck_batch_for_cancel_is_guarded_against_a_second_marker() -> None:
    change = batch(BatchStatus.IN_PROGRESS).mark_for_cancel(T, reason="deadline_exceeded",
                                                            deadline_s=10)
    assert change.expect == {"cancel_reason": None}
    assert change.values["cancel_reason"] == "deadline_exceeded"


def test_after_applies_a_change_to_the_in_memory_batch() -> None:
    planned = batch(BatchStatus.PLANNED)
    moved = planned.after(planned.start_submission(T))
    assert (moved.status, moved.submit_attempts) == (BatchStatus.SUBMITTING, 1)
    assert planned.status is BatchStatus.PLANNED


def test_job_completion_carries_the_outcome_counts_and_error() -> None:
    job = Job(id="job_1", name=None, provider="p", model="m", endpoint=Endpoint.CHAT,
              status=JobStatus.RUNNING, item_count=2, created_at=T)
    change = job.complete(T, JobStatus.COMPLETED_WITH_FAILURES,
                          counts={ItemStatus.SUCCEEDED: 1, ItemStatus.FAILED: 1}, error=None)
    assert change.event is not None
    assert change.event.data == {"succeeded": 1, "failed": 1}
    assert change.values == {"completed_at": T, "error": None}
    with pytest.raises(InvalidTransition):
        Job(**{**job.__dict__, "status": JobStatus.SUCCEEDED}).start_running(T, batches=1)


def test_a_bulk_item_move_the_table_forbids_cannot_be_written() -> None:
    assert moving(ItemStatus.SUBMITTED, ItemStatus.QUEUED) == ["queued"]
    with pytest.raises(InvalidTransition):
        moving(ItemStatus.PENDING, ItemStatus.SUCCEEDED)


def test_an_error_text_no_database_stores_is_escaped_in_every_change() -> None:
    change = batch(BatchStatus.IN_PROGRESS).call_failed(T, error="bad\x00gate\ud800",
                                                        failures=1, delay_s=1)
    assert change.values["error"] == "bad\ufffdgate\ufffd"
    retry = batch(BatchStatus.SUBMITTING).retry_submission(T, error="x\x00", code=None,
                                                           failures=1, delay_s=1)
    assert retry.values["error"] == "x\ufffd"
    assert retry.event is not None and retry.event.data["error"] == "x\ufffd"
