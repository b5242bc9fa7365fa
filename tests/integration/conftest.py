"""Integration tier: real PostgreSQL, real Redis, real ``llmbatch worker`` processes, a real
emulator over HTTP.

Every session gets its own PostgreSQL database (dropped at the end) and its own Redis database
number (locked while in use, flushed at start and end), so two runs on one machine never see
each other's jobs or messages. Missing services skip the tests that need them locally; under
``CI=true`` they fail instead (``support.service_missing``).

Every process started here runs in its own process group and is stopped (SIGTERM, then
SIGKILL) at teardown, whatever the tests did.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from llmbatch.bootstrap import build_runtime
from llmbatch.config import load_config
from llmbatch.db.migrate import upgrade

from .support import (
    REDIS_HOST,
    REDIS_PORT,
    Cluster,
    PostgresServer,
    Processes,
    RedisDb,
    service_missing,
    write_config,
)

if TYPE_CHECKING:
    from llmbatch.emulator.server import EmulatorServer

REDIS_DBS = range(5, 16)
REDIS_LOCK_KEY = "llmbatch-integration:lock"


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    return PostgresServer()


@pytest.fixture(scope="session")
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database for the session; dropped at the end."""
    name, url = postgres.create_database("session")
    try:
        yield url
    finally:
        postgres.drop_database(name)


@pytest.fixture(scope="session")
def redis_db() -> Iterator[RedisDb]:
    """A Redis database number no other session holds (a lock key marks it), flushed at start
    and at the end."""
    try:
        import redis
    except ImportError:
        service_missing("redis is not installed (pip install 'llmbatch[redis]')")
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    for number in REDIS_DBS:
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
        pytest.fail(f"every Redis database {REDIS_DBS.start}..{REDIS_DBS.stop - 1} is held by "
                    f"another test session (key {REDIS_LOCK_KEY})", pytrace=False)
    client.flushdb()
    client.set(REDIS_LOCK_KEY, token, ex=3600)
    try:
        yield RedisDb(number, client)
    finally:
        client.flushdb()
        client.close()


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    """The OpenAI emulator over real HTTP on a free loopback port; a batch takes ~0.6 s."""
    from llmbatch.emulator.server import EmulatorServer
    from llmbatch.emulator.settings import load_profile

    settings = load_profile("fast", timing={"validate_s": 0.1, "run_base_s": 0.3,
                                            "run_per_item_s": 0.0, "finalize_s": 0.1,
                                            "cancel_s": 0.1})
    with EmulatorServer(settings) as server:
        yield server


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, pg_url: str, redis_db: RedisDb,
            emulator: EmulatorServer) -> Iterator[Cluster]:
    """Two ``llmbatch worker --pool prefork --concurrency 2`` and one ``llmbatch beat`` on
    PostgreSQL and Redis, provider batches capped at 50 requests."""
    from llmbatch.worker.app import CeleryPublisher, make_celery

    workdir = tmp_path_factory.mktemp("cluster")
    config_path = write_config(workdir / "llm_config.yaml", database_url=pg_url,
                               broker_url=redis_db.url, emulator_url=emulator.url,
                               max_requests=50)
    config = load_config(config_path, env={})
    rt = build_runtime(config)
    upgrade(rt.engine)  # before the workers start, so they do not race to create the schema
    app = make_celery(config)
    rt.publisher = CeleryPublisher(app)
    processes = Processes(workdir)
    try:
        for n in (1, 2):
            processes.start(f"worker{n}", "worker", "--config", str(config_path),
                            "--pool", "prefork", "--concurrency", "2")
        processes.start("beat", "beat", "--config", str(config_path))
        yield Cluster(rt, config_path, redis_db, emulator.url, processes)
    finally:
        processes.stop_all()
        rt.engine.dispose()
        app.close()
