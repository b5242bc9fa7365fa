"""End to end through real processes: ``llmbatch api`` under uvicorn and ``llmbatch worker
--beat`` on the embedded SQLite database and broker, the emulator over HTTP. A job uploaded,
followed over Server-Sent Events to its end, its results streamed; a retry of its failed items
and a cancel; then the same through ``llmbatch.Client`` remote (and async), and embedded."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from integration.support import (
    MODEL,
    Processes,
    child_env,
    llmbatch_cmd,
    write_config,
    write_prompts,
)
from llmbatch import AsyncClient, Client
from llmbatch.bootstrap import build_runtime
from llmbatch.config import load_config
from llmbatch.db.migrate import upgrade
from llmbatch.service_layer.api_keys import create_key

if TYPE_CHECKING:
    from llmbatch.emulator.server import EmulatorServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning"),
]

TERMINAL = {"succeeded", "completed_with_failures", "cancelled", "failed"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, processes: Processes, cap_s: float = 60) -> None:
    deadline = time.monotonic() + cap_s
    while time.monotonic() < deadline:
        processes.check_alive()
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the API at {url} did not become ready in {cap_s}s")


def follow(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    """Every event of the job over SSE, until the stream's ``end``."""
    events: list[dict[str, Any]] = []
    with http.stream("GET", f"/v1/jobs/{job_id}/events",
                     headers={"Accept": "text/event-stream"}, timeout=120) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "end":
                return events
            elif line.startswith("data: "):
                events.append(json.loads(line[6:]))
    raise AssertionError(f"the stream closed without 'end' after {len(events)} events")


def results(http: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    with http.stream("GET", f"/v1/jobs/{job_id}/results",
                     headers={"Accept-Encoding": "gzip"}) as stream:
        assert stream.headers["content-encoding"] == "gzip"
        return [json.loads(line) for line in stream.iter_lines() if line]


def test_the_api_a_worker_and_the_emulator_end_to_end(emulator: EmulatorServer,
                                                      tmp_path: Path) -> None:
    config_path = write_config(tmp_path / "llm_config.yaml",
                               database_url=f"sqlite:///{tmp_path / 'llmbatch.db'}",
                               broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
                               emulator_url=emulator.url, max_requests=10)
    rt = build_runtime(load_config(config_path, env={}))
    upgrade(rt.engine)
    _, key = create_key(rt, tenant="team-1")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    emulator.set_faults([{"kind": "item_errors", "provider": "openai", "times": 1,
                          "rate": 0.25, "status_code": 400}])
    processes = Processes(tmp_path)
    try:
        processes.start("api", "api", "--port", str(port), "--config", str(config_path))
        processes.start("worker", "worker", "--beat", "--pool", "threads", "--concurrency", "4",
                        "--config", str(config_path))
        wait_until_up(url, processes)
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                            timeout=30)

        prompts = write_prompts(tmp_path / "prompts.jsonl", 20, prefix="e2e")
        with prompts.open("rb") as handle:
            created = http.post("/v1/jobs", files={"file": ("prompts.jsonl", handle)},
                                data={"provider": "openai", "model": MODEL})
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]

        events = follow(http, job_id)
        assert events[0]["type"] == "job.created"
        # The job's terminal event; only the deletion of provider-side data may follow it.
        ended = [i for i, e in enumerate(events)
                 if e["type"] == "job.completed" and e["to_status"] in TERMINAL]
        assert ended, events
        assert all(e["type"].startswith("batch.provider_data_") for e in events[ended[0] + 1:])
        assert [e["id"] for e in events] == sorted(e["id"] for e in events)
        job = http.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "completed_with_failures", job
        lines = results(http, job_id)
        assert [r["custom_id"] for r in lines] == [f"e2e-{i:05d}" for i in range(20)]
        failed = [r["custom_id"] for r in lines if r["status"] == "failed"]
        assert failed and all(r["output_text"] for r in lines if r["status"] == "succeeded")

        retried = http.post(f"/v1/jobs/{job_id}/retry")
        assert retried.status_code == 201, retried.text
        child_id = retried.json()["job"]["id"]
        follow(http, child_id)
        assert http.get(f"/v1/jobs/{child_id}").json()["status"] == "succeeded"
        assert [r["custom_id"] for r in results(http, child_id)] == failed

        with prompts.open("rb") as handle:
            doomed = http.post("/v1/jobs", files={"file": ("prompts.jsonl", handle)},
                               data={"provider": "openai", "model": MODEL}).json()["id"]
        cancelled = http.post(f"/v1/jobs/{doomed}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        follow(http, doomed)
        assert http.get(f"/v1/jobs/{doomed}").json()["status"] in ("cancelled", "succeeded")

        with Client(url=url, api_key=key) as remote:
            records = remote.run(["Say one", "Say two", "Say three"], provider="openai",
                                 model=MODEL, timeout=120)
            assert [(r.custom_id, r.status) for r in records] == [
                (f"item-{i}", "succeeded") for i in range(3)]
            assert remote.job(job_id).last.status == "completed_with_failures"

        async def run_async() -> list[str]:
            async with AsyncClient(url=url, api_key=key) as client:
                job = await client.submit([{"messages": [{"role": "user", "content": "hi"}]}],
                                          provider="openai", model=MODEL)
                await job.wait(timeout=120)
                return [r.custom_id async for r in job.results()]

        assert asyncio.run(run_async()) == ["item-0"]
        check_cli_through_the_api(tmp_path, config_path, url, key, prompts, job_id)
        http.close()
    finally:
        processes.stop_all()

    # Embedded: no API, no worker running; waiting starts one, like ``submit --wait``.
    with Client(config=config_path) as local:
        job = local.submit(write_prompts(tmp_path / "more.jsonl", 5, prefix="local"),
                           provider="openai", model=MODEL, name="embedded")
        done = job.wait(timeout=120)
        assert done.status == "succeeded", done
        assert [r.custom_id for r in job.results()] == [f"local-{i:05d}" for i in range(5)]
        # The key-less local client is the default tenant: the API's tenant is another.
        assert done.tenant == "default"
    rt.engine.dispose()


def check_cli_through_the_api(tmp_path: Path, config_path: Path, url: str, key: str,
                              prompts: Path, job_id: str) -> None:
    """The job commands with ``--api-url`` print what they print on the local database."""
    elsewhere = tmp_path / "elsewhere"  # no database and no config here: only the API
    elsewhere.mkdir()

    def cli(*args: str, remote: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**child_env(), "LLMBATCH_API_KEY": key, "COLUMNS": "200"}
        env.pop("LLMBATCH_API_URL", None)
        argv = ["--api-url", url, *args] if remote else [*args, "--config", str(config_path)]
        return subprocess.run(llmbatch_cmd(*argv), cwd=elsewhere if remote else tmp_path,
                              env=env, text=True, capture_output=True, timeout=120,
                              stdin=subprocess.DEVNULL, check=False)

    submitted = cli("submit", str(prompts), "--provider", "openai", "--model", MODEL,
                    "--wait")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    new_id = submitted.stdout.split("created job ", 1)[1].split()[0]
    for args in (("results", job_id), ("status", job_id, "--json"), ("events", job_id)):
        remote, local = cli(*args), cli(*args, remote=False)
        assert remote.returncode == local.returncode == 0, remote.stderr + local.stderr
        assert remote.stdout == local.stdout, args
    # The CLI's layouts and options too: the API serves progress (waiting reasons, provider
    # counts), a job's retries, lineage results and the retry's outcome.
    for args in (("status", job_id), ("status", job_id, "--wide"), ("events", job_id, "--json"),
                 ("events", job_id, "--wide"), ("results", job_id, "--lineage"),
                 ("results", job_id, "--format", "csv", "--fields", "custom_id,status,job_id"),
                 ("jobs", "--limit", "50", "--json"), ("jobs", "--wide")):
        remote, local = cli(*args), cli(*args, remote=False)
        assert remote.returncode == local.returncode == 0, remote.stderr + local.stderr
        assert remote.stdout == local.stdout, args
    assert "retried by: " in cli("status", job_id).stdout
    remote_again, local_again = cli("retry", job_id), cli("retry", job_id, remote=False)
    assert remote_again.returncode == local_again.returncode == 2, remote_again.stderr
    assert remote_again.stderr == local_again.stderr
    waited = cli("wait", job_id)
    assert waited.returncode == 1 and f"job {job_id} completed_with_failures" in waited.stdout
    assert f"llmbatch retry {job_id}" in waited.stdout
    local_only = cli("wait", job_id, "--worker")
    assert local_only.returncode == 2 and "--worker is local-only" in local_only.stderr
    listed = cli("jobs", "--limit", "50")
    assert new_id in listed.stdout and job_id in listed.stdout
    assert cli("cancel", new_id).stdout.strip() == f"job {new_id}: succeeded"
    retried = cli("retry", new_id)
    assert retried.returncode == 2 and "no failed or expired items" in retried.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": "x", "body": 5}\n', encoding="utf-8")
    remote_bad = cli("submit", str(bad), "--provider", "openai", "--model", MODEL)
    local_bad = cli("submit", str(bad), "--provider", "openai", "--model", MODEL, remote=False)
    assert remote_bad.returncode == local_bad.returncode == 2
    assert remote_bad.stderr == local_bad.stderr
    unreachable = subprocess.run(
        llmbatch_cmd("--api-url", "http://127.0.0.1:9", "status", job_id), env=child_env(),
        text=True, capture_output=True, timeout=60, check=False, cwd=elsewhere)
    assert unreachable.returncode == 3, unreachable.stderr
    assert os.listdir(elsewhere) == []
