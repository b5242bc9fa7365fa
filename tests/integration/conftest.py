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

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from .support import (
    REDIS_DBS,
    REDIS_LOCK_KEY,
    Cluster,
    PostgresServer,
    RedisDb,
    fast_emulator_settings,
    prefork_workers,
    reserved_redis_db,
    running_cluster,
    write_config,
)

if TYPE_CHECKING:
    from llmbatch.emulator.server import EmulatorServer

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
    with reserved_redis_db(REDIS_DBS, none_free=(
            f"every Redis database {REDIS_DBS.start}..{REDIS_DBS.stop - 1} is held by "
            f"another test session (key {REDIS_LOCK_KEY})")) as db:
        yield db


@pytest.fixture(scope="session")
def emulator() -> Iterator[EmulatorServer]:
    """The OpenAI emulator over real HTTP on a free loopback port; a batch takes ~0.6 s."""
    from llmbatch.emulator.server import EmulatorServer

    with EmulatorServer(fast_emulator_settings()) as server:
        yield server


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, pg_url: str, redis_db: RedisDb,
            emulator: EmulatorServer) -> Iterator[Cluster]:
    """Two ``llmbatch worker --pool prefork --concurrency 2`` and one ``llmbatch beat`` on
    PostgreSQL and Redis, provider batches capped at 50 requests."""
    workdir = tmp_path_factory.mktemp("cluster")
    config_path = write_config(workdir / "llm_config.yaml", database_url=pg_url,
                               broker_url=redis_db.url, emulator_url=emulator.url,
                               max_requests=50)
    with running_cluster(workdir, config_path, redis_db, emulator.url,
                         prefork_workers(config_path, 2)) as cluster:
        yield cluster
