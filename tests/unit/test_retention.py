"""Retention rules without I/O: the state and timeline entries a deletion attempt leaves, the
backoff between attempts, and which settings each built-in provider accepts (a value it
cannot honour is a configuration error naming the key)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmbatch.config import AppConfig, RetentionConfig
from llmbatch.domain.retention import (
    CleanupState,
    Deletion,
    DeletionOutcome,
    cleanup_events,
    retry_delay_s,
)
from llmbatch.errors import ConfigError
from llmbatch.providers.registry import ProviderRegistry

AT = datetime(2026, 1, 1, tzinfo=UTC)
OK = Deletion("input_file", "file-1", DeletionOutcome.DELETED)
GONE = Deletion("output_file", "file-2", DeletionOutcome.GONE)
BROKEN = Deletion("error_file", "file-3", DeletionOutcome.FAILED, error="HTTP 503")


def test_an_attempt_reports_what_was_deleted_and_each_failure() -> None:
    state, events = cleanup_events("job", "pb", AT, [OK, GONE, BROKEN], attempt=1,
                                   max_attempts=3)
    assert state is CleanupState.PENDING
    assert [e.type for e in events] == ["batch.provider_data_deleted",
                                        "batch.provider_data_delete_failed"]
    assert events[0].data == {"attempt": 1, "objects": [
        {"kind": "input_file", "id": "file-1", "outcome": "deleted"},
        {"kind": "output_file", "id": "file-2", "outcome": "gone"}]}
    assert events[1].data == {"kind": "error_file", "id": "file-3", "outcome": "failed",
                              "error": "HTTP 503", "attempt": 1, "max_attempts": 3,
                              "will_retry": True}
    assert cleanup_events("job", "pb", AT, [BROKEN], attempt=3, max_attempts=3)[0] \
        is CleanupState.FAILED
    assert cleanup_events("job", "pb", AT, [OK], attempt=2, max_attempts=3) == (
        CleanupState.DELETED, [events[0].__class__(
            job_id="job", type=events[0].type, at=AT, batch_id="pb",
            data={"objects": [OK.as_dict()], "attempt": 2})])
    assert cleanup_events("job", "pb", AT, [], attempt=1, max_attempts=3) == (
        CleanupState.DELETED, [])


def test_attempts_back_off_to_an_hour() -> None:
    assert [retry_delay_s(n) for n in (1, 2, 3, 4, 9)] == [60, 240, 960, 3600, 3600]


def _registry(name: str, **retention: int | bool) -> ProviderRegistry:
    return ProviderRegistry(AppConfig.model_validate({"providers": {name: {
        "api_key": "k", "retention": retention}}}))


@pytest.mark.parametrize(("name", "retention", "problem"), [
    ("openai", {"output_expires_after_s": 3599},
     "providers.openai.retention.output_expires_after_s: 3599 is outside OpenAI's range, "
     "3600 to 2592000 seconds"),
    ("openai", {"input_expires_after_s": 2_592_001},
     "providers.openai.retention.input_expires_after_s: 2592001 is outside OpenAI's range, "
     "86400 to 2592000 seconds (the input must outlive the batch's 24 h window)"),
    ("anthropic", {"output_expires_after_s": 3600},
     "providers.anthropic.retention.output_expires_after_s: Anthropic batches take no expiry "
     "setting (leave it unset; delete_when_stored deletes the provider's copy once the "
     "results are stored)"),
    ("gemini", {"input_expires_after_s": 86400},
     "providers.gemini.retention.input_expires_after_s: Gemini batches take no expiry "
     "setting (leave it unset; delete_when_stored deletes the provider's copy once the "
     "results are stored)"),
])
def test_settings_a_provider_cannot_honour_are_config_errors(
        name: str, retention: dict[str, int], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        _registry(name, **retention).get(name)
    assert err.value.problems == [problem]


def test_openai_takes_expiries_within_its_bounds() -> None:
    registry = _registry("openai", input_expires_after_s=86400,
                         output_expires_after_s=2_592_000, delete_when_stored=False)
    assert registry.get("openai").config.retention == RetentionConfig(
        delete_when_stored=False, input_expires_after_s=86400, output_expires_after_s=2_592_000)
