"""Fixtures for service-layer tests: an SQLite file database migrated with Alembic (once per
session, copied per test), a ``FakeProvider`` injected into the registry, a hand-moved clock.
``database_url`` gives a test a fresh migrated database on SQLite and on PostgreSQL in turn
(PostgreSQL skips when unreachable locally and fails under ``CI=true``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine

from fakes import FakeProvider
from llmbatch.bootstrap import Runtime
from llmbatch.config import AppConfig, DatabaseConfig, ModelConfig, ProviderConfig
from llmbatch.db.engine import make_engine
from llmbatch.db.migrate import upgrade
from llmbatch.providers.registry import ProviderRegistry
from llmbatch.service_layer.unit_of_work import RecordingPublisher

from .harness import MODEL, Clock, Driver, chat_line

if TYPE_CHECKING:
    from integration.support import PostgresServer


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1_000_000))

    def write(lines: list[str] | int, name: str | None = None) -> Path:
        if isinstance(lines, int):
            lines = [chat_line(f"q-{i}", f"question {i}") for i in range(lines)]
        path = tmp_path / (name or f"input-{next(counter)}.jsonl")
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated to head once per session; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "llmbatch.db"
    engine = make_engine(DatabaseConfig(url=f"sqlite:///{path}"))
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[tuple[PostgresServer, str]]:
    """A PostgreSQL database migrated to head once per session: each test gets a copy."""
    from integration.support import PostgresServer

    server = PostgresServer()
    name, url = server.create_database("service_template")
    engine = make_engine(DatabaseConfig(url=url))
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    try:
        yield server, name
    finally:
        server.drop_database(name)


class PostgresPool:
    """Migrated PostgreSQL databases handed out one per test and emptied for the next one.

    Emptied means every table but ``alembic_version`` truncated, identities restarted: a
    database as fresh as a new copy of the template for anything a test can see. Dropping a
    database per test cost more than the tests themselves: on PostgreSQL 15 ``DROP DATABASE``
    forces a checkpoint (1-3 s on a busy machine, for every session on the server), where a
    ``TRUNCATE`` takes milliseconds. A database that cannot be emptied at once (a test left a
    transaction holding a lock) is dropped instead, and a new copy made the next time."""

    def __init__(self, server: PostgresServer, template: str) -> None:
        self._server, self._template = server, template
        self._free: list[tuple[str, str]] = []
        self._all: list[str] = []

    def take(self) -> tuple[str, str]:
        if self._free:
            return self._free.pop()
        name, url = self._server.create_database("service", template=self._template)
        self._all.append(name)
        return name, url

    def give_back(self, name: str) -> None:
        import psycopg

        try:
            with psycopg.connect(self._server.dsn(name), autocommit=True) as conn:
                conn.execute("SET lock_timeout = '2s'")
                found = [row[0] for row in conn.execute(
                    "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'")]
                if found:
                    conn.execute(f"TRUNCATE {', '.join(found)} RESTART IDENTITY CASCADE")
        except psycopg.Error:
            self._server.drop_database(name)
            self._all.remove(name)
            return
        self._free.append((name, self._server.url(name)))

    def close(self) -> None:
        for name in self._all:
            self._server.drop_database(name)


@pytest.fixture(scope="session")
def postgres_pool(postgres_template: tuple[PostgresServer, str]) -> Iterator[PostgresPool]:
    server, template = postgres_template
    pool = PostgresPool(server, template)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path,
                 migrated_template: Path) -> Iterator[str]:
    """A fresh database migrated to head, on each backend in turn (PostgreSQL: an emptied one
    from ``postgres_pool``)."""
    if request.param == "sqlite":
        db = tmp_path / "llmbatch-any.db"
        shutil.copyfile(migrated_template, db)
        yield f"sqlite:///{db}"
        return
    pool: PostgresPool = request.getfixturevalue("postgres_pool")
    name, url = pool.take()
    try:
        yield url
    finally:
        pool.give_back(name)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_driver(tmp_path: Path, migrated_template: Path,
                clock: Clock) -> Iterator[Callable[..., Driver]]:
    """Build a ``Driver`` with provider config ``fake`` (models, limits...) and ``retry``, on
    a copy of the SQLite template unless ``database_url`` names another database."""
    engines: list[Engine] = []

    def build(provider: ProviderConfig | None = None, *, database_url: str | None = None,
              **app: Any) -> Driver:
        if database_url is None:
            db = tmp_path / f"llmbatch-{len(engines)}.db"
            shutil.copyfile(migrated_template, db)
            database_url = f"sqlite:///{db}"
        provider = provider or ProviderConfig(models=(ModelConfig(name=MODEL),))
        config = AppConfig(database=DatabaseConfig(url=database_url),
                           providers={"fake": provider}, **app)
        engine = make_engine(config.database)
        engines.append(engine)
        fake = FakeProvider(config=config.provider("fake"))
        registry = ProviderRegistry(config)
        registry.register("fake", fake)
        publisher = RecordingPublisher()
        rt = Runtime(config=config, engine=engine, registry=registry, publisher=publisher,
                     clock=clock, worker_id="test-worker")
        return Driver(rt=rt, publisher=publisher, clock=clock, fake=fake)

    yield build
    for engine in engines:
        engine.dispose()


@pytest.fixture
def driver(make_driver: Callable[..., Driver]) -> Driver:
    return make_driver()
