"""The pure policies: when to poll next, when and how long to wait before retrying a provider
call, and what an item and a job become once results are in."""

from __future__ import annotations

import random
from typing import Any

import pytest

from llmbatch.config import GENERIC_LATENCY_PRIOR, PollingConfig, RetryConfig
from llmbatch.domain.models import ItemError, ItemResult
from llmbatch.domain.outcomes import job_outcome, settle_result
from llmbatch.domain.polling import next_poll_delay
from llmbatch.domain.retry import (
    AfterCallFailure,
    after_call_failure,
    keep_trying_submit,
    retry_delay,
)
from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.errors import (
    AuthenticationError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)


class Midpoint(random.Random):
    """Jitter switched off: ``uniform`` answers the middle of its range."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


# ---- polling ------------------------------------------------------------------------------
# Written as the properties DESIGN §4 asks of any poll policy (fast at first and near the
# predicted end, slow in between, bounded, spread out), not as one formula, so that a better
# adaptive policy passes them unchanged.
ADAPTIVE = PollingConfig(strategy="adaptive", min_s=2.0, max_s=300.0)


def poll_delay(policy: PollingConfig, **progress: Any) -> float:
    """The policy's next delay for a batch of a provider with no prior of its own."""
    return next_poll_delay(policy, prior=GENERIC_LATENCY_PRIOR, **progress)

RUNS = [(elapsed, done, total) for elapsed in (-10, 0, 1, 4, 30, 300, 1200, 7200, 86_400, 10**7)
        for done, total in ((0, 0), (0, 100), (1, 100), (50, 100), (99, 100), (100, 100))]


@pytest.mark.parametrize("elapsed", [0, 5, 60, 3600, 86_400])
def test_the_fixed_strategy_waits_its_interval_whatever_happened(elapsed: float) -> None:
    policy = PollingConfig(strategy="fixed", interval_s=45.0)
    for done, total in [(0, 0), (0, 100), (50, 100), (100, 100)]:
        assert poll_delay(policy, elapsed_s=elapsed, done=done, total=total) == 45.0


@pytest.mark.parametrize("policy", [
    ADAPTIVE,
    PollingConfig(min_s=0.5, max_s=5.0),
    PollingConfig(min_s=60.0, max_s=60.0),
], ids=["2-300", "0.5-5", "60-60"])
def test_adaptive_delays_never_leave_the_configured_bounds_even_with_jitter(
        policy: PollingConfig) -> None:
    for seed, (elapsed, done, total) in enumerate(RUNS * 5):
        delay = poll_delay(policy, elapsed_s=elapsed, done=done, total=total,
                                rng=random.Random(seed))
        assert policy.min_s <= delay <= policy.max_s, (elapsed, done, total)


@pytest.mark.parametrize("done", [0, 10])
def test_a_batch_just_submitted_is_polled_again_quickly(done: int) -> None:
    for seed in range(50):
        delay = poll_delay(ADAPTIVE, elapsed_s=0.5, done=done, total=100,
                                rng=random.Random(seed))
        assert delay <= ADAPTIVE.min_s * 1.1  # one jitter step above the minimum at most


def test_a_batch_running_for_a_while_is_polled_less_often_than_a_new_one() -> None:
    early = poll_delay(ADAPTIVE, elapsed_s=2, done=0, total=100, rng=Midpoint())
    later = poll_delay(ADAPTIVE, elapsed_s=600, done=0, total=100, rng=Midpoint())
    assert later > 5 * early


def test_observed_progress_shortens_the_wait_near_the_predicted_end() -> None:
    waits = [poll_delay(ADAPTIVE, elapsed_s=600, done=done, total=1000, rng=Midpoint())
             for done in (50, 500, 950)]
    assert waits == sorted(waits, reverse=True)
    assert waits[-1] < waits[0]


def test_adaptive_jitter_spreads_polls_of_batches_submitted_together() -> None:
    delays = [poll_delay(ADAPTIVE, elapsed_s=300, done=0, total=0, rng=random.Random(s))
              for s in range(300)]
    assert len({round(d, 6) for d in delays}) > 250  # not in lockstep
    assert max(delays) / min(delays) <= 1.1 / 0.9 + 1e-9  # by at most ±10%
    assert max(delays) / min(delays) > 1.1  # ...and really spread


def test_polls_at_the_cap_are_still_spread() -> None:
    delays = {round(poll_delay(ADAPTIVE, elapsed_s=10**7, done=0, total=0,
                                    rng=random.Random(s)), 3) for s in range(50)}
    assert len(delays) > 40
    assert max(delays) <= ADAPTIVE.max_s


# ---- retry of provider calls -------------------------------------------------------------
RETRY = RetryConfig(max_attempts=4, base_delay_s=1.0, max_delay_s=30.0)
TRANSIENT = TransientProviderError("502", provider="p", status_code=502)


@pytest.mark.parametrize(("error", "retryable"), [
    (TransientProviderError("timeout"), True),
    (RateLimitedError("429", retry_after=3), True),
    (RateLimitedError("429"), True),
    (PermanentProviderError("400", status_code=400), False),
    (AuthenticationError("401", status_code=401), False),
    (ProviderError("unclassified"), False),
], ids=["transient", "rate-limited", "rate-limited-no-hint", "permanent", "auth", "base"])
def test_a_submission_keeps_trying_after_retryable_errors_and_fails_fast_on_permanent_ones(
        error: ProviderError, retryable: bool) -> None:
    decisions = [keep_trying_submit(retryable=error.retryable, internal=False,
                                    copy_may_exist=False, failures=n, policy=RETRY)
                 for n in (1, 3, 10, RETRY.max_call_failures - 1)]
    assert decisions == [retryable] * 4


@pytest.mark.parametrize("retryable", [True, False])
def test_a_submission_whose_copy_may_exist_is_kept_until_the_call_failure_bound(
        retryable: bool) -> None:
    for internal in (True, False):
        assert keep_trying_submit(retryable=retryable, internal=internal, copy_may_exist=True,
                                  failures=RETRY.max_call_failures - 1, policy=RETRY)
        assert not keep_trying_submit(retryable=retryable, internal=internal,
                                      copy_may_exist=True, failures=RETRY.max_call_failures,
                                      policy=RETRY)


def test_transient_submit_errors_end_at_the_call_failure_bound_too() -> None:
    assert not keep_trying_submit(retryable=True, internal=False, copy_may_exist=False,
                                  failures=RETRY.max_call_failures, policy=RETRY)


def test_an_internal_error_is_retried_only_while_attempts_remain() -> None:
    decisions = [keep_trying_submit(retryable=True, internal=True, copy_may_exist=False,
                                    failures=n, policy=RETRY) for n in (1, 2, 3, 4, 5)]
    assert decisions == [n < RETRY.max_attempts for n in (1, 2, 3, 4, 5)]


@pytest.mark.parametrize("batch_ended", [True, False], ids=["fetch", "poll-or-cancel"])
def test_a_failing_call_backs_off_until_the_bound_and_never_past_it(batch_ended: bool) -> None:
    policy = RetryConfig(max_call_failures=4)
    verdicts = [after_call_failure(n, batch_ended=batch_ended, policy=policy)
                for n in range(1, 9)]
    given_up = (AfterCallFailure.SETTLE_WITHOUT_RESULTS if batch_ended
                else AfterCallFailure.ABANDON)
    assert verdicts == [AfterCallFailure.BACK_OFF] * 3 + [given_up] * 5


def test_giving_up_on_a_batch_that_may_still_run_never_settles_it_for_re_sending() -> None:
    for failures in range(1, 100):
        verdict = after_call_failure(failures, batch_ended=False, policy=RetryConfig())
        assert verdict is not AfterCallFailure.SETTLE_WITHOUT_RESULTS


def test_by_default_a_step_is_given_up_only_after_most_of_an_hour_of_backoff() -> None:
    policy = RetryConfig()
    waits = [min(policy.max_delay_s, policy.base_delay_s * 2 ** (n - 1))
             for n in range(1, policy.max_call_failures)]  # the ceiling before each retry
    # Each wait is drawn between half and all of its ceiling: 0.75 of it on average.
    assert 0.75 * sum(waits) > 40 * 60 and sum(waits) < 60 * 60
    last = policy.max_call_failures
    assert after_call_failure(last - 1, batch_ended=True, policy=policy) is \
        AfterCallFailure.BACK_OFF
    assert after_call_failure(last, batch_ended=True, policy=policy) is \
        AfterCallFailure.SETTLE_WITHOUT_RESULTS


@pytest.mark.parametrize("retry_after", [0.0, 0.5, 7.0, 30.0])
def test_retry_after_is_honoured_exactly(retry_after: float) -> None:
    error = RateLimitedError("slow down", retry_after=retry_after)
    for attempt in (1, 3):
        assert retry_delay(error, attempt, RETRY, rng=random.Random(1)) == retry_after


def test_a_negative_retry_after_means_now() -> None:
    assert retry_delay(RateLimitedError("x", retry_after=-5), 1, RETRY) == 0.0


def test_a_rate_limit_without_retry_after_backs_off_like_any_transient_error() -> None:
    error = RateLimitedError("slow down")
    assert retry_delay(error, 3, RETRY, rng=Midpoint()) == retry_delay(TRANSIENT, 3, RETRY,
                                                                        rng=Midpoint())


def test_backoff_doubles_per_attempt_until_the_cap() -> None:
    ceilings = [2 * retry_delay(TRANSIENT, a, RETRY, rng=Midpoint()) / 1.5 for a in range(1, 9)]
    assert ceilings == pytest.approx([1, 2, 4, 8, 16, 30, 30, 30])


@pytest.mark.parametrize("attempt", [1, 2, 5, 10])
def test_backoff_is_jittered_between_half_and_all_of_its_ceiling(attempt: int) -> None:
    ceiling = min(RETRY.max_delay_s, RETRY.base_delay_s * 2 ** (attempt - 1))
    delays = [retry_delay(TRANSIENT, attempt, RETRY, rng=random.Random(s)) for s in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > ceiling / 4


# ---- outcomes ----------------------------------------------------------------------------
def result(status: ItemStatus, retryable: bool | None = None) -> ItemResult:
    error = None if retryable is None else ItemError(type="t", message="m", retryable=retryable)
    return ItemResult(provider_key="k", status=status, error=error)


S, F, E, P, C = (ItemStatus.SUCCEEDED, ItemStatus.FAILED, ItemStatus.EXPIRED,
                 ItemStatus.PENDING, ItemStatus.CANCELLED)


@pytest.mark.parametrize(("status", "retryable", "attempts", "cancelling", "expected"), [
    (S, None, 1, False, S),
    (S, None, 3, True, S),  # a result that made it is kept, even for a cancelled job
    (F, True, 1, False, P),  # retryable with attempts left: back to plan
    (F, True, 2, False, P),
    (F, True, 3, False, F),  # attempts used up
    (F, True, 4, False, F),
    (F, False, 1, False, F),  # permanent: final at once
    (F, None, 1, False, F),  # no error detail: not retryable
    (E, True, 1, False, P),
    (E, True, 3, False, E),
    (F, True, 1, True, C),  # a cancelled job re-batches nothing
    (E, True, 1, True, C),
    (F, False, 1, True, F),  # a permanent failure stays a failure
])
def test_settle_result(status: ItemStatus, retryable: bool | None, attempts: int,
                       cancelling: bool, expected: ItemStatus) -> None:
    settled = settle_result(result(status, retryable), attempts=attempts, max_attempts=3,
                            cancelling=cancelling)
    assert settled is expected


@pytest.mark.parametrize(("counts", "cancelling", "never_accepted", "expected"), [
    ({S: 5}, False, False, JobStatus.SUCCEEDED),
    ({S: 4, F: 1}, False, False, JobStatus.COMPLETED_WITH_FAILURES),
    ({S: 4, E: 1}, False, False, JobStatus.COMPLETED_WITH_FAILURES),
    ({S: 4, C: 1}, False, False, JobStatus.COMPLETED_WITH_FAILURES),
    ({F: 5}, False, False, JobStatus.COMPLETED_WITH_FAILURES),  # accepted, every item failed
    ({F: 5}, False, True, JobStatus.FAILED),  # the provider never took a batch
    ({S: 2, F: 3}, False, True, JobStatus.COMPLETED_WITH_FAILURES),
    ({S: 5}, True, False, JobStatus.CANCELLED),  # cancelled says so even if all finished
    ({S: 2, C: 3}, True, False, JobStatus.CANCELLED),
    ({C: 5}, True, True, JobStatus.CANCELLED),
])
def test_job_outcome(counts: dict[ItemStatus, int], cancelling: bool, never_accepted: bool,
                     expected: JobStatus) -> None:
    assert job_outcome(counts, cancelling=cancelling, never_accepted=never_accepted) is expected
