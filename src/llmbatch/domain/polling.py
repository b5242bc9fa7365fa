"""When to poll a provider batch next.

Every poll is a provider API call (rate-limited, and multiplied by every batch in flight);
every second between a batch's completion and our next poll is a second its results wait.
``fixed`` ignores both and polls every ``interval_s``. ``adaptive`` trades them explicitly:

1. **Predict** when the batch will end, as a log-normal distribution of the time left:
   - counters moving (the prior says ``counts_live``): extrapolate the rate (between the last
     two polls if the previous one is known, else since submission) to the requests left,
     plus the provider's finalizing tail; the spread (``progress_sigma``) widens when few
     requests are done, because an early rate says little;
   - counters full but the batch still running, or the phase ``FINALIZING``: a short tail, a
     fraction of the time elapsed so far;
   - phase ``CANCELLING``: the provider's cancel latency (``cancel_median_s``);
   - no progress to read (providers whose counters stay still until the end; any batch still
     queued or validating): the provider's latency prior, conditioned on the batch not having
     ended yet.
2. **Wait** until the expected detection delay this one poll would add reaches the budget
   (``delay_budget_s`` x the provider's ``budget_scale``): the ``d`` for which
   ``E[(t + d - T)+ | T > t] = budget``. With a locally flat hazard ``h`` this is
   ``d = sqrt(2 * budget / h)``, the interval that minimises
   "calls + delay / budget" (the classic inspection-scheduling result): poll often where
   completions are likely, rarely where they are not. Summed over polls, the mean detection
   delay is roughly ``budget * polls``.
3. **Bound** it: at most ``growth * elapsed`` (fast at first: a batch that fails validation
   or is tiny is caught in seconds even if the prior says hours; with the default ``growth``
   of 2 the first polls come at about 0, 1, 3, 9, 27 s), at most ``max_s`` (a stale prior
   cannot make us sleep for hours), at least ``min_s``.
4. **Jitter** it by ±``jitter`` (kept inside the bounds) so batches submitted together do not
   poll in lockstep.

The prior is the provider's (``BatchProvider.latency_prior``, or ``polling.priors.<name>``):
the caller picks it, this module names no provider. The function is pure: no clock, no I/O;
randomness comes from ``rng``. Why the budget rule and
what it can and cannot achieve per provider: ``docs/polling.md`` and
``benchmarks/polling_simulation.py``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist

from llmbatch.config import LatencyPrior, PollingConfig
from llmbatch.domain.models import BatchPhase

__all__ = ["PollSample", "expected_time_left_s", "next_poll_delay"]

_SQRT2 = math.sqrt(2.0)
_FINALIZE_SIGMA = 0.8  # spread of the finalizing tail: "1-10% of the run" is a wide range
_CANCEL_SIGMA = 1.0  # "within ~10 minutes" (a documented figure): minutes, with a long tail
_MIN_FRACTION = 0.05  # below this fraction done, an extrapolation is barely better than a guess
_NEWTON_STEPS = 60
_DEFAULT_RNG = random.Random()
_NORMAL = NormalDist()


@dataclass(frozen=True)
class PollSample:
    """An earlier poll of the same batch: seconds since submission and requests done by then.

    Gives the recent rate, which, unlike the rate since submission, is not dragged down by
    the time the batch sat queued before its first request ran.
    """

    elapsed_s: float
    done: int


def next_poll_delay(policy: PollingConfig, *, elapsed_s: float, done: int, total: int,
                    prior: LatencyPrior, phase: BatchPhase = BatchPhase.RUNNING,
                    rng: random.Random | None = None,
                    previous: PollSample | None = None) -> float:
    """Seconds to wait before polling a running batch again (see the module docstring)."""
    if policy.strategy == "fixed":
        return policy.interval_s
    rng = rng if rng is not None else _DEFAULT_RNG
    elapsed = max(elapsed_s, 0.0)
    ceiling = min(policy.max_s, max(policy.min_s, policy.growth * elapsed))
    mu, sigma, start = _outlook(policy, prior, elapsed=elapsed, done=done, total=total,
                                phase=phase, previous=previous)
    delay = _delay_for_budget(mu, sigma, start, policy.delay_budget_s * prior.budget_scale,
                              ceiling)
    delay = min(max(delay, policy.min_s), policy.max_s)
    # Jitter inside the bounds: they are limits the operator set, not suggestions.
    low = max(delay * (1 - policy.jitter), policy.min_s)
    high = min(delay * (1 + policy.jitter), policy.max_s)
    return rng.uniform(low, high)


def _outlook(policy: PollingConfig, prior: LatencyPrior, *, elapsed: float, done: int,
             total: int, phase: BatchPhase,
             previous: PollSample | None) -> tuple[float, float, float]:
    """The completion-time distribution ``(mu, sigma, start)``: ``T ~ LogNormal(mu, sigma)``
    measured from ``elapsed - start``, known to exceed ``start``.

    ``start`` is 0 for predictions of the time left (measured from now) and ``elapsed`` for
    the prior (measured from submission, conditioned on the batch still running).
    """
    if phase is BatchPhase.CANCELLING:
        return math.log(policy.cancel_median_s), _CANCEL_SIGMA, 0.0
    live = prior.counts_live and total > 0
    if phase is BatchPhase.FINALIZING or (live and done >= total):
        tail = max(prior.finalize_fraction * elapsed, policy.min_s)
        return math.log(tail), _FINALIZE_SIGMA, 0.0
    if live and done > 0 and elapsed > 0:
        rate = done / elapsed
        if previous is not None and previous.elapsed_s < elapsed and previous.done < done:
            rate = (done - previous.done) / (elapsed - previous.elapsed_s)
        left = (total - done) / rate
        left += prior.finalize_fraction * (elapsed + left)
        fraction = max(done / total, _MIN_FRACTION)
        return math.log(max(left, policy.min_s)), policy.progress_sigma / math.sqrt(fraction), 0.0
    return math.log(prior.median_s), prior.sigma, elapsed


def _delay_for_budget(mu: float, sigma: float, start: float, budget: float,
                      ceiling: float) -> float:
    """The ``d`` in ``(0, ceiling]`` at which the expected overshoot of a poll at
    ``start + d`` past a completion in ``(start, start + d]`` (given ``T > start``) is ``budget``.

    With ``a = start``, ``b = a + d`` and ``S`` the log-normal survival function, the overshoot
    is ``phi(d) = d - (1 / S(a)) * integral_a^b S(s) ds``, where
    ``integral_a^b S = b S(b) - a S(a) + E[T] (Q(z_a - sigma) - Q(z_b - sigma))`` (``Q`` the
    standard normal upper tail, ``z_x = (ln x - mu) / sigma``), computed with ``erfc`` so it
    stays accurate far into the tail. ``phi`` is convex and increasing with
    ``phi'(d) = P(T <= b | T > a)``, so Newton from the right converges monotonically.
    This runs on every poll of every batch: hence the inlined arithmetic.
    """
    k = 1.0 / (sigma * _SQRT2)  # Q(z) = erfc(z / sqrt 2) / 2, with z = (ln x - mu) / sigma
    shift = sigma / _SQRT2
    mean = math.exp(mu + sigma * sigma / 2)
    if start > 0:
        w_a = (math.log(start) - mu) * k
        s_a = 0.5 * math.erfc(w_a)
        q_a = 0.5 * math.erfc(w_a - shift)
    else:
        s_a, q_a = 1.0, 1.0
    if s_a <= 0.0:  # far past every plausible completion time: nothing left to predict
        return ceiling
    target = budget * s_a  # compare un-normalised: phi * S(a)
    a_term = start * s_a - mean * q_a
    d = ceiling
    for _ in range(_NEWTON_STEPS):
        b = start + d
        w_b = (math.log(b) - mu) * k
        s_b = 0.5 * math.erfc(w_b)
        excess = d * s_a - (b * s_b - a_term - mean * 0.5 * math.erfc(w_b - shift)) - target
        slope = s_a - s_b
        if excess <= 0.01 * target or slope <= 0.0:
            return d
        d -= excess / slope
    return d


def expected_time_left_s(policy: PollingConfig, *, elapsed_s: float, done: int, total: int,
                         prior: LatencyPrior, phase: BatchPhase = BatchPhase.RUNNING,
                         previous: PollSample | None = None) -> float:
    """The median time until a running batch ends, from the same outlook the poller uses:
    what a progress bar shows as its ETA (an estimate, not a promise: early on it is little
    more than the provider's typical latency)."""
    elapsed = max(elapsed_s, 0.0)
    mu, sigma, start = _outlook(policy, prior, elapsed=elapsed, done=done, total=total,
                                phase=phase, previous=previous)
    if start <= 0:
        return math.exp(mu)
    # T > start is known: the median of T given that, minus the time already gone.
    z_start = (math.log(start) - mu) / sigma
    survival = 0.5 * math.erfc(z_start / _SQRT2)
    if survival <= 1e-12:
        return 0.0
    z_median = _NORMAL.inv_cdf(1 - survival / 2)
    return max(math.exp(mu + sigma * z_median) - start, 0.0)
