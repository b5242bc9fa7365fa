"""``llmbatch results``: one record per input line, in input order, as JSON lines, CSV or
Parquet (``--fields`` picks and orders the columns). A job still running is refused unless
``--partial`` says that unfinished lines are wanted; ``--lineage`` merges a job with its
retries (the latest attempt at each line wins).

Parquet (``cli/parquet.py``) needs the optional ``llmbatch[parquet]`` extra (pyarrow) and a
file (``-o``): it is binary, so it is never written to a terminal.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console

from llmbatch.cli import parquet
from llmbatch.cli.source import job_source
from llmbatch.errors import InputError
from llmbatch.service_layer.read_models.values import ResultRecord

__all__ = ["FIELDS", "results"]


class OutputFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


def _error_message(r: ResultRecord) -> Any:
    return (r.error or {}).get("message")


# Every field --fields may name: the record's own keys, and flat ones for tables.
FIELDS: dict[str, Callable[[ResultRecord], Any]] = {
    "custom_id": lambda r: r.custom_id,
    "status": lambda r: str(r.status),
    "output_text": lambda r: r.output_text,
    "finish_reason": lambda r: r.finish_reason,
    "response": lambda r: r.response,
    "usage": lambda r: r.usage.as_dict(),
    "input_tokens": lambda r: r.usage.input_tokens,
    "output_tokens": lambda r: r.usage.output_tokens,
    "cached_tokens": lambda r: r.usage.cached_tokens,
    "reasoning_tokens": lambda r: r.usage.reasoning_tokens,
    "cost_usd": lambda r: r.cost_usd,
    "error": lambda r: r.error,
    "error_message": _error_message,
    "provider": lambda r: r.provider,
    "model": lambda r: r.model,
    "attempts": lambda r: r.attempts,
    "history": lambda r: [h.as_dict() for h in r.history],
    "job_id": lambda r: r.job_id,
}
CSV_DEFAULT = ("custom_id", "status", "output_text", "finish_reason", "input_tokens",
               "output_tokens", "cost_usd", "error_message")
PARQUET_DEFAULT = parquet.DEFAULT_FIELDS


def _fields(raw: str | None, fmt: OutputFormat) -> tuple[str, ...] | None:
    if raw is None:
        return {OutputFormat.CSV: CSV_DEFAULT,
                OutputFormat.PARQUET: PARQUET_DEFAULT}.get(fmt)
    names = tuple(f.strip() for f in raw.split(",") if f.strip())
    unknown = [n for n in names if n not in FIELDS]
    if unknown or not names:
        raise InputError(f"unknown field(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from: {', '.join(FIELDS)}", field="--fields")
    return names


def _cell(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


def _write(records: Iterable[ResultRecord], out: TextIO, fmt: OutputFormat,
           fields: tuple[str, ...] | None) -> int:
    count = 0
    if fmt is OutputFormat.CSV:
        assert fields is not None
        writer = csv.writer(out)
        writer.writerow(fields)
        for r in records:
            writer.writerow([_cell(FIELDS[f](r)) for f in fields])
            count += 1
        return count
    for r in records:
        data = r.as_dict() if fields is None else {f: FIELDS[f](r) for f in fields}
        out.write(json.dumps(data, ensure_ascii=False) + "\n")
        count += 1
    return count


def results(
    job_id: Annotated[str, typer.Argument(help="The job (with --lineage: any job of it)")],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Write here instead of stdout")] = None,
    fmt: Annotated[OutputFormat, typer.Option(
        "--format", help="jsonl (one JSON object per line), csv, or parquet (needs -o and "
                         "the llmbatch[parquet] extra)")] = OutputFormat.JSONL,
    fields: Annotated[str | None, typer.Option(
        help="Comma-separated fields, in order (e.g. custom_id,status,output_text)")] = None,
    partial: Annotated[bool, typer.Option(
        "--partial",
        help="Allow a job that has not ended (unfinished lines show their status)")] = False,
    lineage: Annotated[bool, typer.Option(
        "--lineage",
        help="Merge the job with its retries: one answer per input line, latest attempt "
             "wins")] = False,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="llm_config.yaml (default: found upward, like git)")] = None,
) -> None:
    """One record per input line, in input order (stdout or -o FILE)."""
    chosen = _fields(fields, fmt)
    if fmt is OutputFormat.PARQUET:
        if output is None:
            raise InputError("parquet is a binary format: give a file with -o FILE",
                             field="--format")
        parquet.require_pyarrow()
        if lineage and fields is None:
            chosen = ("job_id", *PARQUET_DEFAULT)
    source = job_source(config)
    job = source.job_summary(job_id)
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    if not job.ended and not partial:
        err.print(f"[red]error:[/red] job {job_id} is {job.status} ({job.finished_items}/"
                  f"{job.item_count} items final); wait for it (llmbatch wait {job_id}) or "
                  f"take what there is with --partial")
        raise SystemExit(1)
    records = source.job_results(job_id, lineage=lineage)
    if fmt is OutputFormat.PARQUET:
        assert output is not None and chosen is not None
        count = parquet.write_parquet(records, output, chosen, FIELDS)
        err.print(f"wrote {count} results to {output}")
    elif output is None:
        count = _write(records, sys.stdout, fmt, chosen)
    else:
        try:
            handle = output.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            raise InputError(f"cannot write: {exc.strerror}", file=str(output)) from exc
        with handle as out:
            count = _write(records, out, fmt, chosen)
        err.print(f"wrote {count} results to {output}")
    if not job.ended:
        err.print(f"[yellow]warning:[/yellow] job {job_id} is still {job.status}: "
                  f"{job.item_count - job.finished_items} line(s) are not final yet")
