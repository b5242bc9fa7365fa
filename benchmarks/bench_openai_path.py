"""End-to-end throughput of the OpenAI path: one large chat job through the emulator.

    python benchmarks/bench_openai_path.py                 # 50,000 items, every backend
    python benchmarks/bench_openai_path.py --items 5000 --backends embedded

For each backend (``embedded``: SQLite database + SQLite broker + one ``llmbatch worker --beat
--pool threads`` child, as ``llmbatch submit --wait`` runs it; ``postgres``: PostgreSQL + Redis +
``llmbatch worker --beat``, the same default threads pool; ``postgres-prefork``: PostgreSQL +
Redis + ``llmbatch worker --pool prefork`` + a separate ``llmbatch beat``; the PostgreSQL ones
are skipped when either server is unreachable) it stores the job with ``create_job`` in this
process, lets the worker drive it, and reports each phase's duration and items/s from three
sources:

* wall clock in this process (ingest, results export, end to end),
* the job's timeline (``events``: job.created, batch.planned, batch.submitted, batch.ended,
  batch.fetched, job.completed; each is stamped when its step starts or commits),
* the worker's own task run times (Celery logs ``Task <name>[id] succeeded in <s>``).

and the peak memory of the worker's process tree, and of the separate beat where one runs
(psutil, sampled every 50 ms): RSS summed over the processes, and PSS summed (shared pages
divided among the processes sharing them: the memory they really hold).
The emulator runs as its own process with short timing, so the "poll wait" is mostly its
result generation and the poll interval, reported as wall time, not a throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from sqlalchemy import Engine, create_engine, select

from llmbatch.bootstrap import Runtime, build_runtime
from llmbatch.config import load_config
from llmbatch.db.migrate import upgrade
from llmbatch.db.tables import events, jobs
from llmbatch.domain.states import JobStatus
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.read_models import job_results
from llmbatch.worker.app import CeleryPublisher, make_celery

MODEL = "gpt-4o-mini"
API_KEY = "bench-key"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS: dict[str, Any] = {"host": "127.0.0.1", "port": 6379}
REDIS_DBS = range(1, 5)  # the integration tests use 5..15
REDIS_LOCK_KEY = "llmbatch-bench:lock"
EMULATOR_TIMING = {"validate_s": 0.2, "run_base_s": 1.0, "run_per_item_s": 0.0,
                   "finalize_s": 0.2, "cancel_s": 0.2}
TASK_LINE = re.compile(r"Task (llmbatch\.\w+)\[[^\]]+\] succeeded in ([\d.]+)s: (.*)$")
TOPICS = ["photosynthesis", "the Roman road network", "TCP congestion control", "sourdough",
          "plate tectonics", "the B-tree", "jazz harmony", "vaccines", "tides", "compilers"]


# ---- processes -------------------------------------------------------------------------------

@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL what is left."""
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=20)
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait(timeout=5)

    def check(self) -> None:
        if self.popen.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")


def start_child(stack: ExitStack, workdir: Path, name: str, *args: str) -> Child:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LLMBATCH_DATABASE_URL", "LLMBATCH_BROKER_URL", "LLMBATCH_CONFIG")}
    env["PYTHONUNBUFFERED"] = "1"
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen([sys.executable, "-m", "llmbatch", *args], stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                 cwd=workdir, start_new_session=True)
    child = Child(name, popen, log)
    stack.callback(child.stop)
    return child


def wait_for_log(child: Child, pattern: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check()
        if child.log.exists() and pattern in child.log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not log {pattern!r} within {timeout}s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_emulator(stack: ExitStack, workdir: Path) -> str:
    profile = workdir / "emulator.yaml"
    profile.write_text(yaml.safe_dump({"timing": EMULATOR_TIMING}), encoding="utf-8")
    port = free_port()
    child = start_child(stack, workdir, "emulator", "emulator", "--port", str(port),
                        "--profile", str(profile))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        child.check()
        with suppress(httpx.HTTPError):
            if httpx.get(f"{url}/_emulator/health", timeout=1).status_code == 200:
                return url
        if time.monotonic() > deadline:
            raise RuntimeError("the emulator did not start")
        time.sleep(0.1)


class RssSampler:
    """Peak memory of processes and their descendants, sampled in a thread.

    Two sums per sample: **RSS** (resident set size of each process, added up: pages that
    forked processes share copy-on-write are counted once per process) and **PSS**
    (proportional set size: each shared page divided among the processes sharing it, so the
    sum is the memory the tree really holds; Linux ``/proc/<pid>/smaps_rollup``). On a system
    without PSS the PSS figures stay 0."""

    def __init__(self, pids: list[int], interval_s: float = 0.05) -> None:
        self._roots = [psutil.Process(pid) for pid in pids]
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak = 0
        self.peak_pss = 0
        self.samples: list[int] = []

    def processes(self) -> list[psutil.Process]:
        procs: list[psutil.Process] = []
        for root in self._roots:
            with suppress(psutil.NoSuchProcess):
                procs += [root, *root.children(recursive=True)]
        return procs

    def current(self) -> tuple[int, int]:
        """(RSS sum, PSS sum) over the trees, bytes."""
        rss = pss = 0
        for proc in self.processes():
            with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                info = proc.memory_full_info()
                rss += info.rss
                pss += getattr(info, "pss", 0)
        return rss, pss

    def breakdown(self) -> list[str]:
        """One line per process: RSS / PSS / USS (its own pages), MiB."""
        lines = []
        for proc in self.processes():
            with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                info = proc.memory_full_info()
                role = "child" if proc.ppid() in {r.pid for r in self._roots} else (
                    " ".join(proc.cmdline()[3:4]) or proc.name())
                lines.append(f"{proc.pid} {role}: RSS {info.rss / 2**20:.0f}, PSS "
                             f"{getattr(info, 'pss', 0) / 2**20:.0f}, USS "
                             f"{getattr(info, 'uss', 0) / 2**20:.0f}")
        return lines

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, pss = self.current()
            self.samples.append(rss)
            self.peak = max(self.peak, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- backends --------------------------------------------------------------------------------

@dataclass
class Backend:
    name: str
    database_url: str
    broker_url: str
    worker_args: list[str]
    separate_beat: bool  # a separate ``llmbatch beat`` runs, and is measured with the worker
    description: str


@contextmanager
def embedded_backend(workdir: Path, concurrency: int) -> Iterator[Backend]:
    yield Backend("embedded", f"sqlite:///{workdir / 'llmbatch.db'}",
                  f"sqla+sqlite:///{workdir / 'broker.db'}",
                  ["--beat", "--pool", "threads", "--concurrency", str(concurrency)], False,
                  f"SQLite + SQLite broker, 1 worker --beat --pool threads "
                  f"--concurrency {concurrency}")


def postgres_shape(name: str, concurrency: int | None) -> tuple[list[str], bool, str]:
    """(worker arguments, separate beat, description) of a PostgreSQL + Redis backend.

    ``postgres`` is what ``llmbatch worker --beat`` runs by default (threads pool, one process,
    the tick a thread of it); ``postgres-prefork`` is a prefork worker with a separate beat
    (a forking pool cannot hold the tick as a thread), measured too so neither is hidden."""
    if name == "postgres":
        n = concurrency or 4
        return (["--beat", "--pool", "threads", "--concurrency", str(n)], False,
                f"PostgreSQL + Redis, 1 worker --beat --pool threads --concurrency {n}")
    n = concurrency or 2
    return (["--pool", "prefork", "--concurrency", str(n)], True,
            f"PostgreSQL + Redis, 1 worker --pool prefork --concurrency {n} + beat")


@contextmanager
def postgres_backend(name: str, concurrency: int | None) -> Iterator[Backend | None]:
    """A fresh PostgreSQL database and a locked Redis database number; None if unreachable."""
    try:
        import psycopg
        import redis
    except ImportError as exc:
        print(f"postgres backend skipped: {exc}")
        yield None
        return
    admin = (f"host={PG['host']} port={PG['port']} user={PG['user']} dbname=postgres "
             "connect_timeout=3")
    try:
        psycopg.connect(admin, autocommit=True).close()
    except psycopg.OperationalError as exc:
        print(f"postgres backend skipped: PostgreSQL unreachable ({exc})")
        yield None
        return
    client = None
    token = uuid.uuid4().hex
    try:
        for number in REDIS_DBS:
            candidate = redis.Redis(db=number, socket_connect_timeout=3, **REDIS)
            if candidate.set(REDIS_LOCK_KEY, token, nx=True, ex=3600):
                client = candidate
                break
            candidate.close()
    except redis.RedisError as exc:
        print(f"postgres backend skipped: Redis unreachable ({exc})")
        yield None
        return
    if client is None:
        print("postgres backend skipped: every bench Redis database is in use")
        yield None
        return
    client.flushdb()
    client.set(REDIS_LOCK_KEY, token, ex=3600)
    database = f"llmbatch_bench_{os.getpid()}_{token[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        worker_args, separate_beat, description = postgres_shape(name, concurrency)
        yield Backend(
            name, f"postgresql+psycopg://{PG['user']}@{PG['host']}:{PG['port']}/{database}",
            f"redis://{REDIS['host']}:{REDIS['port']}/{client.connection_pool.connection_kwargs['db']}",
            worker_args, separate_beat, description)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        client.flushdb()
        client.close()


# ---- the run ---------------------------------------------------------------------------------

def write_prompts(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            topic = TOPICS[i % len(TOPICS)]
            body = {"messages": [
                {"role": "system", "content": "You explain things in two sentences."},
                {"role": "user", "content": f"Explain {topic} to a curious twelve-year-old "
                                            f"(variant {i})."}],
                "max_tokens": 120, "temperature": 0.2}
            out.write(json.dumps({"custom_id": f"bench-{i:06d}", "body": body}) + "\n")


def write_config(path: Path, backend: Backend, emulator_url: str,
                 max_requests: int | None) -> Path:
    openai: dict[str, Any] = {"base_url": f"{emulator_url}/openai/v1", "api_key": API_KEY,
                              "timeout_s": 600, "models": [{"name": MODEL}]}
    if max_requests:
        openai["limits"] = {"max_requests": max_requests}
    config = {
        "database": {"url": backend.database_url},
        "broker": {"url": backend.broker_url, "polling_interval_s": 0.1},
        "worker": {"tick_interval_s": 0.5, "lease_s": 600},
        "polling": {"strategy": "fixed", "interval_s": 0.5},
        "providers": {"openai": openai},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Phase:
    """One phase: its duration seen from outside (wall clock or timeline) and, for the steps
    a worker task performs, the task's own run time."""

    name: str
    seconds: float | None  # wall clock or timeline span; None where neither brackets it
    source: str
    task_s: float | None = None  # the worker task's own run time (sum over batches)
    items: int | None = None  # None: not a throughput (waiting on the provider)

    def rate(self, seconds: float | None) -> float | None:
        if self.items is None or not seconds:
            return None
        return self.items / seconds

    @property
    def best_s(self) -> float | None:
        """The figure to quote: the outside view, else the task's own time."""
        return self.seconds if self.seconds is not None else self.task_s


@dataclass
class Result:
    backend: str
    description: str
    items: int
    batches: int
    status: str
    phases: list[Phase] = field(default_factory=list)
    task_seconds: dict[str, list[float]] = field(default_factory=dict)
    processes: int = 0  # measured: the worker's tree, and the beat when it runs apart
    separate_beat: bool = False
    rss_idle_mb: float = 0.0
    rss_peak_mb: float = 0.0
    pss_idle_mb: float = 0.0
    pss_peak_mb: float = 0.0
    idle_processes: list[str] = field(default_factory=list)


def observer_engine(url: str) -> Engine:
    """A plain engine for watching: no BEGIN IMMEDIATE, so reading never takes SQLite's
    write lock away from the worker."""
    return create_engine(url)


def job_status(engine: Engine, job_id: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar_one())


def wait_terminal(engine: Engine, job_id: str, worker: Child, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while (status := job_status(engine, job_id)) in (JobStatus.PENDING, JobStatus.RUNNING):
        worker.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {status} after {timeout_s}s")
        time.sleep(0.05)
    return status


def timeline(engine: Engine, job_id: str) -> dict[str, list[datetime]]:
    out: dict[str, list[datetime]] = {}
    with engine.connect() as conn:
        for row in conn.execute(select(events.c.type, events.c.at)
                                .where(events.c.job_id == job_id).order_by(events.c.id)):
            at = row.at if isinstance(row.at, datetime) else datetime.fromisoformat(row.at)
            out.setdefault(row.type, []).append(at.replace(tzinfo=None))
    return out


def task_times(log: Path) -> dict[str, list[float]]:
    """Run times of the tasks that did their step's work (not the no-op duplicates)."""
    useful: dict[str, Callable[[str], bool]] = {
        "llmbatch.plan": lambda r: r != "'[]'",
        "llmbatch.submit": lambda r: "progress" in r,
        "llmbatch.fetch": lambda r: "fetched" in r,
        "llmbatch.finalize": lambda r: r not in ("'None'",)}
    out: dict[str, list[float]] = {}
    for raw in log.read_text(errors="replace").splitlines():
        line = raw
        if raw.startswith("{"):  # the worker logs JSON: the Celery line is its "event"
            with suppress(ValueError, AttributeError):
                line = str(json.loads(raw).get("event", raw))
        match = TASK_LINE.search(line)
        if match and match[1] in useful and useful[match[1]](match[3].strip()):
            out.setdefault(match[1], []).append(float(match[2]))
    return out


def span(t: dict[str, list[datetime]], start: str, end: str, first: bool = True) -> float:
    begin = min(t[start]) if first else max(t[start])
    return (max(t[end]) - begin).total_seconds()


def run_backend(backend: Backend, prompts: Path, items: int, workdir: Path,
                emulator_url: str, max_requests: int | None, timeout_s: float,
                py_spy: str | None = None) -> Result:
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = write_config(workdir / "llm_config.yaml", backend, emulator_url, max_requests)
    config = load_config(config_path, env={})
    rt: Runtime = build_runtime(config)
    upgrade(rt.engine)
    app = make_celery(config)
    rt.publisher = CeleryPublisher(app)
    watch = observer_engine(backend.database_url)
    with ExitStack() as stack:
        stack.callback(app.close)
        stack.callback(rt.engine.dispose)
        stack.callback(watch.dispose)
        worker = start_child(stack, workdir, "worker", "worker", "--config", str(config_path),
                             "--loglevel", "INFO", *backend.worker_args)
        measured = [worker]
        if backend.separate_beat:
            measured.append(start_child(stack, workdir, "beat", "beat", "--config",
                                        str(config_path)))
        wait_for_log(worker, " ready.")
        # Warm-up: imports, connections and the SDK client in both processes, so the figures
        # below are steady-state throughput, not start-up cost.
        warmup = workdir / "warmup.jsonl"
        write_prompts(warmup, 20)
        warm_id, _ = create_job(rt, warmup, provider="openai", model=MODEL, name="warm-up")
        wait_terminal(watch, warm_id, worker, timeout_s)
        sampler = stack.enter_context(RssSampler([c.popen.pid for c in measured]))
        time.sleep(0.5)
        idle, idle_pss = sampler.current()
        n_processes = len(sampler.processes())
        idle_breakdown = sampler.breakdown()
        warm_tasks = task_times(worker.log)

        if py_spy:
            # Collapsed stacks of the worker tree during the measured job (flamegraph input).
            spy = subprocess.Popen([py_spy, "record", "--subprocesses", "--rate", "200",
                                    "--format", "raw", "--output",
                                    str(workdir / "worker-profile.txt"),
                                    "--pid", str(worker.popen.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            def stop_spy(spy: subprocess.Popen[bytes] = spy) -> None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)

            stack.callback(stop_spy)
            time.sleep(1.0)
        print(f"[{backend.name}] ingest {items} items ...", flush=True)
        t0 = time.perf_counter()
        job_id, _ = create_job(rt, prompts, provider="openai", model=MODEL, name="bench")
        ingest_s = time.perf_counter() - t0
        t_created = time.perf_counter()
        status = wait_terminal(watch, job_id, worker, timeout_s)
        observed_s = time.perf_counter() - t_created
        print(f"[{backend.name}] {status} after {observed_s:.1f}s; reading results ...",
              flush=True)
        t0 = time.perf_counter()
        # What ``llmbatch results`` does per line, short of writing it out.
        succeeded = sum(1 for r in job_results(rt, job_id)
                        if r.as_dict()["status"] == "succeeded")
        export_s = time.perf_counter() - t0
        rss_peak, pss_peak = sampler.peak, sampler.peak_pss
        t = timeline(watch, job_id)
    times = {name: values[len(warm_tasks.get(name, [])):]
             for name, values in task_times(worker.log).items()}
    if status != JobStatus.SUCCEEDED or succeeded != items:
        raise RuntimeError(f"job ended {status} with {succeeded}/{items} succeeded")
    n_batches = len(t["batch.planned"])
    def task(name: str) -> float | None:
        values = times.get(name)
        return sum(values) if values else None

    phases = [
        Phase("ingest (create_job)", ingest_s, "wall clock", items=items),
        Phase("plan", None, "task", task("llmbatch.plan"), items),
        Phase("build + upload (submit)", span(t, "batch.planned", "batch.submitted"),
              "events planned→submitted", task("llmbatch.submit"), items),
        Phase("poll wait (emulator)", span(t, "batch.submitted", "batch.ended", first=False),
              "events last submitted→last ended"),
        Phase("download + store (fetch)", span(t, "batch.ended", "batch.fetched"),
              "events ended→fetched", task("llmbatch.fetch"), items),
        # job.completed is stamped when finalize starts: its task time is the phase.
        Phase("finalize", None, "task", task("llmbatch.finalize"), items),
        Phase("end to end (after ingest)", observed_s, "wall clock", items=items),
        Phase("results export (job_results)", export_s, "wall clock", items=items),
    ]
    return Result(backend.name, backend.description, items, n_batches, str(status), phases,
                  times, n_processes, backend.separate_beat, idle / 2**20, rss_peak / 2**20,
                  idle_pss / 2**20, pss_peak / 2**20, idle_breakdown)


# ---- report ----------------------------------------------------------------------------------

def fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:,.0f}"


def fmt_s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def report(result: Result) -> str:
    lines = [f"\n== {result.backend}: {result.description}",
             f"   {result.items:,} items in {result.batches} provider batch(es), job "
             f"{result.status}",
             f"   {'phase':<38} {'seconds':>8} {'items/s':>9} {'task s':>8} {'items/s':>9}"
             f"  source of 'seconds'"]
    for p in result.phases:
        lines.append(f"   {p.name:<38} {fmt_s(p.seconds):>8} {fmt_rate(p.rate(p.seconds)):>9} "
                     f"{fmt_s(p.task_s):>8} {fmt_rate(p.rate(p.task_s)):>9}  {p.source}")
    lines.append("   worker tasks that did their step's work (run times from the Celery log):")
    for name, values in sorted(result.task_seconds.items()):
        lines.append(f"     {name:<20} n={len(values):<3} total {sum(values):8.2f}s  "
                     f"max {max(values):8.2f}s  median {statistics.median(values):.3f}s")
    lines.append(f"   worker memory ({result.processes} processes: the worker's tree"
                 f"{' and the separate beat' if result.separate_beat else ''}), MiB:")
    lines.append(f"     RSS summed (shared pages counted per process): idle "
                 f"{result.rss_idle_mb:.0f}, peak {result.rss_peak_mb:.0f}")
    lines.append(f"     PSS summed (what the processes really hold):   idle "
                 f"{result.pss_idle_mb:.0f}, peak {result.pss_peak_mb:.0f}")
    lines += [f"     idle, pid {line}" for line in result.idle_processes]
    return "\n".join(lines)


def summary(results: list[Result]) -> str:
    """items/s (seconds) per phase and backend: the outside view, else the task time."""
    rows = [f"{'phase':<38}" + "".join(f"{r.backend:>24}" for r in results)]
    for i, phase in enumerate(results[0].phases):
        cells = []
        for r in results:
            p = r.phases[i]
            rate = p.rate(p.best_s)
            cells.append(f"{fmt_rate(rate)} ({fmt_s(p.best_s)}s)" if rate
                         else f"{fmt_s(p.best_s)}s")
        rows.append(f"{phase.name:<38}" + "".join(f"{c:>24}" for c in cells))
    rows.append(f"{'worker peak RSS sum (idle), MiB':<38}" + "".join(
        f"{f'{r.rss_peak_mb:.0f} ({r.rss_idle_mb:.0f})':>24}" for r in results))
    rows.append(f"{'worker peak PSS sum (idle), MiB':<38}" + "".join(
        f"{f'{r.pss_peak_mb:.0f} ({r.pss_idle_mb:.0f})':>24}" for r in results))
    return "\n".join(rows)


def machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    return (f"{platform.system()} {platform.release()}, {psutil.cpu_count()} logical CPUs, "
            f"{mem:.0f} GiB RAM, Python {platform.python_version()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--backends", default="embedded,postgres,postgres-prefork",
                        help="comma-separated: embedded, postgres (worker --beat, threads), "
                             "postgres-prefork (worker --pool prefork + beat)")
    parser.add_argument("--max-requests", type=int, default=None,
                        help="providers.openai.limits.max_requests (default: OpenAI's 50,000)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="worker concurrency (default: 4 threads / 2 prefork children)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per backend, seconds")
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument("--py-spy", default=None, metavar="PATH",
                        help="py-spy binary: profile the worker during the job into "
                             "WORKDIR/<backend>/worker-profile.txt (collapsed stacks)")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="llmbatch-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}\nworkdir: {workdir}", flush=True)
    results: list[Result] = []
    try:
        with ExitStack() as stack:
            emulator_url = start_emulator(stack, workdir)
            prompts = workdir / "prompts.jsonl"
            write_prompts(prompts, args.items)
            print(f"input: {args.items:,} lines, {prompts.stat().st_size / 2**20:.1f} MiB; "
                  f"emulator {emulator_url} timing {EMULATOR_TIMING}", flush=True)
            for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
                if name == "embedded":
                    ctx: Any = embedded_backend(workdir / name, args.concurrency or 4)
                elif name in ("postgres", "postgres-prefork"):
                    ctx = postgres_backend(name, args.concurrency)
                else:
                    parser.error(f"unknown backend {name!r}")
                with ctx as backend:
                    if backend is None:
                        continue
                    result = run_backend(backend, prompts, args.items, workdir / name,
                                         emulator_url, args.max_requests, args.timeout,
                                         args.py_spy)
                    results.append(result)
                    print(report(result), flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if results:
        print("\n== summary: items/s (seconds)\n" + summary(results))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": [
            {**asdict(r), "phases": [{**asdict(p), "items_per_s": p.rate(p.best_s)}
                                     for p in r.phases]}
            for r in results]}, indent=2, default=str), encoding="utf-8")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
