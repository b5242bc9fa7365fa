"""A finished job's items are sampled for PostgreSQL's planner when they are a large share of
the table (``ItemQueries.refresh_item_statistics``): bulk-inserted rows are otherwise unknown to
it until autovacuum comes round, and reading the job's results back sorts the whole rest of the
job for every page."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from llmbatch.domain.states import JobStatus
from llmbatch.service_layer.jobs import create_job

from .harness import MODEL, Driver

Writer = Callable[..., Path]
_COUNTERS = text("SELECT n_mod_since_analyze, last_analyze FROM pg_stat_user_tables "
                 "WHERE schemaname = current_schema() AND relname = 'items'")


def _wait_for(check: Callable[[], bool], cap_s: float = 30.0) -> bool:
    deadline = time.monotonic() + cap_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_a_large_finished_job_is_sampled_for_the_planner(
        make_driver: Callable[..., Driver], database_url: str, write_jsonl: Writer) -> None:
    driver = make_driver(database_url=database_url)
    job_id, _ = create_job(driver.rt, write_jsonl(300), provider="fake", model=MODEL)
    postgres = driver.rt.engine.dialect.name == "postgresql"
    def counters() -> tuple[int | None, object]:
        with driver.rt.engine.connect() as conn:  # a new transaction: a fresh stats snapshot
            modified, analyzed = conn.execute(_COUNTERS).one()
            return modified, analyzed

    if postgres:  # PostgreSQL reports its row counters a moment after each commit
        assert _wait_for(lambda: (counters()[0] or 0) >= 300)

    assert driver.run(job_id).status is JobStatus.SUCCEEDED  # finalizing samples

    if postgres:
        assert _wait_for(lambda: counters()[1] is not None)
        with driver.rt.engine.connect() as conn:
            columns = set(conn.execute(text(
                "SELECT attname FROM pg_stats WHERE schemaname = current_schema() "
                "AND tablename = 'items'")).scalars())
        assert {"job_id", "seq", "status", "batch_id"} <= columns
