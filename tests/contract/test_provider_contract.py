"""Contract: a provider adapter against the emulator, over real HTTP, with the official SDK.

The scenarios live in the package (``llmbatch.testing.contract.scenarios``) so that a provider
package elsewhere runs the same ones (``tests/plugin_provider``); they are written against
``ProviderHarness``, and the ``harness`` fixture here is parametrised over the built-in
providers (``llmbatch.testing.contract.builtin``). OpenAI-only checks (file clean-up, list
paging) follow them.

Nothing here sleeps for a batch: the harness moves the emulator's clock forward instead, so the
module runs in a few seconds whatever timing profile the emulator was started with.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest

pytest.importorskip("openai")  # the llmbatch[openai] extra

import openai

from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.emulator.server import EmulatorServer
from llmbatch.errors import PermanentProviderError
from llmbatch.testing.contract import scenarios
from llmbatch.testing.contract.builtin import (
    BATCH_FAILURE_PROVIDERS,
    BUILDERS,
    EMBEDDINGS_PROVIDERS,
    RESPONSES_PROVIDERS,
)
from llmbatch.testing.contract.harness import TEST_API_KEY, ProviderHarness, running_harness
from llmbatch.testing.contract.scenarios import *  # noqa: F403 (the scenarios, collected here)
from llmbatch.testing.contract.scenarios import EVERY_PROVIDER

pytestmark = pytest.mark.contract


@pytest.fixture(params=sorted(BUILDERS))
def harness(request: pytest.FixtureRequest, emulator: EmulatorServer) -> Iterator[ProviderHarness]:
    """Every provider: the scenarios all of them must pass."""
    yield from running_harness(BUILDERS[request.param], emulator)


@pytest.fixture(params=EMBEDDINGS_PROVIDERS)
def embeddings_harness(request: pytest.FixtureRequest,
                       emulator: EmulatorServer) -> Iterator[ProviderHarness]:
    """Providers whose adapter declares embeddings batches."""
    yield from running_harness(BUILDERS[request.param], emulator)


@pytest.fixture(params=RESPONSES_PROVIDERS)
def responses_harness(request: pytest.FixtureRequest,
                      emulator: EmulatorServer) -> Iterator[ProviderHarness]:
    """Providers whose adapter declares Responses batches (OpenAI natively, the others by
    translation)."""
    yield from running_harness(BUILDERS[request.param], emulator)


@pytest.fixture(params=BATCH_FAILURE_PROVIDERS)
def batch_failure_harness(request: pytest.FixtureRequest,
                          emulator: EmulatorServer) -> Iterator[ProviderHarness]:
    """Providers that can fail a batch as a whole."""
    for built in running_harness(BUILDERS[request.param], emulator):
        assert built.batch_failure, f"{built.name} is listed but declares no batch failure"
        yield built


@pytest.fixture
def openai_harness(emulator: EmulatorServer) -> Iterator[ProviderHarness]:
    """The OpenAI harness alone, for checks of OpenAI-specific behaviour."""
    yield from running_harness(BUILDERS["openai"], emulator)


def test_every_scenario_for_all_providers_is_offered_to_provider_packages() -> None:
    takes_harness = {name for name, obj in vars(scenarios).items()
                     if name.startswith("test_") and callable(obj)
                     and "harness" in inspect.signature(obj).parameters}
    # Needs the emulator's poison_output fault, which a provider package's server lacks.
    takes_harness.discard("test_answers_a_database_may_refuse_arrive_as_sent_with_their_line_numbers")
    assert {scenario.__name__ for scenario in EVERY_PROVIDER} == takes_harness
    assert set(scenarios.__all__) - {"EVERY_PROVIDER"} == {
        name for name in vars(scenarios) if name.startswith("test_")}


# --- OpenAI specifics -------------------------------------------------------------------------


def test_a_failed_create_deletes_the_uploaded_file(openai_harness: ProviderHarness) -> None:
    h = openai_harness
    h.fault("http", operation="create", status=400, times=1)
    deletes = h.calls("delete_file")
    with pytest.raises(PermanentProviderError):
        h.submit(h.requests(1), tag=h.new_tag())
    assert h.calls("delete_file") == deletes + 1


def test_find_by_tag_pages_back_and_stops_at_the_page_cap_or_the_horizon(
        openai_harness: ProviderHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmbatch.providers.openai import provider as module

    h = openai_harness
    oldest = h.new_tag()
    first = h.submit(h.requests(1), tag=oldest)
    for _ in range(4):
        h.submit(h.requests(1), tag=h.new_tag())
    monkeypatch.setattr(module, "FIND_BY_TAG_PAGE_SIZE", 2)

    lists = h.calls("list")
    found = h.adapter.find_by_tag(oldest)
    assert found is not None and found.provider_batch_id == first.provider_batch_id
    assert h.calls("list") - lists == 3

    monkeypatch.setattr(module, "FIND_BY_TAG_MAX_PAGES", 2)
    assert h.adapter.find_by_tag(oldest) is None

    monkeypatch.setattr(module, "FIND_BY_TAG_MAX_PAGES", 50)
    monkeypatch.setattr(module, "FIND_BY_TAG_HORIZON_S", -10**9)  # every batch is "too old"
    lists = h.calls("list")
    assert h.adapter.find_by_tag(oldest) is None
    assert h.calls("list") - lists == 1  # a page entirely past the horizon ends the search


def test_cleanup_deletes_every_file_of_the_batch(openai_harness: ProviderHarness) -> None:
    h = openai_harness
    adapter = h.make_adapter()
    tag = h.new_tag()
    h.fault("item_errors", tag=tag, rate=0.5, shape="error", status_code=500)
    # 40 items, each failing with probability 1/2: both files exist but once in 2^39 runs
    # (with 10, one run in 512 had no error file).
    submitted = h.submit(h.requests(40), tag=tag, adapter=adapter)
    progress = h.run_to_end(submitted.provider_batch_id, 40)
    refs = progress.result_refs
    assert {"input_file_id", "output_file_id", "error_file_id"} <= set(refs)

    done = adapter.cleanup(submitted.provider_batch_id, progress)
    assert [(d.kind, d.object_id, str(d.outcome)) for d in done] == [
        ("input_file", refs["input_file_id"], "deleted"),
        ("output_file", refs["output_file_id"], "deleted"),
        ("error_file", refs["error_file_id"], "deleted")]
    with openai.OpenAI(api_key=TEST_API_KEY, base_url=h.emulator.openai_base_url,
                       max_retries=0) as client:
        for file_id in refs.values():
            with pytest.raises(openai.NotFoundError):
                client.files.retrieve(file_id)
    again = adapter.cleanup(submitted.provider_batch_id, progress)  # already gone is fine
    assert {str(d.outcome) for d in again} == {"gone"}




def test_a_responses_batch_reads_as_the_sdk_reads_each_response(
        openai_harness: ProviderHarness) -> None:
    """The emulator's Response bodies parse as the official SDK's ``Response`` type, and the
    text llmbatch keeps is the SDK's computed ``output_text``; the usage carries reasoning and
    cached tokens as the SDK reads them."""
    from openai.types.responses import Response

    h = openai_harness
    prompt = "Why is the sky blue? " * 300  # past 1,024 tokens: some answers hit the cache
    requests = [RequestLine(i, f"r-{i}", {"input": f"{i}: {prompt}", "max_output_tokens": 64,
                                          "reasoning": {"effort": "low"}}) for i in range(8)]
    submitted = h.submit(requests, tag=h.new_tag(), endpoint=Endpoint.RESPONSES,
                         model="gpt-5.6-sol")
    results = h.results(submitted.provider_batch_id, h.run_to_end(submitted.provider_batch_id, 8))
    assert len(results) == 8
    for result in results.values():
        assert result.response is not None and result.usage is not None
        parsed = Response.model_validate(result.response)
        assert parsed.output_text == result.output_text and result.output_text
        usage = parsed.usage
        assert usage is not None
        assert result.usage.reasoning_tokens == usage.output_tokens_details.reasoning_tokens > 0
        assert result.usage.cached_tokens == usage.input_tokens_details.cached_tokens
    assert any(r.usage is not None and r.usage.cached_tokens for r in results.values())
