"""``estimate_file``: tokens counted offline, output bounded by max_tokens and learned from
finished jobs, batch and synchronous prices with the saving; validated as submit would."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from llmbatch.config import ModelConfig, ProviderConfig
from llmbatch.errors import InputError
from llmbatch.service_layer.estimates import estimate_file
from llmbatch.service_layer.jobs import create_job

from .harness import MODEL, Driver

Writer = Callable[..., Path]
PRICED = ProviderConfig(models=(ModelConfig(name=MODEL, input_usd_per_mtok=Decimal(1),
                                            output_usd_per_mtok=Decimal(4)),))


def test_an_estimate_bounds_then_learns_the_output(make_driver: Callable[..., Driver],
                                                   write_jsonl: Writer) -> None:
    driver = make_driver(PRICED)
    path = write_jsonl(4)  # 10 estimated input tokens and max_tokens 20 each

    before = estimate_file(driver.rt, path, provider="fake", model=MODEL)

    assert (before.requests, before.input_tokens, before.input_tokens_bound) == (4, 40, 60)
    assert before.output_tokens_bound == before.output_tokens_expected == 80
    assert before.output_basis.startswith("no finished requests")
    # (40 x $1 + 80 x $4) / 1M synchronously, half of it in a batch
    assert before.sync_usd_expected == Decimal("0.00036")
    assert before.batch_usd_expected == before.saving_usd_expected == Decimal("0.00018")
    assert before.batch_usd_bound == Decimal("0.00019")  # 60 input tokens at the bound
    assert before.price_source and before.price_source.startswith("config")

    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    driver.run(job_id)  # the fake provider answers with 5 output tokens
    after = estimate_file(driver.rt, path, provider="fake", model=MODEL)

    assert after.output_tokens_expected == 20 and after.output_basis.startswith("mean of 3")
    assert after.batch_usd_expected == (40 + 20 * 4) * Decimal("0.5") / 1_000_000


def test_an_unpriced_model_is_estimated_in_tokens_and_says_why(
        make_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = make_driver()
    est = estimate_file(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    assert est.input_tokens == 20 and est.batch_usd_expected is None
    assert est.note and "set input_usd_per_mtok" in est.note
    assert est.as_dict()["note"] == est.note


def test_a_bad_line_is_refused_with_its_place(make_driver: Callable[..., Driver],
                                              write_jsonl: Writer) -> None:
    driver = make_driver(PRICED)
    path = write_jsonl(['{"body": {"messages": []}}'])
    with pytest.raises(InputError) as caught:
        estimate_file(driver.rt, path, provider="fake", model=MODEL)
    assert (caught.value.line, caught.value.field) == (1, "body.messages")


def test_the_command_prints_the_estimate(make_driver: Callable[..., Driver],
                                         write_jsonl: Writer, tmp_path: Path) -> None:
    import json

    import yaml
    from typer.testing import CliRunner

    from llmbatch.cli import main as cli

    driver = make_driver()
    config = tmp_path / "llm_config.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": driver.rt.config.database.url},
        "providers": {"openai": {"models": [{"name": "gpt-4o-mini"}]}}}), encoding="utf-8")
    path = write_jsonl(2)
    args = ["estimate", str(path), "--provider", "openai", "--model", "gpt-4o-mini",
            "--config", str(config)]

    data = json.loads(CliRunner().invoke(cli.app, [*args, "--json"]).stdout)
    assert data["requests"] == 2 and data["price_source"].startswith("genai-prices")
    # gpt-4o-mini in a batch: $0.075 input, $0.30 output per million (20 in, 40 out at most)
    assert Decimal(data["batch_usd_expected"]) == (20 * Decimal("0.075")
                                                   + 40 * Decimal("0.3")) / 1_000_000
    table = CliRunner().invoke(cli.app, args)
    assert table.exit_code == 0 and "synchronous price" in table.stdout


def test_the_per_job_bound_pricer_gives_the_price_of_each_bound(
        make_driver: Callable[..., Driver]) -> None:
    """``BoundPricer`` (what ``create_job`` stores per item) keeps its answers, so the same
    answers must come whether it worked them out or remembered them, and whatever the memo
    held before it was started over."""
    from llmbatch.domain.models import Endpoint, RequestLine
    from llmbatch.service_layer.estimates import BoundPricer, bound_cost, item_bound
    from llmbatch.service_layer.pricing import model_prices

    driver = make_driver(PRICED)
    rt = driver.rt
    adapter = rt.registry.get("fake")
    prices = model_prices(rt, "fake", MODEL, rt.clock())
    pricer = BoundPricer(rt, prices)
    pricer.MEMO_MAX = 3
    for _ in range(2):  # the second round answers partly from memory
        for tokens, max_tokens in [(1, 20), (7, None), (7, 20), (1_000, 5), (1, 20)]:
            body = {"messages": [{"role": "user", "content": "x"}],
                    **({"max_tokens": max_tokens} if max_tokens else {})}
            request = RequestLine(0, "c", body)
            expected = bound_cost(item_bound(rt, adapter, request, endpoint=Endpoint.CHAT,
                                             estimated=tokens), prices)
            limit = adapter.max_output_tokens(request, endpoint=Endpoint.CHAT)
            assert expected is not None
            assert pricer.batch_pusd(tokens, limit) == expected.batch_pusd
    assert BoundPricer(rt, None).batch_pusd(10, None) is None
