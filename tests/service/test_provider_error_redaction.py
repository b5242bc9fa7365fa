"""Error text a provider wrote about a failed item goes through the redaction step before it
is stored (``items.error``, ``item_attempts.error``); the stored response is the user's data
and stays as it came. On SQLite and PostgreSQL (``database_url``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select

from llmbatch.config import RetryConfig
from llmbatch.db import tables
from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.observability.logging import bound_ids
from llmbatch.observability.privacy import PrivacyConfig
from llmbatch.service_layer.jobs import create_job

from .harness import MODEL, Driver, result_lines

EMAIL = "jane.doe@example.com"
KEY = "sk-proj-abcdefghijklmnop1234"
CUSTOM = "ACME-778899"  # masked by a configured pattern (privacy.patterns)
CANARIES = (EMAIL, KEY, CUSTOM)


def failed_line(custom_id: str, *, retryable: bool) -> str:
    error = {"type": "invalid_request_error", "code": KEY,
             "message": f"your prompt mentions {EMAIL}, key {KEY}, account {CUSTOM}",
             "retryable": retryable}
    return json.dumps({"custom_id": custom_id, "error": error})


def test_provider_error_text_is_redacted_before_it_is_stored(
        make_driver: Callable[..., Driver], database_url: str | None,
        write_jsonl: Callable[..., Path]) -> None:
    driver = make_driver(database_url=database_url,
                         privacy=PrivacyConfig(patterns=(r"ACME-\d+",)),
                         retry=RetryConfig(item_max_attempts=2))
    assert driver.fake is not None
    driver.fake.result_lines.update({"q-1": failed_line("q-1", retryable=False),
                                     "q-2": failed_line("q-2", retryable=True)})
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)

    with bound_ids(task="test"):  # as the worker runs each task
        job = driver.run(job_id)
        # Plan, submit and finalize read the job row: they bind its tenant to their lines.
        assert structlog.contextvars.get_contextvars()["tenant_id"] == "default"

    assert job.status is JobStatus.COMPLETED_WITH_FAILURES
    items = {row.custom_id: row for row in driver.items(job_id)}
    assert items["q-0"].status == ItemStatus.SUCCEEDED
    for key in ("q-1", "q-2"):
        assert items[key].status == ItemStatus.FAILED
        error: dict[str, Any] = items[key].error
        assert error["message"] == ("your prompt mentions [email], key [api-key], "
                                    "account [redacted]")
        assert error["code"] == "[api-key]"
        assert error["type"] == "invalid_request_error"
    with driver.rt.engine.connect() as conn:
        attempts = conn.execute(select(tables.item_attempts.c.error)
                                .where(tables.item_attempts.c.job_id == job_id)).all()
    assert len(attempts) >= 3  # q-1 once, q-2 on each of its two attempts
    stored_errors = json.dumps([row.error for row in attempts]
                               + [row.error for row in items.values()])
    for canary in CANARIES:
        assert canary not in stored_errors
    assert "[email]" in stored_errors

    # The response is the user's data: kept as the provider sent it, canaries and all.
    results = {r["custom_id"]: r for r in result_lines(driver.rt, job_id)}
    assert results["q-1"]["response"]["error"]["message"] == (
        f"your prompt mentions {EMAIL}, key {KEY}, account {CUSTOM}")
    assert results["q-0"]["output_text"] == "answer to q-0"
