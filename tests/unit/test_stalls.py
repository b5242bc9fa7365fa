"""Why a job is not moving, in words (``read_models.stalls``), and the ETA a progress bar
shows (``domain.polling.expected_time_left_s``)."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from llmbatch.config import LatencyPrior, PollingConfig
from llmbatch.domain.models import Endpoint
from llmbatch.domain.polling import expected_time_left_s
from llmbatch.domain.states import BatchStatus, JobStatus
from llmbatch.service_layer.read_models.stalls import local_owner_alive, why_waiting
from llmbatch.service_layer.read_models.values import BatchSummary, JobDetail

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def batch(**changes: object) -> BatchSummary:
    base = BatchSummary(id="pb_1", status=BatchStatus.IN_PROGRESS, attempt=1, item_count=10,
                        provider_batch_id="b-1", provider_status="in_progress",
                        request_counts={}, poll_count=3, error=None, error_code=None,
                        created_at=NOW, submitted_at=NOW, ended_at=None, next_poll_at=None,
                        lease_until=None)
    return replace(base, **changes)  # type: ignore[arg-type]


def job(*batches: BatchSummary, status: JobStatus = JobStatus.RUNNING,
        created: datetime = NOW) -> JobDetail:
    return JobDetail(id="job_1", tenant="default", name=None, provider="p", model="m",
                     endpoint=Endpoint.CHAT, status=status, item_count=10, created_at=created,
                     completed_at=None, parent_job_id=None, batches=batches)


def test_a_running_job_with_nothing_wrong_gives_no_reason() -> None:
    assert why_waiting(job(batch()), NOW) == []


def test_failing_provider_calls_say_the_provider_is_unreachable_and_when_next() -> None:
    failing = batch(call_failures=4, error="[p] connection refused",
                    next_poll_at=NOW + timedelta(seconds=30))

    (stall,) = why_waiting(job(failing), NOW)
    reason = str(stall)
    assert (stall.kind, stall.batch_id, stall.short) == ("provider_failing", "pb_1",
                                                         "provider unreachable")

    assert "4 in a row" in reason and "unreachable" in reason
    assert "connection refused" in reason and "12:00:30" in reason


def test_a_batch_gated_by_quota_says_so() -> None:
    gated = batch(status=BatchStatus.PLANNED, error_code="waiting_for_token_quota",
                  next_poll_at=NOW + timedelta(seconds=10))

    (stall,) = why_waiting(job(gated), NOW)
    reason = str(stall)
    assert stall.kind == "quota"

    assert "waiting for quota" in reason and "enqueued-token quota is full" in reason


def test_a_batch_refused_for_quota_by_the_provider_says_so() -> None:
    refused = batch(status=BatchStatus.PLANNED, error="token_limit_exceeded",
                    error_code="token_limit_exceeded", next_poll_at=NOW + timedelta(seconds=60))

    (stall,) = why_waiting(job(refused), NOW)
    reason = str(stall)
    assert stall.kind == "quota"

    assert "waiting for quota" in reason and "token_limit_exceeded" in reason


def test_a_lease_held_by_a_dead_worker_says_until_when() -> None:
    held = batch(status=BatchStatus.ENDED, lease_owner="host:123:abc",
                 lease_until=NOW + timedelta(seconds=90))

    (stall,) = why_waiting(job(held), NOW, owner_alive=lambda owner: False)
    reason = str(stall)
    assert stall.kind == "dead_worker_lease"
    assert "worker that died" in reason and "12:01:30" in reason
    assert why_waiting(job(held), NOW, owner_alive=lambda owner: True) == []


def test_a_remote_lease_whose_heartbeat_stopped_is_a_dead_worker() -> None:
    def remote(owner: str) -> None:
        return None

    fresh = batch(status=BatchStatus.ENDED, lease_owner="elsewhere:1:t",
                  lease_until=NOW + timedelta(seconds=100))
    stale = replace(fresh, lease_until=NOW + timedelta(seconds=30))

    assert why_waiting(job(fresh), NOW, remote, lease_s=120) == []
    (stall,) = why_waiting(job(stale), NOW, remote, lease_s=120)
    assert stall.kind == "dead_worker_lease" and "12:00:30" in str(stall)


def test_a_job_no_worker_picked_up_says_to_start_one() -> None:
    waiting = job(status=JobStatus.PENDING, created=NOW - timedelta(minutes=1))

    (stall,) = why_waiting(waiting, NOW)
    reason = str(stall)
    assert (stall.kind, stall.batch_id) == ("no_worker", None)

    assert "no worker" in reason and "llmbatch worker" in reason


def test_a_local_lease_owner_is_checked_by_its_pid() -> None:
    host = socket.gethostname()
    assert local_owner_alive(f"{host}:{os.getpid()}:tok") is True
    assert local_owner_alive(f"{host}:999999999:tok") is False
    assert local_owner_alive("elsewhere:1:tok") is None


def test_the_eta_follows_live_counts_and_the_prior_otherwise() -> None:
    policy = PollingConfig()
    prior = LatencyPrior(median_s=600, sigma=1.0)

    halfway = expected_time_left_s(policy, elapsed_s=100, done=50, total=100, prior=prior)
    nothing_yet = expected_time_left_s(policy, elapsed_s=10, done=0, total=100, prior=prior)
    late = expected_time_left_s(policy, elapsed_s=3000, done=0, total=100, prior=prior)

    assert 90 <= halfway <= 110  # the rate so far: as long again
    assert 500 <= nothing_yet <= 600  # about the prior's median
    assert late > 0  # past the median, still a positive estimate
