"""What the integration tests share besides fixtures: service access, child processes, config
and input files, a running cluster, and waiting for jobs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from llmbatch.bootstrap import Runtime, build_runtime
from llmbatch.config import load_config
from llmbatch.db.migrate import upgrade
from llmbatch.db.tables import events, items, provider_batches
from llmbatch.domain.job import Job
from llmbatch.domain.states import is_terminal
from llmbatch.emulator.settings import EmulatorSettings, load_profile

PG_HOST = os.environ.get("LLMBATCH_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("LLMBATCH_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("LLMBATCH_TEST_PG_USER", "postgres")
REDIS_HOST = os.environ.get("LLMBATCH_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("LLMBATCH_TEST_REDIS_PORT", "6379"))

MODEL = "gpt-4o-mini"
API_KEY = "integration-key"
QUEUE = "llmbatch"
TICK = "llmbatch.tick"
REDIS_DBS = range(5, 16)
REDIS_LOCK_KEY = "llmbatch-integration:lock"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def service_missing(what: str) -> NoReturn:
    """Skip locally; fail under CI, where every service is required."""
    if in_ci():
        pytest.fail(f"CI=true and {what}", pytrace=False)
    pytest.skip(what)


# ---- PostgreSQL ------------------------------------------------------------------------------

class PostgresServer:
    """Creates and drops uniquely named databases on the test server."""

    def __init__(self) -> None:
        try:
            import psycopg
        except ImportError:
            service_missing("psycopg is not installed (pip install 'llmbatch[postgres]')")
        self._psycopg = psycopg
        self._admin = (f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres "
                       "connect_timeout=3")
        try:
            psycopg.connect(self._admin, autocommit=True).close()
        except psycopg.OperationalError as exc:
            service_missing(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT}: {exc}")

    def create_database(self, purpose: str, *, template: str | None = None) -> tuple[str, str]:
        """``(name, SQLAlchemy URL)`` of a new database: empty, or a copy of ``template`` (a
        database nobody is connected to)."""
        name = f"llmbatch_it_{purpose}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with self._psycopg.connect(self._admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return name, self.url(name)

    @staticmethod
    def url(name: str) -> str:
        """The SQLAlchemy URL of database ``name``."""
        return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"

    @staticmethod
    def dsn(name: str) -> str:
        """The libpq connection string of database ``name``."""
        return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={name} connect_timeout=3"

    def drop_database(self, name: str) -> None:
        with self._psycopg.connect(self._admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- Redis -----------------------------------------------------------------------------------

@dataclass
class RedisDb:
    """One Redis database number reserved for a session."""

    number: int
    client: Any

    @property
    def url(self) -> str:
        return f"redis://{REDIS_HOST}:{REDIS_PORT}/{self.number}"

    def lifecycle_messages(self) -> int:
        """Lifecycle task messages waiting in the llmbatch queue or delivered and not yet
        acked (kombu keeps those in the ``unacked`` hash until the task ends: we ack late).
        The beat's tick messages, which never stop, are not counted."""
        waiting = [json.loads(raw) for raw in self.client.lrange(QUEUE, 0, -1)]
        running = [json.loads(raw)[0] for raw in self.client.hvals("unacked")]
        return sum(1 for message in waiting + running
                   if message.get("headers", {}).get("task") != TICK)


@contextlib.contextmanager
def reserved_redis_db(numbers: Iterable[int], *, none_free: str) -> Iterator[RedisDb]:
    """The first Redis database among ``numbers`` no other holder has locked (the lock key
    marks it), flushed at start and at the end; ``none_free`` fails the test when all are held."""
    try:
        import redis
    except ImportError:
        service_missing("redis is not installed (pip install 'llmbatch[redis]')")
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    for number in numbers:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number, socket_timeout=5,
                             socket_connect_timeout=3)
        try:
            acquired = client.set(REDIS_LOCK_KEY, token, nx=True, ex=3600)
        except redis.RedisError as exc:
            client.close()
            service_missing(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}")
        if acquired:
            break
        client.close()
    else:
        pytest.fail(none_free, pytrace=False)
    client.flushdb()
    client.set(REDIS_LOCK_KEY, token, ex=3600)
    try:
        yield RedisDb(number, client)
    finally:
        client.flushdb()
        client.close()


# ---- child processes -------------------------------------------------------------------------

@dataclass
class Proc:
    """A child process in its own process group, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole group, then SIGKILL whatever is left of it."""
        if self.popen.poll() is None:
            signal_group(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        # Pool children can outlive their parent; the group reaches them too.
        signal_group(self.popen.pid, signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait(timeout=5)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def child_env() -> dict[str, str]:
    """Our environment without the variables that would point a child somewhere else."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LLMBATCH_DATABASE_URL", "LLMBATCH_BROKER_URL", "LLMBATCH_CONFIG",
                        "OPENAI_BASE_URL", "OPENAI_API_KEY")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def llmbatch_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmbatch", *args]


@dataclass
class Processes:
    """Starts ``python -m llmbatch ...`` children and stops every one of them."""

    workdir: Path
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, *args: str) -> Proc:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(llmbatch_cmd(*args), stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     cwd=self.workdir, env=child_env())
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def check_alive(self) -> None:
        """Fail, showing its log, if any child has exited."""
        for proc in self.procs:
            if not proc.alive():
                pytest.fail(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}",
                            pytrace=False)

    def stop_all(self, timeout: float = 5.0) -> None:
        """SIGTERM every group at once, give them ``timeout`` together to end warmly, then
        SIGKILL what is left (one after the other would add up their shutdowns)."""
        for proc in reversed(self.procs):
            if proc.alive():
                signal_group(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in reversed(self.procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(deadline - time.monotonic(), 0.0))
        for proc in reversed(self.procs):
            proc.stop(timeout=0.0)  # SIGKILL the group (pool children) and reap
        self.procs.clear()


# ---- files -----------------------------------------------------------------------------------

def write_config(path: Path, *, database_url: str, broker_url: str, emulator_url: str,
                 max_requests: int | None = None) -> Path:
    """A config with fast timing: ticks and polls every few tenths of a second."""
    openai: dict[str, Any] = {"base_url": f"{emulator_url}/openai/v1", "api_key": API_KEY,
                              "timeout_s": 30, "models": [{"name": MODEL}]}
    if max_requests is not None:
        openai["limits"] = {"max_requests": max_requests}
    config = {
        "database": {"url": database_url},
        "broker": {"url": broker_url, "polling_interval_s": 0.1},
        "worker": {"tick_interval_s": 0.3, "lease_s": 30},
        "polling": {"strategy": "fixed", "interval_s": 0.3},
        "retry": {"base_delay_s": 0.2, "max_delay_s": 1.0},
        "providers": {"openai": openai},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def write_prompts(path: Path, count: int, *, prefix: str) -> Path:
    """``count`` chat requests whose custom_ids are ``{prefix}-{i:05d}``."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            body = {"messages": [{"role": "user",
                                  "content": f"Say something about {prefix} number {i}."}],
                    "max_tokens": 20}
            out.write(json.dumps({"custom_id": f"{prefix}-{i:05d}", "body": body}) + "\n")
    return path


# ---- waiting and looking ---------------------------------------------------------------------

def wait_for_jobs(rt: Runtime, job_ids: list[str], *, timeout: float,
                  alive: Callable[[], None] | None = None) -> dict[str, Job]:
    """Poll the database until every job is terminal; fail with their state on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        with rt.uow() as uow:
            jobs = {job_id: uow.repo.get_job(job_id) for job_id in job_ids}
        if all(is_terminal(job.status) for job in jobs.values()):
            return jobs
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            states = {j.id: (str(j.status), {str(k): v for k, v in j.counts.items()})
                      for j in jobs.values()}
            pytest.fail(f"jobs not terminal after {timeout}s: {states}", pytrace=False)
        time.sleep(0.1)


def progress_mark(rt: Runtime, job_ids: list[str]) -> tuple[Any, ...]:
    """What changes while the jobs move at all: their items' statuses and attempts, their
    batches' statuses and submit attempts, and how many events they have."""
    b, i, e = provider_batches.c, items.c, events.c
    with rt.engine.connect() as conn:
        item_counts = conn.execute(
            select(i.job_id, i.status, i.attempts, func.count())
            .where(i.job_id.in_(job_ids)).group_by(i.job_id, i.status, i.attempts)
            .order_by(i.job_id, i.status, i.attempts)).all()
        batch_states = conn.execute(
            select(b.id, b.status, b.submit_attempts, b.provider_batch_id)
            .where(b.job_id.in_(job_ids)).order_by(b.id)).all()
        event_count = conn.execute(
            select(func.count()).select_from(events).where(e.job_id.in_(job_ids))).scalar()
    return tuple(map(tuple, item_counts)), tuple(map(tuple, batch_states)), event_count


def wait_while_progressing(rt: Runtime, job_ids: list[str], *, stall_s: float, cap_s: float,
                           alive: Callable[[], None] | None = None,
                           ) -> tuple[dict[str, Job], str | None]:
    """Poll until every job is terminal, for as long as something moves (``progress_mark``).

    Returns the jobs and ``None`` when all are terminal; otherwise the jobs and why waiting
    stopped: nothing changed for ``stall_s``, or ``cap_s`` (a generous bound against a loop
    that moves forever) passed. The caller reports its figures before failing."""
    started = last_change = time.monotonic()
    mark: tuple[Any, ...] | None = None
    while True:
        with rt.uow() as uow:
            jobs = {job_id: uow.repo.get_job(job_id) for job_id in job_ids}
        if all(is_terminal(job.status) for job in jobs.values()):
            return jobs, None
        if alive is not None:
            alive()
        now = time.monotonic()
        current = progress_mark(rt, job_ids)
        if current != mark:
            mark, last_change = current, now
        elif now - last_change > stall_s:
            return jobs, f"nothing changed for {stall_s:.0f}s"
        if now - started > cap_s:
            return jobs, f"still not done after {cap_s:.0f}s (yet moving)"
        time.sleep(0.25)


def emulator_stats(base_url: str) -> dict[str, Any]:
    """``GET /_emulator/stats`` over HTTP, as any client would see it."""
    response = httpx.get(f"{base_url}/_emulator/stats", timeout=10)
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


@dataclass
class Cluster:
    """PostgreSQL + Redis + two prefork workers + one beat, and a runtime to drive them."""

    rt: Runtime
    config_path: Path
    redis: RedisDb
    emulator_url: str
    processes: Processes

    def wait(self, job_ids: list[str], timeout: float = 60.0) -> dict[str, Job]:
        return wait_for_jobs(self.rt, job_ids, timeout=timeout,
                             alive=self.processes.check_alive)

    def wait_queue_idle(self, timeout: float = 30.0, settle_s: float = 0.5) -> None:
        """Until no lifecycle message has been waiting or running for ``settle_s``: every
        message published before the call has been handled."""
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        while time.monotonic() < deadline:
            self.processes.check_alive()
            if self.redis.lifecycle_messages() == 0:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= settle_s:
                    return
            else:
                idle_since = None
            time.sleep(0.05)
        pytest.fail(f"lifecycle messages still queued after {timeout}s", pytrace=False)


def fast_emulator_settings() -> EmulatorSettings:
    """The ``fast`` profile with a batch taking ~0.6 s."""
    return load_profile("fast", timing={"validate_s": 0.1, "run_base_s": 0.3,
                                        "run_per_item_s": 0.0, "finalize_s": 0.1,
                                        "cancel_s": 0.1})


def pool_workers(config_path: Path, count: int, *, pool: str,
                 concurrency: int) -> Callable[[Processes], None]:
    """Starts ``count`` ``llmbatch worker --pool {pool} --concurrency {concurrency}``: prefork
    runs each task in one of ``concurrency`` child processes, threads in one of as many
    threads of the worker process itself."""
    def start(processes: Processes) -> None:
        for n in range(1, count + 1):
            processes.start(f"worker{n}", "worker", "--config", str(config_path),
                            "--pool", pool, "--concurrency", str(concurrency))
    return start


def prefork_workers(config_path: Path, count: int) -> Callable[[Processes], None]:
    """Starts ``count`` ``llmbatch worker --pool prefork --concurrency 2``."""
    return pool_workers(config_path, count, pool="prefork", concurrency=2)


@contextlib.contextmanager
def running_cluster(workdir: Path, config_path: Path, redis_db: RedisDb, emulator_url: str,
                    start_workers: Callable[[Processes], None]) -> Iterator[Cluster]:
    """The schema migrated (before any worker starts, so they do not race to create it), the
    workers ``start_workers`` starts and one beat; all stopped and released at the end."""
    from llmbatch.worker.app import CeleryPublisher, make_celery

    config = load_config(config_path, env={})
    rt = build_runtime(config)
    upgrade(rt.engine)
    app = make_celery(config)
    rt.publisher = CeleryPublisher(app)
    processes = Processes(workdir)
    try:
        start_workers(processes)
        processes.start("beat", "beat", "--config", str(config_path))
        yield Cluster(rt, config_path, redis_db, emulator_url, processes)
    finally:
        processes.stop_all()
        rt.close()
        app.close()
