"""Gemini media by URL and Cloud Storage reference (PROVIDER_APIS C.10), end to end.

The neutral ``image_url`` / ``file`` parts with an https URL or a ``gs://`` reference go to
the emulator as ``fileData`` parts, inline and through the Files API, and come back as
successful results; a ``fileData`` without a ``fileUri`` (a native body) is refused per
request, as Google refuses it, and does not fail its neighbours.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.domain.states import ItemStatus
from llmbatch.emulator.server import EmulatorServer
from llmbatch.testing.contract.builtin import BUILDERS
from llmbatch.testing.contract.harness import ProviderHarness, running_harness

pytestmark = pytest.mark.contract

MEDIA = [
    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    {"type": "image_url", "image_url": {"url": "gs://my-bucket/pics/dog.jpg"}},
    {"type": "file", "file": {"file_url": "https://s3.example.com/r?X-Amz-Signature=ab",
                              "filename": "report.pdf"}},
    {"type": "file", "file": {"file_url": "gs://my-bucket/docs/table.csv"}},
]


@pytest.fixture
def harness(emulator: EmulatorServer) -> Iterator[ProviderHarness]:
    yield from running_harness(BUILDERS["gemini"], emulator)


def _requests() -> list[RequestLine]:
    lines = [RequestLine(i, f"m-{i}", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this?"}, part]}], "max_tokens": 30})
        for i, part in enumerate(MEDIA)]
    lines.append(RequestLine(len(lines), "no-uri", None, native={"contents": [
        {"role": "user", "parts": [{"text": "x"}, {"fileData": {"mimeType": "image/png"}}]}]}))
    return lines


@pytest.mark.parametrize("mode", ["inline", "file"])
def test_url_and_cloud_storage_parts_are_accepted_and_a_part_without_uri_is_refused(
        harness: ProviderHarness, mode: str) -> None:
    adapter = harness.adapter if mode == "inline" else harness.make_adapter(
        options={"inline_max_bytes": 1})
    requests = _requests()
    encoded = adapter.encode(requests[2], endpoint=Endpoint.CHAT, model=harness.model)
    assert b'"fileData"' in encoded.data and b"application/pdf" in encoded.data
    submitted = harness.submit(requests, tag=harness.new_tag(), adapter=adapter)
    harness.advance(harness.batch_seconds(len(requests)) + 1)
    progress = adapter.poll(submitted.provider_batch_id)
    assert progress.ended
    results = {r.provider_key: r for r in adapter.iter_results(submitted.provider_batch_id,
                                                                 progress)}
    keys = [adapter.encode(r, endpoint=Endpoint.CHAT, model=harness.model).provider_key
            for r in requests]
    assert [results[k].status for k in keys[:-1]] == [ItemStatus.SUCCEEDED] * len(MEDIA)
    refused = results[keys[-1]]
    assert refused.status is ItemStatus.FAILED
    assert refused.error is not None and "file_uri is required" in refused.error.message
