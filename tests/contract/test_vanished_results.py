"""Results that vanish at the provider end the fetch instead of being asked for forever.

The real Gemini adapter, built by the registry from config, against the emulator, driven
through the services: its result file is deleted between the poll that saw the batch end and
the fetch, so the download answers 403 (Google's word for a file that no longer exists). Read
as an authentication failure, that 403 kept the batch ``ended`` and the fetch retrying every
minute; read as gone, the fetch settles the items as without a result and they go again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

pytest.importorskip("google.genai")  # the llmbatch[gemini] extra

from llmbatch.config import AppConfig, DatabaseConfig, ModelConfig, ProviderConfig
from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus
from llmbatch.emulator.server import EmulatorServer
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.progress import fetch_batch, poll_batch
from llmbatch.service_layer.read_models import job_results
from llmbatch.service_layer.submission import plan_job, submit_batch
from service.harness import Driver, chat_line, real_provider_driver

from .harness import TEST_API_KEY

pytestmark = pytest.mark.contract

MODEL = "gemini-2.5-flash"


@pytest.fixture
def driver(emu: EmulatorServer, tmp_path: Path) -> Iterator[Driver]:
    """Gemini in file mode (a tiny inline limit), so results come back as a file."""
    config = AppConfig(
        database=DatabaseConfig(url=f"sqlite:///{tmp_path}/llmbatch.db"),
        providers={"gemini": ProviderConfig(
            base_url=f"{emu.url}/gemini", api_key=TEST_API_KEY,
            models=(ModelConfig(name=MODEL),), options={"inline_max_bytes": 300})})
    built = real_provider_driver(config, provider_clock=emu.advance_clock)
    yield built
    built.rt.close()


def test_a_result_file_gone_at_the_provider_ends_the_fetch_and_the_items_go_again(
        driver: Driver, emu: EmulatorServer, tmp_path: Path) -> None:
    rt = driver.rt
    path = tmp_path / "in.jsonl"
    path.write_text("".join(chat_line(f"q-{i}", f"question {i}") + "\n" for i in range(3)))
    job_id, _ = create_job(rt, path, provider="gemini", model=MODEL)
    (batch_id,) = plan_job(rt, job_id)
    assert submit_batch(rt, batch_id) is BatchStatus.IN_PROGRESS
    emu.advance_clock(30)
    assert poll_batch(rt, batch_id) is BatchStatus.ENDED
    (batch,) = driver.batches(job_id)
    result_file = batch.result_refs["responses_file"]
    httpx2.delete(f"{emu.url}/gemini/v1beta/{result_file}",
                  headers={"x-goog-api-key": TEST_API_KEY}).raise_for_status()
    downloads = emu.stats()["calls"]["gemini"].get("files.download", 0)

    assert fetch_batch(rt, batch_id) is BatchStatus.FETCHED

    assert emu.stats()["calls"]["gemini"]["files.download"] == downloads + 1  # asked once
    fetched = next(e for e in driver.event_rows(job_id) if e.type == "batch.fetched")
    assert fetched.data == {"results": 0, "without_result": 3}
    assert {item.status for item in driver.items(job_id)} == {str(ItemStatus.PENDING)}

    job = driver.run(job_id)  # the items ride a second batch, whose file is still there

    assert job.status is JobStatus.SUCCEEDED
    assert [b.status for b in driver.batches(job_id)] == [BatchStatus.FETCHED] * 2
    records = [r.as_dict() for r in job_results(rt, job_id)]
    assert [r["attempts"] for r in records] == [2, 2, 2]
    assert [h["outcome"] for h in records[0]["history"]] == ["no_result"]
