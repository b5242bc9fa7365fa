"""Configuration: ``llm_config.yaml`` validated into frozen pydantic models.

Loaded once at start-up (``load_config``) and passed down; nothing reads it at import time.
Unknown keys are errors. Environment variables override the database URL
(``LLMBATCH_DATABASE_URL``), the broker URL (``LLMBATCH_BROKER_URL``) and each provider's API
key (the variable named by ``providers.<name>.api_key_env``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from llmbatch.api.settings import ApiConfig
from llmbatch.config_checks import check_broker_url, check_database_url, read_yaml_mapping
from llmbatch.cost_config import CostConfig
from llmbatch.errors import ConfigError
from llmbatch.observability.privacy import PrivacyConfig
from llmbatch.webhooks.settings import WebhooksConfig

__all__ = [
    "GENERIC_LATENCY_PRIOR",
    "AppConfig",
    "BrokerConfig",
    "DatabaseConfig",
    "LatencyPrior",
    "ModelConfig",
    "PollingConfig",
    "ProviderConfig",
    "ProviderLimits",
    "RateLimits",
    "RetentionConfig",
    "RetryConfig",
    "WorkerConfig",
    "format_validation_error",
    "load_config",
]

DEFAULT_DATA_DIR = Path(".llmbatch")
CONFIG_ENV = "LLMBATCH_CONFIG"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Frozen):
    """Where jobs live. SQLite (embedded default) or PostgreSQL (scale-out)."""

    url: Annotated[str, AfterValidator(check_database_url)] = \
        f"sqlite:///{DEFAULT_DATA_DIR}/llmbatch.db"
    echo: bool = False
    busy_timeout_ms: int = Field(30_000, gt=0)


class BrokerConfig(_Frozen):
    """Celery broker. The embedded default is kombu's SQLAlchemy transport on SQLite."""

    url: Annotated[str, AfterValidator(check_broker_url)] = \
        f"sqla+sqlite:///{DEFAULT_DATA_DIR}/broker.db"
    polling_interval_s: float = Field(0.2, gt=0)
    socket_timeout_s: float = Field(
        5.0, gt=0, description="Redis: how long a publish or a connect waits for the broker "
                                "to answer (a broker that keeps the connection open and never "
                                "replies would otherwise hold the request forever)")


class WorkerConfig(_Frozen):
    """Worker behaviour shared by every process."""

    lease_s: float = Field(120.0, gt=0, description="How long a task owns a batch")
    tick_interval_s: float = Field(2.0, gt=0, description="Beat period of the scheduler tick")
    fetch_chunk_size: int = Field(1000, gt=0, description="Result lines written per transaction")
    # 500, not 2,000: four threads building files at once each held a chunk of parsed requests
    # (embedded 200,000 items: peak RSS 160 -> 146 MiB), and 100 queries per 50,000-line file
    # instead of 25 cost nothing measurable (benchmarks/README.md, memory pass).
    build_chunk_size: int = Field(500, gt=0, description="Items read per query for a file")
    dispatch_limit: int = Field(20_000, gt=0,
                                description="Batches a tick enqueues work for, at most")
    dispatch_messages: int = Field(
        200, gt=0, description="Task messages per kind a tick publishes, at most: beyond that "
                               "many due batches, one message carries several batch ids")


class ProviderLimits(_Frozen):
    """Per-batch limits. They can only lower the provider's own (checked at start-up)."""

    max_requests: int | None = Field(None, gt=0)
    max_bytes: int | None = Field(None, gt=0)


class RateLimits(_Frozen):
    """Caps on what all workers together do to one provider (held in the database, so they
    apply across processes and machines). Every key is optional: unset means no cap.

    ``calls_per_minute`` is enforced as a token bucket holding a tenth of it: no window of 60 s
    ever sees more calls than this. ``max_concurrent_calls`` counts API operations in flight
    (a download streams inside one). ``max_batches_in_flight`` counts batches submitting, in
    progress or cancelling at the provider; further batches wait in ``planned``.
    """

    calls_per_minute: int | None = Field(None, gt=0)
    max_concurrent_calls: int | None = Field(None, gt=0)
    max_batches_in_flight: int | None = Field(None, gt=0)
    max_wait_s: float = Field(
        2.0, ge=0, le=30,
        description="How long a task waits for a call slot before handing back to the tick")
    quota_hold_s: float = Field(
        60.0, ge=0, description="After a batch failed for quota (the provider's queue was "
                                "full), how long submissions for that model pause")
    recheck_s: float = Field(
        10.0, gt=0, description="How often a batch waiting for quota is looked at again "
                                "(it is also woken when an earlier batch ends)")


class ModelConfig(_Frozen):
    """A model a provider may be asked for, with optional per-model limits and prices."""

    name: str = Field(min_length=1)
    max_requests: int | None = Field(None, gt=0)
    enqueued_token_limit: int | None = Field(None, gt=0)
    # Synchronous list prices (USD per million tokens) for a model the price catalogue lacks
    # or prices wrongly (a private or fine-tuned model); they replace the catalogue's for this
    # model. Input is required; output unset means 0 (an embeddings model); unset cache rates
    # bill at the input rate.
    input_usd_per_mtok: Decimal | None = Field(None, ge=0)
    output_usd_per_mtok: Decimal | None = Field(None, ge=0)
    cached_input_usd_per_mtok: Decimal | None = Field(None, ge=0)
    cache_write_usd_per_mtok: Decimal | None = Field(None, ge=0)
    cache_write_1h_usd_per_mtok: Decimal | None = Field(None, ge=0)
    batch_price_factor: Decimal | None = Field(
        None, gt=0, le=1, description="Share of the synchronous price a batch request is "
                                      "billed (default: the provider's, 0.5 for all three)")
    # Model rules checked at submit (docs/model-rules.md); each replaces what the provider
    # and the price catalogue know. refused_params: [] accepts every parameter.
    context_window: int | None = Field(None, gt=0)
    max_output_tokens: int | None = Field(None, gt=0)
    refused_params: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _prices_paired(self) -> ModelConfig:
        rates = (self.output_usd_per_mtok, self.cached_input_usd_per_mtok,
                 self.cache_write_usd_per_mtok, self.cache_write_1h_usd_per_mtok,
                 self.batch_price_factor)
        if self.input_usd_per_mtok is None and any(r is not None for r in rates):
            raise ValueError("prices need input_usd_per_mtok (the other rates refine it)")
        return self


class RetentionConfig(_Frozen):
    """How long a job's data may live at the provider (``providers.<name>.retention``, or a
    job's own ``retention``; docs/privacy.md).

    By default everything the provider keeps for a batch (its input, its results, the batch
    itself where the provider lets it be deleted) is deleted once the results are stored
    here. The expiries ask the provider to drop inputs and outputs on its own after so many
    seconds; only providers that support it accept them (the adapter checks the values and
    its bounds: ``BatchProvider.retention_problems``).
    """

    delete_when_stored: bool = Field(
        True, description="Delete the provider's copy (batch, input, results) once the "
                          "results are stored; false keeps it until the provider expires it")
    input_expires_after_s: int | None = Field(
        None, gt=0, description="Ask the provider to expire the uploaded input this long "
                                "after upload (providers that support it)")
    output_expires_after_s: int | None = Field(
        None, gt=0, description="Ask the provider to expire the result files this long "
                                "after they are written (providers that support it)")
    delete_attempts: int = Field(
        3, ge=1, le=20, description="Attempts at deleting before giving up (each failure is "
                                    "an event; the provider's own expiry remains)")


class ProviderConfig(_Frozen):
    """One provider's connection settings, limits and models: what every provider has.

    What only one provider reads sits under ``options``, checked by that provider's own
    options model when the registry builds it (unknown keys refused there), so this model
    never names a vendor.
    """

    enabled: bool = True
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    sdk_max_retries: int = Field(0, ge=0, description="SDK retries; tasks retry on their own")
    limits: ProviderLimits = ProviderLimits()
    rate_limits: RateLimits = RateLimits()
    models: tuple[ModelConfig, ...] = ()
    allow_unlisted_models: bool = False
    retention: RetentionConfig = RetentionConfig()
    stuck_grace_s: float = Field(
        3600.0, ge=0, description="A batch still running this long after the provider's own "
                                  "deadline is cancelled and its items re-batched")
    webhook_secret: SecretStr | None = None
    webhook_secret_env: str | None = Field(
        None, description="Environment variable holding the signing secret of the provider's "
                          "batch webhooks; with it (or webhook_secret) the API accepts them at "
                          "POST /v1/provider-webhooks/<name> (docs/webhooks.md)")
    options: dict[str, Any] = Field(
        default_factory=dict, description="The provider's own settings, validated by its "
                                          "options model (see docs/providers/<name>.md)")

    @model_validator(mode="before")
    @classmethod
    def _legacy_delete_files(cls, data: Any) -> Any:
        """``delete_files_after_fetch`` (before ``retention``) still reads as
        ``retention.delete_when_stored``, unless ``retention`` says it itself."""
        if isinstance(data, Mapping) and "delete_files_after_fetch" in data:
            data = dict(data)
            legacy = data.pop("delete_files_after_fetch")
            retention = dict(data.get("retention") or {})
            retention.setdefault("delete_when_stored", legacy)
            data["retention"] = retention
        return data

    @model_validator(mode="after")
    def _unique_models(self) -> ProviderConfig:
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model listed twice: {', '.join(dupes)}")
        return self

    def model(self, name: str) -> ModelConfig | None:
        """The configured entry for ``name``, if any."""
        return next((m for m in self.models if m.name == name), None)

    def resolved_api_key(self) -> str | None:
        """The API key: from the environment variable named in config, else the literal."""
        if self.api_key_env and os.environ.get(self.api_key_env):
            return os.environ[self.api_key_env]
        return self.api_key.get_secret_value() if self.api_key else None

    def resolved_webhook_secret(self) -> str | None:
        """The webhook signing secret: from the environment variable named, else the literal."""
        if self.webhook_secret_env and os.environ.get(self.webhook_secret_env):
            return os.environ[self.webhook_secret_env]
        return self.webhook_secret.get_secret_value() if self.webhook_secret else None


class LatencyPrior(_Frozen):
    """What a provider's batches usually take: a log-normal of the time to completion.

    The adaptive poller leans on it while a batch shows no progress (always, for providers
    whose counters stay still until the end). Each provider class carries its own
    (``BatchProvider.latency_prior``); ``polling.priors.<name>`` overrides it. See
    ``docs/polling.md`` for the defaults' sources.
    """

    median_s: float = Field(gt=0, description="Median time from submission to completion")
    sigma: float = Field(gt=0, le=4, description="Spread: standard deviation of ln(time)")
    finalize_fraction: float = Field(
        0.0, ge=0, lt=1,
        description="Time after the counters are full (the finalizing phase), as a fraction "
                    "of the time elapsed")
    counts_live: bool = Field(True, description="Whether the done/total counts move while running")
    budget_scale: float = Field(
        1.0, gt=0, description="Multiplies polling.delay_budget_s for this provider")


# For a provider class that declares none.
GENERIC_LATENCY_PRIOR = LatencyPrior(median_s=1800, sigma=1.2, finalize_fraction=0.05)


class PollingConfig(_Frozen):
    """How often batches are polled. ``adaptive`` backs off between ``min_s`` and ``max_s``.

    The adaptive knobs are explained in ``docs/polling.md``; the defaults come from the
    simulation in ``benchmarks/polling_simulation.py``.
    """

    strategy: Literal["adaptive", "fixed"] = "adaptive"
    interval_s: float = Field(30.0, gt=0, description="Interval of the fixed strategy")
    min_s: float = Field(1.0, gt=0)
    max_s: float = Field(300.0, gt=0)
    delay_budget_s: float = Field(
        0.5, gt=0, description="Expected detection delay one poll may buy (adaptive)")
    growth: float = Field(
        2.0, gt=0, description="Early cap: wait at most growth x the time elapsed (adaptive)")
    jitter: float = Field(0.1, ge=0, lt=1, description="±fraction of random spread (adaptive)")
    progress_sigma: float = Field(
        0.35, gt=0, le=4, description="Uncertainty (ln-space) of a progress extrapolation")
    cancel_median_s: float = Field(
        120.0, gt=0, description="Typical time a provider takes to finish cancelling")
    priors: dict[str, LatencyPrior] = Field(
        default_factory=dict,
        description="Per-provider priors (by provider name); override the provider's own")

    def prior(self, provider: str, own: LatencyPrior) -> LatencyPrior:
        """The latency prior for ``provider``: configured, else the provider's ``own``."""
        return self.priors.get(provider) or own

    @model_validator(mode="after")
    def _ordered(self) -> PollingConfig:
        if self.min_s > self.max_s:
            raise ValueError("min_s must be <= max_s")
        return self


class RetryConfig(_Frozen):
    """Retries of provider API calls made by tasks (not items)."""

    max_attempts: int = Field(
        5, gt=0, description="Submissions failing on an unexpected (internal) error before the "
                             "batch fails; provider-side transient errors only delay work")
    base_delay_s: float = Field(1.0, gt=0)
    max_delay_s: float = Field(60.0, gt=0)
    item_max_attempts: int = Field(3, gt=0, description="Provider batches an item may ride in")
    max_call_failures: int = Field(
        60, gt=0, description="Submit, poll, cancel or fetch calls of one batch failing in a "
                              "row before llmbatch gives up on that step; with the backoff above "
                              "about 40-55 min, so a provider outage of that length is "
                              "waited out (docs/operations.md)")


class AppConfig(_Frozen):
    """The whole configuration file."""

    database: DatabaseConfig = DatabaseConfig()
    broker: BrokerConfig = BrokerConfig()
    worker: WorkerConfig = WorkerConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    polling: PollingConfig = PollingConfig()
    retry: RetryConfig = RetryConfig()
    api: ApiConfig = ApiConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    cost: CostConfig = CostConfig()

    def provider(self, name: str) -> ProviderConfig:
        """The provider's config; a provider absent from the file gets the defaults."""
        return self.providers.get(name, ProviderConfig())


def format_validation_error(exc: ValidationError, root: str = "") -> list[str]:
    """Turn pydantic's errors into ``path.to[2].field: message`` lines."""
    lines = []
    for err in exc.errors():
        path = root
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        lines.append(f"{path or '<root>'}: {msg}")
    return lines


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    for section, var in (("database", "LLMBATCH_DATABASE_URL"), ("broker", "LLMBATCH_BROKER_URL")):
        if env.get(var):
            current = data.get(section)
            if current is None:  # absent, or a YAML key whose children are all commented out
                data[section] = {"url": env[var]}
            elif isinstance(current, dict):
                data[section] = {**current, "url": env[var]}
            # anything else is left for validation to report with its path
    return data


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> AppConfig:
    """Read, override from the environment and validate. Raises ``ConfigError`` listing problems.

    ``path`` defaults to ``$LLMBATCH_CONFIG``, then ``./llm_config.yaml`` if present, else the
    built-in defaults.
    """
    env = os.environ if env is None else env
    if path is None:
        default = Path("llm_config.yaml")
        path = env.get(CONFIG_ENV) or (default if default.exists() else None)
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        data = read_yaml_mapping(Path(path)) or {}
    data = _apply_env(data, env)
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid configuration",
                          format_validation_error(exc)) from exc
