"""The provider-neutral values that cross layers (jobs, batches and events have their own
modules: ``domain.job``, ``domain.batch``, ``domain.events``).

Items are handled in bulk by the repository (a job may hold hundreds of thousands), so they
appear here only as the values that cross layers: ``RequestLine`` going in, ``ItemResult``
coming out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, NamedTuple

from llmbatch.domain.states import ItemStatus

__all__ = [
    "USAGE_KINDS",
    "BatchFailure",
    "BatchPhase",
    "BatchProgress",
    "Endpoint",
    "FailureKind",
    "ItemError",
    "ItemResult",
    "RequestLine",
    "SubmittedBatch",
    "Usage",
    "new_tuple",
]


class Endpoint(StrEnum):
    """What kind of request every line of a job is."""

    CHAT = "chat"
    EMBEDDINGS = "embeddings"
    RESPONSES = "responses"
    COMPLETIONS = "completions"  # legacy text completions
    MODERATIONS = "moderations"


@dataclass(frozen=True)
class RequestLine:
    """One validated input line. ``body`` is the neutral (chat-completions) body without ``model``;
    ``native`` is a provider-native body passed through untouched."""

    index: int
    custom_id: str
    body: dict[str, Any] | None
    native: dict[str, Any] | None = None


# Builds a NamedTuple from every one of its fields, as ``new_tuple(ItemResult, (...))``: the
# ``__new__`` a NamedTuple generates is a Python function (with defaults), which costs twice
# as much. Only for the values made once per result line on a fetch's hot path; it checks
# nothing, so every field must be given, in order.
new_tuple: Final = tuple.__new__


class Usage(NamedTuple):
    """Token usage of one item, provider-neutral, by kind (each adapter maps its vendor's
    usage object to this; docs/cost.md has the table).

    The kinds nest, as the price catalogue (``genai-prices``) counts them: ``input_tokens`` is
    the whole prompt, *including* ``cached_tokens`` (cache reads) and ``cache_write_tokens``;
    ``cache_write_tokens`` includes ``cache_write_1h_tokens`` (writes with the one-hour TTL,
    priced higher; the rest are the default five-minute class); ``output_tokens`` includes
    ``reasoning_tokens``.

    An immutable tuple, as ``ItemResult`` is: every result line of a fetch makes one, and a
    frozen dataclass sets each field through ``object.__setattr__`` (half of reading a
    line's usage). ``+`` adds the counts, kind by kind; it does not concatenate.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(zip(USAGE_KINDS, self, strict=True))

    def __add__(self, other: tuple[int, ...]) -> Usage:  # type: ignore[override]  # sums
        return Usage(*(a + b for a, b in zip(self, other, strict=True)))


USAGE_KINDS: tuple[str, ...] = Usage._fields


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why an item did not succeed. ``retryable`` means another batch could succeed."""

    type: str
    message: str
    code: str | None = None
    retryable: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "code": self.code, "message": self.message,
                "retryable": self.retryable}


class ItemResult(NamedTuple):
    """One result line, keyed by the id we sent to the provider. ``line``: where it came
    from (1-based, within its result file, or its entry in an inline response), for errors
    that must point at it. (An immutable tuple rather than a frozen dataclass: a fetch makes
    one per result line, and a frozen dataclass sets each of its ten fields through
    ``object.__setattr__``, five times the cost of building the tuple.)"""

    provider_key: str
    status: ItemStatus
    response: dict[str, Any] | None = None
    output_text: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    error: ItemError | None = None
    line: int | None = None
    # Read from text that holds nothing a database must have escaped or refused (no NUL or
    # lone surrogate, no NaN: ``storable.is_plain_json_text`` / ``is_plain_strict_json``), so
    # making it storable skips walking the response; its depth is checked as it is written.
    plain: bool = False
    # ``response`` as JSON text, ready to be stored; when set it stands for ``response``,
    # which may then be None (the fetch turns each response into text as soon as it is read:
    # a chunk of parsed responses kept alive until written costs more in garbage collection
    # than parsing them did).
    response_json: str | None = None

    def at_line(self, line: int, *, plain: bool = False) -> ItemResult:
        """This result, read from ``line`` (a plain copy: ``_replace`` goes through a dict of
        the changes, and every result of some providers takes this)."""
        return ItemResult(self.provider_key, self.status, self.response, self.output_text,
                          self.finish_reason, self.usage, self.error, line, plain,
                          self.response_json)


class BatchPhase(StrEnum):
    """Where a provider batch is, in neutral terms; each adapter maps its vendor's statuses.

    Only ``ENDED`` is terminal: results (possibly partial, possibly none) can be fetched. The
    others steer polling: ``FINALIZING`` means the requests are done and only a short tail is
    left, ``CANCELLING`` that the provider's cancel latency applies. A status an adapter does
    not know maps to ``RUNNING``: polling a little longer is harmless, fetching before the
    results are final would lose them.
    """

    QUEUED = "queued"  # accepted, waiting for capacity
    VALIDATING = "validating"  # the input is being checked
    RUNNING = "running"
    FINALIZING = "finalizing"  # requests done, results being prepared
    CANCELLING = "cancelling"
    ENDED = "ended"


class FailureKind(StrEnum):
    """Why a whole batch failed, in neutral terms (what to do about it is in ``BatchFailure``).

    - ``QUOTA``: the provider had no room (e.g. the model's enqueued-token quota); more
      batches for that model wait a while (``rate_limits.quota_hold_s``);
    - ``INVALID_INPUT``: the provider refused the input as a whole (a validation failure);
    - ``EXPIRED``: the provider's deadline passed before every request ran;
    - ``LOST``: the provider no longer knows the batch (llmbatch decides this one when a poll
      finds the batch gone, see ``errors.ResourceGoneError``);
    - ``OTHER``: anything else the provider reported.
    """

    QUOTA = "quota"
    INVALID_INPUT = "invalid_input"
    EXPIRED = "expired"
    LOST = "lost"
    OTHER = "other"


@dataclass(frozen=True)
class BatchFailure:
    """A batch-level failure, set by the adapter on an ended batch (``None`` when the batch
    ran normally, even if some of its requests failed).

    ``retryable``: its items may succeed in another batch. ``items_ran``: the provider may
    have run (and billed) some of its requests; ``False`` only when the adapter knows none ran.
    ``code`` and ``message`` are the provider's own, for people.
    """

    kind: FailureKind
    message: str
    retryable: bool
    items_ran: bool
    code: str | None = None

    @property
    def refunds_attempts(self) -> bool:
        """Whether the items go back to pending without spending an attempt: a quota refusal
        that ran nothing says nothing about the items, and the quota hold bounds how often it
        can happen. Any other failure spends the attempt, so a batch failing the same way
        again and again ends after ``retry.item_max_attempts``."""
        return self.kind is FailureKind.QUOTA and not self.items_ran

    @classmethod
    def lost(cls, message: str) -> BatchFailure:
        """The provider no longer has the batch: its items, which may have run, go again."""
        return cls(kind=FailureKind.LOST, message=message, retryable=True, items_ran=True,
                   code="provider_lost_batch")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "message": self.message, "retryable": self.retryable,
                "items_ran": self.items_ran, "code": self.code}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchFailure:
        return cls(kind=FailureKind(data["kind"]), message=str(data["message"]),
                   retryable=bool(data["retryable"]), items_ran=bool(data["items_ran"]),
                   code=data.get("code"))


@dataclass(frozen=True)
class BatchProgress:
    """What a poll learns. ``provider_status`` is the provider's own word, kept for humans;
    code decides on ``phase`` and ``failure``."""

    phase: BatchPhase
    provider_status: str
    total: int = 0
    completed: int = 0
    failed: int = 0
    # Provider-specific ids needed to fetch results (e.g. output and error file ids).
    result_refs: dict[str, str] = field(default_factory=dict)
    failure: BatchFailure | None = None  # set on ended batches that failed as a whole
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        """Terminal at the provider: results can be fetched."""
        return self.phase is BatchPhase.ENDED


@dataclass(frozen=True)
class SubmittedBatch:
    """What the provider said when it accepted (or we adopted) a batch."""

    provider_batch_id: str
    provider_status: str
    input_file_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
