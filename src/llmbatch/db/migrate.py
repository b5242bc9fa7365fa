"""Applying Alembic migrations programmatically (``llmbatch db upgrade``).

The migration scripts are read once per process (``_scripts``): every command checks the
schema, and a process that runs many (a test, an embedding application) need not parse them
again. ``upgrade`` of a database already at head returns after one query.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

__all__ = ["alembic_config", "pending_revisions", "upgrade"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


@cache
def _scripts() -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg)


def pending_revisions(engine: Engine) -> list[str]:
    """Revisions between the database's schema and this code's head (empty: up to date)."""
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return [rev.revision for rev in _scripts().iterate_revisions("head", current)]


def _at_heads(engine: Engine) -> bool:
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current == set(_scripts().get_heads())


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema to ``revision``; safe to run again."""
    if revision == "head" and _at_heads(engine):
        return
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
