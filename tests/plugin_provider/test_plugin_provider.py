"""A provider from outside llmbatch, found through the entry-point group, runs the contract
scenarios and a job through the services: nothing in llmbatch names it.

Its adapters for the contract come from the class the entry point names (with the test seams
the scenarios need: the transport, a hook tying a request to the scenario's tag); the job runs
on adapters the registry builds from config alone, as a worker's would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from llmbatch.config import AppConfig, DatabaseConfig, ModelConfig, PollingConfig, ProviderConfig
from llmbatch.domain.models import BatchProgress
from llmbatch.domain.states import JobStatus
from llmbatch.emulator.server import EmulatorServer
from llmbatch.errors import ConfigError
from llmbatch.providers.base import BatchProvider
from llmbatch.providers.registry import ENTRY_POINT_GROUP, ProviderRegistry, available_providers
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.read_models import job_results
from llmbatch.testing.contract.harness import (
    TEST_API_KEY,
    ProviderHarness,
    TagHeader,
    running_harness,
)
from llmbatch.testing.contract.scenarios import EVERY_PROVIDER
from llmbatch.testing.control import EmulatorControl
from service.harness import chat_line, real_provider_driver

pytestmark = pytest.mark.contract

NAME = "minibatch"
MODEL = "claude-haiku-4-5"  # a model the emulated API knows


def provider_class() -> type[BatchProvider]:
    """The class the entry point names, loaded as the registry loads it."""
    cls = entry_points(group=ENTRY_POINT_GROUP)[NAME].load()
    assert isinstance(cls, type) and issubclass(cls, BatchProvider)
    return cls


def _forget_results(emulator: EmulatorControl) -> Callable[[BatchProvider, str, BatchProgress],
                                                            None]:
    def forget(adapter: BatchProvider, batch_id: str, progress: BatchProgress) -> None:
        httpx2.delete(f"{emulator.url}/anthropic/v1/messages/batches/{batch_id}", headers={
            "x-api-key": TEST_API_KEY, "anthropic-version": "2023-06-01"}).raise_for_status()

    return forget


def build_harness(emulator: EmulatorControl) -> ProviderHarness:
    """minibatch against the emulator's Message Batches surface (fault rules, call counts and
    the clock are that surface's), steered over HTTP as a server of the package's own would
    be: nothing here reaches into the emulator's process."""
    cls, tagger = provider_class(), TagHeader()

    def adapter(*, transport: Any = None, **config: Any) -> tuple[BatchProvider,
                                                                  Callable[[], None]]:
        built = cls(ProviderConfig(**{"base_url": f"{emulator.url}/anthropic",
                                      "api_key": SecretStr(TEST_API_KEY), "timeout_s": 30.0,
                                      **config}),
                    transport=transport, on_request=tagger.hook)  # type: ignore[call-arg]
        return built, built.close

    return ProviderHarness(
        name=NAME, emulated_as="anthropic", emulator=emulator, model=MODEL,
        build_adapter=adapter, tag_match=lambda tag: {"llmbatch_tag": tag},
        operations={"create": "batches.create", "poll": "batches.retrieve",
                    "cancel": "batches.cancel", "list": "batches.list",
                    "download": "batches.results"},
        unknown_batch_id="msgbatch_neverissued", forget_results=_forget_results(emulator),
        item_error_codes=("api_error", "rate_limit_error"), expired_status="ended",
        batch_failure=False, tag_context=tagger.bind)


@pytest.fixture
def harness(emulator: EmulatorServer) -> Iterator[ProviderHarness]:
    """The contract scenarios' harness, for minibatch, through the control API over HTTP."""
    with EmulatorControl(emulator.url) as control:
        yield from running_harness(build_harness, control)


# The contract scenarios every provider passes, collected here against minibatch's ``harness``.
globals().update({scenario.__name__: scenario for scenario in EVERY_PROVIDER})


# --- plugged in through the entry point ---------------------------------------------------------


def test_the_registry_finds_it_through_the_entry_point_group() -> None:
    assert available_providers()[NAME] == "plugin_provider.minibatch:MiniBatchProvider"
    config = AppConfig(providers={NAME: {"options": {"default_max_tokens": 64}}})
    adapter = ProviderRegistry(config).get(NAME)
    assert type(adapter) is provider_class()
    assert adapter.options.model_dump() == {"api_version": "2023-06-01",
                                            "default_max_tokens": 64}


def test_its_options_are_checked_by_its_own_model() -> None:
    config = AppConfig(providers={NAME: {"options": {"api_version": "2023-06-01",
                                                     "inline_max_bytes": 5}}})
    with pytest.raises(ConfigError) as err:
        ProviderRegistry(config).check_limits()
    assert err.value.problems == [f"providers.{NAME}.options.inline_max_bytes: unknown key"]


def test_its_latency_prior_is_its_own_unless_configured() -> None:
    own = provider_class().latency_prior
    assert PollingConfig().prior(NAME, own) is own
    configured = PollingConfig.model_validate({"priors": {NAME: {"median_s": 30, "sigma": 1}}})
    assert configured.prior(NAME, own).median_s == 30


def test_a_job_runs_end_to_end_through_the_services(emu: EmulatorServer,
                                                    tmp_path: Path) -> None:
    config = AppConfig(
        database=DatabaseConfig(url=f"sqlite:///{tmp_path}/llmbatch.db"),
        providers={NAME: ProviderConfig(base_url=f"{emu.url}/anthropic", api_key=TEST_API_KEY,
                                        models=(ModelConfig(name=MODEL),))})
    driver = real_provider_driver(config, provider_clock=emu.advance_clock)
    try:
        path = tmp_path / "in.jsonl"
        path.write_text("".join(chat_line(f"q-{i}", f"question {i}") + "\n" for i in range(4)))
        job_id, _ = create_job(driver.rt, path, provider=NAME, model=MODEL)

        job = driver.run(job_id)

        assert job.status is JobStatus.SUCCEEDED
        records = [r.as_dict() for r in job_results(driver.rt, job_id)]
        assert [r["custom_id"] for r in records] == [f"q-{i}" for i in range(4)]
        assert all(r["status"] == "succeeded" and r["output_text"] for r in records)
        ended = next(e for e in driver.event_rows(job_id) if e.type == "batch.ended")
        assert ended.data["provider_status"] == "ended" and "failure" not in ended.data
    finally:
        driver.rt.close()
