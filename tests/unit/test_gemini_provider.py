"""GeminiProvider against the emulator: inline vs Files API mode is chosen by size, and both
modes deliver the same results. (The shared scenarios live in tests/contract.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pydantic import SecretStr

from llmbatch.config import ProviderConfig
from llmbatch.domain.models import Endpoint, ProviderState, RequestLine
from llmbatch.domain.states import ItemStatus
from llmbatch.emulator import EmulatorServer
from llmbatch.errors import InputError, PermanentProviderError
from llmbatch.providers.gemini import GeminiProvider

MODEL = "gemini-2.5-flash"


@pytest.fixture
def make(emu: EmulatorServer) -> Iterator[Callable[..., GeminiProvider]]:
    made: list[GeminiProvider] = []

    def build(**config: object) -> GeminiProvider:
        provider = GeminiProvider(ProviderConfig.model_validate({
            "base_url": f"{emu.url}/gemini", "api_key": SecretStr("k"), **config}))
        made.append(provider)
        return provider

    yield build
    for provider in made:
        provider.close()


def requests(n: int) -> list[RequestLine]:
    return [RequestLine(i, f"r-{i}", {"messages": [{"role": "user", "content": f"q {i}"}],
                                      "max_tokens": 20}) for i in range(n)]


def run(provider: GeminiProvider, emu: EmulatorServer, n: int, tag: str) -> dict[str, str]:
    lines = (provider.encode(r, endpoint=Endpoint.CHAT, model=MODEL).data for r in requests(n))
    submitted = provider.submit(lines, tag=tag, endpoint=Endpoint.CHAT, model=MODEL)
    emu.advance_clock(30)
    progress = provider.poll(submitted.provider_batch_id)
    assert progress.state is ProviderState.ENDED, progress
    results = {r.provider_key: r for r in provider.iter_results(submitted.provider_batch_id,
                                                                progress)}
    assert all(r.status is ItemStatus.SUCCEEDED for r in results.values())
    return {"mode": "file" if submitted.input_file_id else "inline",
            **{k: r.output_text or "" for k, r in results.items()}}


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_inline_vs_file_mode_is_chosen_by_size(make: Callable[..., GeminiProvider],
                                               emu: EmulatorServer, version: str) -> None:
    small = run(make(api_version=version), emu, 5, f"small-{version}")
    large = run(make(api_version=version, inline_max_bytes=500), emu, 5, f"large-{version}")
    assert (small.pop("mode"), large.pop("mode")) == ("inline", "file")
    assert small == large and len(small) == 5  # same requests, same outputs in both modes
    calls = emu.stats()["calls"]["gemini"]
    assert calls["files.upload"] == 1 and calls["files.download"] == 1


def test_native_bodies_pass_through_and_bad_models_are_refused(
        make: Callable[..., GeminiProvider]) -> None:
    provider = make()
    native = {"contents": [{"parts": [{"text": "x"}]}], "generation_config": {"seed": 1}}
    line = provider.encode(RequestLine(0, "n", None, native), endpoint=Endpoint.CHAT, model=MODEL)
    assert line.data == b'{"key":"n","request":{"contents":[{"parts":[{"text":"x"}]}],' \
                        b'"generation_config":{"seed":1}}}'
    with pytest.raises(InputError):
        provider.encode(RequestLine(0, "e", {"input": "x"}), endpoint=Endpoint.EMBEDDINGS,
                        model=MODEL)
    with pytest.raises(PermanentProviderError) as err:
        provider.submit([line.data], tag="bad-model", endpoint=Endpoint.CHAT, model="gpt-4o")
    assert err.value.status_code == 404
