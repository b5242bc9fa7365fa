"""Limit settings: config can only lower a provider's own limits, and rate limits are a strict
section of their own."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from llmbatch.cli.main import app
from llmbatch.config import AppConfig, ProviderConfig, RateLimits
from llmbatch.errors import ConfigError
from llmbatch.providers.registry import ProviderRegistry


def registry(**providers: dict[str, object]) -> ProviderRegistry:
    return ProviderRegistry(AppConfig.model_validate({"providers": providers}))


def test_a_limit_below_the_providers_own_is_used() -> None:
    reg = registry(openai={"limits": {"max_requests": 10, "max_bytes": 1000},
                           "models": [{"name": "m", "enqueued_token_limit": 5000}]})
    limits = reg.get("openai").effective_limits("m")
    assert (limits.max_requests, limits.max_bytes, limits.max_tokens) == (10, 1000, 5000)


def test_a_limit_above_the_providers_own_is_a_config_error_naming_the_key() -> None:
    reg = registry(openai={"limits": {"max_requests": 60_000},
                           "models": [{"name": "m", "max_requests": 70_000}]})
    with pytest.raises(ConfigError) as info:
        reg.check_limits()
    assert info.value.problems == [
        "providers.openai.limits.max_requests: 60000 is above the provider's own limit of "
        "50000 (config can only lower it)",
        "providers.openai.models[0].max_requests: 70000 is above the provider's own limit of "
        "50000 (config can only lower it)"]


def test_a_gemini_inline_threshold_above_20_mb_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        registry(gemini={"options": {"inline_max_bytes": 30_000_000}}).check_limits()
    assert [p.split(":")[0] for p in info.value.problems] == [
        "providers.gemini.options.inline_max_bytes"]


def test_options_a_provider_does_not_know_are_refused_naming_the_key() -> None:
    reg = registry(openai={"options": {"inline_max_bytes": 5}},
                   anthropic={"options": {"default_max_tokens": 0}})
    with pytest.raises(ConfigError) as info:
        reg.check_limits()
    assert info.value.problems == [
        "providers.anthropic.options.default_max_tokens: Input should be greater than 0",
        "providers.openai.options.inline_max_bytes: unknown key"]


def test_keys_of_one_provider_are_no_longer_accepted_at_the_top() -> None:
    with pytest.raises(ValidationError):
        ProviderConfig.model_validate({"api_version": "v1"})


def test_config_validate_reports_a_raised_limit(tmp_path: Path) -> None:
    path = tmp_path / "llm_config.yaml"
    path.write_text("providers:\n  anthropic:\n    limits:\n      max_bytes: 999999999999\n")
    result = CliRunner().invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 2
    assert "providers.anthropic.limits.max_bytes: 999999999999 is above" in result.output


def test_config_validate_reports_an_option_the_provider_does_not_know(tmp_path: Path) -> None:
    path = tmp_path / "llm_config.yaml"
    path.write_text("providers:\n  gemini:\n    options:\n      api_version: v1\n"
                    "      completion_window: 24h\n")
    result = CliRunner().invoke(app, ["config", "validate", str(path)])
    assert result.exit_code == 2
    assert "providers.gemini.options.completion_window: unknown key" in result.output


def test_the_example_configuration_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "llm_config.example.yaml"
    result = CliRunner().invoke(app, ["config", "validate", str(example)])
    assert result.exit_code == 0, result.output


def test_rate_limits_are_optional_and_reject_unknown_keys() -> None:
    assert ProviderConfig().rate_limits == RateLimits()
    assert RateLimits().calls_per_minute is None
    with pytest.raises(ValidationError):
        ProviderConfig.model_validate({"rate_limits": {"calls_per_second": 3}})
    with pytest.raises(ValidationError):
        ProviderConfig.model_validate({"rate_limits": {"max_concurrent_calls": 0}})
