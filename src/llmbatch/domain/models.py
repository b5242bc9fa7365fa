"""The provider-neutral values that cross layers (jobs, batches and events have their own
modules: ``domain.job``, ``domain.batch``, ``domain.events``).

Items are handled in bulk by the repository (a job may hold hundreds of thousands), so they
appear here only as the values that cross layers: ``RequestLine`` going in, ``ItemResult``
coming out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from llmbatch.domain.states import ItemStatus

__all__ = [
    "BatchProgress",
    "Endpoint",
    "ItemError",
    "ItemResult",
    "ProviderState",
    "RequestLine",
    "SubmittedBatch",
    "Usage",
]


class Endpoint(StrEnum):
    """What kind of request every line of a job is."""

    CHAT = "chat"
    EMBEDDINGS = "embeddings"


@dataclass(frozen=True)
class RequestLine:
    """One validated input line. ``body`` is the neutral (OpenAI-style) body without ``model``;
    ``native`` is a provider-native body passed through untouched."""

    index: int
    custom_id: str
    body: dict[str, Any] | None
    native: dict[str, Any] | None = None


@dataclass(frozen=True)
class Usage:
    """Token usage of one item, provider-neutral."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cached_tokens": self.cached_tokens, "reasoning_tokens": self.reasoning_tokens}


@dataclass(frozen=True)
class ItemError:
    """Why an item did not succeed. ``retryable`` means another batch could succeed."""

    type: str
    message: str
    code: str | None = None
    retryable: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "code": self.code, "message": self.message,
                "retryable": self.retryable}


@dataclass(frozen=True)
class ItemResult:
    """One result line, keyed by the id we sent to the provider. ``line``: where it came
    from (1-based, within its result file, or its entry in an inline response), for errors
    that must point at it."""

    provider_key: str
    status: ItemStatus
    response: dict[str, Any] | None = None
    output_text: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    error: ItemError | None = None
    line: int | None = None

    def at_line(self, line: int) -> ItemResult:
        """This result, read from ``line`` (a plain copy: ``dataclasses.replace`` costs more
        than parsing the line, and every result takes this)."""
        return ItemResult(self.provider_key, self.status, self.response, self.output_text,
                          self.finish_reason, self.usage, self.error, line)


class ProviderState(StrEnum):
    """Where a provider batch is, in neutral terms."""

    RUNNING = "running"  # not terminal at the provider
    ENDED = "ended"  # terminal: results (possibly partial or none) can be fetched


@dataclass(frozen=True)
class BatchProgress:
    """What a poll learns. ``provider_status`` is the provider's own word, kept for humans."""

    state: ProviderState
    provider_status: str
    total: int = 0
    completed: int = 0
    failed: int = 0
    # Provider-specific ids needed to fetch results (e.g. OpenAI output/error file ids).
    result_refs: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # batch-level failure, e.g. validation errors
    error_code: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubmittedBatch:
    """What the provider said when it accepted (or we adopted) a batch."""

    provider_batch_id: str
    provider_status: str
    input_file_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
