"""A real Prometheus (the Debian ``prometheus`` package) scrapes a real prefork worker's
``--metrics-port`` while jobs run; every expression of the Grafana dashboard returns data,
and ``promtool check rules`` accepts the alert rules."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from llmbatch.service_layer.jobs import create_job

from .support import (
    MODEL,
    Cluster,
    PostgresServer,
    Processes,
    RedisDb,
    reserved_redis_db,
    running_cluster,
    service_missing,
    write_config,
    write_prompts,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "llmbatch-dashboard.json"
ALERTS = DEPLOY / "prometheus" / "llmbatch-alerts.yml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        service_missing(f"{name} is not installed (apt-get install prometheus)")
    return path


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run([tool("promtool"), "check", "rules", str(ALERTS)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


class PromServer:
    """A Prometheus on a free loopback port with a temporary data directory."""

    def __init__(self, workdir: Path, targets: list[str]) -> None:
        self.port = free_port()
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(ALERTS)],
                  "scrape_configs": [{"job_name": "llmbatch", "static_configs":
                                      [{"targets": targets}]}]}
        path = workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                [tool("prometheus"), f"--config.file={path}",
                 f"--storage.tsdb.path={workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body.get("status") == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str) -> float:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else float("nan")

    def wait_for(self, what: str, check: Callable[[], bool], cap_s: float = 90) -> None:
        deadline = time.monotonic() + cap_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                pytest.fail(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError, ValueError):  # not ready: no JSON yet
                if check():
                    return
            time.sleep(0.5)
        pytest.fail(f"Prometheus never saw {what} within {cap_s:.0f}s")

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)


@pytest.fixture
def metrics_cluster(tmp_path: Path, postgres: PostgresServer,
                    emulator: Any) -> Iterator[tuple[Cluster, int]]:
    """One prefork worker (2 children, with beat) exposing ``--metrics-port`` on its own
    PostgreSQL database and Redis database number."""
    name, url = postgres.create_database("metrics")
    port = free_port()
    try:
        with reserved_redis_db(range(5, 16), none_free="no free Redis database") as redis:
            config_path = write_config(tmp_path / "llm_config.yaml", database_url=url,
                                       broker_url=redis.url, emulator_url=emulator.url,
                                       max_requests=25)

            def start(processes: Processes) -> None:
                processes.start("worker", "worker", "--config", str(config_path), "--pool",
                                "prefork", "--concurrency", "2", "--metrics-port", str(port),
                                "--log-format", "json")

            with running_cluster(tmp_path, config_path, RedisDb(redis.number, redis.client),
                                 emulator.url, start) as cluster:
                yield cluster, port
    finally:
        postgres.drop_database(name)


def test_prometheus_sees_jobs_calls_and_gauges_move_and_every_panel_has_data(
        metrics_cluster: tuple[Cluster, int], tmp_path: Path) -> None:
    cluster, port = metrics_cluster
    prom = PromServer(tmp_path, [f"127.0.0.1:{port}"])
    try:
        prom.wait_for("itself ready", lambda: httpx.get(f"{prom.url}/-/ready",
                                                        timeout=5).status_code == 200)
        prom.wait_for("the worker up", lambda: prom.value('up{job="llmbatch"}') == 1)
        prom.wait_for("the counters initialised", lambda: bool(prom.query(
            'llmbatch_jobs_created_total{provider="openai"}')))

        job_ids = []
        for n in range(3):
            path = write_prompts(tmp_path / f"p{n}.jsonl", 60, prefix=f"prom{n}")
            job_id, _ = create_job(cluster.rt, path, provider="openai", model=MODEL)
            job_ids.append(job_id)
        # While the jobs run, the database gauges show their items not yet final.
        prom.wait_for("pending items", lambda: prom.value(
            "sum(llmbatch_items_pending)") > 0)
        jobs = cluster.wait(job_ids, timeout=120)
        assert {str(j.status) for j in jobs.values()} == {"succeeded"}

        prom.wait_for("every job finished", lambda: prom.value(
            'sum(llmbatch_jobs_finished_total{status="succeeded"})') >= 3)
        prom.wait_for("the items settled", lambda: prom.value(
            "sum(llmbatch_items_pending)") == 0)
        # Jobs created here (not by the worker) show in the database gauge.
        assert prom.value('sum(llmbatch_jobs{status="succeeded"})') >= 3
        assert prom.value("sum(llmbatch_job_duration_seconds_count)") >= 3
        assert prom.value('sum(llmbatch_batches{status="fetched"})') >= 9  # 60/25 -> 3 each
        assert prom.value('sum(llmbatch_provider_call_duration_seconds_count'
                          '{operation="submit"})') >= 9
        assert prom.value('sum(llmbatch_items_finished_total{status="succeeded"})') >= 180
        assert prom.value("sum(llmbatch_tokens_total)") > 0

        # Every dashboard expression answers with at least one series (rates need two
        # scrapes after the change, hence the wait).
        missing: list[str] = []
        for expr in dashboard_expressions():
            deadline = time.monotonic() + 30
            while not prom.query(expr):
                if time.monotonic() > deadline:
                    missing.append(expr)
                    break
                time.sleep(1)
        assert not missing, f"no data for: {missing}"
        rules = httpx.get(f"{prom.url}/api/v1/rules", timeout=10).json()
        assert rules["status"] == "success"
        assert all(g["rules"] and all(r["health"] == "ok" for r in g["rules"])
                   for g in rules["data"]["groups"])
    finally:
        prom.stop()
