"""``llmbatch usage --by provider,model,tenant,day [--from --to] [--format table|csv|json]``:
requests, tokens by kind, batch cost, synchronous cost and saving, from the read model
``read_models.usage`` (exact sums of the item costs)."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmbatch.cli.common import ConfigOpt
from llmbatch.cli.costs import usd
from llmbatch.cli.estimate import history_runtime
from llmbatch.cli.source import remote_source
from llmbatch.errors import InputError
from llmbatch.service_layer.read_models.usage import TOKEN_KINDS, UsageRow, total, usage_report

__all__ = ["usage_command"]

console = Console()

_SHORT = {"input_tokens": "input", "cached_tokens": "cached", "cache_write_tokens": "cache w",
          "cache_write_1h_tokens": "cache w 1h", "output_tokens": "output",
          "reasoning_tokens": "reasoning"}


class Format(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InputError(f"{value!r} is not a date (YYYY-MM-DD)", field=option) from exc


def _table(by: list[str], rows: list[UsageRow]) -> None:
    table = Table(*by, "requests", *(_SHORT[k] for k in TOKEN_KINDS), "batch", "synchronous",
                  "saving")
    for row in [*rows, total(rows)]:
        key = [row.key.get(name, "") for name in by] if row.key else (
            ["total", *[""] * (len(by) - 1)] if by else [])
        table.add_row(*key, str(row.requests), *(str(row.tokens[k]) for k in TOKEN_KINDS),
                      usd(row.batch_usd), usd(row.sync_usd), usd(row.saving_usd))
    console.print(table)
    unpriced = sum(r.unpriced for r in rows)
    if unpriced:
        console.print(f"[yellow]warning:[/yellow] {unpriced} request(s) had no price (set "
                      "input_usd_per_mtok on the model in config); their cost counts as $0",
                      highlight=False)


def usage_command(
    by: Annotated[str, typer.Option(help="Group by any of provider,model,tenant,day")] =
        "provider,model",
    start: Annotated[str | None, typer.Option("--from", help="First day (UTC), YYYY-MM-DD")] =
        None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (UTC), YYYY-MM-DD")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or json")] = Format.TABLE,
    config: ConfigOpt = None,
) -> None:
    """Requests, tokens by kind, batch cost, synchronous cost and saving, grouped."""
    groups = [g.strip() for g in by.split(",") if g.strip()]
    first, last = _day(start, "--from"), _day(end, "--to")
    remote = remote_source()
    if remote is not None:  # the API key's tenant (an admin key: any, or --tenant)
        rows = remote.backend.usage(by=groups, start=first, end=last,
                                    tenant=tenant).usage_rows()
    else:
        rt, readable = history_runtime(config)
        rows = usage_report(
            rt, groups, tenant=tenant,
            start=datetime.combine(first, time(), UTC) if first else None,
            end=datetime.combine(last + timedelta(days=1), time(), UTC) if last else None,
        ) if readable else []
    if fmt is Format.JSON:
        sys.stdout.write(json.dumps({"by": groups, "rows": [r.as_dict() for r in rows],
                                     "total": total(rows).as_dict()}, indent=2) + "\n")
    elif fmt is Format.CSV:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*groups, "requests", "unpriced_requests", *TOKEN_KINDS, "batch_usd",
                         "sync_usd", "saving_usd"])
        for row in rows:
            data = row.as_dict()
            writer.writerow([data[k] for k in (*groups, "requests", "unpriced_requests",
                                               *TOKEN_KINDS, "batch_usd", "sync_usd",
                                               "saving_usd")])
        sys.stdout.write(out.getvalue())
    else:
        _table(groups, rows)
