"""The download's JSON lines say exactly what ``job_results`` records say (``as_dict``), errors,
usage, retries' history and non-ASCII text included."""

from __future__ import annotations

import json
from pathlib import Path

from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.read_models import job_results
from llmbatch.service_layer.read_models.result_lines import job_result_lines

from .conftest import MODEL, ApiWorld, chat_line


def test_result_lines_equal_the_records_as_dicts(api_world_any: ApiWorld, tmp_path: Path) -> None:
    driver = api_world_any.driver
    driver.fake.outcomes.update({"q-1": ["permanent"], "q-2": ["transient", "ok"]})
    path = tmp_path / "in.jsonl"
    path.write_text("".join(chat_line(f"q-{i}", f"frage {i} — ünïcode ✓") + "\n"
                            for i in range(6)), encoding="utf-8")
    job_id, _ = create_job(driver.rt, path, provider="fake", model=MODEL)
    driver.run(job_id)

    records = [r.as_dict() for r in job_results(driver.rt, job_id, chunk=4)]
    lines = [json.loads(text) for text in job_result_lines(driver.rt, job_id, chunk=4)]

    assert lines == records
    assert {r["status"] for r in records} >= {"succeeded", "failed"}
    assert any(r["history"] for r in records) and any(r["error"] for r in records)
