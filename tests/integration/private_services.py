"""Services a fault test may break: a RabbitMQ virtual host, a Redis server and a PostgreSQL
cluster of the test's own, on free ports, started and stopped by pid.

The machine's own PostgreSQL and Redis are never stopped or restarted: a test that kills its
broker or database kills one started here. Missing binaries skip locally and fail under
``CI=true`` (``support.service_missing``)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .support import service_missing

RABBIT_HOST = os.environ.get("LLMBATCH_TEST_RABBITMQ_HOST", "127.0.0.1")
RABBIT_PORT = int(os.environ.get("LLMBATCH_TEST_RABBITMQ_PORT", "5672"))
RABBIT_USER = os.environ.get("LLMBATCH_TEST_RABBITMQ_USER", "guest")
RABBIT_PASSWORD = os.environ.get("LLMBATCH_TEST_RABBITMQ_PASSWORD", "guest")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not listen on {port} within {timeout:.0f}s")
        time.sleep(0.05)


def _stop_pid(popen: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(sig)
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=10)


# ---- RabbitMQ ----------------------------------------------------------------------------------

def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), 3).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A fresh virtual host on the machine's RabbitMQ (``rabbitmqctl``), the test user allowed
    on it, deleted at the end: its queues (``llmbatch``, the pidboxes) are nobody else's."""
    if not _reachable(RABBIT_HOST, RABBIT_PORT):
        service_missing(f"RabbitMQ is not reachable at {RABBIT_HOST}:{RABBIT_PORT}")
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        service_missing("rabbitmqctl is not on PATH (needed for a private vhost)")
    vhost = f"llmbatch-it-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        for args in (["add_vhost", vhost],
                     ["set_permissions", "-p", vhost, RABBIT_USER, ".*", ".*", ".*"]):
            done = subprocess.run([ctl, "-q", *args], capture_output=True, text=True,
                                  timeout=60, check=False)
            if done.returncode != 0:
                service_missing(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()}")
        yield f"amqp://{RABBIT_USER}:{RABBIT_PASSWORD}@{RABBIT_HOST}:{RABBIT_PORT}/{vhost}"
    finally:
        subprocess.run([ctl, "-q", "delete_vhost", vhost], capture_output=True, timeout=60,
                       check=False)


# ---- Redis -------------------------------------------------------------------------------------

@dataclass
class PrivateRedis:
    """A ``redis-server`` of the test's own: no persistence, so a restart loses every
    queued message, as a broker crash without an append-only file does."""

    workdir: Path
    port: int
    popen: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server is not on PATH")
        log = (self.workdir / "redis.log").open("ab")
        with log:
            self.popen = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        wait_for_port(self.port, timeout=30, what="redis-server")

    def kill(self) -> None:
        """SIGKILL: whatever was queued or unacked is gone."""
        if self.popen is not None:
            _stop_pid(self.popen, signal.SIGKILL, 10)

    def restart(self, down_s: float) -> None:
        self.kill()
        time.sleep(down_s)
        self.start()
        self.restarts += 1

    def stop(self) -> None:
        if self.popen is not None:
            _stop_pid(self.popen, signal.SIGTERM, 10)


@contextlib.contextmanager
def private_redis(workdir: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(workdir, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---- PostgreSQL --------------------------------------------------------------------------------

def postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<v>/bin`` holding ``initdb`` and ``pg_ctl``, or the
    directory of ``pg_ctl`` on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory (``initdb``, trust auth, loopback only),
    run with ``pg_ctl``; ``restart`` stops it immediately (every connection cut) and starts it
    again on the same port and data."""

    workdir: Path
    port: int
    bindir: Path
    restarts: int = 0

    @property
    def datadir(self) -> Path:
        return self.workdir / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        # PostgreSQL refuses to run as root: as root, run it as the ``postgres`` user.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *args], capture_output=True, text=True,
                              timeout=timeout, check=False, env=self._env(), cwd=self.workdir)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def _env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("PG")}

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                  "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")

    def start(self) -> None:
        # Unix sockets in the work dir: never the system's /var/run/postgresql.
        options = (f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l",
                  str(self.workdir / "postgres.log"), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(AssertionError):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode,
                      "-w", "-t", "60", "stop")

    def restart(self, down_s: float) -> None:
        self.stop("immediate")
        time.sleep(down_s)
        self.start()
        self.restarts += 1


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private cluster; its directory (a fresh one under the system temp dir, which
    the ``postgres`` user can reach, unlike pytest's root-only tmp_path) removed at the end."""
    if os.geteuid() == 0 and (shutil.which("runuser") is None or not _has_user("postgres")):
        service_missing("PostgreSQL will not run as root, and runuser or a postgres user is "
                        "missing")
    bindir = postgres_bin_dir()
    if bindir is None:
        service_missing("no PostgreSQL server binaries (initdb, pg_ctl)")
    workdir = Path(tempfile.mkdtemp(prefix="llmbatch-it-pg-"))
    server = PrivatePostgres(workdir, free_port(), bindir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(workdir, ignore_errors=True)
