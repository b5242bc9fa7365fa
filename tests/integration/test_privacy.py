"""Nothing personal leaks: canaries (an email address, a phone number, a card number, an
``sk-`` key) in the prompts, in the custom ids and in the provider's error texts (emulator
faults echo them: batch-level errors, and per-item errors read through the real adapter),
jobs run to success, failure, partial failure and cancellation by a real worker at DEBUG, on
SQLite and on PostgreSQL, with the real API process (at DEBUG) beside it answering requests
whose error bodies could quote the canaries (a 404 for a canary id, a 422 for a canary
custom_id, a bad field, a bad upload, a 401 for a canary key). Then every log line (worker
and API), event row, error column, webhook payload, API error body, the worker's metrics and
all CLI output hold none of them (nor their percent-encoded forms), nor the provider API key,
the llmbatch API key or the database password. Only the stored results (the user's data)
keep them.

Cheap on purpose (it runs twice): one worker and one API process per database, the CLI in
process (its output and its log records are what is checked), and waits on the database's
progress, never sleeps. Jobs whose fault is drawn when their batch is created (per-item
errors, a stuck batch) do not wait for the previous one to end, only for their batch to
exist at the provider."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import yaml
from sqlalchemy import Engine, func, select, text

from door_support import run_cli
from llmbatch import bootstrap
from llmbatch.bootstrap import Runtime, build_runtime
from llmbatch.config import load_config
from llmbatch.db import tables
from llmbatch.db.engine import make_engine
from llmbatch.db.migrate import upgrade
from llmbatch.emulator.server import EmulatorServer
from llmbatch.service_layer.api_keys import create_key

from .support import (
    MODEL,
    PG_HOST,
    PG_PORT,
    PG_USER,
    PostgresServer,
    Processes,
    fast_emulator_settings,
    wait_for_jobs,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(240),
    # kombu's SQLAlchemy transport (the embedded broker), used by the in-process CLI
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"),
]

EMAIL = "canary.person@example.org"
PHONE = "+1 415 555 0133"
CARD = "4111 1111 1111 1111"
SK_KEY = "sk-canary0123456789abcdefXYZ"
CANARIES = [EMAIL, PHONE, CARD, CARD.replace(" ", ""), "4155550133", SK_KEY,
            "canary0123456789abcdef"]
# A canary in a URL path or query is percent-encoded on the wire and in access logs.
ENCODED = sorted({f(c) for c in CANARIES for f in (quote, quote_plus)} - set(CANARIES))
API_KEY = "apikey-canary-7f3a9c2e"  # no redactable shape: a leak would show verbatim
DB_PASSWORD = "DbPassCanary4412"
SECRETS = [API_KEY, DB_PASSWORD]
LEAK = f"contact {EMAIL} or {PHONE}, card {CARD}, key {SK_KEY}"


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(fast_emulator_settings()) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'llmbatch.db'}"
        return
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


def prompt_lines(count: int, prefix: str) -> list[dict[str, Any]]:
    return [{"custom_id": f"{prefix}-{EMAIL}-{i}",
             "body": {"messages": [{"role": "user", "content": f"{LEAK}. Question {i}?"}],
                      "max_tokens": 20}} for i in range(count)]


def write_prompts(path: Path, count: int, prefix: str) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in prompt_lines(count, prefix)),
                    encoding="utf-8")
    return path


class _Records(logging.Handler):
    """The log records the CLI emits on the test's own thread while it runs (a child
    process would print its warnings on stderr; in process they would go to pytest)."""

    def __init__(self, out: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.out = out
        self.thread = threading.get_ident()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.out.append(self.format(record))


class Cli:
    """Runs ``llmbatch`` commands in process, keeping everything they print and log."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.output: list[str] = []

    def __call__(self, *args: str, ok: bool = True) -> str:
        logged: list[str] = []
        handler = _Records(logged)
        root = logging.getLogger()
        root.addHandler(handler)
        engines: list[Engine] = []

        def recording(*given: Any, **named: Any) -> Engine:
            engine = make_engine(*given, **named)
            engines.append(engine)
            return engine

        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(bootstrap, "make_engine", recording)
                result = run_cli(*args, "--config", str(self.config))
        finally:
            root.removeHandler(handler)
            for engine in engines:  # a child process would have closed them by exiting
                engine.dispose()
        printed = result.text + "".join(line + "\n" for line in logged)
        self.output.append(printed)
        if ok:
            assert result.code == 0, printed
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


def wait_until(check: Callable[[], bool], what: str, alive: Callable[[], None],
               cap_s: float = 60) -> None:
    deadline = time.monotonic() + cap_s
    while not check():
        alive()
        if time.monotonic() > deadline:
            pytest.fail(f"never {what} within {cap_s:.0f}s")
        time.sleep(0.1)


def at_provider(rt: Runtime, job_id: str) -> Callable[[], bool]:
    """Whether the job's batch exists at the provider (its faults are drawn by then)."""
    def check() -> bool:
        with rt.uow() as uow:
            return any(b.provider_batch_id for b in uow.repo.batches_of_job(job_id))
    return check


def retried_deliveries(rt: Runtime) -> bool:
    """Every webhook event tried, one of them twice: a retry is in the log and the
    delivery log."""
    deliveries = tables.webhook_deliveries.c
    with rt.engine.connect() as conn:
        events = conn.execute(select(func.count()).select_from(tables.webhook_outbox)).scalar()
        tries = [n for _, n in conn.execute(
            select(deliveries.event_id, func.count()).group_by(deliveries.event_id))]
    return bool(events) and len(tries) == events and max(tries) >= 2


def stored_text(rt: Runtime) -> list[str]:
    """Every event row, every error column and every webhook payload, as text."""
    with rt.engine.connect() as conn:
        found: list[str] = []
        queries = [
            select(tables.events.c.data), select(tables.jobs.c.error),
            select(tables.provider_batches.c.error),
            select(tables.provider_batches.c.failure), select(tables.items.c.error),
            select(tables.item_results.c.error),
            select(tables.item_attempts.c.error),
            select(tables.webhook_outbox.c.payload),
            select(tables.webhook_outbox.c.last_error),
            select(tables.webhook_deliveries.c.error)]
        for query in queries:
            found += [json.dumps(v) if not isinstance(v, str) else v
                      for v, in conn.execute(query) if v is not None]
        assert conn.execute(text("select count(*) from events")).scalar()
        return found


def wait_until_up(url: str, processes: Processes, cap_s: float = 60) -> None:
    deadline = time.monotonic() + cap_s
    while time.monotonic() < deadline:
        processes.check_alive()
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail(f"the API at {url} did not become ready in {cap_s}s")


# What each API error body below quotes of the request, masked.
MARK = {"404 job": "[email]", "404 results": "[api-key]", "404 cancel": "[phone]",
        "422 duplicate custom_id": "[email]", "422 bad upload": "[email]",
        "422 model": "[email]", "422 webhook host": "[api-key]"}


def api_error_bodies(http: httpx.Client, tmp_path: Path) -> dict[str, tuple[int, str]]:
    """Requests whose answers could quote a canary: what each answered, by what was asked."""
    valid = prompt_lines(1, "api")[0]
    bad_lines = (json.dumps(valid) + "\n"
                 + json.dumps({"custom_id": f"bad-{EMAIL}", "body": LEAK}) + "\n"
                 + f"not json {LEAK}\n")
    (tmp_path / "bad.jsonl").write_text(bad_lines, encoding="utf-8")
    form = {"provider": "openai", "model": MODEL}

    def upload(fields: dict[str, str], content: bytes | None = None) -> httpx.Response:
        body = content if content is not None else (json.dumps(valid) + "\n").encode()
        return http.post("/v1/jobs", files={"file": (f"in-{EMAIL}.jsonl", body)},
                         data=fields)

    duplicate = {**valid, "custom_id": f"dup-{EMAIL}"}
    answers = {
        "404 job": http.get(f"/v1/jobs/{EMAIL}"),
        "404 results": http.get(f"/v1/jobs/{SK_KEY}/results"),
        "404 cancel": http.post(f"/v1/jobs/{PHONE}/cancel"),
        "422 duplicate custom_id": http.post("/v1/jobs", json={
            **form, "requests": [duplicate, duplicate]}),
        "422 bad request line": http.post("/v1/jobs", json={
            **form, "requests": [valid, {"custom_id": f"x-{EMAIL}", "body": LEAK}]}),
        "422 bad upload": upload(form, bad_lines.encode()),
        "422 model": upload({**form, "model": f"gpt-{EMAIL}"}),
        "422 provider": upload({**form, "provider": LEAK}),
        "422 webhook host": upload({**form,
                                    "webhook_url": f"https://{SK_KEY}.example.org/h?{LEAK}"}),
        "422 retention": upload({**form, "retention": LEAK}),
        "422 max_cost": upload({**form, "max_cost": LEAK}),
        "422 query": http.get("/v1/jobs", params={"limit": LEAK, "status": EMAIL}),
        "400 json": http.post("/v1/jobs", content=f'{{"model": "{LEAK}',
                              headers={"Content-Type": "application/json"}),
        "401 key": httpx.get(str(http.base_url.join("/v1/jobs")),
                             headers={"Authorization": f"Bearer {SK_KEY}"}),
    }
    return {what: (r.status_code, r.text) for what, r in answers.items()}


def test_no_canary_in_logs_events_errors_payloads_api_or_cli_output(
        tmp_path: Path, database_url: str, emulator: EmulatorServer) -> None:
    config_path = write_config(tmp_path / "llm_config.yaml", database_url, emulator.url)
    rt = build_runtime(load_config(config_path, env={}))
    upgrade(rt.engine)
    _, llmbatch_key = create_key(rt, tenant="privacy")
    secrets = [*SECRETS, llmbatch_key]
    cli = Cli(config_path)
    hook_port = 9  # discard: nothing listens, so deliveries fail and are retried (and logged)
    processes = Processes(tmp_path)
    metrics_port, api_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    http = httpx.Client(base_url=api_url, timeout=30,
                        headers={"Authorization": f"Bearer {llmbatch_key}"})
    try:
        worker = processes.start("worker", "worker", "--config", str(config_path), "--beat",
                                 "--loglevel", "DEBUG", "--log-format", "json",
                                 "--concurrency", "2", "--metrics-port", str(metrics_port))
        api = processes.start("api", "api", "--config", str(config_path), "--port",
                              str(api_port), "--loglevel", "debug", "--log-format", "json")
        alive = processes.check_alive
        # 1. the provider refuses the create, quoting the canaries (every create: wait).
        faults(emulator, [{"kind": "http", "provider": "openai", "operation": "batches.create",
                           "status": 400, "message": LEAK}])
        refused = cli.submit(write_prompts(tmp_path / "refused.jsonl", 3, "ref"), hook_port)
        wait_for_jobs(rt, [refused], timeout=60, alive=alive)
        # 2. the provider fails the batch as a whole, quoting the canaries (its re-batches
        #    too: wait for the job to end).
        faults(emulator, [{"kind": "fail_batch", "provider": "openai",
                           "code": "invalid_request", "message": LEAK}])
        failed = cli.submit(write_prompts(tmp_path / "failed.jsonl", 3, "bad"), hook_port)
        wait_for_jobs(rt, [failed], timeout=60, alive=alive)
        # 3. the provider fails some items one by one, its error text quoting the canaries
        #    (the real adapter reads the error lines; non-retryable, so they fail for good).
        #    The fault is drawn when the batch is created: once it exists, move on.
        faults(emulator, [{"kind": "item_errors", "provider": "openai", "rate": 0.5,
                           "shape": "mixed", "status_code": 400, "message": LEAK,
                           "times": 1}])
        some_failed = cli.submit(write_prompts(tmp_path / "items.jsonl", 16, "itm"), hook_port)
        wait_until(at_provider(rt, some_failed), "at the provider", alive)
        # 4. cancelled while stuck at the provider.
        faults(emulator, [{"kind": "stuck", "provider": "openai", "at_fraction": 0.0,
                           "times": 1}])
        cancelled = cli.submit(write_prompts(tmp_path / "cancel.jsonl", 3, "can"), hook_port)
        wait_until(at_provider(rt, cancelled), "at the provider", alive)
        # 5. success, by the CLI and by the API; a poll fails twice first with the canaries
        #    in the provider's message.
        faults(emulator, [{"kind": "http", "provider": "openai", "operation": "batches.retrieve",
                           "status": 500, "message": LEAK, "times": 2}])
        succeeded = cli.submit(write_prompts(tmp_path / "ok.jsonl", 4, "ok"), hook_port)
        cli("cancel", cancelled)
        wait_until_up(api_url, processes)
        with (tmp_path / "ok.jsonl").open("rb") as handle:
            created = http.post("/v1/jobs", files={"file": ("ok.jsonl", handle)},
                                data={"provider": "openai", "model": MODEL})
        assert created.status_code == 201, created.text
        by_api = created.json()["id"]
        api_answers = api_error_bodies(http, tmp_path)
        jobs = wait_for_jobs(rt, [succeeded, by_api, refused, failed, some_failed, cancelled],
                             timeout=90, alive=alive)
        statuses = {k: str(j.status) for k, j in jobs.items()}
        assert statuses[succeeded] == "succeeded"
        assert statuses[by_api] == "succeeded"
        assert statuses[some_failed] == "completed_with_failures"
        assert statuses[refused] == "failed"
        assert statuses[failed] in ("failed", "completed_with_failures")
        assert statuses[cancelled] == "cancelled"
        for job_id in jobs:  # what the API says of each job, errors and events included
            api_answers[f"job {job_id}"] = (200, http.get(f"/v1/jobs/{job_id}").text)
            api_answers[f"events {job_id}"] = (200, http.get(f"/v1/jobs/{job_id}/events").text)
        wait_until(lambda: retried_deliveries(rt), "retried every webhook", alive)
        for job_id in jobs:
            cli("status", job_id)
            cli("status", job_id, "--json")
            cli("events", job_id)
        cli("jobs")
        cli("webhooks", "log")
        item_results = cli("results", some_failed, "--partial")
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
        cli("status", "job_does_not_exist", ok=False)
        cli("status", EMAIL, ok=False)
        cli("submit", str(tmp_path / "missing.jsonl"), "--provider", "openai", "--model",
            MODEL, ok=False)
        cli("submit", str(tmp_path / "bad.jsonl"), "--provider", "openai", "--model",
            MODEL, ok=False)
        stored = stored_text(rt)
    finally:
        http.close()  # a failed assertion too: its pooled socket would warn at a later gc
        processes.stop_all()
        rt.close()

    lines = worker.log.read_text(encoding="utf-8", errors="replace").splitlines()
    api_lines = api.log.read_text(encoding="utf-8", errors="replace").splitlines()
    cli.output.remove(item_results)  # the user's own results: checked below, not here
    error_bodies = [body for status, body in api_answers.values() if status >= 400]
    (tmp_path / "api_answers.json").write_text(json.dumps(api_answers, indent=1))
    places = {"worker log": lines, "API log": api_lines, "database": stored,
              "CLI output": cli.output, "metrics": [metrics],
              "API bodies": [body for _, body in api_answers.values()]}
    leaks = {f"{where}: {needle}": sum(needle in text for text in texts)
             for where, texts in places.items()
             for needle in CANARIES + ENCODED + secrets}
    assert {k: n for k, n in leaks.items() if n} == {}
    # ... and not because nothing was said: the provider's texts are there, redacted.
    assert len(lines) > 50 and any('"level": "debug"' in line for line in lines)
    assert any("llmbatch.batch.call_failed" in line and "[email]" in line for line in lines)
    assert any("[email]" in s for s in stored)
    assert "llmbatch_items_finished" in metrics
    # Each request was answered with the error it asks for, the canaries masked in it; the
    # API logged every request at DEBUG, the canaries masked there too.
    assert {what: status for what, (status, _) in api_answers.items()
            if not what.startswith(("job ", "events "))} == {
        what: int(what[:3]) for what in api_answers if what[:3].isdigit()}
    assert all(body.startswith("{") and '"status"' in body for body in error_bodies)
    quoting = ("404 job", "404 results", "404 cancel", "422 duplicate custom_id",
               "422 bad upload", "422 model", "422 webhook host")
    assert {what: re.findall(r"\[(?:email|phone|api-key)\]", api_answers[what][1])[:1]
            for what in quoting} == {what: [MARK[what]] for what in quoting}
    assert any('"level": "debug"' in line for line in api_lines)
    assert any("GET /v1/jobs/[email]" in line for line in api_lines)
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
