"""The provider-neutral batch schedule: phases, times and progress computed from a clock."""

from __future__ import annotations

import pytest

from llmbatch.emulator.progress import FinishOrder, Phase, Schedule

T0 = 1_000_000.0


def schedule(**overrides: object) -> Schedule:
    values: dict[str, object] = dict(created_at=T0, validate_s=10, run_s=100, finalize_s=5,
                                     cancel_s=3, deadline=T0 + 86_400, total=1000)
    values.update(overrides)
    return Schedule(**values)  # type: ignore[arg-type]


def test_a_batch_validates_runs_finalizes_and_completes_on_time() -> None:
    s = schedule()
    assert s.snapshot(T0).phase == Phase.VALIDATING
    assert s.snapshot(T0 + 9.99).phase == Phase.VALIDATING
    running = s.snapshot(T0 + 60)
    assert running.phase == Phase.RUNNING
    assert running.finished == 500
    assert running.times == {"running": T0 + 10}
    assert s.snapshot(T0 + 112).phase == Phase.FINALIZING
    done = s.snapshot(T0 + 115)
    assert done.phase == Phase.COMPLETED
    assert done.finished == 1000
    assert done.times == {"running": T0 + 10, "finalizing": T0 + 110, "completed": T0 + 115}


def test_progress_grows_monotonically_while_running() -> None:
    s = schedule()
    counts = [s.snapshot(T0 + 10 + t).finished for t in range(0, 101, 5)]
    assert counts == sorted(counts)
    assert counts[0] == 0
    assert counts[-1] == 1000


def test_a_batch_that_fails_validation_fails_when_validation_ends() -> None:
    s = schedule(fails_validation=True)
    assert s.snapshot(T0 + 5).phase == Phase.VALIDATING
    failed = s.snapshot(T0 + 10)
    assert failed.phase == Phase.FAILED
    assert failed.times == {"failed": T0 + 10}
    assert failed.finished == 0


def test_cancel_while_running_freezes_progress_and_ends_cancelled() -> None:
    s = schedule()
    assert s.request_cancel(T0 + 35)
    cancelling = s.snapshot(T0 + 36)
    assert cancelling.phase == Phase.CANCELLING
    assert cancelling.finished == 250
    cancelled = s.snapshot(T0 + 40)
    assert cancelled.phase == Phase.CANCELLED
    assert cancelled.finished == 250
    assert cancelled.times == {"running": T0 + 10, "cancelling": T0 + 35, "cancelled": T0 + 38}


def test_cancel_while_validating_never_starts_the_batch() -> None:
    s = schedule()
    assert s.request_cancel(T0 + 1)
    snap = s.snapshot(T0 + 50)
    assert snap.phase == Phase.CANCELLED
    assert "running" not in snap.times
    assert snap.finished == 0


def test_cancel_while_finalizing_keeps_every_result() -> None:
    s = schedule()
    assert s.request_cancel(T0 + 111)
    snap = s.snapshot(T0 + 200)
    assert snap.phase == Phase.CANCELLED
    assert snap.finished == 1000


def test_cancel_is_refused_once_terminal_and_idempotent_while_cancelling() -> None:
    s = schedule()
    assert not s.request_cancel(T0 + 500)
    other = schedule()
    assert other.request_cancel(T0 + 20)
    assert other.request_cancel(T0 + 21)
    assert other.cancel_requested_at == T0 + 20


def test_forced_expiry_cuts_progress_at_the_fraction() -> None:
    s = schedule(expire_fraction=0.3)
    assert s.snapshot(T0 + 39).phase == Phase.RUNNING
    snap = s.snapshot(T0 + 41)
    assert snap.phase == Phase.EXPIRED
    assert snap.finished == 300
    assert snap.times["expired"] == T0 + 40


def test_a_stuck_batch_stays_in_progress_until_its_deadline_then_expires() -> None:
    s = schedule(halt_fraction=0.4)
    late = s.snapshot(T0 + 80_000)
    assert late.phase == Phase.RUNNING
    assert late.finished == 400
    expired = s.snapshot(T0 + 86_400)
    assert expired.phase == Phase.EXPIRED
    assert expired.finished == 400


def test_a_batch_running_past_its_deadline_expires() -> None:
    s = schedule(run_s=100_000)
    snap = s.snapshot(T0 + 90_000)
    assert snap.phase == Phase.EXPIRED
    assert snap.times["expired"] == T0 + 86_400
    assert 0 < snap.finished < 1000


def test_zero_durations_complete_immediately() -> None:
    s = schedule(validate_s=0, run_s=0, finalize_s=0)
    assert s.snapshot(T0).phase == Phase.COMPLETED


@pytest.mark.parametrize("total", [1, 2, 7, 10, 1000, 50_000])
def test_finish_order_is_a_permutation(total: int) -> None:
    order = FinishOrder(total, key="batch_x")
    assert sorted(order.rank(i) for i in range(total)) == list(range(total))


def test_finish_order_is_shuffled_and_reproducible() -> None:
    ranks = [FinishOrder(100, key="batch_a").rank(i) for i in range(100)]
    assert ranks != list(range(100))
    assert ranks == [FinishOrder(100, key="batch_a").rank(i) for i in range(100)]
    assert ranks != [FinishOrder(100, key="batch_b").rank(i) for i in range(100)]


def test_failed_before_counts_failures_among_the_first_finished() -> None:
    failing = [3, 17, 42]
    order = FinishOrder(50, key="k", failing_lines=failing)
    ranks = sorted(order.rank(i) for i in failing)
    assert order.failed_before(0) == 0
    assert order.failed_before(ranks[0]) == 0
    assert order.failed_before(ranks[0] + 1) == 1
    assert order.failed_before(50) == 3
    assert order.failures == 3
