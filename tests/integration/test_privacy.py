"""Nothing personal leaks: canaries (an email address, a phone number, a card number, an
``sk-`` key) in the prompts, in the custom ids and in the provider's error texts (emulator
faults echo them: batch-level errors, and per-item errors read through the real adapter),
jobs run to success, failure, partial failure and cancellation by a real worker at DEBUG on
PostgreSQL; then every log line, event row, error column, webhook payload, the worker's
metrics and all CLI output hold none of them, nor the API key or the database password. Only
the stored results (the user's data) keep them.

It runs on PostgreSQL only (it ran on SQLite too, 42 s more in CI for the same assertions):
PostgreSQL is the database with a password to leak, and redaction happens before anything is
stored, whatever the database. That stored error texts are redacted on *both* databases is
tests/service/test_provider_error_redaction.py (and tests/unit/test_redaction.py)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select, text

from llmbatch.bootstrap import build_runtime
from llmbatch.config import load_config
from llmbatch.db import tables
from llmbatch.db.migrate import upgrade
from llmbatch.emulator.server import EmulatorServer

from .support import (
    MODEL,
    PG_HOST,
    PG_PORT,
    PG_USER,
    PostgresServer,
    Processes,
    child_env,
    fast_emulator_settings,
    llmbatch_cmd,
    wait_for_jobs,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

EMAIL = "canary.person@example.org"
PHONE = "+1 415 555 0133"
CARD = "4111 1111 1111 1111"
SK_KEY = "sk-canary0123456789abcdefXYZ"
CANARIES = [EMAIL, PHONE, CARD, CARD.replace(" ", ""), "4155550133", SK_KEY,
            "canary0123456789abcdef"]
API_KEY = "apikey-canary-7f3a9c2e"  # no redactable shape: a leak would show verbatim
DB_PASSWORD = "DbPassCanary4412"
SECRETS = [API_KEY, DB_PASSWORD]
LEAK = f"contact {EMAIL} or {PHONE}, card {CARD}, key {SK_KEY}"


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(fast_emulator_settings()) as server:
        yield server


@pytest.fixture
def database_url() -> Iterator[str]:
    server = PostgresServer()
    name, _ = server.create_database("privacy")
    try:  # trust authentication ignores the password, which must still never be printed
        yield f"postgresql+psycopg://{PG_USER}:{DB_PASSWORD}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        server.drop_database(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, database_url: str, emulator_url: str) -> Path:
    config = {
        "database": {"url": database_url},
        "broker": {"url": f"sqla+sqlite:///{path.parent}/broker.db", "polling_interval_s": 0.1},
        "worker": {"tick_interval_s": 0.3, "lease_s": 30},
        "polling": {"strategy": "fixed", "interval_s": 0.3},
        "retry": {"base_delay_s": 0.2, "max_delay_s": 0.5},
        "providers": {"openai": {"base_url": f"{emulator_url}/openai/v1", "api_key": API_KEY,
                                 "timeout_s": 30, "models": [{"name": MODEL}]}},
        "webhooks": {"allowed_hosts": ["127.0.0.1"], "allow_private_addresses": True,
                     "secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw==",
                     "base_delay_s": 0.5, "max_delay_s": 1.0},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def write_prompts(path: Path, count: int, prefix: str) -> Path:
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            body = {"messages": [{"role": "user", "content": f"{LEAK}. Question {i}?"}],
                    "max_tokens": 20}
            out.write(json.dumps({"custom_id": f"{prefix}-{EMAIL}-{i}", "body": body}) + "\n")
    return path


class Cli:
    """Runs ``llmbatch`` commands, keeping everything they print."""

    def __init__(self, workdir: Path, config: Path) -> None:
        self.workdir, self.config = workdir, config
        self.output: list[str] = []

    def __call__(self, *args: str, ok: bool = True) -> str:
        result = subprocess.run(llmbatch_cmd(*args, "--config", str(self.config)),
                                cwd=self.workdir, env=child_env(), capture_output=True,
                                text=True, timeout=120, check=False)
        printed = result.stdout + result.stderr
        self.output.append(printed)
        if ok:
            assert result.returncode == 0, printed
        return printed

    def submit(self, path: Path, hook_port: int) -> str:
        printed = self("submit", str(path), "--provider", "openai", "--model", MODEL,
                       "--webhook-url", f"http://127.0.0.1:{hook_port}/hook")
        # (stderr may follow: a broker not ready yet is a warning, the job is stored anyway)
        found = re.search(r"created job (\S+)", printed)
        assert found, printed
        return found.group(1)


def faults(emulator: EmulatorServer, rules: list[dict[str, Any]]) -> None:
    response = httpx.post(f"{emulator.url}/_emulator/faults",
                          json={"rules": rules, "mode": "replace"}, timeout=10)
    response.raise_for_status()


def wait_until(check: Any, what: str, cap_s: float = 60) -> None:
    deadline = time.monotonic() + cap_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"never {what} within {cap_s:.0f}s")
        time.sleep(0.2)


def stored_text(database_url: str) -> list[str]:
    """Every event row, every error column and every webhook payload, as text."""
    config = load_config(None, env={"LLMBATCH_DATABASE_URL": database_url})
    rt = build_runtime(config)
    try:
        with rt.engine.connect() as conn:
            found: list[str] = []
            queries = [
                select(tables.events.c.data), select(tables.jobs.c.error),
                select(tables.provider_batches.c.error),
                select(tables.provider_batches.c.failure), select(tables.items.c.error),
                select(tables.item_attempts.c.error),
                select(tables.webhook_outbox.c.payload),
                select(tables.webhook_outbox.c.last_error),
                select(tables.webhook_deliveries.c.error)]
            for query in queries:
                found += [json.dumps(v) if not isinstance(v, str) else v
                          for v, in conn.execute(query) if v is not None]
            assert conn.execute(text("select count(*) from events")).scalar()
            return found
    finally:
        rt.engine.dispose()


def test_no_canary_in_logs_events_errors_payloads_or_cli_output(
        tmp_path: Path, database_url: str, emulator: EmulatorServer) -> None:
    config_path = write_config(tmp_path / "llm_config.yaml", database_url, emulator.url)
    rt = build_runtime(load_config(config_path, env={}))
    upgrade(rt.engine)
    rt.engine.dispose()
    cli = Cli(tmp_path, config_path)
    hook_port = 9  # discard: nothing listens, so deliveries fail and are retried (and logged)
    processes = Processes(tmp_path)
    metrics_port = free_port()
    worker = processes.start("worker", "worker", "--config", str(config_path), "--beat",
                             "--loglevel", "DEBUG", "--log-format", "json",
                             "--concurrency", "2", "--metrics-port", str(metrics_port))
    try:
        # 1. success; a poll fails twice first with the canaries in the provider's message.
        faults(emulator, [{"kind": "http", "provider": "openai", "operation": "batches.retrieve",
                           "status": 500, "message": LEAK, "times": 2}])
        succeeded = cli.submit(write_prompts(tmp_path / "ok.jsonl", 4, "ok"), hook_port)
        # 2. the provider refuses the create, quoting the canaries.
        config = load_config(config_path, env={})
        check_rt = build_runtime(config)
        wait_for_jobs(check_rt, [succeeded], timeout=60, alive=processes.check_alive)
        faults(emulator, [{"kind": "http", "provider": "openai", "operation": "batches.create",
                           "status": 400, "message": LEAK}])
        refused = cli.submit(write_prompts(tmp_path / "refused.jsonl", 3, "ref"), hook_port)
        wait_for_jobs(check_rt, [refused], timeout=60, alive=processes.check_alive)
        # 3. the provider fails the batch as a whole, quoting the canaries.
        faults(emulator, [{"kind": "fail_batch", "provider": "openai",
                           "code": "invalid_request", "message": LEAK}])
        failed = cli.submit(write_prompts(tmp_path / "failed.jsonl", 3, "bad"), hook_port)
        wait_for_jobs(check_rt, [failed], timeout=60, alive=processes.check_alive)
        # 4. the provider fails some items one by one, its error text quoting the canaries
        #    (the real adapter reads the error lines; non-retryable, so they fail for good).
        faults(emulator, [{"kind": "item_errors", "provider": "openai", "rate": 0.5,
                           "shape": "mixed", "status_code": 400, "message": LEAK}])
        some_failed = cli.submit(write_prompts(tmp_path / "items.jsonl", 6, "itm"), hook_port)
        wait_for_jobs(check_rt, [some_failed], timeout=60, alive=processes.check_alive)
        # 5. cancelled while stuck at the provider.
        faults(emulator, [{"kind": "stuck", "provider": "openai", "at_fraction": 0.0}])
        cancelled = cli.submit(write_prompts(tmp_path / "cancel.jsonl", 3, "can"), hook_port)

        def submitted() -> bool:
            with check_rt.uow() as uow:
                return any(b.provider_batch_id for b in uow.repo.batches_of_job(cancelled))

        wait_until(submitted, "submitted")
        cli("cancel", cancelled)
        jobs = wait_for_jobs(check_rt, [succeeded, refused, failed, some_failed, cancelled],
                             timeout=90, alive=processes.check_alive)
        statuses = {k: str(j.status) for k, j in jobs.items()}
        assert statuses[succeeded] == "succeeded"
        assert statuses[some_failed] == "completed_with_failures"
        assert statuses[refused] == "failed"
        assert statuses[failed] in ("failed", "completed_with_failures")
        assert statuses[cancelled] == "cancelled"
        time.sleep(2)  # a few webhook retries, at DEBUG, into the log
        for job_id in jobs:
            cli("status", job_id)
            cli("status", job_id, "--json")
            cli("events", job_id)
        cli("jobs")
        cli("webhooks", "log")
        item_results = cli("results", some_failed, "--partial")
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
        cli("status", "job_does_not_exist", ok=False)
        cli("submit", str(tmp_path / "missing.jsonl"), "--provider", "openai", "--model",
            MODEL, ok=False)
        check_rt.engine.dispose()
    finally:
        processes.stop_all()

    log_text = worker.log.read_text(encoding="utf-8", errors="replace")
    lines = log_text.splitlines()
    stored = stored_text(database_url)
    cli.output.remove(item_results)  # the user's own results: checked below, not here
    places = {"worker log": lines, "database": stored, "CLI output": cli.output,
              "metrics": [metrics]}
    leaks = {f"{where}: {needle}": sum(needle in text for text in texts)
             for where, texts in places.items() for needle in CANARIES + SECRETS}
    assert {k: n for k, n in leaks.items() if n} == {}
    # ... and not because nothing was said: the provider's texts are there, redacted.
    assert len(lines) > 50 and any('"level": "debug"' in line for line in lines)
    assert any("llmbatch.batch.call_failed" in line and "[email]" in line for line in lines)
    assert any("[email]" in s for s in stored)
    assert "llmbatch_items_finished" in metrics
    # Per-item errors were read through the real adapter and stored redacted; the result
    # keeps the provider's response as it came (the user's data).
    with_item_error = [json.loads(line) for line in item_results.splitlines()
                       if line.startswith("{") and '"failed"' in line]
    assert with_item_error and EMAIL in item_results
    assert any("[email]" in json.dumps(r.get("error")) for r in with_item_error)
    # The user's own data is kept as it came (results and requests are not redacted).
    results = cli("results", succeeded)
    assert EMAIL in results
    assert os.path.getsize(worker.log) > 0
