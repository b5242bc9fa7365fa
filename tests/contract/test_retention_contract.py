"""Retention at the provider, end to end: each real adapter, built by the registry from config,
runs a job through the services against the emulator; afterwards the emulator is asked what it
still holds. By default the batch's objects are gone once the results are stored (OpenAI: the
input, output and error files; Anthropic: the ended batch; Gemini: the input file, the result
file and the batch); a job that keeps its data finds all of it still there; OpenAI's expiry
settings reach the emulator on the upload and the batch create (docs/privacy.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from llmbatch.config import AppConfig, DatabaseConfig, ModelConfig, ProviderConfig
from llmbatch.domain.states import JobStatus
from llmbatch.emulator.server import EmulatorServer
from llmbatch.errors import InputError
from llmbatch.service_layer.jobs import create_job
from service.harness import Driver, chat_line, real_provider_driver

from .harness import TEST_API_KEY

pytestmark = pytest.mark.contract

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5",
          "gemini": "gemini-2.5-flash"}
SDKS = {"openai": "openai", "anthropic": "anthropic", "gemini": "google.genai"}


def _provider_config(name: str, emu: EmulatorServer, *, inline: bool) -> ProviderConfig:
    base_url = emu.openai_base_url if name == "openai" else f"{emu.url}/{name}"
    # Gemini in file mode (a tiny inline limit): an input file and a result file to delete;
    # inline, the batch alone holds the requests and results.
    options = {"inline_max_bytes": 300} if name == "gemini" and not inline else {}
    return ProviderConfig(base_url=base_url, api_key=TEST_API_KEY, sdk_max_retries=0,
                          models=(ModelConfig(name=MODELS[name]),), options=options)


INLINE = "gemini-inline"


@pytest.fixture(params=[*sorted(MODELS), INLINE])
def variant(request: pytest.FixtureRequest) -> str:
    """A provider, and Gemini a second time in inline mode."""
    pytest.importorskip(SDKS[request.param.removesuffix("-inline")])
    return str(request.param)


@pytest.fixture
def make_driver(emu: EmulatorServer, tmp_path: Path) -> Iterator[Callable[[str], Driver]]:
    built: list[Driver] = []

    def build(variant: str) -> Driver:
        name = variant.removesuffix("-inline")
        config = AppConfig(database=DatabaseConfig(url=f"sqlite:///{tmp_path}/db{len(built)}"),
                           providers={name: _provider_config(name, emu,
                                                             inline=variant == INLINE)})
        driver = real_provider_driver(config, provider_clock=emu.advance_clock)
        built.append(driver)
        return driver

    yield build
    for driver in built:
        driver.rt.close()


def _run(driver: Driver, tmp_path: Path, name: str, **create: Any) -> str:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(chat_line(f"q-{i}", f"question {i}") + "\n" for i in range(3)))
    job_id, _ = create_job(driver.rt, path, provider=name, model=MODELS[name], **create)
    assert driver.run(job_id).status is JobStatus.SUCCEEDED
    return job_id


def _objects(driver: Driver, job_id: str, name: str) -> list[str]:
    """Paths (under the emulator's provider root) of what the provider kept for the job."""
    (batch,) = driver.batches(job_id)
    refs, batch_id = batch.result_refs, batch.provider_batch_id
    if name == "openai":
        return [f"/v1/files/{refs[key]}" for key in ("input_file_id", "output_file_id")]
    if name == "anthropic":
        return [f"/v1/messages/batches/{batch_id}"]
    if "input_file" not in refs:  # inline
        return [f"/v1beta/{batch_id}"]
    return [f"/v1beta/{refs['input_file']}", f"/v1beta/{refs['responses_file']}",
            f"/v1beta/{batch_id}"]


def _status(emu: EmulatorServer, name: str, path: str) -> int:
    base = emu.openai_base_url.removesuffix("/v1") if name == "openai" else f"{emu.url}/{name}"
    headers = {"x-goog-api-key": TEST_API_KEY, "x-api-key": TEST_API_KEY,
               "authorization": f"Bearer {TEST_API_KEY}", "anthropic-version": "2023-06-01"}
    return httpx2.get(base + path, headers=headers).status_code


def _deletes(emu: EmulatorServer, name: str) -> dict[str, int]:
    calls: dict[str, int] = emu.stats()["calls"].get(name, {})
    return {op: n for op, n in calls.items() if op.endswith(".delete")}


def test_after_a_job_the_provider_holds_nothing_of_it(
        variant: str, make_driver: Callable[[str], Driver], emu: EmulatorServer,
        tmp_path: Path) -> None:
    driver = make_driver(variant)
    provider = variant.removesuffix("-inline")
    job_id = _run(driver, tmp_path, provider)

    paths = _objects(driver, job_id, provider)
    assert {path: _status(emu, provider, path) for path in paths} == {
        # Google answers 403 for a file that no longer exists (PROVIDER_APIS C.5).
        path: 403 if provider == "gemini" and "/files/" in path else 404 for path in paths}
    assert _deletes(emu, provider) == {
        "openai": {"files.delete": 2},  # input and output (a clean batch has no error file)
        "anthropic": {"batches.delete": 1},
        "gemini": {"files.delete": 2, "batches.delete": 1},
        INLINE: {"batches.delete": 1}}[variant]
    (deleted,) = [e.data for e in driver.event_rows(job_id)
                  if e.type == "batch.provider_data_deleted"]
    assert {o["outcome"] for o in deleted["objects"]} == {"deleted"}
    assert len(deleted["objects"]) == len(paths)


def test_a_job_that_keeps_its_data_finds_it_all_still_there(
        variant: str, make_driver: Callable[[str], Driver], emu: EmulatorServer,
        tmp_path: Path) -> None:
    driver = make_driver(variant)
    provider = variant.removesuffix("-inline")
    job_id = _run(driver, tmp_path, provider, retention={"delete_when_stored": False})

    paths = _objects(driver, job_id, provider)
    assert {path: _status(emu, provider, path) for path in paths} == dict.fromkeys(paths, 200)
    assert _deletes(emu, provider) == {}
    assert "batch.provider_data_kept" in driver.events(job_id)


def test_openai_expiry_settings_reach_the_upload_and_the_batch(
        make_driver: Callable[[str], Driver], emu: EmulatorServer, tmp_path: Path) -> None:
    pytest.importorskip("openai")
    driver = make_driver("openai")
    job_id = _run(driver, tmp_path, "openai", retention={
        "delete_when_stored": False, "input_expires_after_s": 90_000,
        "output_expires_after_s": 7200})

    (batch,) = driver.batches(job_id)
    lifetimes = {}
    for key in ("input_file_id", "output_file_id"):
        file = httpx2.get(f"{emu.openai_base_url}/files/{batch.result_refs[key]}",
                          headers={"authorization": f"Bearer {TEST_API_KEY}"}).json()
        lifetimes[key] = file["expires_at"] - file["created_at"]
    assert lifetimes == {"input_file_id": 90_000, "output_file_id": 7200}


@pytest.mark.parametrize(("retention", "field"), [
    ({"output_expires_after_s": 60}, "retention.output_expires_after_s"),
    ({"output_expires_after_s": 2_592_001}, "retention.output_expires_after_s"),
    ({"input_expires_after_s": 3600}, "retention.input_expires_after_s"),
])
def test_openai_expiries_out_of_range_are_refused_at_submit(
        make_driver: Callable[[str], Driver], emu: EmulatorServer, tmp_path: Path,
        retention: dict[str, int], field: str) -> None:
    pytest.importorskip("openai")
    driver = make_driver("openai")
    path = tmp_path / "in.jsonl"
    path.write_text(chat_line("q-0") + "\n")
    with pytest.raises(InputError) as err:
        create_job(driver.rt, path, provider="openai", model=MODELS["openai"],
                   retention=retention)
    assert err.value.field == field and "outside OpenAI's range" in err.value.message
    assert emu.stats()["calls"].get("openai", {}) == {}


def test_an_anthropic_batch_still_processing_cannot_be_deleted_and_says_why(
        emu: EmulatorServer) -> None:
    """Anthropic deletes only ended batches (B.9): the adapter reports the refusal as a failed
    deletion (retried later by the service) instead of raising, and deletes once it ended."""
    pytest.importorskip("anthropic")
    from llmbatch.testing.contract.builtin import BUILDERS
    from llmbatch.testing.contract.harness import running_harness

    for h in running_harness(BUILDERS["anthropic"], emu):
        submitted = h.submit(h.requests(2), tag=h.new_tag())
        running = h.adapter.poll(submitted.provider_batch_id)
        assert not running.ended
        (refused,) = h.adapter.cleanup(submitted.provider_batch_id, running)
        assert (refused.kind, str(refused.outcome)) == ("batch", "failed")
        assert refused.error is not None and "still processing" in refused.error
        ended = h.run_to_end(submitted.provider_batch_id, 2)
        (deleted,) = h.adapter.cleanup(submitted.provider_batch_id, ended)
        assert str(deleted.outcome) == "deleted"
        assert _deletes(emu, "anthropic") == {"batches.delete": 2}
