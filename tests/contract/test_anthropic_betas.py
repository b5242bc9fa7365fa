"""``anthropic-beta`` end to end against the emulator: the official SDK's beta batches call and
the adapter (config betas plus a job's) put the header on the create, the emulator records it
(``stats()["betas"]``) and applies the extended-output rule (max_tokens above 128k only with
``output-300k-2026-03-24`` on a model it covers, B.4/B.8)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from pydantic import SecretStr

from llmbatch.config import AppConfig, DatabaseConfig, ModelConfig, ProviderConfig
from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.domain.states import JobStatus
from llmbatch.emulator import EmulatorServer, load_profile
from llmbatch.providers.anthropic import AnthropicProvider
from llmbatch.service_layer.jobs import create_job
from service.harness import real_provider_driver

pytestmark = pytest.mark.contract

EXTENDED = "output-300k-2026-03-24"
MODEL = "claude-opus-4-8"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(load_profile("fast")) as emulator:
        yield emulator


def betas_seen(server: EmulatorServer) -> dict[str, int]:
    return dict(server.stats()["betas"].get("anthropic", {}))


def params(max_tokens: int, model: str = MODEL) -> dict[str, Any]:
    return {"model": model, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "hi"}]}


def test_the_sdk_beta_call_sends_the_header_and_300k_output_is_allowed_with_it(
        server: EmulatorServer) -> None:
    server.reset(state=True)
    client = anthropic.Anthropic(api_key="sk-ant-betas", base_url=f"{server.url}/anthropic",
                                 max_retries=0)
    try:
        batch = client.beta.messages.batches.create(betas=[EXTENDED], requests=[
            {"custom_id": "big", "params": params(300_000)},
            {"custom_id": "over", "params": params(300_001)},
            {"custom_id": "uncovered", "params": params(200_000, "claude-haiku-4-5")}])
        plain = client.messages.batches.create(requests=[
            {"custom_id": "big", "params": params(200_000)},
            {"custom_id": "fine", "params": params(128_000)}])
        assert betas_seen(server) == {f"batches.create {EXTENDED}": 1}
        server.advance_clock(5)
        with_beta = {r.custom_id: r.result.type
                     for r in client.beta.messages.batches.results(batch.id, betas=[EXTENDED])}
        without = {r.custom_id: r.result for r in client.messages.batches.results(plain.id)}
    finally:
        client.close()
    assert with_beta == {"big": "succeeded", "over": "errored", "uncovered": "errored"}
    assert without["fine"].type == "succeeded" and without["big"].type == "errored"
    assert "maximum allowed number of output tokens" in without["big"].error.error.message
    assert betas_seen(server)[f"batches.results {EXTENDED}"] == 1


def test_the_adapter_sends_config_and_job_betas_with_the_create(server: EmulatorServer) -> None:
    server.reset(state=True)
    adapter = AnthropicProvider(ProviderConfig(
        base_url=f"{server.url}/anthropic", api_key=SecretStr("sk-ant-betas"),
        options={"betas": ["prompt-caching-2024-07-31"]}))
    try:
        job = adapter.for_job(adapter.job_options({"betas": [EXTENDED]}))
        line = job.encode(RequestLine(0, "r-0", {"messages": [{"role": "user", "content": "x"}],
                                                 "max_tokens": 250_000}),
                          endpoint=Endpoint.CHAT, model=MODEL)
        batch_id = job.submit([line.data], tag="t-betas", endpoint=Endpoint.CHAT,
                              model=MODEL).provider_batch_id
        assert betas_seen(server) == {"batches.create prompt-caching-2024-07-31": 1,
                                      f"batches.create {EXTENDED}": 1}
        server.advance_clock(5)
        results = list(job.iter_results(batch_id, job.poll(batch_id)))
        assert [r.status for r in results] == ["succeeded"]
    finally:
        adapter.close()


def test_a_jobs_beta_travels_from_create_job_to_the_batch_create(server: EmulatorServer,
                                                                  tmp_path: Path) -> None:
    server.reset(state=True)
    config = AppConfig(
        database=DatabaseConfig(url=f"sqlite:///{tmp_path}/llmbatch.db"),
        providers={"anthropic": ProviderConfig(
            base_url=f"{server.url}/anthropic", api_key=SecretStr("sk-ant-betas"),
            models=(ModelConfig(name=MODEL),))})
    driver = real_provider_driver(config, provider_clock=server.advance_clock)
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"custom_id": "q", "body": {
        "messages": [{"role": "user", "content": "write a lot"}], "max_tokens": 250_000}})
        + "\n", encoding="utf-8")
    try:
        job_id, _ = create_job(driver.rt, path, provider="anthropic", model=MODEL,
                               job_options={"betas": [EXTENDED]})
        assert driver.run(job_id).status is JobStatus.SUCCEEDED
    finally:
        driver.rt.close()
    assert betas_seen(server) == {f"batches.create {EXTENDED}": 1}
