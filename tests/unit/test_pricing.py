"""Prices of fixed usage vectors, worked out by hand from the providers' published pages.

Sources (USD per million tokens; batch = the Batch column where a page has one):
- OpenAI: https://developers.openai.com/api/docs/pricing (gpt-5.4: $2.50 input, $0.25 cached,
  $15 output, Batch $1.25 / $0.13 / $7.50; above 272K prompt tokens the whole request pays
  2x input and 1.5x output; text-embedding-3-small $0.02, Batch $0.01) and the prompt-caching
  guide https://developers.openai.com/api/docs/guides/prompt-caching (cache writes from
  GPT-5.6 on: 1.25x input; gpt-5.6 $4 input, $0.40 cached, $5 write, $20 output).
- Anthropic: https://platform.claude.com/docs/en/about-claude/pricing (Claude Haiku 4.5: $1
  input, $1.25 5-minute cache write, $2 1-hour cache write, $0.10 cache read, $5 output;
  Batch API: 50% of every one of those).
- Google: https://ai.google.dev/gemini-api/docs/pricing (Gemini 2.5 Pro above 200K prompt
  tokens: $2.50 input, $15 output, Batch $1.25 / $7.50; Gemini 2.5 Flash: $0.30 input,
  $0.03 cached, $2.50 output (thinking included), Batch $0.15 / $0.03 / $1.25;
  gemini-embedding-001 $0.15, Batch $0.075).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from llmbatch.domain.models import Usage
from llmbatch.pricing import (
    PriceOverride,
    from_pusd,
    price_usage,
    resolve_prices,
    to_pusd,
)
from llmbatch.providers.anthropic.wire import usage_from_message
from llmbatch.providers.gemini.wire import usage_from_response
from llmbatch.providers.openai.wire import usage_from_body

AT = datetime(2026, 11, 30, tzinfo=UTC)
M = 1_000_000


def cost(catalogue: str, model: str, usage: Usage) -> tuple[Decimal, Decimal]:
    prices = resolve_prices(catalogue_id=catalogue, batch_factor=Decimal("0.5"), model=model,
                            override=None, at=AT)
    assert prices is not None, f"{catalogue}/{model} not in the catalogue"
    c = price_usage(usage, prices)
    return c.batch_usd, c.sync_usd


def d(text: str) -> Decimal:
    return Decimal(text)


CASES = [
    pytest.param(  # 60K fresh + 40K cached, 2K output of which 1.5K reasoning (billed as output)
        "openai", "gpt-5.4",
        usage_from_body({"usage": {"prompt_tokens": 100_000, "completion_tokens": 2_000,
                                   "prompt_tokens_details": {"cached_tokens": 40_000},
                                   "completion_tokens_details": {"reasoning_tokens": 1_500}}}),
        # batch: 60000*1.25 + 40000*0.13 + 2000*7.5 ; sync: 60000*2.5 + 40000*0.25 + 2000*15
        d("0.075") + d("0.0052") + d("0.015"), d("0.15") + d("0.01") + d("0.03"),
        id="openai-cached-input-reasoning"),
    pytest.param(  # 300K prompt: the whole request moves to the long-context tier
        "openai", "gpt-5.4", Usage(input_tokens=300_000, output_tokens=10_000),
        # sync: 300000*5 + 10000*22.5 ; batch: half
        d("0.8625"), d("1.5") + d("0.225"), id="openai-long-context"),
    pytest.param(  # exactly 272K stays on the standard tier
        "openai", "gpt-5.4", Usage(input_tokens=272_000),
        d("0.34"), d("0.68"), id="openai-tier-boundary"),
    pytest.param(  # 10K prompt = 6K read + 2K written + 2K fresh
        "openai", "gpt-5.6",
        usage_from_body({"usage": {"prompt_tokens": 10_000, "completion_tokens": 0,
                                   "prompt_tokens_details": {"cached_tokens": 6_000,
                                                             "cache_write_tokens": 2_000}}}),
        # sync: 2000*4 + 6000*0.4 + 2000*5 ; batch: half of each rate
        d("0.0102"), d("0.008") + d("0.0024") + d("0.01"), id="openai-cache-write"),
    pytest.param(
        "openai", "text-embedding-3-small", Usage(input_tokens=M),
        d("0.01"), d("0.02"), id="openai-embeddings"),
    pytest.param(  # 1K fresh, 2K written (5 min), 1K written (1 h), 20K read, 500 output
        "anthropic", "claude-haiku-4-5",
        usage_from_message({"usage": {
            "input_tokens": 1_000, "cache_creation_input_tokens": 3_000,
            "cache_read_input_tokens": 20_000, "output_tokens": 500,
            "cache_creation": {"ephemeral_5m_input_tokens": 2_000,
                               "ephemeral_1h_input_tokens": 1_000}}}),
        # sync: 1000*1 + 2000*1.25 + 1000*2 + 20000*0.1 + 500*5 = 0.01 ; batch: half
        d("0.005"), d("0.001") + d("0.0025") + d("0.002") + d("0.002") + d("0.0025"),
        id="anthropic-cache-write-ttl-and-read"),
    pytest.param(  # a flat cache_creation_input_tokens is a 5-minute write
        "anthropic", "claude-haiku-4-5",
        usage_from_message({"usage": {"input_tokens": 0, "cache_creation_input_tokens": M,
                                      "output_tokens": 0}}),
        d("0.625"), d("1.25"), id="anthropic-flat-cache-write"),
    pytest.param(  # 250K prompt: above 200K, Gemini 2.5 Pro's higher tier for the request
        "google", "gemini-2.5-pro",
        usage_from_response({"usageMetadata": {"promptTokenCount": 250_000,
                                               "candidatesTokenCount": 400,
                                               "thoughtsTokenCount": 600}}),
        # sync: 250000*2.5 + 1000*15 ; batch: 250000*1.25 + 1000*7.5
        d("0.3125") + d("0.0075"), d("0.625") + d("0.015"), id="gemini-long-context"),
    pytest.param(  # 6K fresh + 4K cached, 500 candidates + 1.5K thinking
        "google", "gemini-2.5-flash",
        usage_from_response({"usageMetadata": {"promptTokenCount": 10_000,
                                               "cachedContentTokenCount": 4_000,
                                               "candidatesTokenCount": 500,
                                               "thoughtsTokenCount": 1_500}}),
        # batch: 6000*0.15 + 4000*0.03 + 2000*1.25 ; sync: 6000*0.3 + 4000*0.03 + 2000*2.5
        d("0.0009") + d("0.00012") + d("0.0025"), d("0.0018") + d("0.00012") + d("0.005"),
        id="gemini-cached-and-thinking"),
    pytest.param(
        "google", "gemini-embedding-001", Usage(input_tokens=M),
        d("0.075"), d("0.15"), id="gemini-embeddings"),
]


@pytest.mark.parametrize(("catalogue", "model", "usage", "batch", "sync"), CASES)
def test_a_usage_costs_what_the_price_page_says(catalogue: str, model: str, usage: Usage | None,
                                                batch: Decimal, sync: Decimal) -> None:
    assert usage is not None
    assert cost(catalogue, model, usage) == (batch, sync)


def test_config_prices_a_private_model_with_its_batch_factor() -> None:
    override = PriceOverride(input=d("2"), output=d("8"), cached_input=d("0.5"),
                             batch_factor=d("0.4"))
    prices = resolve_prices(catalogue_id="openai", batch_factor=d("0.5"), model="ft:private",
                            override=override, at=AT)
    assert prices is not None and prices.source.startswith("config")
    c = price_usage(Usage(input_tokens=M, cached_tokens=M // 2, output_tokens=M), prices)
    # sync: 500000*2 + 500000*0.5 + 1000000*8 = 9.25 ; batch: 0.4 of it
    assert (c.sync_usd, c.batch_usd) == (d("9.25"), d("3.7"))


def test_an_unknown_model_has_no_price() -> None:
    assert resolve_prices(catalogue_id="openai", batch_factor=d("0.5"), model="no-such-model",
                          override=None, at=AT) is None
    assert resolve_prices(catalogue_id=None, batch_factor=d("0.5"), model="gpt-5.4",
                          override=None, at=AT) is None


def test_picodollars_are_exact_and_sum_exactly() -> None:
    one_token = d("0.13") / M  # a batch cached-input token of gpt-5.4
    assert to_pusd(one_token) == 130_000
    assert from_pusd(sum(to_pusd(one_token) for _ in range(7))) == 7 * one_token


def test_a_usage_whose_kinds_do_not_nest_is_refused() -> None:
    prices = resolve_prices(catalogue_id="anthropic", batch_factor=d("0.5"),
                            model="claude-haiku-4-5", override=None, at=AT)
    assert prices is not None
    with pytest.raises(ValueError):
        price_usage(Usage(input_tokens=10, cached_tokens=20), prices)


def test_the_prices_in_force_at_the_request_time_apply() -> None:
    """o3 went from $10 / $40 to $2 / $8 per million on 2025-06-10
    (https://developers.openai.com/api/docs/pricing, the catalogue's history)."""
    usage = Usage(input_tokens=M, output_tokens=M)
    before, after = (resolve_prices(catalogue_id="openai", batch_factor=d("0.5"), model="o3",
                                    override=None, at=datetime(2025, 6, day, tzinfo=UTC))
                     for day in (1, 20))
    assert before is not None and after is not None
    assert price_usage(usage, before).sync_usd == d("50")
    assert price_usage(usage, after).sync_usd == d("10")
