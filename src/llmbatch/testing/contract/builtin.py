"""The contract harnesses of the built-in providers (OpenAI, Anthropic, Gemini), on the
emulator: how each adapter is wired to it, how a tag becomes a fault ``match``, what each API
call is named. Needs the ``llmbatch[emulator]`` extra and the provider SDKs; each builder skips
(``pytest.importorskip``) when its SDK is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from llmbatch.config import ProviderConfig
from llmbatch.domain.models import BatchProgress, Endpoint
from llmbatch.emulator.server import EmulatorServer
from llmbatch.providers.base import BatchProvider
from llmbatch.testing.contract.harness import (
    TEST_API_KEY,
    ProviderHarness,
    TagHeader,
    gemini_vector,
)

__all__ = ["BATCH_FAILURE_PROVIDERS", "BUILDERS", "EMBEDDINGS_PROVIDERS", "RESPONSES_PROVIDERS"]


def _openai_adapter(emulator: EmulatorServer, *, transport: Any = None,
                    **config: Any) -> tuple[BatchProvider, Callable[[], None]]:
    """The adapter as the registry builds it; ``transport`` swaps the SDK's HTTP transport."""
    from llmbatch.providers.openai import OpenAIProvider

    provider_config = ProviderConfig(**{"base_url": emulator.openai_base_url,
                                        "api_key": SecretStr(TEST_API_KEY), "timeout_s": 30.0,
                                        "sdk_max_retries": 0, **config})
    if transport is None:
        adapter = OpenAIProvider(provider_config)
        return adapter, adapter.close
    import openai

    client = openai.OpenAI(api_key=TEST_API_KEY, base_url=emulator.openai_base_url,
                           max_retries=0, http_client=httpx2.Client(transport=transport))
    return OpenAIProvider(provider_config, client=client), client.close


def _delete_openai_files(adapter: BatchProvider, batch_id: str,
                        progress: BatchProgress) -> None:
    from llmbatch.providers.openai import OpenAIProvider

    assert isinstance(adapter, OpenAIProvider)
    for key in ("output_file_id", "error_file_id"):
        if file_id := progress.result_refs.get(key):
            adapter.client.files.delete(file_id)


def _build_openai(emulator: EmulatorServer) -> ProviderHarness:
    return ProviderHarness(
        name="openai", emulator=emulator, model="gpt-4o-mini",
        build_adapter=lambda **options: _openai_adapter(emulator, **options),
        tag_match=lambda tag: {"llmbatch_batch_id": tag},
        operations={"upload": "files.create", "create": "batches.create",
                    "poll": "batches.retrieve", "cancel": "batches.cancel",
                    "list": "batches.list", "download": "files.content",
                    "delete_file": "files.delete"},
        unknown_batch_id="batch_neverissued",
        forget_results=_delete_openai_files,
        item_error_shapes=("error", "response"),
    )


def _anthropic_adapter(emulator: EmulatorServer, tagger: TagHeader, *, transport: Any = None,
                       **config: Any) -> tuple[BatchProvider, Callable[[], None]]:
    """The adapter on an injected SDK client (for the tag hook; ``transport`` swaps the HTTP
    transport); timeouts come from the same config the registry would use."""
    import anthropic

    from llmbatch.providers.anthropic import AnthropicProvider

    base_url = f"{emulator.url}/anthropic"
    provider_config = ProviderConfig(**{"base_url": base_url, "api_key": SecretStr(TEST_API_KEY),
                                        "timeout_s": 30.0, "sdk_max_retries": 0, **config})
    http = httpx2.Client(transport=transport or httpx2.HTTPTransport(),
                         event_hooks={"request": [tagger.hook]})
    client = anthropic.Anthropic(
        api_key=TEST_API_KEY, base_url=base_url, max_retries=0, http_client=http,
        timeout=anthropic.Timeout(provider_config.timeout_s,
                                  connect=provider_config.connect_timeout_s))
    return AnthropicProvider(provider_config, client=client), client.close


def _delete_anthropic_batch(adapter: BatchProvider, batch_id: str,
                            progress: BatchProgress) -> None:
    from llmbatch.providers.anthropic import AnthropicProvider

    assert isinstance(adapter, AnthropicProvider)
    adapter.client.messages.batches.delete(batch_id)


def _build_anthropic(emulator: EmulatorServer) -> ProviderHarness:
    pytest.importorskip("anthropic")
    tagger = TagHeader()
    return ProviderHarness(
        name="anthropic", emulator=emulator, model="claude-haiku-4-5",
        build_adapter=lambda **options: _anthropic_adapter(emulator, tagger, **options),
        tag_match=lambda tag: {"llmbatch_tag": tag},
        operations={"create": "batches.create", "poll": "batches.retrieve",
                    "cancel": "batches.cancel", "list": "batches.list",
                    "download": "batches.results"},
        unknown_batch_id="msgbatch_neverissued",
        forget_results=_delete_anthropic_batch,
        item_error_codes=("api_error", "rate_limit_error"),
        expired_status="ended",
        batch_failure=False,
        tag_context=tagger.bind,
    )


def _gemini_adapter(emulator: EmulatorServer, *, transport: Any = None,
                    **config: Any) -> tuple[BatchProvider, Callable[[], None]]:
    """The adapter as the registry builds it. With ``transport`` (only the large-result
    scenario swaps it) the batch goes through the Files API, whose result file is streamed;
    otherwise small batches go inline, as they would for real."""
    pytest.importorskip("google.genai")
    from llmbatch.providers.gemini import GeminiProvider

    if transport is not None:
        config.setdefault("options", {"inline_max_bytes": 1024})
    provider_config = ProviderConfig(**{"base_url": f"{emulator.url}/gemini",
                                        "api_key": SecretStr(TEST_API_KEY), "timeout_s": 30.0,
                                        "sdk_max_retries": 0, **config})
    adapter = GeminiProvider(provider_config, transport=transport)
    return adapter, adapter.close


def _delete_gemini_results(adapter: BatchProvider, batch_id: str,
                           progress: BatchProgress) -> None:
    """The result file when there is one (Google then answers 403), else the batch that holds
    the inline responses."""
    from llmbatch.providers.gemini import GeminiProvider

    assert isinstance(adapter, GeminiProvider)
    if "responses_file" not in progress.result_refs:
        adapter.delete_batch(batch_id)
        return
    url = f"{adapter.base_url}/{adapter.api_version}/{progress.result_refs['responses_file']}"
    httpx2.delete(url, headers={"x-goog-api-key": TEST_API_KEY}).raise_for_status()


def _build_gemini(emulator: EmulatorServer) -> ProviderHarness:
    return ProviderHarness(
        name="gemini", emulator=emulator, model="gemini-2.5-flash",
        build_adapter=lambda **options: _gemini_adapter(emulator, **options),
        tag_match=lambda tag: {"displayName": tag},
        operations={"upload": "files.upload", "create": "batches.create",
                    "poll": "batches.get", "cancel": "batches.cancel", "list": "batches.list",
                    "download": "files.download", "delete_file": "files.delete"},
        unknown_batch_id="batches/neverissued",
        forget_results=_delete_gemini_results,
        item_error_shapes=("error",),
        item_error_codes=("INTERNAL", "RESOURCE_EXHAUSTED"),
        invalid_field="max_output_tokens",
        embeddings_model="gemini-embedding-001",
        vector_of=gemini_vector,
    )


BUILDERS: dict[str, Callable[[EmulatorServer], ProviderHarness]] = {
    "openai": _build_openai, "anthropic": _build_anthropic, "gemini": _build_gemini}


def _endpoints_of(name: str) -> frozenset[Endpoint]:
    from llmbatch.providers.registry import available_providers

    module, _, cls = available_providers()[name].partition(":")
    provider_class = getattr(__import__(module, fromlist=[cls]), cls)
    return frozenset(provider_class.endpoints)


# Providers that can fail a whole batch at validation (Anthropic's errors are per request).
BATCH_FAILURE_PROVIDERS = ("gemini", "openai")
EMBEDDINGS_PROVIDERS = tuple(n for n in sorted(BUILDERS)
                             if Endpoint.EMBEDDINGS in _endpoints_of(n))
RESPONSES_PROVIDERS = tuple(n for n in sorted(BUILDERS)
                            if Endpoint.RESPONSES in _endpoints_of(n))
