"""The Alembic migrations build the schema ``db/tables.py`` describes, from nothing, on both
backends, and running them again changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from llmbatch.config import DatabaseConfig
from llmbatch.db.engine import make_engine
from llmbatch.db.migrate import alembic_config, upgrade
from llmbatch.db.tables import metadata

from .support import PostgresServer

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_postgres(postgres: PostgresServer) -> Iterator[Engine]:
    name, url = postgres.create_database("migrations")
    engine = make_engine(DatabaseConfig(url=url))
    try:
        yield engine
    finally:
        engine.dispose()
        postgres.drop_database(name)


@pytest.fixture
def empty_sqlite(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(DatabaseConfig(url=f"sqlite:///{tmp_path / 'fresh.db'}"))
    try:
        yield engine
    finally:
        engine.dispose()


def assert_schema_at_head(engine: Engine) -> None:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head
        assert set(inspect(conn).get_table_names()) == {*metadata.tables, "alembic_version"}
        drift = compare_metadata(MigrationContext.configure(conn), metadata)
    assert drift == []


@pytest.mark.parametrize("backend", ["empty_postgres", "empty_sqlite"])
def test_migrations_build_the_declared_schema_on_an_empty_database_and_rerun_cleanly(
        backend: str, request: pytest.FixtureRequest) -> None:
    engine: Engine = request.getfixturevalue(backend)
    with engine.connect() as conn:
        assert inspect(conn).get_table_names() == []

    upgrade(engine)
    assert_schema_at_head(engine)
    upgrade(engine)
    assert_schema_at_head(engine)
