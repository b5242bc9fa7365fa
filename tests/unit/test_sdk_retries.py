"""Every adapter hands ``sdk_max_retries`` to its SDK: 0 (the default) means one HTTP request
per call, whatever the error, because llmbatch's tasks retry with their own backoff and two
retry layers would multiply. Checked by what reaches the emulator, not by SDK internals.

``cancel`` is the call used: it goes through the SDK in every adapter (Gemini's raw-HTTP calls,
such as its poll, never retry inside the adapter at all)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from pydantic import SecretStr

from llmbatch.config import ProviderConfig
from llmbatch.emulator import EmulatorServer
from llmbatch.errors import ResourceGoneError, TransientProviderError
from llmbatch.providers.anthropic import AnthropicProvider
from llmbatch.providers.base import BatchProvider
from llmbatch.providers.gemini import GeminiProvider
from llmbatch.providers.openai import OpenAIProvider

Adapter = Callable[[EmulatorServer, int], tuple[BatchProvider, str]]

ADAPTERS: dict[str, Adapter] = {
    "openai": lambda emu, n: (OpenAIProvider(ProviderConfig(
        base_url=emu.openai_base_url, api_key=SecretStr("sk-x"), sdk_max_retries=n)),
        "batch_missing"),
    "anthropic": lambda emu, n: (AnthropicProvider(ProviderConfig(
        base_url=f"{emu.url}/anthropic", api_key=SecretStr("sk-ant-x"), sdk_max_retries=n)),
        "msgbatch_missing"),
    "gemini": lambda emu, n: (GeminiProvider(ProviderConfig(
        base_url=f"{emu.url}/gemini", api_key=SecretStr("g-x"), sdk_max_retries=n)),
        "batches/missing"),
}


@contextmanager
def adapter_for(emu: EmulatorServer, provider: str,
                retries: int) -> Iterator[tuple[BatchProvider, str]]:
    adapter, missing = ADAPTERS[provider](emu, retries)
    try:
        yield adapter, missing
    finally:
        adapter.close()  # type: ignore[attr-defined]


def calls(emu: EmulatorServer, provider: str) -> int:
    return sum(emu.stats()["calls"].get(provider, {}).values())


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
def test_with_sdk_retries_off_a_5xx_reaches_the_provider_once(
        emu: EmulatorServer, provider: str) -> None:
    emu.set_faults([{"kind": "http", "provider": provider, "status": 503}])

    with adapter_for(emu, provider, 0) as (adapter, missing), \
            pytest.raises(TransientProviderError):
        adapter.cancel(missing)

    assert calls(emu, provider) == 1


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
def test_sdk_retries_when_configured_are_the_sdks_own(
        emu: EmulatorServer, provider: str) -> None:
    emu.set_faults([{"kind": "http", "provider": provider, "status": 503, "times": 1}])

    with adapter_for(emu, provider, 1) as (adapter, missing), \
            pytest.raises(ResourceGoneError):  # the retry got past the 503: no such batch
        adapter.cancel(missing)

    assert calls(emu, provider) == 2
