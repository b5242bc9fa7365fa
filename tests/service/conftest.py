"""Fixtures for service-layer tests: an SQLite file database migrated with Alembic (once per
session, copied per test), a ``FakeProvider`` injected into the registry, a hand-moved clock.

Tests that must hold on both databases take ``database_url``: ``None`` (the SQLite copy) or a
PostgreSQL database copied from a template migrated once per session. PostgreSQL missing skips
those locally and fails them under ``CI=true``."""

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

if TYPE_CHECKING:
    from integration.support import PostgresServer

from .harness import MODEL, Clock, Driver, chat_line


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
    """A PostgreSQL database migrated to head once per session, to copy per test."""
    from integration.support import PostgresServer

    server = PostgresServer()
    name, url = server.create_database("svc_template")
    try:
        engine = make_engine(DatabaseConfig(url=url))
        try:
            upgrade(engine)
        finally:
            engine.dispose()  # a template must have no connections to be copied
        yield server, name
    finally:
        server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Each database in turn: ``None`` for the SQLite default, else a fresh PostgreSQL one."""
    if request.param == "sqlite":
        yield None
        return
    server, template = request.getfixturevalue("postgres_template")
    name, url = server.create_database("svc", template=template)
    try:
        yield url
    finally:
        server.drop_database(name)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_driver(tmp_path: Path, migrated_template: Path,
                clock: Clock) -> Iterator[Callable[..., Driver]]:
    """Build a ``Driver`` with provider config ``fake`` (models, limits...) and ``retry``, on
    ``database_url`` (a migrated database) or on a copy of the SQLite template."""
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
