"""Fault injection shared by every emulated provider.

A fault rule says *what* goes wrong (``kind``), *where* (``provider``, ``operation``, and
``match``: tags that must all be on the batch, e.g. ``{"llmbatch_batch_id": "b-7"}`` from
OpenAI metadata) and *how often* (``times``: the next N matching occasions, ``None`` = every
one; ``probability``: drawn from an RNG seeded by the profile, so a run is reproducible).

Two families:

* **call faults** act on one API call before the provider handles it: ``http`` answers with an
  error status (429 with ``Retry-After``, 5xx, ...), ``delay`` holds the response back (client
  timeouts).
* **batch faults** are drawn once, when a batch is created, and fix that batch's fate:
  ``item_errors`` (a share of the requests fail, in a chosen error-line shape), ``fail_batch``
  (validation fails with a batch-level error code), ``expire`` (the batch expires part-way
  with partial results), ``stuck`` (progress halts and it never leaves in-progress before
  its deadline) and ``poison_output`` (a share of the answers hold values a result store may
  refuse, in otherwise valid result lines).

Rules are provider-neutral: operation names are ``<resource>.<verb>`` as the provider's SDK
calls them (``files.create``, ``batches.retrieve``, ...) and each provider module decides
what the tags of a batch are and how an error body looks.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "BatchFaults",
    "CallFaults",
    "DelayFault",
    "ExpireFault",
    "FailBatchFault",
    "FaultInjector",
    "FaultProfile",
    "FaultRule",
    "HttpFault",
    "ItemErrorsFault",
    "PoisonOutputFault",
    "StuckFault",
    "json_line",
    "parse_rules",
    "poison_answer",
]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field("*", description="Provider name (openai, anthropic, gemini) or '*'")
    match: dict[str, str] = Field(
        default_factory=dict, description="Tags that must all be present (batch metadata)"
    )
    times: int | None = Field(None, ge=1, description="Fire on the next N matches; None = always")
    probability: float = Field(1.0, ge=0.0, le=1.0)


class HttpFault(_Rule):
    """Answer a call with an HTTP error instead of handling it."""

    kind: Literal["http"]
    operation: str = Field("*", description="e.g. 'batches.create', 'files.*', '*'")
    status: int = Field(500, ge=400, le=599)
    retry_after_s: float | None = Field(
        None, ge=0.0, le=10.0, description="Sent as Retry-After; kept small (SDKs sleep it)"
    )
    message: str | None = None


class DelayFault(_Rule):
    """Hold a call back before handling it, to exercise client timeouts."""

    kind: Literal["delay"]
    operation: str = "*"
    delay_s: float = Field(ge=0.0, le=120.0)


class ItemErrorsFault(_Rule):
    """Make a deterministic share of a batch's requests fail."""

    kind: Literal["item_errors"]
    rate: float = Field(ge=0.0, le=1.0)
    shape: Literal["error", "response", "mixed"] = Field(
        "response",
        description="'error': top-level error object, response null; 'response': error null "
        "and response.status_code 4xx/5xx; 'mixed': half and half",
    )
    status_code: int = Field(500, ge=400, le=599)
    code: str | None = Field(None, description="Error code; a default per status when None")
    message: str | None = Field(
        None, max_length=2000,
        description="The error's message text (a provider quoting the request, say); the "
                    "provider's usual text for the status when None")


class FailBatchFault(_Rule):
    """Fail the batch at validation with one batch-level error."""

    kind: Literal["fail_batch"]
    code: str = "token_limit_exceeded"
    message: str | None = None


class ExpireFault(_Rule):
    """Expire the batch once ``at_fraction`` of its requests are done."""

    kind: Literal["expire"]
    at_fraction: float = Field(0.5, ge=0.0, le=1.0)


class StuckFault(_Rule):
    """Halt progress at ``at_fraction``; the batch stays in progress until its deadline."""

    kind: Literal["stuck"]
    at_fraction: float = Field(0.5, ge=0.0, lt=1.0)


class PoisonOutputFault(_Rule):
    """Make a deterministic share of a batch's successful answers hold what real models and
    services do send but a result store may refuse, in an otherwise valid result line:
    ``nul`` (a NUL character in the answer's text), ``lone_surrogate`` (half a UTF-16 pair,
    written as the JSON escape ``\\ud800``) or ``huge_usage`` (token counts of 10^20)."""

    kind: Literal["poison_output"]
    rate: float = Field(1.0, ge=0.0, le=1.0)
    poison: Literal["nul", "lone_surrogate", "huge_usage"] = "nul"

    def hits(self, seed: int, batch_id: str, item: str) -> bool:
        """Whether the answer to ``item`` (its custom_id or key) in this batch is poisoned."""
        draw = hashlib.blake2b(f"poison:{seed}:{batch_id}:{item}".encode(),
                               digest_size=6).digest()
        return int.from_bytes(draw, "big") / 2**48 < self.rate


FaultRule = Annotated[
    HttpFault | DelayFault | ItemErrorsFault | FailBatchFault | ExpireFault | StuckFault
    | PoisonOutputFault,
    Field(discriminator="kind"),
]
_BatchRule = ItemErrorsFault | FailBatchFault | ExpireFault | StuckFault | PoisonOutputFault
_TEXT_KEYS = frozenset({"text", "content"})
_POISON_TEXT = {"nul": "\x00", "lone_surrogate": "\ud800"}


def poison_answer(answer: Any, poison: str) -> Any:
    """A copy of a successful answer (any provider's shape) with ``poison`` applied: the text
    poisons go at the end of every string under a ``text`` or ``content`` key; ``huge_usage``
    sets every integer under a key naming tokens (``prompt_tokens``, ``promptTokenCount``)."""
    if isinstance(answer, list):
        return [poison_answer(item, poison) for item in answer]
    if not isinstance(answer, dict):
        return answer
    out: dict[str, Any] = {}
    for key, value in answer.items():
        if poison in _POISON_TEXT and key in _TEXT_KEYS and isinstance(value, str):
            out[key] = value + _POISON_TEXT[poison]
        elif (poison == "huge_usage" and "token" in key.lower() and isinstance(value, int)
              and not isinstance(value, bool)):
            out[key] = 10**20
        else:
            out[key] = poison_answer(value, poison)
    return out


def json_line(record: Any) -> bytes:
    """A result line as compact UTF-8 JSON, no newline. A lone surrogate cannot be UTF-8, so
    a record holding one is written with non-ASCII escaped, as such a service would send it."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(record, separators=(",", ":")).encode()
_RULES_ADAPTER: TypeAdapter[list[FaultRule]] = TypeAdapter(list[FaultRule])


def parse_rules(rules: Iterable[Any]) -> list[FaultRule]:
    """Validate rules given as dicts (or already-built models)."""
    return _RULES_ADAPTER.validate_python(
        [r.model_dump() if isinstance(r, BaseModel) else r for r in rules]
    )


class FaultProfile(BaseModel):
    """The fault part of emulator settings: a seed and the rules active at start."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    rules: tuple[FaultRule, ...] = ()


@dataclass(frozen=True)
class CallFaults:
    """What to do to one call: wait ``delay_s``, then fail with ``error`` if set."""

    delay_s: float = 0.0
    error: HttpFault | None = None


@dataclass(frozen=True)
class BatchFaults:
    """The faults drawn for one new batch (at most one of each kind)."""

    item_errors: ItemErrorsFault | None = None
    fail: FailBatchFault | None = None
    expire: ExpireFault | None = None
    stuck: StuckFault | None = None
    poison: PoisonOutputFault | None = None


def _operation_matches(pattern: str, operation: str) -> bool:
    if pattern in ("*", operation):
        return True
    return pattern.endswith(".*") and operation.startswith(pattern[:-1])


class _Armed:
    """A rule plus its remaining budget (``times``), which the frozen model cannot hold."""

    __slots__ = ("fired", "remaining", "rule")

    def __init__(self, rule: FaultRule) -> None:
        self.rule = rule
        self.remaining = rule.times
        self.fired = 0


class FaultInjector:
    """The live rule set; thread-safe because the server handles calls on a thread pool."""

    def __init__(self, profile: FaultProfile | None = None) -> None:
        self._profile = profile or FaultProfile()
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []
        self._rng = random.Random()
        self.reset()

    def reset(self) -> None:
        """Back to the profile's rules, with the RNG reseeded (so a rerun draws the same)."""
        with self._lock:
            self._armed = [_Armed(r) for r in self._profile.rules]
            self._rng = random.Random(self._profile.seed)

    def set_rules(self, rules: Iterable[Any], *, mode: Literal["replace", "append"]) -> None:
        """Install rules (dicts or models), replacing or extending the current set."""
        parsed = parse_rules(rules)
        with self._lock:
            if mode == "replace":
                self._armed = []
            self._armed.extend(_Armed(r) for r in parsed)

    def reseed(self, seed: int) -> None:
        """Restart the probability draws from ``seed``."""
        with self._lock:
            self._rng = random.Random(seed)

    def describe(self) -> list[dict[str, Any]]:
        """The rules as JSON-able dicts with ``remaining`` and ``fired`` counters."""
        with self._lock:
            return [
                {**a.rule.model_dump(mode="json"), "remaining": a.remaining, "fired": a.fired}
                for a in self._armed
            ]

    def for_call(self, provider: str, operation: str, tags: Mapping[str, str]) -> CallFaults:
        """Draw the call faults for one API call: the first firing delay and error rule."""
        delay: DelayFault | None = None
        error: HttpFault | None = None
        with self._lock:
            for armed in self._armed:
                rule = armed.rule
                if not isinstance(rule, HttpFault | DelayFault):
                    continue
                if isinstance(rule, DelayFault) and delay is not None:
                    continue
                if isinstance(rule, HttpFault) and error is not None:
                    continue
                if not _operation_matches(rule.operation, operation):
                    continue
                if self._fire(armed, provider, tags):
                    if isinstance(rule, DelayFault):
                        delay = rule
                    else:
                        error = rule
        return CallFaults(delay_s=delay.delay_s if delay else 0.0, error=error)

    def for_batch(self, provider: str, tags: Mapping[str, str]) -> BatchFaults:
        """Draw the batch faults for a batch being created: the first firing rule per kind."""
        drawn: dict[str, _BatchRule] = {}
        with self._lock:
            for armed in self._armed:
                rule = armed.rule
                if isinstance(rule, HttpFault | DelayFault) or rule.kind in drawn:
                    continue
                if self._fire(armed, provider, tags):
                    drawn[rule.kind] = rule
        item_errors = drawn.get("item_errors")
        fail = drawn.get("fail_batch")
        expire = drawn.get("expire")
        stuck = drawn.get("stuck")
        poison = drawn.get("poison_output")
        return BatchFaults(
            item_errors=item_errors if isinstance(item_errors, ItemErrorsFault) else None,
            fail=fail if isinstance(fail, FailBatchFault) else None,
            expire=expire if isinstance(expire, ExpireFault) else None,
            stuck=stuck if isinstance(stuck, StuckFault) else None,
            poison=poison if isinstance(poison, PoisonOutputFault) else None,
        )

    def _fire(self, armed: _Armed, provider: str, tags: Mapping[str, str]) -> bool:
        """Whether an armed rule fires for this occasion; consumes budget and RNG if so.

        The RNG is drawn only for rules that match, so adding a rule for another operation
        does not change which calls a probabilistic rule hits.
        """
        rule = armed.rule
        if rule.provider not in ("*", provider):
            return False
        if any(tags.get(k) != v for k, v in rule.match.items()):
            return False
        if armed.remaining == 0:
            return False
        if rule.probability < 1.0 and self._rng.random() >= rule.probability:
            return False
        if armed.remaining is not None:
            armed.remaining -= 1
        armed.fired += 1
        return True
