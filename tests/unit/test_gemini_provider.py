"""GeminiProvider against the emulator: inline vs Files API mode is chosen by size, and both
modes deliver the same results, for chat and embeddings; the official SDK's
``batches.create_embeddings`` works against the emulator unchanged. (The shared scenarios live
in tests/contract.)"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from llmbatch.config import ProviderConfig
from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.domain.states import ItemStatus
from llmbatch.emulator import EmulatorServer
from llmbatch.errors import ConfigError, InputError, PermanentProviderError, ResourceGoneError
from llmbatch.providers.gemini import GeminiProvider

MODEL = "gemini-2.5-flash"
EMBED_MODEL = "gemini-embedding-001"


@pytest.fixture
def make(emu: EmulatorServer) -> Iterator[Callable[..., GeminiProvider]]:
    made: list[GeminiProvider] = []

    def build(**options: object) -> GeminiProvider:
        provider = GeminiProvider(ProviderConfig.model_validate({
            "base_url": f"{emu.url}/gemini", "api_key": SecretStr("k"), "options": options}))
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
    assert progress.ended, progress
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


def test_a_result_file_that_no_longer_exists_is_gone_not_forbidden(
        make: Callable[..., GeminiProvider], emu: EmulatorServer) -> None:
    """Google answers 403 for a file that was deleted or expired; read as an authentication
    failure it made a fetch retry the download forever."""
    provider = make(inline_max_bytes=500)  # file mode: results come as a file
    lines = [provider.encode(r, endpoint=Endpoint.CHAT, model=MODEL).data for r in requests(3)]
    submitted = provider.submit(lines, tag="vanished-results", endpoint=Endpoint.CHAT,
                                model=MODEL)
    emu.advance_clock(30)
    progress = provider.poll(submitted.provider_batch_id)
    assert progress.ended and "responses_file" in progress.result_refs
    provider._delete_file(progress.result_refs["responses_file"])  # gone, as after expiry

    with pytest.raises(ResourceGoneError) as err:
        list(provider.iter_results(submitted.provider_batch_id, progress))
    assert err.value.status_code == 403 and not err.value.retryable
    # Clean-up after fetch counts a file already gone as done, and deletes the rest.
    done = provider.cleanup(submitted.provider_batch_id, progress)
    assert [(d.kind, str(d.outcome)) for d in done] == [
        ("input_file", "deleted"), ("result_file", "gone"), ("batch", "deleted")]
    with pytest.raises(ResourceGoneError):
        provider.poll(submitted.provider_batch_id)


def test_options_are_checked_and_can_only_lower_the_inline_limit(
        make: Callable[..., GeminiProvider]) -> None:
    assert make(api_version="v1").api_version == "v1"
    assert make().inline_max_bytes == 20_000_000
    with pytest.raises(ConfigError) as err:
        make(api_version="v2", inline_max_bytes=30_000_000, completion_window="24h")
    assert sorted(p.split(":")[0] for p in err.value.problems) == [
        "providers.gemini.options.api_version", "providers.gemini.options.completion_window",
        "providers.gemini.options.inline_max_bytes"]
    assert any("can only lower it" in p for p in err.value.problems)


def test_native_bodies_pass_through_and_bad_models_are_refused(
        make: Callable[..., GeminiProvider]) -> None:
    provider = make()
    native = {"contents": [{"parts": [{"text": "x"}]}], "generation_config": {"seed": 1}}
    line = provider.encode(RequestLine(0, "n", None, native), endpoint=Endpoint.CHAT, model=MODEL)
    assert line.data == b'{"key":"n","request":{"contents":[{"parts":[{"text":"x"}]}],' \
                        b'"generation_config":{"seed":1}}}'
    with pytest.raises(InputError) as refused:  # a chat body is not an embeddings body
        provider.encode(RequestLine(0, "e", {"messages": [{"role": "user", "content": "x"}]}),
                        endpoint=Endpoint.EMBEDDINGS, model=EMBED_MODEL)
    assert refused.value.field == "body.messages"
    with pytest.raises(PermanentProviderError) as err:
        provider.submit([line.data], tag="bad-model", endpoint=Endpoint.CHAT, model="gpt-4o")
    assert err.value.status_code == 404


def embed(provider: GeminiProvider, emu: EmulatorServer, tag: str,
          bodies: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    lines = [provider.encode(RequestLine(i, f"e-{i}", body), endpoint=Endpoint.EMBEDDINGS,
                             model=EMBED_MODEL).data for i, body in enumerate(bodies)]
    submitted = provider.submit(lines, tag=tag, endpoint=Endpoint.EMBEDDINGS, model=EMBED_MODEL)
    emu.advance_clock(30)
    progress = provider.poll(submitted.provider_batch_id)
    assert progress.ended, progress
    assert provider.find_by_tag(tag) is not None
    results = {r.provider_key: r for r in provider.iter_results(submitted.provider_batch_id,
                                                                progress)}
    return ("file" if submitted.input_file_id else "inline"), results


def test_embeddings_always_go_through_a_file_whose_lines_carry_the_key(
        make: Callable[..., GeminiProvider], emu: EmulatorServer) -> None:
    """Inline embedding items have no ``metadata`` to carry a key (Google's item schema, the
    SDK's own builder), so even a small embeddings batch is uploaded and joined by key."""
    bodies = [{"input": f"text {i}", "dimensions": 4} for i in range(3)]
    small_mode, small = embed(make(), emu, "embed-small", bodies)
    large_mode, large = embed(make(inline_max_bytes=300), emu, "embed-large", bodies)
    assert (small_mode, large_mode) == ("file", "file")
    assert {k: r.response for k, r in small.items()} == {k: r.response for k, r in large.items()}
    assert sorted(r.line or 0 for r in small.values()) == [1, 2, 3]
    for result in small.values():
        assert result.status is ItemStatus.SUCCEEDED and result.output_text is None
        assert result.response is not None and len(result.response["embedding"]["values"]) == 4
        assert result.usage is not None and result.usage.input_tokens > 0
    calls = emu.stats()["calls"]["gemini"]
    assert calls["files.upload"] == 2 and calls["files.download"] == 2


def test_embedding_requests_the_service_refuses_fail_alone_and_models_must_match(
        make: Callable[..., GeminiProvider], emu: EmulatorServer) -> None:
    provider = make()
    native = RequestLine(1, "bad", None, {"content": {"parts": []}})
    lines = [provider.encode(RequestLine(0, "ok", {"input": "x"}), endpoint=Endpoint.EMBEDDINGS,
                             model=EMBED_MODEL).data,
             provider.encode(native, endpoint=Endpoint.EMBEDDINGS, model=EMBED_MODEL).data]
    submitted = provider.submit(lines, tag="embed-bad", endpoint=Endpoint.EMBEDDINGS,
                                model=EMBED_MODEL)
    emu.advance_clock(30)
    progress = provider.poll(submitted.provider_batch_id)
    assert (progress.total, progress.completed, progress.failed) == (2, 1, 1)
    results = {r.provider_key: r for r in provider.iter_results(submitted.provider_batch_id,
                                                                progress)}
    bad = results["bad"]
    assert bad.status is ItemStatus.FAILED and bad.error is not None
    assert not bad.error.retryable and "parts" in bad.error.message
    for model, endpoint in ((MODEL, Endpoint.EMBEDDINGS), (EMBED_MODEL, Endpoint.CHAT)):
        with pytest.raises(PermanentProviderError) as err:
            provider.submit([lines[0]], tag="wrong-model", endpoint=endpoint, model=model)
        assert err.value.status_code == 404


def test_the_sdk_create_embeddings_works_against_the_emulator(emu: EmulatorServer,
                                                              tmp_path: Path) -> None:
    """google-genai's own ``batches.create_embeddings`` (inline and file), ``get`` and
    ``files.download``, unchanged, on the emulator."""
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="k", http_options=types.HttpOptions(
        base_url=f"{emu.url}/gemini", api_version="v1beta"))
    try:
        _sdk_embeddings(client, emu, tmp_path)
    finally:
        client.close()


def _sdk_embeddings(client: Any, emu: EmulatorServer, tmp_path: Path) -> None:
    from google.genai import types
    from google.genai._common import ExperimentalWarning

    with pytest.warns(ExperimentalWarning):
        inline = client.batches.create_embeddings(
            model=EMBED_MODEL,
            src={"inlined_requests": {"contents": ["alpha", "beta"],
                                      "config": {"output_dimensionality": 5,
                                                 "task_type": "RETRIEVAL_DOCUMENT"}}},
            config={"display_name": "sdk-embed-inline"})
    assert inline.state == types.JobState.JOB_STATE_PENDING and inline.name

    line = {"key": "k1", "request": {"content": {"parts": [{"text": "alpha"}]},
                                     "outputDimensionality": 5}}
    path = tmp_path / "input.jsonl"
    path.write_text(json.dumps(line) + "\n")
    uploaded = client.files.upload(file=str(path), config=types.UploadFileConfig(
        mime_type="application/jsonl"))
    with pytest.warns(ExperimentalWarning):
        from_file = client.batches.create_embeddings(
            model=EMBED_MODEL, src={"file_name": uploaded.name},
            config={"display_name": "sdk-embed-file"})
    emu.advance_clock(30)

    done = client.batches.get(name=str(inline.name))
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.dest is not None
    responses = done.dest.inlined_embed_content_responses or []
    assert len(responses) == 2
    first = responses[0].response
    assert first is not None and first.embedding is not None
    assert first.embedding.values is not None and len(first.embedding.values) == 5

    done = client.batches.get(name=str(from_file.name))
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.dest is not None
    assert done.dest.file_name
    entry = json.loads(client.files.download(file=done.dest.file_name))
    assert entry["key"] == "k1"
    assert entry["response"]["embedding"]["values"] == first.embedding.values  # same text


@pytest.mark.parametrize("inline_max_bytes", [None, 300])
def test_embeddings_batches_get_the_same_item_faults(
        make: Callable[..., GeminiProvider], emu: EmulatorServer,
        inline_max_bytes: int | None) -> None:
    tag = f"embed-faults-{inline_max_bytes}"
    emu.set_faults([{"kind": "item_errors", "provider": "gemini", "match": {"displayName": tag},
                     "rate": 1.0, "status_code": 429}], mode="append")
    config = {"inline_max_bytes": inline_max_bytes} if inline_max_bytes else {}
    _, results = embed(make(**config), emu, tag, [{"input": f"t{i}"} for i in range(2)])
    assert len(results) == 2
    for result in results.values():
        assert result.status is ItemStatus.FAILED and result.error is not None
        assert result.error.retryable and result.error.type == "rate_limit_error"
