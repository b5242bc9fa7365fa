"""The Alembic migrations build exactly the schema ``db/tables.py`` describes, on SQLite and on
PostgreSQL.

PostgreSQL: 127.0.0.1:5432, user ``postgres`` (trust auth) unless ``LLMBATCH_TEST_POSTGRES_URL``
names another server; each test creates its own database and drops it. An unreachable server
skips locally and fails under ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from llmbatch.config import DatabaseConfig
from llmbatch.db.engine import make_engine
from llmbatch.db.migrate import pending_revisions, upgrade
from llmbatch.db.tables import metadata

POSTGRES_URL = os.environ.get("LLMBATCH_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TABLES = {"jobs", "provider_batches", "items", "events", "item_attempts", "submit_journal",
          "provider_slots", "provider_rate_buckets", "api_keys", "webhook_outbox",
          "webhook_deliveries", "budget_ledgers", "budget_reservations",
          "provider_webhook_receipts", "item_results"}


def differences(engine: Engine) -> list[Any]:
    """What autogenerate would put in a new migration (empty: schema and models agree)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "compare_server_default": True})
        return list(compare_metadata(context, metadata))


def head_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(DatabaseConfig(url=f"sqlite:///{tmp_path}/fresh.db"))
    yield engine
    engine.dispose()


@pytest.fixture
def postgresql_engine() -> Iterator[Engine]:
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"llmbatch_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # any failure to reach or use the server counts
        admin.dispose()
        message = f"PostgreSQL at {make_url(POSTGRES_URL).render_as_string()} unusable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    engine = make_engine(DatabaseConfig(
        url=make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_engine(request: pytest.FixtureRequest) -> Engine:
    engine: Engine = request.getfixturevalue(f"{request.param}_engine")
    return engine


def test_upgrade_builds_the_schema_the_tables_module_describes(fresh_engine: Engine) -> None:
    assert not set(inspect(fresh_engine).get_table_names()) & TABLES

    upgrade(fresh_engine)

    assert set(inspect(fresh_engine).get_table_names()) >= TABLES
    assert head_revision(fresh_engine) == "0015_items_without_job_key"
    assert differences(fresh_engine) == []


def test_upgrade_is_safe_to_run_again(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)
    upgrade(fresh_engine)

    assert head_revision(fresh_engine) == "0015_items_without_job_key"
    assert differences(fresh_engine) == []


def test_the_schema_enforces_its_unique_constraints(fresh_engine: Engine) -> None:
    upgrade(fresh_engine)

    constraints = {c["name"]: c["column_names"]
                   for c in inspect(fresh_engine).get_unique_constraints("items")}
    assert constraints == {"uq_items_job_id_custom_id": ["job_id", "custom_id"],
                           "uq_items_job_id_seq": ["job_id", "seq"]}
    jobs_unique = inspect(fresh_engine).get_unique_constraints("jobs")
    assert [c["column_names"] for c in jobs_unique] == [["tenant", "idempotency_key"]]


def test_a_webhooks_batch_is_found_through_the_provider_batch_id_index(
        sqlite_engine: Engine) -> None:
    from llmbatch.db.early_polls import polled_batches_named

    upgrade(sqlite_engine)
    query = polled_batches_named("openai", "batch_1")
    with sqlite_engine.connect() as conn:
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {sql}"))
    assert "USING INDEX ix_provider_batches_provider_batch_id" in plan, plan


def test_reads_by_batch_use_the_partial_batch_index(fresh_engine: Engine) -> None:
    """The index holds planned items only (job creation writes no entry in it), yet every
    read by batch still finds it: ``batch_id = x`` implies the index's ``IS NOT NULL``."""
    from sqlalchemy import func, select

    from llmbatch.db.tables import items

    upgrade(fresh_engine)
    index = next(i for i in inspect(fresh_engine).get_indexes("items")
                 if i["name"] == "ix_items_batch_id_provider_key")
    predicate = index.get("dialect_options", {}).get(f"{fresh_engine.dialect.name}_where")
    assert "batch_id IS NOT NULL" in str(predicate), index
    reads = [select(items.c.seq, items.c.request).where(items.c.batch_id == "b")
             .order_by(items.c.seq),
             select(func.sum(items.c.cost_bound_pusd)).where(items.c.batch_id == "b"),
             select(items.c.attempts).where(items.c.batch_id == "b",
                                            items.c.provider_key.in_(["k1", "k2"]))]
    explain = "EXPLAIN QUERY PLAN" if fresh_engine.dialect.name == "sqlite" else "EXPLAIN"
    with fresh_engine.connect() as conn:
        if fresh_engine.dialect.name == "postgresql":  # an empty table: is the index usable?
            conn.exec_driver_sql("SET enable_seqscan = off")
        for query in reads:
            sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
            plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"{explain} {sql}"))
            assert "ix_items_batch_id_provider_key" in plan, (sql, plan)


def test_the_sqlite_database_runs_in_wal_mode_with_foreign_keys(sqlite_engine: Engine) -> None:
    upgrade(sqlite_engine)
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_pending_revisions_lists_what_an_upgrade_would_apply(fresh_engine: Engine) -> None:
    assert pending_revisions(fresh_engine) == ["0015_items_without_job_key",
                                               "0014_results_without_batch_key",
                                               "0013_item_results", "0012_partial_batch_index",
                                               "0011_provider_webhook_receipts",
                                               "0010_provider_batch_index", "0009_retention",
                                               "0008_token_kinds", "0007_webhooks",
                                               "0006_tenants", "0005", "0004", "0003", "0002",
                                               "0001"]
    upgrade(fresh_engine, "0002")
    assert pending_revisions(fresh_engine) == ["0015_items_without_job_key",
                                               "0014_results_without_batch_key",
                                               "0013_item_results", "0012_partial_batch_index",
                                               "0011_provider_webhook_receipts",
                                               "0010_provider_batch_index", "0009_retention",
                                               "0008_token_kinds", "0007_webhooks",
                                               "0006_tenants", "0005", "0004", "0003"]
    upgrade(fresh_engine)
    assert pending_revisions(fresh_engine) == []


def test_the_schema_check_without_alembic_agrees_with_alembic(fresh_engine: Engine) -> None:
    from llmbatch.db.migrate import _scripts
    from llmbatch.db.schema_version import at_head
    from llmbatch.db.schema_version import head_revision as files_head

    assert [files_head()] == list(_scripts().get_heads())
    assert not at_head(fresh_engine)  # no version table yet
    upgrade(fresh_engine, "0002")
    assert not at_head(fresh_engine)
    upgrade(fresh_engine)
    assert at_head(fresh_engine)


def test_a_worker_refuses_a_server_database_whose_schema_is_behind(
        postgresql_engine: Engine, tmp_path: Path) -> None:
    from llmbatch.bootstrap import Runtime
    from llmbatch.cli.runtime import ensure_schema as _ensure_schema
    from llmbatch.config import AppConfig
    from llmbatch.errors import ConfigError
    from llmbatch.providers.registry import ProviderRegistry

    config = AppConfig()
    rt = Runtime(config=config, engine=postgresql_engine, registry=ProviderRegistry(config))
    with pytest.raises(ConfigError, match="llmbatch db upgrade"):
        _ensure_schema(rt)
    assert pending_revisions(postgresql_engine)  # nothing was migrated behind the operator


def test_upgrading_to_0005_turns_stored_batch_error_codes_into_neutral_failures(
        fresh_engine: Engine) -> None:
    """Batches written before 0005 keep their meaning: a quota refusal still holds the model
    (the query now keys on the failure kind, a JSON field, on both databases), a lost batch
    still re-batches, and another batch-level error of a batch not yet fetched still fails
    its items."""
    from datetime import UTC, datetime

    from sqlalchemy import column, insert, table

    from llmbatch.db.limits import LimitsRepository
    from llmbatch.db.repository import Repository
    from llmbatch.domain.job import Job
    from llmbatch.domain.models import BatchFailure, Endpoint, FailureKind
    from llmbatch.domain.states import JobStatus

    upgrade(fresh_engine, "0004")
    now = datetime(2026, 11, 1, tzinfo=UTC)
    from llmbatch.db.tables import provider_batches

    old_batches = table("provider_batches", *(column(name, provider_batches.c[name].type)
                                              for name in (
        "id", "job_id", "provider", "model", "status", "attempt", "item_count", "byte_count",
        "estimated_tokens", "result_refs", "request_counts", "poll_count", "submit_attempts",
        "call_failures", "error", "error_code", "created_at", "ended_at", "updated_at")))

    def batch(batch_id: str, status: str, code: str | None, ended: bool = True) -> dict[str, Any]:
        return {"id": batch_id, "job_id": "job_1", "provider": "p", "model": "m",
                "status": status, "attempt": 1, "item_count": 1, "byte_count": 1,
                "estimated_tokens": 0, "result_refs": {}, "request_counts": {},
                "poll_count": 0, "submit_attempts": 1, "call_failures": 0,
                "error": f"why {batch_id}" if code else None, "error_code": code,
                "created_at": now, "ended_at": now if ended else None, "updated_at": now}

    with fresh_engine.begin() as conn:
        Repository(conn).add_job(Job(id="job_1", name=None, provider="p", model="m",
                                     endpoint=Endpoint.CHAT, status=JobStatus.RUNNING,
                                     item_count=1, created_at=now),
                                 content_hash=None, config_snapshot={})
        conn.execute(insert(old_batches), [
            batch("quota", "fetched", "token_limit_exceeded"),
            batch("lost", "ended", "provider_lost_batch"),
            batch("refused", "ended", "invalid_json_line"),
            batch("refused_long_ago", "fetched", "invalid_json_line"),
            batch("waiting", "planned", "waiting_for_token_quota", ended=False),
            batch("fine", "fetched", None)])

    upgrade(fresh_engine)

    with fresh_engine.connect() as conn:
        repo = Repository(conn)
        failures = {b.id: b.failure for b in repo.batches_of_job("job_1")}
        assert LimitsRepository(conn).last_quota_failure("p", "m") == now
        assert LimitsRepository(conn).last_quota_failure("p", "other") is None
    assert failures == {
        "quota": BatchFailure(kind=FailureKind.QUOTA, message="why quota", retryable=True,
                              items_ran=False, code="token_limit_exceeded"),
        "lost": BatchFailure(kind=FailureKind.LOST, message="why lost", retryable=True,
                             items_ran=True, code="provider_lost_batch"),
        "refused": BatchFailure(kind=FailureKind.OTHER, message="why refused",
                                retryable=False, items_ran=False, code="invalid_json_line"),
        "refused_long_ago": None, "waiting": None, "fine": None}


def _job_with_a_stored_result(conn: Any, job_id: str, batch_id: str) -> None:
    """A job, one batch of it and one stored result of that batch."""
    from datetime import UTC, datetime

    from llmbatch.db.repository import Repository
    from llmbatch.db.result_stage import ResultRow
    from llmbatch.domain.batch import ProviderBatch
    from llmbatch.domain.job import Job
    from llmbatch.domain.models import Endpoint
    from llmbatch.domain.states import BatchStatus, JobStatus

    now = datetime(2026, 12, 1, tzinfo=UTC)
    repo = Repository(conn)
    repo.add_job(Job(id=job_id, name=None, provider="p", model="m", endpoint=Endpoint.CHAT,
                     status=JobStatus.RUNNING, item_count=1, created_at=now),
                 content_hash=None, config_snapshot={})
    repo.add_batches([ProviderBatch(id=batch_id, job_id=job_id, provider="p", model="m",
                                    status=BatchStatus.ENDED, attempt=1, item_count=1,
                                    byte_count=1, created_at=now)])
    row = ResultRow(f"key-{batch_id}", "succeeded", "succeeded", '{"ok":true}', "hi", "stop",
                    1, 1, 0, 0, 0, 0, None, None, None)
    assert repo.record_results(batch_id, [row], now, {}).inserted == 1


def test_a_deleted_batch_takes_its_stored_results_with_it(fresh_engine: Engine) -> None:
    """``item_results`` has no foreign key to its batch (0014); a trigger deletes a deleted
    batch's results, as the key's cascade did: deleting a job deletes its batches, and so
    their results, and nobody else's."""
    upgrade(fresh_engine)
    with fresh_engine.begin() as conn:
        _job_with_a_stored_result(conn, "job_gone", "pb_gone")
        _job_with_a_stored_result(conn, "job_kept", "pb_kept")

    with fresh_engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs WHERE id = 'job_gone'"))

    with fresh_engine.connect() as conn:
        left = conn.execute(text("SELECT batch_id FROM item_results")).scalars().all()
        batches = conn.execute(text("SELECT id FROM provider_batches")).scalars().all()
    assert (left, batches) == (["pb_kept"], ["pb_kept"])


def test_a_deleted_job_takes_its_items_with_it(fresh_engine: Engine) -> None:
    """``items`` has no foreign key to its job (0015); a trigger deletes a deleted job's items
    first, as the key's cascade did: an item still in one of the job's batches does not stop
    the cascade that deletes the batches, and other jobs' items stay."""
    upgrade(fresh_engine)
    with fresh_engine.begin() as conn:
        for job_id in ("job_gone", "job_kept"):
            _job_with_a_stored_result(conn, job_id, f"pb_{job_id}")
            conn.execute(text(
                "INSERT INTO items (job_id, seq, custom_id, provider_key, request, wire_bytes,"
                " status, attempts, batch_id, input_tokens, output_tokens, cached_tokens,"
                " reasoning_tokens) VALUES (:job, 0, 'a', 'a', '{}', 1, 'submitted', 1,"
                " :batch, 0, 0, 0, 0)"), {"job": job_id, "batch": f"pb_{job_id}"})

    with fresh_engine.begin() as conn:
        conn.execute(text("DELETE FROM jobs WHERE id = 'job_gone'"))

    with fresh_engine.connect() as conn:
        left = conn.execute(text("SELECT job_id, batch_id FROM items")).all()
    assert [tuple(row) for row in left] == [("job_kept", "pb_job_kept")]


def test_results_for_a_batch_that_is_gone_are_refused_with_their_chunk(
        fresh_engine: Engine) -> None:
    """Without the key, the chunk's update of its batch's totals is the check: no batch, no
    results (the whole chunk is rolled back)."""
    from datetime import UTC, datetime

    from llmbatch.db.repository import Repository
    from llmbatch.db.result_stage import ResultRow

    upgrade(fresh_engine)
    row = ResultRow("key-1", "succeeded", "succeeded", '{"ok":true}', "hi", "stop",
                    1, 1, 0, 0, 0, 0, None, None, None)
    with pytest.raises(LookupError, match="pb_never is gone"), fresh_engine.begin() as conn:
        Repository(conn).record_results("pb_never", [row], datetime(2026, 12, 1, tzinfo=UTC), {})
    with fresh_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM item_results")).scalar_one() == 0
