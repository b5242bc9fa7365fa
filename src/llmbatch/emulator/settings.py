"""Emulator settings: one frozen model, loadable from a YAML profile.

A profile file is simply these settings as YAML (every key optional), so one file sets
timing, limits, accepted keys and the faults active at start. Bundled profiles live in
``llmbatch/emulator/profiles/`` and can be named without a path (``fast``, ``default``,
``chaos``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from llmbatch.config import format_validation_error
from llmbatch.emulator.faults import FaultProfile
from llmbatch.errors import ConfigError

__all__ = [
    "AnthropicSettings",
    "EmulatorSettings",
    "GeminiSettings",
    "OpenAISettings",
    "TimingSettings",
    "WebhookSettings",
    "WebhookTarget",
    "bundled_profiles",
    "load_profile",
]

MiB = 1024 * 1024


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimingSettings(_Frozen):
    """How long each phase of a batch lasts, in seconds (shared by all providers).

    Run time is ``run_base_s + run_per_item_s * requests`` so large batches take longer, as
    they do for real; progress counters grow linearly over it.
    """

    validate_s: float = Field(2.0, ge=0)
    run_base_s: float = Field(8.0, ge=0)
    run_per_item_s: float = Field(0.0002, ge=0)
    finalize_s: float = Field(1.0, ge=0)
    cancel_s: float = Field(1.0, ge=0, description="How long 'cancelling' lasts")
    sync_latency_s: float = Field(
        0.0, ge=0, le=120.0,
        description="How long a synchronous call (OpenAI's POST /v1/chat/completions) takes "
                    "before answering; 0 answers at once (the emulator's own work only)")
    completion_window_s: float = Field(
        86_400.0, gt=0, description="Deadline after creation; running batches then expire"
    )

    def run_s(self, requests: int) -> float:
        """Time the in-progress phase of a batch of ``requests`` takes."""
        return self.run_base_s + self.run_per_item_s * requests


class OpenAISettings(_Frozen):
    """Limits and behaviour of the OpenAI emulator (defaults are the real service's)."""

    max_requests: int = Field(50_000, gt=0, description="Over it: batch fails, too_many_tasks")
    max_batch_bytes: int = Field(200 * MiB, gt=0, description="Batch input file size limit")
    max_file_bytes: int = Field(512 * MiB, gt=0, description="Upload size limit (any purpose)")
    enqueued_token_limits: dict[str, int] = Field(
        default_factory=dict,
        description="Enqueued prompt tokens allowed per model ('*' = any model); none if empty",
    )
    token_limit_mode: Literal["async", "sync"] = Field(
        "async", description="async: batch fails (token_limit_exceeded); sync: create gets 429"
    )
    embedding_dim: int = Field(8, gt=0, le=4096, description="Default embedding vector size")
    cancelled_requests: Literal["error_file", "omit"] = Field(
        "error_file",
        description="Unstarted requests of a cancelled batch: batch_cancelled lines, or absent",
    )
    max_reported_errors: int = Field(100, gt=0, description="Validation errors listed at most")


class AnthropicSettings(_Frozen):
    """Limits and behaviour of the Anthropic emulator (defaults are the real service's)."""

    max_requests: int = Field(100_000, gt=0, description="Requests per batch (400 over it)")
    max_body_bytes: int = Field(256 * 1000 * 1000, gt=0,
                                description="Create body size limit (413 over it)")
    api_versions: tuple[str, ...] = Field(
        ("2023-06-01", "2026-10-21"), description="Accepted anthropic-version values")


class GeminiSettings(_Frozen):
    """Limits and behaviour of the Gemini emulator (defaults are the real service's)."""

    max_inline_bytes: int = Field(20 * MiB, gt=0, description="Largest inline create request")
    max_file_bytes: int = Field(2 * 1024 * MiB, gt=0, description="Files API upload limit")
    model_prefixes: tuple[str, ...] = Field(
        ("gemini-", "gemma-"), description="Model ids accepted (others: 404 NOT_FOUND)")
    expire_after_s: float = Field(
        172_800.0, gt=0, description="Pending/running batches expire after this (48 h)")
    file_retention_s: float = Field(172_800.0, gt=0, description="Uploaded files live 48 h")
    result_retention_s: float = Field(42 * 86_400.0, gt=0, description="Result files: 6 weeks")
    unfinished_requests: Literal["error", "omit"] = Field(
        "error", description="Requests cut off by cancel/expiry: an error entry, or absent")


class WebhookTarget(_Frozen):
    """Where one provider's batch-end webhooks go, and the Standard Webhooks secret that
    signs them (``whsec_`` + base64, as OpenAI and Gemini hand out)."""

    url: str = Field(min_length=1)
    secret: SecretStr


class WebhookSettings(_Frozen):
    """Batch-end webhooks the emulator sends (``emulator/webhooks.py``); none by default."""

    openai: WebhookTarget | None = None
    gemini: WebhookTarget | None = None
    interval_s: float = Field(1.0, gt=0, description="How often ended batches are looked for")


class EmulatorSettings(_Frozen):
    """Everything the emulator can be told at start."""

    timing: TimingSettings = TimingSettings()
    openai: OpenAISettings = OpenAISettings()
    anthropic: AnthropicSettings = AnthropicSettings()
    gemini: GeminiSettings = GeminiSettings()
    faults: FaultProfile = FaultProfile()
    webhooks: WebhookSettings = WebhookSettings()
    api_keys: tuple[str, ...] | None = Field(
        None, description="Accepted API keys; None accepts any non-empty key"
    )
    seed: int = Field(0, description="Seeds ids, finish order and fault draws (outputs "
                                     "depend on request bodies alone)")
    reproducible_ids: bool = Field(
        False, description="Same seed, same ids on every start; else ids carry a random "
                           "per-start nonce and never repeat across restarts")
    data_dir: Path | None = Field(
        None, description="Where file bytes live; None = a temp dir removed at shutdown"
    )


def bundled_profiles() -> list[str]:
    """Names of the profiles shipped with the package."""
    root = resources.files("llmbatch.emulator") / "profiles"
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir()
                  if p.name.endswith(".yaml"))


def _read_profile(profile: str | Path) -> tuple[str, str]:
    path = Path(profile)
    if path.suffix in (".yaml", ".yml") or path.exists():
        try:
            return str(path), path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read emulator profile: {exc.strerror}") from exc
    bundled = resources.files("llmbatch.emulator") / "profiles" / f"{profile}.yaml"
    if not bundled.is_file():
        names = ", ".join(bundled_profiles())
        raise ConfigError(f"{profile}: no such emulator profile file or bundled profile ({names})")
    return f"<bundled {profile}>", bundled.read_text(encoding="utf-8")


def load_profile(profile: str | Path | None, **overrides: Any) -> EmulatorSettings:
    """Settings from a YAML file or a bundled profile name, then ``overrides`` on top.

    Raises ``ConfigError`` naming each bad key by its path, like ``llmbatch config validate``.
    """
    data: dict[str, Any] = {}
    source = "<defaults>"
    if profile is not None:
        source, text = _read_profile(profile)
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{source}: the top level must be a mapping")
        data = loaded or {}
    data.update(overrides)
    try:
        return EmulatorSettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid emulator profile",
                          format_validation_error(exc)) from exc
