"""The contract every provider adapter fulfils.

An adapter is constructed with its ``ProviderConfig`` (key, base URL, timeouts, SDK retries,
and ``options``, the keys only it reads, checked by its ``options_model``); it never reads the
environment. It speaks provider-neutral values (``domain.models``) to the service layer: a
``BatchPhase`` and a ``BatchFailure`` rather than its vendor's status words and error codes,
and errors of ``llmbatch.errors`` translated from its SDK's exceptions in one place (it alone
knows which answers mean ``ResourceGoneError`` or ``QuotaExceededError``). Limits,
capabilities and the latency prior are class attributes; config can only lower limits
(``effective_limits``) and may override the prior (``polling.priors.<name>``).

A provider is a package that registers its class in the ``llmbatch.providers`` entry-point
group; nothing outside it names the provider.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError

from llmbatch.config import (
    GENERIC_LATENCY_PRIOR,
    LatencyPrior,
    ProviderConfig,
    RetentionConfig,
    format_validation_error,
)
from llmbatch.domain.model_rules import ModelRules
from llmbatch.domain.models import (
    BatchProgress,
    Endpoint,
    ItemResult,
    RequestLine,
    SubmittedBatch,
)
from llmbatch.domain.retention import Deletion
from llmbatch.errors import AuthenticationError, ConfigError, InputError, ProviderError
from llmbatch.pricing.windows import catalogue_context_window
from llmbatch.providers.webhooks import WebhookNotice, WebhooksUnsupported

# Endpoints whose requests a context window does not bound as a whole (each embedding input
# is limited on its own; moderation models are not in the catalogue's sense generative).
_NO_WINDOW = frozenset({Endpoint.EMBEDDINGS, Endpoint.MODERATIONS})

__all__ = ["BatchLimits", "BatchProvider", "EncodedLine", "PlainEncoder", "ProviderOptions",
           "output_limit"]


class ProviderOptions(BaseModel):
    """Base of a provider's options model (``providers.<name>.options``): frozen, and an
    unknown key is an error, as everywhere in the configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class BatchLimits:
    """What one provider batch may hold."""

    max_requests: int
    max_bytes: int
    max_tokens: int | None = None  # the model's enqueued-token quota, when one is configured


class EncodedLine(NamedTuple):
    """One item in the provider's wire format, with the key the provider will echo back. A
    named tuple (immutable, cheap to make): one is made for every line of every job."""

    provider_key: str
    data: bytes  # one JSON object, no trailing newline


# A job's encoder of plain chat lines (``BatchProvider.plain_encoder``): the request and its
# body as ``orjson`` writes it, to the line.
PlainEncoder = Callable[[RequestLine, bytes], EncodedLine]


class BatchProvider(abc.ABC):
    """Base class of provider adapters."""

    name: ClassVar[str]
    label: ClassVar[str] = ""  # the vendor's name for people ("OpenAI"); defaults to ``name``
    max_requests: ClassVar[int]
    max_bytes: ClassVar[int]
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.CHAT})
    # How long the provider may take before it must have ended a batch (its own expiry).
    deadline_s: ClassVar[float] = 24 * 3600
    # Batches carry no tag at this provider: the registry hands the adapter the durable
    # submission journal (``journal=`` keyword) so that adoption survives a dead worker.
    needs_submit_journal: ClassVar[bool] = False
    # HTTP requests one operation makes at most (``submit``, ``find_by_tag``, ``poll``,
    # ``cancel``, ``fetch``, ``cleanup``); the per-minute call cap charges this many. Missing
    # operations cost 1. Pages of a listing beyond the first are not counted.
    call_costs: ClassVar[Mapping[str, int]] = MappingProxyType({})
    # The keys of ``providers.<name>.options`` and their checks; a subclass declares its own
    # model and narrows ``options`` to it.
    options_model: ClassVar[type[ProviderOptions]] = ProviderOptions
    # The keys a single job may set on top of ``options`` (``submit --beta``, the API's job
    # fields), merged by ``for_job``; None: the provider takes no per-job options.
    job_options_model: ClassVar[type[ProviderOptions] | None] = None
    # Whether the provider counts the requested output inside the context window (it refuses
    # a request whose prompt plus max output exceed it) or limits the prompt alone.
    window_counts_output: ClassVar[bool] = True
    # What this provider's batches usually take, for the adaptive poller.
    latency_prior: ClassVar[LatencyPrior] = GENERIC_LATENCY_PRIOR
    # Pricing (docs/cost.md): this provider's id in the genai-prices catalogue (None: prices
    # come from config only), and the share of the synchronous price a batch request is billed
    # for models whose batch prices the catalogue does not list.
    price_catalogue_id: ClassVar[str | None] = None
    batch_price_factor: ClassVar[Decimal] = Decimal("0.5")

    # The batch events the provider can push (``read_webhook``), to subscribe to when
    # registering llmbatch's endpoint with it; empty: it sends none llmbatch reads.
    webhook_events: ClassVar[frozenset[str]] = frozenset()

    # Every call needs an API key (``require_api_key``): a job is refused at submit without
    # one instead of failing at its first provider call.
    requires_api_key: ClassVar[bool] = False

    def __init__(self, config: ProviderConfig) -> None:
        """Raises ``ConfigError`` (``providers.<name>.options.<key>: message`` problems) when
        ``config.options`` does not fit ``options_model``."""
        self.config = config
        self.options: ProviderOptions = self.read_options(
            config.options, where=f"providers.{self.name}.options")

    @classmethod
    def read_options(cls, values: Mapping[str, Any], *, where: str) -> ProviderOptions:
        """``values`` checked by ``options_model``; problems are reported under ``where``."""
        try:
            return cls.options_model.model_validate(dict(values))
        except ValidationError as exc:
            raise ConfigError(f"{where}: invalid options",
                              format_validation_error(exc, where)) from exc

    def job_options(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Per-job options checked by ``job_options_model`` (``InputError`` naming the key
        otherwise), as the JSON to store with the job; empty ``values`` are always fine."""
        if not values:
            return {}
        if self.job_options_model is None:
            raise InputError(f"provider {self.name!r} takes no per-job options "
                             f"({', '.join(sorted(values))})", field=sorted(values)[0])
        try:
            checked = self.job_options_model.model_validate(dict(values))
        except ValidationError as exc:
            first = format_validation_error(exc)[0]
            where, _, message = first.partition(": ")
            raise InputError(message, field=where) from None
        return checked.model_dump(mode="json", exclude_defaults=True)

    def for_job(self, job_options: Mapping[str, Any]) -> BatchProvider:
        """This adapter as one job sees it: its ``options`` with the job's own (stored by
        ``job_options``) merged in. A shallow copy sharing the client and journal; ``self``
        when the job set none."""
        if not job_options:
            return self
        view = copy.copy(self)
        view.options = self.merge_job_options(job_options)
        return view

    def merge_job_options(self, job_options: Mapping[str, Any]) -> ProviderOptions:
        """``options`` with the job's values; a provider whose job options add to a
        configured list (not replace it) overrides this."""
        return self.options.model_copy(update=dict(job_options))

    def model_rules(self, model: str, *, endpoint: Endpoint) -> ModelRules:
        """What ``model`` certainly refuses (``domain.model_rules``). The default knows the
        context window from the price catalogue (``price_catalogue_id``); an adapter adds
        its vendor's refused parameters, endpoints and output caps."""
        window = (catalogue_context_window(self.price_catalogue_id, model)
                  if self.price_catalogue_id and endpoint not in _NO_WINDOW else None)
        if window is None:
            return ModelRules(model=model, window_counts_output=self.window_counts_output)
        return ModelRules(model=model, context_window=window[0], sources=(window[1],),
                          window_counts_output=self.window_counts_output)

    @property
    def display_name(self) -> str:
        return self.label or self.name

    def require_api_key(self) -> str:
        """The API key from config (the variable it names, or the literal); its absence is an
        ``AuthenticationError`` that says what to set. Adapters call this when they build their
        client, on first use, so a worker that never talks to a provider needs no key for it."""
        key = self.config.resolved_api_key()
        if key:
            return key
        env = self.config.api_key_env
        where = f"providers.{self.name}.api_key_env"
        hint = (f"set the environment variable {env} (named by {where})" if env else
                f"set {where} to the name of the environment variable that holds the key")
        raise AuthenticationError(f"no {self.display_name} API key: {hint}", provider=self.name,
                                  code="missing_api_key")

    def max_output_tokens(self, request: RequestLine, *, endpoint: Endpoint) -> int | None:
        """The most output tokens ``request`` may produce (what bounds its cost), or None when
        it sets no limit and the provider has no default. Embeddings and moderations produce
        none. This reads the neutral body's ``max_completion_tokens`` / ``max_tokens`` /
        ``max_output_tokens`` (also an OpenAI-style native body's); a provider with its own
        native field or default overrides it."""
        if endpoint in (Endpoint.EMBEDDINGS, Endpoint.MODERATIONS):
            return 0
        body = request.native if request.native is not None else request.body
        return output_limit(body, "max_completion_tokens", "max_tokens", "max_output_tokens")

    def native_problems(self, native: Mapping[str, Any], *, endpoint: Endpoint,
                        model: str) -> list[InputError]:
        """Where a ``native`` body departs from the provider's own request description
        (fields named ``native.…``), checked at submit, so that one bad native line is refused
        there and never fails its neighbours inside a provider batch. The default checks
        nothing; built-in adapters check their vendored schema (``llmbatch.schemas``)."""
        return []

    def effective_limits(self, model: str) -> BatchLimits:
        """Provider limits, lowered (never raised) by config. Worked out once per model and
        configuration: ``encode`` asks for every line of a job."""
        memo: dict[str, tuple[ProviderConfig, BatchLimits]] | None = vars(self).get(
            "_limits_memo")
        if memo is None:
            memo = {}
            vars(self)["_limits_memo"] = memo
        known = memo.get(model)
        if known is not None and known[0] is self.config:
            return known[1]
        limits = self._effective_limits(model)
        memo[model] = (self.config, limits)
        return limits

    def _effective_limits(self, model: str) -> BatchLimits:
        max_requests = self.max_requests
        max_bytes = self.max_bytes
        if self.config.limits.max_requests:
            max_requests = min(max_requests, self.config.limits.max_requests)
        if self.config.limits.max_bytes:
            max_bytes = min(max_bytes, self.config.limits.max_bytes)
        model_cfg = self.config.model(model)
        if model_cfg and model_cfg.max_requests:
            max_requests = min(max_requests, model_cfg.max_requests)
        # Enqueued-token quotas depend on the account's tier, so the provider class cannot
        # know them: config is the only source.
        max_tokens = model_cfg.enqueued_token_limit if model_cfg else None
        return BatchLimits(max_requests=max_requests, max_bytes=max_bytes, max_tokens=max_tokens)

    def call_cost(self, operation: str) -> int:
        """Calls per minute charged for one ``operation`` (see ``call_costs``)."""
        return self.call_costs.get(operation, 1)

    def limit_problems(self) -> list[str]:
        """Config limits that try to *raise* one of the provider's own: ``path: message``
        lines. The registry refuses such a config when it builds the adapter, so a typo'd
        limit is reported instead of silently clamped."""
        problems = []
        own = {"max_requests": self.max_requests, "max_bytes": self.max_bytes}
        for key, value in (("max_requests", self.config.limits.max_requests),
                           ("max_bytes", self.config.limits.max_bytes)):
            if value is not None and value > own[key]:
                problems.append(f"providers.{self.name}.limits.{key}: {value} is above the "
                                f"provider's own limit of {own[key]} (config can only lower it)")
        for index, model in enumerate(self.config.models):
            if model.max_requests is not None and model.max_requests > self.max_requests:
                problems.append(
                    f"providers.{self.name}.models[{index}].max_requests: {model.max_requests} "
                    f"is above the provider's own limit of {self.max_requests} (config can "
                    "only lower it)")
        return problems

    @abc.abstractmethod
    def encode(self, request: RequestLine, *, endpoint: Endpoint, model: str) -> EncodedLine:
        """The request in the provider's batch-line format.

        Called for every line when a job is created, before anything is stored (and again
        when the batch file is built): anything that cannot be sent faithfully raises
        ``InputError`` naming the field, and the caller adds file and line.
        """

    def plain_encoder(self, *, endpoint: Endpoint, model: str) -> PlainEncoder:
        """``encode`` for the plain chat lines of one job (``domain.plain_chat``: text
        messages, a few numeric settings, no ``model``), which the intake reads for nearly
        every line of a chat job. Asked once per job, so that what every line shares (limits,
        the line's frame) is worked out once. The encoder is given the request and its body as
        ``orjson`` writes it (the intake stores those bytes too), for an adapter that writes
        the body as it is. It may skip the checks such a line cannot fail; its result must be
        ``encode``'s (``tests/unit/test_plain_chat.py`` holds every built-in adapter to it).
        The default is ``encode``."""

        def encode(request: RequestLine, body_json: bytes) -> EncodedLine:
            return self.encode(request, endpoint=endpoint, model=model)

        return encode

    @abc.abstractmethod
    def submit(self, lines: Iterable[bytes], *, tag: str, endpoint: Endpoint,
               model: str) -> SubmittedBatch:
        """Send one batch (``lines`` are ``EncodedLine.data`` values, streamed) tagged with
        ``tag`` so that ``find_by_tag`` can adopt it after a crash."""

    @abc.abstractmethod
    def find_by_tag(self, tag: str) -> SubmittedBatch | None:
        """The provider's batch carrying ``tag``, if one exists."""

    @abc.abstractmethod
    def poll(self, provider_batch_id: str) -> BatchProgress:
        """Phase and progress of a provider batch, with the ``BatchFailure`` of one that ended
        failed. A batch the provider no longer has raises ``ResourceGoneError``."""

    @abc.abstractmethod
    def iter_results(self, provider_batch_id: str, progress: BatchProgress) -> Iterator[ItemResult]:
        """Stream the results of an ended batch, one item at a time, never all in memory.

        Results the provider no longer has (deleted, expired) raise ``ResourceGoneError``,
        possibly after some were yielded: the caller settles the rest as without a result.
        """

    @abc.abstractmethod
    def cancel(self, provider_batch_id: str) -> BatchProgress:
        """Ask the provider to cancel; partial results stay fetchable."""

    def progress_if_ended(self, provider_batch_id: str, refused: ProviderError) -> BatchProgress:
        """After the provider refused a cancel: the progress of a batch that already ended
        (cancelling it is not an error, so a late user cancel cannot fail a finished job's
        cleanup); ``refused`` is raised again for any other status or a batch still running."""
        if refused.status_code not in (400, 409):
            raise refused
        progress = self.poll(provider_batch_id)
        if not progress.ended:
            raise refused
        return progress

    def read_webhook(self, secret: str, body: bytes,
                     headers: Mapping[str, str]) -> WebhookNotice | None:
        """Verify one webhook delivery with the vendor's scheme and ``secret`` (from config),
        and name the batch it is about (None: an event about something else). Raises
        ``WebhookRejected`` (``providers.webhooks``) for a forged, stale or malformed one.
        The default: this provider sends no webhooks llmbatch reads."""
        raise WebhooksUnsupported(f"{self.display_name} sends no batch webhooks")

    def submit_for_job(self, lines: Iterable[bytes], *, tag: str, endpoint: Endpoint,
                       model: str, retention: RetentionConfig) -> SubmittedBatch:
        """``submit`` for a job with its ``retention``: an adapter whose provider takes expiry
        settings at submit overrides this to pass them (``retention_problems`` has refused
        them for the others, so the default can ignore them)."""
        return self.submit(lines, tag=tag, endpoint=endpoint, model=model)

    def retention_problems(self, retention: RetentionConfig, *, where: str) -> list[str]:
        """``where.field: message`` lines for settings of ``retention`` this provider cannot
        honour, checked when the adapter is built (config) and when a job is created (its
        own ``retention``). The default: no expiry settings (deletion is all there is)."""
        return [f"{where}.{key}: {self.display_name} batches take no expiry setting (leave "
                "it unset; delete_when_stored deletes the provider's copy once the results are "
                "stored)"
                for key in ("input_expires_after_s", "output_expires_after_s")
                if getattr(retention, key) is not None]

    def cleanup(self, provider_batch_id: str, progress: BatchProgress) -> list[Deletion]:
        """Delete what the provider keeps of an ended batch (the batch itself where it can be
        deleted, its input and result files), once the results are stored and the job's
        retention says so. Every object is tried; each outcome is returned, failures
        included (an object already gone is ``GONE``), never raised: the service records
        them and tries the failed ones again a bounded number of times. Optional: the default
        deletes nothing."""
        return []

    def preload(self) -> None:  # noqa: B027
        """Import now what the adapter's first provider call would import (its SDK). A
        prefork worker's parent calls it before forking, so its children share those modules'
        pages instead of each importing its own copy. Builds no client. Optional."""

    def close(self) -> None:  # noqa: B027
        """Release what the adapter holds (pooled connections). Long-lived workers keep one
        adapter per process; whoever builds short-lived ones (tests, one-off commands) closes
        them. Optional."""


def output_limit(body: Mapping[str, Any] | None, *keys: str) -> int | None:
    """The first of ``keys`` in ``body`` holding a positive integer."""
    if not isinstance(body, (dict, Mapping)):
        return None
    for key in keys:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
