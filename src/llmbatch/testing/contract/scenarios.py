"""The contract scenarios: what every provider adapter must do against its provider's API.

Each scenario is a pytest test taking a ``harness`` (``ProviderHarness``) fixture. A test module
runs them by importing them next to a ``harness`` fixture of its own::

    from llmbatch.testing.contract.scenarios import *  # noqa: F403 (the test_* functions)

    @pytest.fixture
    def harness(...) -> Iterator[ProviderHarness]: ...

``EVERY_PROVIDER`` lists the scenarios for any provider; the ones that need a capability not
every provider has take their own fixture (``embeddings_harness``, ``batch_failure_harness``)
or an emulator fault (``poison_output``) and are left out of it. Nothing here sleeps for a
batch: the harness moves the server's clock forward instead.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmbatch.domain.models import Endpoint, FailureKind, RequestLine
from llmbatch.domain.states import ItemStatus
from llmbatch.domain.storable import storable_result
from llmbatch.errors import (
    PermanentProviderError,
    RateLimitedError,
    ResourceGoneError,
    TransientProviderError,
)
from llmbatch.testing.contract.harness import CountingTransport, ProviderHarness

__all__ = [
    "EVERY_PROVIDER",
    "test_a_4xx_at_create_is_a_permanent_error",
    "test_a_5xx_at_create_is_transient_and_a_resubmission_succeeds",
    "test_a_5xx_surfaces_as_transient_and_the_next_call_succeeds",
    "test_a_429_carries_retry_after_and_the_sdk_does_not_retry_by_itself",
    "test_a_batch_runs_to_completion_and_every_result_is_read",
    "test_a_batch_that_fails_validation_reports_why_and_yields_no_results",
    "test_a_batch_the_provider_never_issued_is_gone",
    "test_a_client_timeout_is_transient",
    "test_a_large_result_file_is_streamed_line_by_line",
    "test_a_partly_failed_batch_separates_permanent_and_retryable_failures",
    "test_a_responses_batch_reads_as_the_same_result_record",
    "test_answers_a_database_may_refuse_arrive_as_sent_with_their_line_numbers",
    "test_cancel_keeps_the_partial_results",
    "test_embeddings_keep_their_vectors_in_the_response",
    "test_expiry_keeps_the_partial_results",
    "test_find_by_tag_adopts_the_batch_carrying_the_tag",
    "test_per_item_provider_errors_are_retryable_in_every_error_shape",
    "test_results_the_provider_no_longer_has_are_gone_not_retryable",
]


# --- scenarios every provider passes ----------------------------------------------------------


def test_a_batch_runs_to_completion_and_every_result_is_read(harness: ProviderHarness) -> None:
    tag = harness.new_tag()
    submitted = harness.submit(harness.requests(6), tag=tag)
    assert submitted.provider_batch_id

    progress = harness.run_to_end(submitted.provider_batch_id, 6)
    assert (progress.total, progress.completed, progress.failed) == (6, 6, 0)
    assert progress.failure is None

    results = harness.results(submitted.provider_batch_id, progress)
    assert sorted(results) == [f"q-{i}" for i in range(6)]
    for result in results.values():
        assert result.status is ItemStatus.SUCCEEDED
        assert result.output_text
        assert result.finish_reason in ("stop", "length")
        assert result.usage is not None
        assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
        assert result.response is not None and result.error is None


def test_embeddings_keep_their_vectors_in_the_response(
        embeddings_harness: ProviderHarness) -> None:
    harness = embeddings_harness
    requests = [RequestLine(i, f"e-{i}", {"input": f"text {i}"}) for i in range(3)]
    submitted = harness.submit(requests, tag=harness.new_tag(), endpoint=Endpoint.EMBEDDINGS,
                               model=harness.embeddings_model)
    results = harness.results(submitted.provider_batch_id,
                              harness.run_to_end(submitted.provider_batch_id, 3))
    assert len(results) == 3
    for result in results.values():
        assert result.status is ItemStatus.SUCCEEDED and result.output_text is None
        assert result.response is not None and harness.vector_of(result.response)
        assert result.usage is not None and result.usage.input_tokens > 0


def test_a_responses_batch_reads_as_the_same_result_record(
        responses_harness: ProviderHarness) -> None:
    """A ``responses`` job (the Responses body as its neutral form): sent as is where the
    provider is OpenAI, translated elsewhere; either way each answer is the result record a
    chat job gets (text, finish reason, usage)."""
    harness = responses_harness
    requests = [RequestLine(i, f"r-{i}", {
        "instructions": "Answer in a few words.",
        "input": [{"role": "user", "content": [{"type": "input_text",
                                                "text": f"Question {i}: why is the sky blue?"}]}],
        "max_output_tokens": 64}) for i in range(3)]
    submitted = harness.submit(requests, tag=harness.new_tag(), endpoint=Endpoint.RESPONSES)
    results = harness.results(submitted.provider_batch_id,
                              harness.run_to_end(submitted.provider_batch_id, 3))
    assert sorted(results) == ["r-0", "r-1", "r-2"]
    for result in results.values():
        assert result.status is ItemStatus.SUCCEEDED and result.error is None
        assert result.output_text
        assert result.finish_reason in ("stop", "length")
        assert result.usage is not None
        assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0


def test_a_partly_failed_batch_separates_permanent_and_retryable_failures(
        harness: ProviderHarness) -> None:
    requests = harness.requests(3)
    requests.append(RequestLine(3, "bad-0", {"messages": [{"role": "user", "content": "x"}],
                                             "max_tokens": 0}))
    submitted = harness.submit(requests, tag=harness.new_tag())
    progress = harness.run_to_end(submitted.provider_batch_id, 4)
    assert (progress.total, progress.completed, progress.failed) == (4, 3, 1)

    results = harness.results(submitted.provider_batch_id, progress)
    assert {k for k, r in results.items() if r.status is ItemStatus.SUCCEEDED} == {
        "q-0", "q-1", "q-2"}
    bad = results["bad-0"]
    assert bad.status is ItemStatus.FAILED and bad.error is not None
    assert bad.error.retryable is False
    assert bad.error.type == "invalid_request_error"
    assert harness.invalid_field in bad.error.message


@pytest.mark.parametrize("status", [500, 429])
def test_per_item_provider_errors_are_retryable_in_every_error_shape(
        harness: ProviderHarness, status: int) -> None:
    for shape in harness.item_error_shapes:
        tag = harness.new_tag()
        harness.fault("item_errors", tag=tag, rate=1.0, shape=shape, status_code=status)
        submitted = harness.submit(harness.requests(3, prefix=shape), tag=tag)
        progress = harness.run_to_end(submitted.provider_batch_id, 3)
        assert progress.failed == 3

        results = harness.results(submitted.provider_batch_id, progress)
        assert sorted(results) == [f"{shape}-{i}" for i in range(3)], shape
        for result in results.values():
            assert result.status is ItemStatus.FAILED, shape
            assert result.error is not None and result.error.retryable, (shape, result.error)
            assert result.error.code in harness.item_error_codes, result.error
            assert result.output_text is None and result.usage is None


@pytest.mark.parametrize("poison", ["nul", "lone_surrogate", "huge_usage"])
def test_answers_a_database_may_refuse_arrive_as_sent_with_their_line_numbers(
        harness: ProviderHarness, poison: str) -> None:
    """Valid result lines holding NUL, half a UTF-16 pair or 10^20 tokens come through the SDK
    intact; ``domain.storable`` then escapes the text (the success stands) or fails the item
    naming its line."""
    tag = harness.new_tag()
    harness.fault("poison_output", tag=tag, rate=1.0, poison=poison)
    submitted = harness.submit(harness.requests(3, prefix=poison.replace("_", "-")), tag=tag)
    results = harness.results(submitted.provider_batch_id,
                              harness.run_to_end(submitted.provider_batch_id, 3))

    assert sorted(r.line or 0 for r in results.values()) == [1, 2, 3]
    for result in results.values():
        assert result.status is ItemStatus.SUCCEEDED
        stored = storable_result(result)
        if poison == "huge_usage":
            assert result.usage is not None and result.usage.input_tokens >= 10**20
            assert stored.result.status is ItemStatus.FAILED
            assert stored.result.error is not None
            assert stored.result.error.code == "result_unstorable"
            assert stored.result.error.message.startswith(f"result line {result.line}: usage.")
        else:
            assert result.output_text is not None
            assert result.output_text.endswith({"nul": "\x00", "lone_surrogate": "\ud800"}[poison])
            assert stored.escaped and stored.result.status is ItemStatus.SUCCEEDED
            assert stored.result.output_text == result.output_text[:-1] + "\ufffd"


def test_a_4xx_at_create_is_a_permanent_error(harness: ProviderHarness) -> None:
    harness.fault("http", operation="create", status=400, times=1,
                  message="Invalid 'metadata': too many keys.")
    tag = harness.new_tag()
    with pytest.raises(PermanentProviderError) as err:
        harness.submit(harness.requests(2), tag=tag)
    assert err.value.provider == harness.name
    assert err.value.status_code == 400
    assert not err.value.retryable
    assert "too many keys" in str(err.value)
    assert harness.adapter.find_by_tag(tag) is None


def test_a_5xx_surfaces_as_transient_and_the_next_call_succeeds(
        harness: ProviderHarness) -> None:
    tag = harness.new_tag()
    submitted = harness.submit(harness.requests(2), tag=tag)
    harness.fault("http", operation="poll", tag=tag, status=503, times=1)

    with pytest.raises(TransientProviderError) as err:
        harness.adapter.poll(submitted.provider_batch_id)
    assert (err.value.provider, err.value.status_code, err.value.retryable) == (
        harness.name, 503, True)
    assert harness.adapter.poll(submitted.provider_batch_id).provider_status


def test_a_5xx_at_create_is_transient_and_a_resubmission_succeeds(
        harness: ProviderHarness) -> None:
    harness.fault("http", operation="create", status=502, times=1)
    tag = harness.new_tag()
    with pytest.raises(TransientProviderError):
        harness.submit(harness.requests(2), tag=tag)
    assert harness.adapter.find_by_tag(tag) is None  # nothing to adopt: safe to re-submit

    submitted = harness.submit(harness.requests(2), tag=tag)
    found = harness.adapter.find_by_tag(tag)
    assert found is not None and found.provider_batch_id == submitted.provider_batch_id


def test_a_429_carries_retry_after_and_the_sdk_does_not_retry_by_itself(
        harness: ProviderHarness) -> None:
    tag = harness.new_tag()
    submitted = harness.submit(harness.requests(2), tag=tag)
    harness.fault("http", operation="poll", tag=tag, status=429, retry_after_s=0.25, times=1)
    before = harness.calls("poll")

    with pytest.raises(RateLimitedError) as err:
        harness.adapter.poll(submitted.provider_batch_id)
    assert err.value.retry_after == pytest.approx(0.25)
    assert (err.value.status_code, err.value.provider) == (429, harness.name)
    assert harness.calls("poll") == before + 1  # sdk_max_retries=0: one call, no hidden retry
    assert harness.adapter.poll(submitted.provider_batch_id).provider_status


def test_a_client_timeout_is_transient(harness: ProviderHarness) -> None:
    tag = harness.new_tag()
    submitted = harness.submit(harness.requests(1), tag=tag)
    impatient = harness.make_adapter(timeout_s=0.2)
    harness.fault("delay", operation="poll", tag=tag, delay_s=1.0, times=1)
    with pytest.raises(TransientProviderError) as err:
        impatient.poll(submitted.provider_batch_id)
    assert err.value.code == "timeout"


def test_cancel_keeps_the_partial_results(harness: ProviderHarness) -> None:
    n = 40
    submitted = harness.submit(harness.requests(n), tag=harness.new_tag())
    harness.advance(harness.timing()["validate_s"] + harness.run_seconds(n) / 2)

    cancelling = harness.adapter.cancel(submitted.provider_batch_id)
    assert not cancelling.ended or cancelling.provider_status == "cancelled"
    progress = harness.run_to_end(submitted.provider_batch_id, n)
    assert progress.provider_status in ("cancelled", "canceled", "ended")

    results = harness.results(submitted.provider_batch_id, progress)
    done = [r for r in results.values() if r.status is ItemStatus.SUCCEEDED]
    cancelled = [r for r in results.values() if r.status is ItemStatus.CANCELLED]
    assert 0 < len(done) < n
    assert len(done) == progress.completed
    assert len(done) + len(cancelled) == len(results) <= n
    for result in cancelled:
        assert result.error is not None and result.error.retryable

    assert progress.failure is None  # cancelled on request: not a failure
    again = harness.adapter.cancel(submitted.provider_batch_id)  # already ended: not an error
    assert again.ended


def test_expiry_keeps_the_partial_results(harness: ProviderHarness) -> None:
    n, tag = 40, harness.new_tag()
    harness.fault("expire", tag=tag, at_fraction=0.5)
    submitted = harness.submit(harness.requests(n), tag=tag)
    progress = harness.run_to_end(submitted.provider_batch_id, n)
    assert progress.provider_status == harness.expired_status

    results = harness.results(submitted.provider_batch_id, progress)
    done = [r for r in results.values() if r.status is ItemStatus.SUCCEEDED]
    expired = [r for r in results.values() if r.status is ItemStatus.EXPIRED]
    assert 0 < len(done) < n
    assert len(done) + len(expired) == n
    for result in expired:
        assert result.error is not None and result.error.retryable
        assert result.error.code == "batch_expired"


def test_a_batch_that_fails_validation_reports_why_and_yields_no_results(
        batch_failure_harness: ProviderHarness) -> None:
    harness = batch_failure_harness
    tag = harness.new_tag()
    harness.fault("fail_batch", tag=tag, code="invalid_json_line",
                  message="Line 1 is not parseable as valid JSON.")
    submitted = harness.submit(harness.requests(2), tag=tag)
    progress = harness.run_to_end(submitted.provider_batch_id, 2)
    failure = progress.failure
    assert progress.ended and failure is not None
    assert (failure.kind, failure.retryable, failure.items_ran) == (
        FailureKind.INVALID_INPUT, False, False)
    assert failure.code == "invalid_json_line"
    assert "not parseable" in failure.message
    assert harness.results(submitted.provider_batch_id, progress) == {}


def test_a_batch_the_provider_never_issued_is_gone(harness: ProviderHarness) -> None:
    with pytest.raises(ResourceGoneError) as err:
        harness.adapter.poll(harness.unknown_batch_id)
    assert err.value.provider == harness.name and not err.value.retryable


def test_results_the_provider_no_longer_has_are_gone_not_retryable(
        harness: ProviderHarness) -> None:
    """Deleted or past retention: a fetch that retried would retry forever."""
    submitted = harness.submit(harness.requests(3), tag=harness.new_tag())
    progress = harness.run_to_end(submitted.provider_batch_id, 3)
    harness.forget_results(harness.adapter, submitted.provider_batch_id, progress)

    with pytest.raises(ResourceGoneError) as err:
        list(harness.adapter.iter_results(submitted.provider_batch_id, progress))
    assert err.value.provider == harness.name and not err.value.retryable


def test_find_by_tag_adopts_the_batch_carrying_the_tag(harness: ProviderHarness) -> None:
    tag = harness.new_tag()
    submitted = harness.submit(harness.requests(1), tag=tag)
    harness.submit(harness.requests(1), tag=harness.new_tag())  # a newer, unrelated batch

    found = harness.adapter.find_by_tag(tag)
    assert found is not None
    assert found.provider_batch_id == submitted.provider_batch_id
    assert harness.adapter.find_by_tag(harness.new_tag()) is None


def test_a_large_result_file_is_streamed_line_by_line(harness: ProviderHarness) -> None:
    n = 8_000
    counting = CountingTransport()
    adapter = harness.make_adapter(transport=counting)
    submitted = harness.submit(harness.requests(n, max_tokens=100), tag=harness.new_tag(),
                               adapter=adapter)
    progress = harness.run_to_end(submitted.provider_batch_id, n)

    stream = adapter.iter_results(submitted.provider_batch_id, progress)
    counting.received = 0
    first = next(stream)
    received_at_first = counting.received
    seen = {first.provider_key} | {result.provider_key for result in stream}
    total = counting.received

    assert len(seen) == n
    assert total > 2_000_000, total  # the file is big enough for the check to mean something
    assert received_at_first < total / 4, (received_at_first, total)


# Every scenario above that takes ``harness``: what a provider package outside llmbatch runs too.
EVERY_PROVIDER: tuple[Callable[..., None], ...] = (
    test_a_batch_runs_to_completion_and_every_result_is_read,
    test_a_partly_failed_batch_separates_permanent_and_retryable_failures,
    test_per_item_provider_errors_are_retryable_in_every_error_shape,
    test_a_4xx_at_create_is_a_permanent_error,
    test_a_5xx_surfaces_as_transient_and_the_next_call_succeeds,
    test_a_5xx_at_create_is_transient_and_a_resubmission_succeeds,
    test_a_429_carries_retry_after_and_the_sdk_does_not_retry_by_itself,
    test_a_client_timeout_is_transient,
    test_cancel_keeps_the_partial_results,
    test_expiry_keeps_the_partial_results,
    test_a_batch_the_provider_never_issued_is_gone,
    test_results_the_provider_no_longer_has_are_gone_not_retryable,
    test_find_by_tag_adopts_the_batch_carrying_the_tag,
    test_a_large_result_file_is_streamed_line_by_line,
)
