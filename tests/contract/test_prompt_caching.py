"""Prompt caching end to end: neutral requests with ``cache_control`` breakpoints go through
the Anthropic translation to the emulator (over HTTP, with the SDK), the breakpoints arrive
(the emulator caches only marked prompts: a write the first time, a read the next), and the
cache tokens come back in the usage and are priced at their own rates.

Prices: https://platform.claude.com/docs/en/about-claude/pricing (Claude Haiku 4.5: $1 input,
$1.25 5-minute write, $2 1-hour write, $0.10 read, $5 output per million tokens; the Batch API
halves each).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.emulator.server import EmulatorServer
from llmbatch.pricing import price_usage, resolve_prices

from .harness import BUILDERS, ProviderHarness, running_harness

pytestmark = pytest.mark.contract

MODEL = "claude-haiku-4-5"
MANUAL = "You are a careful assistant. " * 200  # 5,800 characters: above the cache minimum


@pytest.fixture
def anthropic(emulator: EmulatorServer) -> Iterator[ProviderHarness]:
    yield from running_harness(BUILDERS["anthropic"], emulator)


def cached_request(i: int, *, ttl: str | None = None) -> RequestLine:
    marker = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return RequestLine(i, f"c-{i}", {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": MANUAL,
                                            "cache_control": marker}]},
            {"role": "user", "content": f"Question {i}: why is the sky blue?"}],
        "max_tokens": 40})


def test_breakpoints_reach_anthropic_and_cache_tokens_are_priced(
        anthropic: ProviderHarness) -> None:
    encoded = json.loads(anthropic.adapter.encode(cached_request(0, ttl="1h"),
                                                  endpoint=Endpoint.CHAT, model=MODEL).data)
    assert encoded["params"]["system"] == [
        {"type": "text", "text": MANUAL, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]

    first = anthropic.submit([cached_request(0, ttl="1h")], tag=anthropic.new_tag(),
                             model=MODEL)
    written = anthropic.results(first.provider_batch_id,
                                anthropic.run_to_end(first.provider_batch_id, 1))["c-0"].usage
    second = anthropic.submit([cached_request(1, ttl="1h")], tag=anthropic.new_tag(),
                              model=MODEL)
    read = anthropic.results(second.provider_batch_id,
                             anthropic.run_to_end(second.provider_batch_id, 1))["c-1"].usage
    assert written is not None and read is not None

    prefix = written.cache_write_tokens
    assert prefix >= 1024 and written.cache_write_1h_tokens == prefix
    assert written.cached_tokens == 0
    assert (read.cached_tokens, read.cache_write_tokens) == (prefix, 0)

    prices = resolve_prices(catalogue_id="anthropic", batch_factor=Decimal("0.5"), model=MODEL,
                            override=None, at=datetime(2026, 11, 30, tzinfo=UTC))
    assert prices is not None
    per_m = Decimal(1_000_000)
    fresh_w = written.input_tokens - prefix
    fresh_r = read.input_tokens - prefix
    # batch: fresh x $0.50, 1-hour write x $1.00, read x $0.05, output x $2.50 per million
    assert price_usage(written, prices).batch_usd == (
        fresh_w * Decimal("0.5") + prefix * Decimal("1") + written.output_tokens
        * Decimal("2.5")) / per_m
    assert price_usage(read, prices).batch_usd == (
        fresh_r * Decimal("0.5") + prefix * Decimal("0.05") + read.output_tokens
        * Decimal("2.5")) / per_m


def test_without_breakpoints_anthropic_caches_nothing(anthropic: ProviderHarness) -> None:
    request = RequestLine(0, "p-0", {"messages": [
        {"role": "system", "content": MANUAL}, {"role": "user", "content": "Hi"}],
        "max_tokens": 20})
    for _ in range(2):
        batch = anthropic.submit([request], tag=anthropic.new_tag(), model=MODEL)
        usage = anthropic.results(batch.provider_batch_id,
                                  anthropic.run_to_end(batch.provider_batch_id, 1))["p-0"].usage
        assert usage is not None
        assert (usage.cached_tokens, usage.cache_write_tokens) == (0, 0)
