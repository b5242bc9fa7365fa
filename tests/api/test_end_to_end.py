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

from door_support import Run, run_cli
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
    # Every request of the first batch created fails (for good: a 400), the other batch's
    # succeed. A share below 1 is drawn per request from the batch's random id: at 0.25, a
    # batch of ten came out clean one run in eighteen and the job then "succeeded".
    emulator.set_faults([{"kind": "item_errors", "provider": "openai", "times": 1,
                          "rate": 1.0, "status_code": 400}])
    processes = Processes(tmp_path)
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    try:
        processes.start("api", "api", "--port", str(port), "--config", str(config_path))
        processes.start("worker", "worker", "--beat", "--pool", "threads", "--concurrency", "4",
                        "--config", str(config_path))
        wait_until_up(url, processes)

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
    finally:
        http.close()  # a failed assertion too: its pooled socket would warn at a later gc
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
    rt.close()


def check_cli_through_the_api(tmp_path: Path, config_path: Path, url: str, key: str,
                              prompts: Path, job_id: str) -> None:
    """The job commands with ``--api-url`` print what they print on the local database.

    The commands run in this process through the real entry point (``cli.main.main``, as
    ``tests/door_support.run_cli`` does): a child interpreter per command cost 1-5 s of start-up
    each, most of this test's time. One comparison runs as child processes, so the installed
    ``python -m llmbatch`` entry and its environment are covered too. (An unreachable API is
    exit 3 with nothing created: tests/unit/test_cli_remote.py.)"""
    elsewhere = tmp_path / "elsewhere"  # no database and no config here: only the API
    elsewhere.mkdir()
    env = {"LLMBATCH_API_KEY": key, "COLUMNS": "200"}

    def cli(*args: str, remote: bool = True) -> Run:
        argv = ["--api-url", url, *args] if remote else [*args, "--config", str(config_path)]
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            for name in ("LLMBATCH_API_URL", "LLMBATCH_CONFIG", "LLMBATCH_DATABASE_URL",
                         "LLMBATCH_BROKER_URL", "LLMBATCH_HOME"):
                patch.delenv(name, raising=False)
            patch.chdir(elsewhere if remote else tmp_path)
            return run_cli(*argv)

    def child(*args: str, remote: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["--api-url", url, *args] if remote else [*args, "--config", str(config_path)]
        return subprocess.run(llmbatch_cmd(*argv), cwd=elsewhere if remote else tmp_path,
                              env={**child_env(), **env}, text=True, capture_output=True,
                              timeout=120, stdin=subprocess.DEVNULL, check=False)

    remote_child, local_child = child("results", job_id), child("results", job_id, remote=False)
    assert remote_child.returncode == local_child.returncode == 0, (
        remote_child.stderr + local_child.stderr)
    assert remote_child.stdout == local_child.stdout and remote_child.stdout
    submitted = cli("submit", str(prompts), "--provider", "openai", "--model", MODEL,
                    "--wait")
    assert submitted.code == 0, submitted
    new_id = submitted.out.split("created job ", 1)[1].split()[0]
    for args in (("results", job_id), ("status", job_id, "--json"), ("events", job_id)):
        remote, local = cli(*args), cli(*args, remote=False)
        assert remote.code == local.code == 0, remote.err + local.err
        assert remote.out == local.out, args
    assert remote_child.stdout == cli("results", job_id).out
    # The CLI's layouts and options too: the API serves progress (waiting reasons, provider
    # counts), a job's retries, lineage results and the retry's outcome.
    for args in (("status", job_id), ("status", job_id, "--wide"), ("events", job_id, "--json"),
                 ("events", job_id, "--wide"), ("results", job_id, "--lineage"),
                 ("results", job_id, "--format", "csv", "--fields", "custom_id,status,job_id"),
                 ("jobs", "--limit", "50", "--json"), ("jobs", "--wide")):
        remote, local = cli(*args), cli(*args, remote=False)
        assert remote.code == local.code == 0, remote.err + local.err
        assert remote.out == local.out, args
    assert "retried by: " in cli("status", job_id).out
    remote_again, local_again = cli("retry", job_id), cli("retry", job_id, remote=False)
    assert remote_again.code == local_again.code == 2, remote_again.err
    assert remote_again.err == local_again.err
    waited = cli("wait", job_id)
    assert waited.code == 1 and f"job {job_id} completed_with_failures" in waited.out
    assert f"llmbatch retry {job_id}" in waited.out
    local_only = cli("wait", job_id, "--worker")
    assert local_only.code == 2 and "--worker is local-only" in local_only.err
    listed = cli("jobs", "--limit", "50")
    assert new_id in listed.out and job_id in listed.out
    assert cli("cancel", new_id).out.strip() == f"job {new_id}: succeeded"
    retried = cli("retry", new_id)
    assert retried.code == 2 and "no failed or expired items" in retried.err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": "x", "body": 5}\n', encoding="utf-8")
    remote_bad = cli("submit", str(bad), "--provider", "openai", "--model", MODEL)
    local_bad = cli("submit", str(bad), "--provider", "openai", "--model", MODEL, remote=False)
    assert remote_bad.code == local_bad.code == 2
    assert remote_bad.err == local_bad.err
    # submit's options go through the API too, and say what they say locally.
    several = tmp_path / "several.jsonl"
    several.write_text('{"custom_id": "x", "body": 5}\nnot json\n' + prompts.read_text(
        encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    other_model = tmp_path / "other_model.jsonl"
    other_model.write_text(json.dumps({"custom_id": "m", "body": {
        "model": "another", "messages": [{"role": "user", "content": "hi"}]}}) + "\n",
        encoding="utf-8")
    # (each option's refusal and the Client's side: tests/api/test_remote_surface.py)
    for args, code in ((("submit", str(several), "--dry-run"), 2),
                       (("submit", str(other_model), "--strict-model"), 2),
                       (("estimate", str(prompts), "--json"), 0)):
        argv = (*args, "--provider", "openai", "--model", MODEL)
        remote, local = cli(*argv), cli(*argv, remote=False)
        assert remote.code == local.code == code, (args, remote.err,
                                                               local.err)
        assert (remote.out, remote.err) == (local.out, local.err), args
    remote_usage = cli("usage", "--format", "json")
    local_usage = cli("usage", "--format", "json", remote=False)
    assert remote_usage.code == local_usage.code == 0, remote_usage.err
    assert remote_usage.out == local_usage.out  # one tenant in this database
    assert os.listdir(elsewhere) == []
