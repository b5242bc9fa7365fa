"""The adaptive poll policy: bounds, the fixed strategy, jitter, its shape over a batch's life,
the budget rule it is built on, and a small seeded run of the simulation that justifies it.

``tests/unit/test_policies.py`` holds the policy-agnostic properties DESIGN §4 asks of any
poll policy; this file tests this policy's own claims (see ``docs/polling.md``).
"""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import ValidationError

from llmbatch.config import GENERIC_LATENCY_PRIOR, LatencyPrior, PollingConfig
from llmbatch.domain.models import BatchPhase
from llmbatch.domain.polling import PollSample, next_poll_delay
from llmbatch.providers.anthropic import AnthropicProvider
from llmbatch.providers.gemini import GeminiProvider
from llmbatch.providers.openai import OpenAIProvider

ADAPTIVE = PollingConfig()
STEADY = PollingConfig(jitter=0.0)  # no jitter: the delay itself
# The priors the provider classes ship (the policy itself knows no provider).
PRIORS: dict[str | None, LatencyPrior] = {
    "openai": OpenAIProvider.latency_prior, "anthropic": AnthropicProvider.latency_prior,
    "gemini": GeminiProvider.latency_prior, None: GENERIC_LATENCY_PRIOR,
    "sharp": LatencyPrior(median_s=60, sigma=0.05, counts_live=False)}
PROVIDERS = list(PRIORS)
PHASES = [p for p in BatchPhase if p is not BatchPhase.ENDED]
SIM_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "polling_simulation.py"


def steady(elapsed: float, done: int = 0, total: int = 0, provider: str | None = "openai",
           phase: BatchPhase = BatchPhase.RUNNING, previous: PollSample | None = None,
           policy: PollingConfig = STEADY) -> float:
    return next_poll_delay(policy, elapsed_s=elapsed, done=done, total=total,
                           prior=PRIORS[provider], phase=phase, previous=previous)


# ---- bounds and strategies -------------------------------------------------------------------
@pytest.mark.parametrize("policy", [
    ADAPTIVE,
    PollingConfig(min_s=5.0, max_s=60.0, jitter=0.5),
    PollingConfig(min_s=30.0, max_s=30.0),
    PollingConfig(delay_budget_s=1e-6),  # wants to poll continuously: min_s holds
    PollingConfig(delay_budget_s=1e6, growth=100.0),  # wants to sleep forever: max_s holds
], ids=["defaults", "5-60", "30-30", "tiny-budget", "huge-budget"])
def test_delays_never_leave_the_bounds_whatever_the_inputs(policy: PollingConfig) -> None:
    rng = random.Random(1)
    for provider in PROVIDERS:
        for phase in PHASES:
            for elapsed in (-5.0, 0.0, 0.3, 7.0, 95.0, 1800.0, 20_000.0, 86_400.0, 1e7):
                for done, total in ((0, 0), (0, 500), (1, 500), (250, 500), (499, 500),
                                    (500, 500), (7, 3)):
                    for previous in (None, PollSample(elapsed / 2, done // 2),
                                     PollSample(elapsed, done), PollSample(-1, 10**9)):
                        delay = next_poll_delay(policy, elapsed_s=elapsed, done=done,
                                                total=total, rng=rng, prior=PRIORS[provider],
                                                phase=phase, previous=previous)
                        assert policy.min_s <= delay <= policy.max_s
                        assert math.isfinite(delay)


def test_the_fixed_strategy_is_exactly_its_interval() -> None:
    policy = PollingConfig(strategy="fixed", interval_s=30.0, min_s=60.0, max_s=120.0)
    for provider in PROVIDERS:
        for phase in PHASES:
            for elapsed, done, total in ((0, 0, 0), (600, 10, 100), (86_400, 100, 100)):
                assert next_poll_delay(policy, elapsed_s=elapsed, done=done, total=total,
                                       prior=PRIORS[provider], phase=phase,
                                       previous=PollSample(1, 1),
                                       rng=random.Random(3)) == 30.0


@pytest.mark.parametrize("elapsed", [5.0, 600.0, 3600.0, 40_000.0])
def test_jitter_stays_within_its_fraction_and_really_spreads(elapsed: float) -> None:
    base = steady(elapsed, provider="anthropic")
    delays = [next_poll_delay(ADAPTIVE, elapsed_s=elapsed, done=0, total=0,
                              prior=PRIORS["anthropic"], rng=random.Random(seed))
              for seed in range(400)]
    low = max(base * (1 - ADAPTIVE.jitter), ADAPTIVE.min_s)
    high = min(base * (1 + ADAPTIVE.jitter), ADAPTIVE.max_s)
    assert all(low - 1e-9 <= d <= high + 1e-9 for d in delays)
    assert len({round(d, 6) for d in delays}) > 350  # batches submitted together spread out


def test_without_jitter_the_policy_is_deterministic() -> None:
    a = [steady(t, 40, 100) for t in (10.0, 100.0, 1000.0)]
    b = [next_poll_delay(STEADY, elapsed_s=t, done=40, total=100, prior=PRIORS["openai"],
                         rng=random.Random(99)) for t in (10.0, 100.0, 1000.0)]
    assert a == b


# ---- shape over a batch's life ----------------------------------------------------------------
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_fast_at_first_at_most_growth_times_the_time_elapsed(provider: str) -> None:
    for elapsed in (0.0, 1.0, 3.0, 9.0, 27.0):
        assert steady(elapsed, provider=provider) <= max(STEADY.min_s, STEADY.growth * elapsed)
    # So a batch that ends within a minute of submission is seen within seconds.
    t, polls = 0.0, 0
    while t < 60:
        t += steady(t, provider=provider)
        polls += 1
    assert polls <= 8 and t < 90


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", None])
def test_with_no_progress_the_interval_grows_once_the_batch_outlives_its_prior(
        provider: str | None) -> None:
    prior = PRIORS[provider]
    grid = [prior.median_s * k for k in (1.5, 2, 3, 5, 8, 13, 21)]
    waits = [steady(t, 0, 100, provider=provider) for t in grid if t < 86_400]
    assert waits == sorted(waits)
    assert waits[-1] > 1.3 * waits[0]


def test_polls_are_densest_where_the_prior_expects_completions() -> None:
    # Anthropic: most batches end within the hour; a batch at 40 min is polled more often
    # than one at 5 min (few end that early) or at 10 h (one that late is in the slow tail).
    at = {t: steady(t, provider="anthropic") for t in (300, 2400, 36_000)}
    assert at[2400] < at[300] and at[2400] < at[36_000]


def test_progress_shortens_the_wait_near_the_predicted_end() -> None:
    waits = [steady(1200, done, 1000) for done in (100, 500, 900, 990)]
    assert waits == sorted(waits, reverse=True)
    assert waits[-1] < waits[0] / 4
    # 990 of 1000 done after 20 min: the rest should take ~12 s plus the finalizing tail.
    assert waits[-1] < 60


def test_a_faster_recent_rate_brings_the_next_poll_forward() -> None:
    # 300 of 1000 done after 20 min, but all of them in the last 2 minutes (the batch sat
    # queued): the recent rate predicts the end much sooner than the rate since submission.
    since_submission = steady(1200, 300, 1000)
    recent = steady(1200, 300, 1000, previous=PollSample(1080, 0))
    assert recent < since_submission / 2


def test_counters_full_or_finalizing_means_a_short_tail() -> None:
    running = steady(3600, 0, 1000)
    for done, phase in ((1000, BatchPhase.RUNNING), (990, BatchPhase.FINALIZING)):
        tail = steady(3600, done, 1000, phase=phase)
        assert tail < running
        # finalizing lasts ~5% of the run so far (OpenAI default): ~3 min after an hour
        assert tail < 0.05 * 3600


def test_cancelling_follows_the_cancel_latency_not_the_batch_prior() -> None:
    for provider in ("openai", "anthropic", "gemini"):
        assert steady(40_000, provider=provider, phase=BatchPhase.CANCELLING) < steady(
            40_000, provider=provider)


def test_queued_and_validating_batches_lean_on_the_prior_like_running_ones() -> None:
    for phase in (BatchPhase.QUEUED, BatchPhase.VALIDATING):
        assert steady(1800, 0, 0, phase=phase) == steady(1800, 0, 0)


def test_providers_without_live_counters_ignore_them() -> None:
    # Anthropic reports processing == total until the end; a made-up count must not matter.
    assert steady(1800, 0, 100, provider="anthropic") == steady(1800, 60, 100,
                                                                provider="anthropic")


# ---- the budget rule ---------------------------------------------------------------------------
@pytest.mark.parametrize(("provider", "elapsed"), [("openai", 900.0), ("anthropic", 2400.0),
                                                    ("gemini", 20_000.0)])
def test_each_poll_buys_the_configured_expected_delay(provider: str, elapsed: float) -> None:
    # Check the closed form against a plain numerical integration: the expected overshoot
    # E[(t + d - T)+ | T > t] of the chosen d is the budget.
    policy = PollingConfig(jitter=0.0, growth=1e6, max_s=1e5)
    prior = PRIORS[provider]
    budget = policy.delay_budget_s * prior.budget_scale
    d = next_poll_delay(policy, elapsed_s=elapsed, done=0, total=0, prior=prior)

    def survival(x: float) -> float:
        return 0.5 * math.erfc((math.log(x) - math.log(prior.median_s)) / (prior.sigma
                                                                          * math.sqrt(2)))

    steps = 4000
    h = d / steps
    overshoot = sum((survival(elapsed) - survival(elapsed + (i + 0.5) * h)) * h
                    for i in range(steps)) / survival(elapsed)
    assert overshoot == pytest.approx(budget, rel=0.03)


def test_a_larger_budget_means_fewer_polls() -> None:
    small = steady(2400, provider="anthropic", policy=PollingConfig(jitter=0, delay_budget_s=0.2))
    large = steady(2400, provider="anthropic", policy=PollingConfig(jitter=0, delay_budget_s=2))
    assert large > 2 * small  # d ~ sqrt(budget): 10x the budget, ~3x the interval


# ---- configuration -----------------------------------------------------------------------------
def test_priors_come_from_the_provider_and_config_can_override_them() -> None:
    own = PRIORS["anthropic"]
    assert PollingConfig().prior("anthropic", own) is own
    mine = LatencyPrior(median_s=60, sigma=0.5)
    policy = PollingConfig.model_validate({"priors": {"openai": {"median_s": 60, "sigma": 0.5}}})
    assert policy.prior("openai", PRIORS["openai"]) == mine
    assert policy.prior("gemini", PRIORS["gemini"]) is PRIORS["gemini"]  # others keep theirs
    assert next_poll_delay(STEADY, elapsed_s=60, done=0, total=0, prior=mine) < steady(60)


@pytest.mark.parametrize("bad", [{"median_s": 0, "sigma": 1}, {"median_s": 10, "sigma": 0},
                                 {"median_s": 10, "sigma": 1, "finalize_fraction": 1},
                                 {"median_s": 10, "sigma": 1, "extra": 1}])
def test_bad_priors_are_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        PollingConfig.model_validate({"priors": {"openai": bad}})


# ---- the simulation, small -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim() -> ModuleType:
    spec = importlib.util.spec_from_file_location("polling_simulation", SIM_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_with_live_progress_adaptive_halves_the_calls_without_adding_delay(
        sim: ModuleType, provider: str) -> None:
    world = sim.WORLDS[provider]
    batches = sim.draw_batches(world, 150, seed=11)
    fixed = sim.simulate(world, batches, sim.FIXED, seed=11).row()
    adaptive = sim.simulate(world, batches, sim.ADAPTIVE, seed=11).row()
    assert adaptive["calls_mean"] <= 0.5 * fixed["calls_mean"]
    assert adaptive["delay_mean"] <= 1.2 * fixed["delay_mean"]  # ~15 s each; seeded, not timed


def test_without_progress_no_schedule_can_halve_the_calls_at_equal_delay(
        sim: ModuleType) -> None:
    # The honest half of the story: with the prior alone, the best possible saving is small.
    world = sim.WORLDS["anthropic"]
    assert 1 - sim.prior_only_call_ratio(world.median_s, world.sigma, steps=2000) < 0.15
    assert sim.prior_only_call_ratio(600, 1e-3 + 0.05, steps=2000) < 0.5  # a sharp prior could
