"""The usage report over jobs the lifecycle ran: groups by provider, model, tenant and day,
every token kind, batch and synchronous cost and the saving, summing exactly to the items."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from llmbatch.cli import main as cli
from llmbatch.cli import usage as usage_cli
from llmbatch.config import ModelConfig, ProviderConfig
from llmbatch.pricing import from_pusd
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.read_models.usage import total, usage_report

from .harness import MODEL, Driver

Writer = Callable[..., Path]
PRICED = ProviderConfig(models=(ModelConfig(name=MODEL, input_usd_per_mtok=Decimal("1.1"),
                                            output_usd_per_mtok=Decimal("4.4"),
                                            cached_input_usd_per_mtok=Decimal("0.275")),))


def ran(driver: Driver, write_jsonl: Writer, n: int, tenant: str) -> str:
    job_id, _ = create_job(driver.rt, write_jsonl(n), provider="fake", model=MODEL,
                           tenant=tenant)
    driver.run(job_id)
    return job_id


def test_groups_sum_exactly_to_the_items_costs(make_driver: Callable[..., Driver],
                                                database_url: str, write_jsonl: Writer) -> None:
    driver = make_driver(PRICED, database_url=database_url)
    jobs = [ran(driver, write_jsonl, 3, "acme")]
    driver.clock.advance(86_400)
    jobs += [ran(driver, write_jsonl, 2, "acme"), ran(driver, write_jsonl, 4, "globex")]
    items = [i for job in jobs for i in driver.items(job)]

    rows = usage_report(driver.rt, ["tenant", "day"])

    assert [(r.key["tenant"], r.requests) for r in rows] == [("acme", 3), ("acme", 2),
                                                             ("globex", 4)]
    assert rows[0].key["day"] < rows[1].key["day"] == rows[2].key["day"]
    assert total(rows).cost_pusd == sum(int(i.cost_pusd) for i in items)
    assert total(rows).sync_cost_pusd == sum(int(i.sync_cost_pusd) for i in items)
    assert total(rows).tokens["input_tokens"] == sum(i.input_tokens for i in items) == 90
    # 10 input and 5 output tokens an item: (10 x 1.1 + 5 x 4.4) / 1M, half of it in a batch
    assert rows[2].sync_usd == 4 * Decimal("0.000033")
    assert rows[2].batch_usd == rows[2].saving_usd == 4 * Decimal("0.0000165")

    (one,) = usage_report(driver.rt, ["tenant"], tenant="globex")
    assert one.batch_usd == rows[2].batch_usd
    start = driver.clock() - timedelta(hours=1)
    assert sum(r.requests for r in usage_report(driver.rt, [], start=start)) == 6


def test_the_command_prints_table_csv_and_json(make_driver: Callable[..., Driver],
                                               write_jsonl: Writer, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_cli, "console", Console(width=300))
    driver = make_driver(PRICED)
    job = ran(driver, write_jsonl, 3, "acme")
    config = tmp_path / "llm_config.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": driver.rt.config.database.url}}),
                      encoding="utf-8")

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli.app, ["usage", "--config", str(config), *args])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    data = json.loads(run("--by", "provider,model,tenant", "--format", "json"))
    (row,) = data["rows"]
    assert (row["provider"], row["model"], row["tenant"], row["requests"]) == (
        "fake", MODEL, "acme", 3)
    exact = from_pusd(sum(int(i.cost_pusd) for i in driver.items(job)))
    assert Decimal(row["batch_usd"]) == Decimal(data["total"]["batch_usd"]) == exact
    parsed = list(csv.DictReader(io.StringIO(run("--by", "day", "--format", "csv"))))
    assert len(parsed) == 1 and Decimal(parsed[0]["saving_usd"]) == exact
    table = run("--by", "tenant")
    assert "acme" in table and "total" in table and f"${exact.quantize(Decimal('1e-6'))}" in table
    bad = CliRunner().invoke(cli.app, ["usage", "--config", str(config), "--by", "colour"])
    assert bad.exit_code != 0
