"""The CLI's reading commands (``status``, ``jobs``, ``events``, ``results``) on a database the
lifecycle filled through the services: what a user sees of a finished job."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from llmbatch.cli import main as cli
from llmbatch.cli import results as results_cli
from llmbatch.errors import InputError, NotFoundError
from llmbatch.service_layer.jobs import create_job

from .harness import MODEL, Driver, result_lines

Writer = Callable[..., Path]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as they need, so that a test reads whole cells."""
    monkeypatch.setattr(cli, "console", Console(width=240, soft_wrap=True))


def run(*args: str) -> str:
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def config_file(driver: Driver, tmp_path: Path) -> str:
    path = tmp_path / "llm_config.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": driver.rt.config.database.url}}),
                    encoding="utf-8")
    return str(path)


def finished_job(driver: Driver, write_jsonl: Writer) -> str:
    driver.fake.outcomes["q-1"] = ["permanent"]
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL,
                           name="nightly")
    driver.run(job_id)
    return job_id


def test_status_json_shows_the_counts_usage_and_provider_batches(
        driver: Driver, write_jsonl: Writer, tmp_path: Path) -> None:
    job_id = finished_job(driver, write_jsonl)

    data = json.loads(run("status", job_id, "--json", "--config", config_file(driver, tmp_path)))

    (batch,) = driver.batches(job_id)
    assert {k: data[k] for k in ("id", "name", "status", "provider", "model", "items")} == {
        "id": job_id, "name": "nightly", "status": "completed_with_failures",
        "provider": "fake", "model": MODEL, "items": 3}
    assert data["counts"] == {"failed": 1, "succeeded": 2}
    assert data["usage"] == {"input_tokens": 20, "output_tokens": 10, "cached_tokens": 0,
                             "reasoning_tokens": 0, "cache_write_tokens": 0,
                             "cache_write_1h_tokens": 0}
    assert data["cost_usd"] is None and data["cost_note"].startswith("no price known for fake/")
    assert data["batches"] == [{"id": batch.id, "status": "fetched",
                                "provider_batch_id": batch.provider_batch_id,
                                "provider_status": "completed", "items": 3,
                                "request_counts": {"total": 3, "completed": 3, "failed": 0},
                                "attempt": 1, "polls": batch.poll_count, "error": None,
                                "error_code": None, "cleanup_state": "deleted",
                                "cleanup_attempts": 1}]
    assert (data["parent_job_id"], data["children"], data["waiting"]) == (None, [], [])


def test_status_prints_the_job_its_counts_and_its_batches(
        driver: Driver, write_jsonl: Writer, tmp_path: Path) -> None:
    job_id = finished_job(driver, write_jsonl)

    lines = run("status", job_id, "--config", config_file(driver, tmp_path)).splitlines()

    (batch,) = driver.batches(job_id)
    assert lines[0] == f"{job_id}  completed_with_failures"
    assert lines[1] == f"  fake / {MODEL}, 3 items  name: nightly"
    assert lines[2] == "  failed=1  succeeded=2"
    usage = next(i for i, line in enumerate(lines) if line.startswith("input tokens"))
    assert lines[usage + 2].split() == ["20", "0", "0", "10", "0"]
    assert lines[usage + 3].startswith("  cost: unknown: no price known for fake/")
    assert any(line.split()[:5] == [batch.id, "fetched", "3", "3/3", "deleted"]
               for line in lines)
    assert max(len(line) for line in lines) <= 80


def test_jobs_lists_the_newest_first_with_succeeded_counts(
        driver: Driver, write_jsonl: Writer, tmp_path: Path) -> None:
    older = finished_job(driver, write_jsonl)
    driver.clock.advance(60)
    newer, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)

    out = run("jobs", "--config", config_file(driver, tmp_path))
    only_pending = run("jobs", "--status", "pending", "--config", config_file(driver, tmp_path))

    rows = [line.split() for line in out.splitlines() if older in line or newer in line]
    assert rows == [[newer, "pending", "0/2"], [older, "completed_with_failures", "2/3", "nightly"]]
    assert max(len(line) for line in out.splitlines()) <= 80
    assert newer in only_pending and older not in only_pending
    wide = run("jobs", "--wide", "--config", config_file(driver, tmp_path))
    assert [line.split()[4:6] for line in wide.splitlines() if older in line] == [
        ["fake", MODEL]]
    listed = json.loads(run("jobs", "--json", "--config", config_file(driver, tmp_path)))
    assert [(j["id"], j["name"], j["counts"]) for j in listed] == [
        (newer, None, {"pending": 2}), (older, "nightly", {"failed": 1, "succeeded": 2})]


def test_events_prints_the_whole_timeline_in_order(
        driver: Driver, write_jsonl: Writer, tmp_path: Path) -> None:
    job_id = finished_job(driver, write_jsonl)

    out = run("events", job_id, "--config", config_file(driver, tmp_path))

    shown = [word for line in out.splitlines() for word in line.split()
             if word.startswith(("job.", "batch."))]
    assert shown == driver.events(job_id)
    assert max(len(line) for line in out.splitlines()) <= 80
    as_json = json.loads(run("events", job_id, "--json", "--config",
                             config_file(driver, tmp_path)))
    assert [e["type"] for e in as_json] == driver.events(job_id)


def test_results_writes_one_line_per_input_line_in_order(
        driver: Driver, write_jsonl: Writer, tmp_path: Path) -> None:
    job_id = finished_job(driver, write_jsonl)
    output = tmp_path / "out.jsonl"

    run("results", job_id, "-o", str(output), "--config", config_file(driver, tmp_path))
    to_stdout = run("results", job_id, "--config", config_file(driver, tmp_path))

    written = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert written == list(result_lines(driver.rt, job_id))
    assert [(r["custom_id"], r["status"]) for r in written] == [
        ("q-0", "succeeded"), ("q-1", "failed"), ("q-2", "succeeded")]
    assert [json.loads(line) for line in to_stdout.splitlines()] == written


@pytest.mark.parametrize("command", ["status", "events", "results"])
def test_a_reading_command_on_an_unknown_job_reports_it_not_found(
        driver: Driver, tmp_path: Path, command: str) -> None:
    result = CliRunner().invoke(cli.app, [command, "job_nope", "--config",
                                          config_file(driver, tmp_path)])

    assert isinstance(result.exception, NotFoundError)
    assert str(result.exception) == "no job 'job_nope'"
    assert result.stdout == ""


def test_results_as_csv_with_chosen_fields(driver: Driver, write_jsonl: Writer,
                                           tmp_path: Path) -> None:
    job_id = finished_job(driver, write_jsonl)

    out = run("results", job_id, "--format", "csv", "--fields", "custom_id,status,error_message",
              "--config", config_file(driver, tmp_path))

    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["custom_id", "status", "error_message"]
    assert [r[:2] for r in rows[1:]] == [["q-0", "succeeded"], ["q-1", "failed"],
                                        ["q-2", "succeeded"]]
    assert rows[2][2] and rows[1][2] == ""


def test_results_as_parquet_keep_the_records_with_their_types(
        driver: Driver, write_jsonl: Writer, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")  # in .[dev]; the extra is llmbatch[parquet]
    job_id = finished_job(driver, write_jsonl)
    config = config_file(driver, tmp_path)
    records = [json.loads(line) for line in run("results", job_id, "--config", config)
               .splitlines()]
    out = tmp_path / "results.parquet"

    result = CliRunner().invoke(cli.app, ["results", job_id, "--format", "parquet", "-o",
                                          str(out), "--config", config])
    chosen = tmp_path / "chosen.parquet"
    run("results", job_id, "--format", "parquet", "--fields", "custom_id,usage,cost_usd",
        "-o", str(chosen), "--config", config)

    assert result.exit_code == 0, result.output
    assert f"wrote 3 results to {out}" in result.stderr
    table = pq.read_table(out)
    assert table.column_names == list(results_cli.PARQUET_DEFAULT)
    assert str(table.schema.field("input_tokens").type) == "int64"
    assert str(table.schema.field("cost_usd").type) == "decimal128(38, 12)"
    rows = table.to_pylist()
    # The same records as the JSON lines, field for field (nested values as JSON text).
    for row, record in zip(rows, records, strict=True):
        for name in ("custom_id", "status", "output_text", "finish_reason", "provider",
                     "model", "attempts"):
            assert row[name] == record[name], name
        assert row["input_tokens"] == record["usage"]["input_tokens"]
        assert row["output_tokens"] == record["usage"]["output_tokens"]
        assert row["cost_usd"] == (None if record["cost_usd"] is None
                                   else Decimal(record["cost_usd"]))
        assert json.loads(row["response"]) == record["response"]
        assert (None if row["error"] is None else json.loads(row["error"])) == record["error"]
        assert row["error_message"] == (record["error"] or {}).get("message")
    assert [r["status"] for r in rows] == ["succeeded", "failed", "succeeded"]
    picked = pq.read_table(chosen)
    assert picked.column_names == ["custom_id", "usage", "cost_usd"]
    assert [json.loads(u) for u in picked.column("usage").to_pylist()] == [
        r["usage"] for r in records]


def test_parquet_needs_a_file_and_says_how_to_install_pyarrow(
        driver: Driver, write_jsonl: Writer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = finished_job(driver, write_jsonl)
    config = config_file(driver, tmp_path)

    to_stdout = CliRunner().invoke(cli.app, ["results", job_id, "--format", "parquet",
                                             "--config", config])
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if the extra were not installed
    missing = CliRunner().invoke(cli.app, ["results", job_id, "--format", "parquet", "-o",
                                           str(tmp_path / "r.parquet"), "--config", config])

    assert isinstance(to_stdout.exception, InputError)
    assert "parquet is a binary format: give a file with -o FILE" in str(to_stdout.exception)
    assert isinstance(missing.exception, InputError)
    assert str(missing.exception) == (
        "field '--format': parquet output needs pyarrow, which is not installed: pip install "
        "'llmbatch[parquet]' (or use --format jsonl or csv)")
    assert not (tmp_path / "r.parquet").exists()


def test_retry_twice_says_what_it_left_out_and_results_merge_the_lineage(
        driver: Driver, write_jsonl: Writer, tmp_path: Path) -> None:
    driver.fake.outcomes.update({"q-0": ["permanent", "ok"], "q-1": ["permanent", "ok"]})
    parent, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    driver.run(parent)
    path = tmp_path / "llm_config.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": driver.rt.config.database.url},
                                    "broker": {"url": "memory://"}}), encoding="utf-8")
    first = run("retry", parent, "--config", str(path))
    child = first.split()[2]
    driver.fake.outcomes["q-1"] = ["permanent"]  # q-1 fails again in the first retry
    driver.run(child)

    second = run("retry", parent, "--config", str(path))
    merged = [json.loads(line) for line in
              run("results", parent, "--lineage", "--config", str(path)).splitlines()]

    assert f"retrying 2 line(s) of {parent}" in first
    assert "retrying 1 line(s)" in second
    assert "left out (never sent twice): 1 already succeeded in a later retry" in second
    # The latest attempt wins: q-1 is in the second retry, not run yet.
    assert [(r["custom_id"], r["status"], r["job_id"]) for r in merged] == [
        ("q-0", "succeeded", child), ("q-1", "pending", second.split()[2]),
        ("q-2", "succeeded", parent)]
    status = json.loads(run("status", parent, "--json", "--config", str(path)))
    assert [c["id"] for c in status["children"]] == [second.split()[2], child]
