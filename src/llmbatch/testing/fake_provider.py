"""An in-memory provider for service-layer tests.

``FakeProvider`` keeps every submitted batch in memory and lets a test decide, per item and per
attempt, what the provider answers; it can also fail the API calls themselves (transient,
rate-limited, permanent) and "crash" the worker right after the provider created a batch, which
is how adoption by tag is tested. It validates like a real service: a batch over the request or
byte limit is refused, so a planner bug shows up as a failed submission. A test can also hand it
raw result lines (``result_lines``), which it reads as an adapter reads a result file: JSON
escapes decoded, line numbers counted; a line with an ``error`` object is a failed item with
that error (type, code, message, retryable) as the provider wrote it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from llmbatch.config import ProviderConfig
from llmbatch.domain.models import (
    BatchFailure,
    BatchPhase,
    BatchProgress,
    Endpoint,
    ItemError,
    ItemResult,
    RequestLine,
    SubmittedBatch,
    Usage,
)
from llmbatch.domain.states import ItemStatus
from llmbatch.errors import PermanentProviderError, ProviderError, ResourceGoneError
from llmbatch.providers.base import BatchProvider, EncodedLine
from llmbatch.providers.jsonl import read_result_line

__all__ = ["FakeBatch", "FakeProvider", "ItemOutcome", "WorkerCrashed"]

ItemOutcome = Literal["ok", "retryable", "permanent", "missing"]
"""What the provider reports for one item in one batch: success, a failure another batch may
fix (429 inside the batch), a failure it never will (400), or no result line at all."""


class WorkerCrashed(BaseException):
    """Stands in for the worker process dying in the middle of a provider call (a
    BaseException, like SystemExit: no ``except Exception`` in the code under test stops it)."""


@dataclass
class FakeBatch:
    """One batch as the fake provider holds it."""

    id: str
    tag: str
    model: str
    keys: list[str]
    attempt_of: dict[str, int]  # provider key -> how many batches it has ridden in, this one incl.
    status: str = "in_progress"
    polls: int = 0
    failure: BatchFailure | None = None
    kept: int | None = None  # on cancel: how many leading items finished before it

    @property
    def ended(self) -> bool:
        return self.status in {"completed", "failed", "cancelled", "expired"}


@dataclass
class FakeProvider(BatchProvider):
    """A ``BatchProvider`` whose answers the test scripts."""

    name: ClassVar[str] = "fake"
    max_requests: ClassVar[int] = 50_000
    max_bytes: ClassVar[int] = 10_000_000
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.CHAT, Endpoint.EMBEDDINGS})

    config: ProviderConfig = field(default_factory=ProviderConfig)
    batches: dict[str, FakeBatch] = field(default_factory=dict)
    # custom_id -> outcome per attempt (the last one repeats); absent ids succeed.
    outcomes: dict[str, list[ItemOutcome]] = field(default_factory=dict)
    # Raised, in order, by the next calls of each operation (before it has any effect); a
    # ``WorkerCrashed`` among submit errors is a worker dying before the provider got anything.
    submit_errors: list[Exception] = field(default_factory=list)
    poll_errors: list[ProviderError] = field(default_factory=list)
    cancel_errors: list[ProviderError] = field(default_factory=list)
    lookup_errors: list[ProviderError] = field(default_factory=list)  # for find_by_tag
    # The next result downloads break off: (lines delivered first, error raised then).
    fetch_errors: list[tuple[int, Exception]] = field(default_factory=list)
    # custom_id -> the raw result line delivered for it (``{"custom_id", "text", "usage",
    # ...}``, a success), in place of the scripted outcome.
    result_lines: dict[str, str] = field(default_factory=dict)
    # Keys answered (as successes) after a batch's own lines: a key of no item of the batch,
    # or one of its keys answered a second time, as a misbehaving provider might.
    stray_keys: list[str] = field(default_factory=list)
    # The next N submissions create the batch and then kill the worker.
    crash_after_create: int = 0
    # Batch-level failures the next ended batches report, in order.
    batch_failures: list[BatchFailure] = field(default_factory=list)
    # Polls a batch stays in progress before it completes; None: until the test ends it.
    polls_to_finish: int | None = 0
    # On cancel, the first ``cancel_keeps`` items of a batch have finished.
    cancel_keeps: int = 0
    # Called once a submission created its batch, before it returns: lets a test act while
    # the worker is still inside the provider call.
    on_created: Callable[[FakeBatch], None] | None = None
    _sent: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        super().__init__(self.config)

    # ---- BatchProvider --------------------------------------------------------------------
    def encode(self, request: RequestLine, *, endpoint: Endpoint, model: str) -> EncodedLine:
        payload = request.native if request.native is not None else {**(request.body or {}),
                                                                      "model": model}
        data = json.dumps({"custom_id": request.custom_id, "body": payload},
                          separators=(",", ":")).encode()
        return EncodedLine(provider_key=request.custom_id, data=data)

    def submit(self, lines: Iterable[bytes], *, tag: str, endpoint: Endpoint,
               model: str) -> SubmittedBatch:
        if self.submit_errors:
            raise self.submit_errors.pop(0)
        limits = self.effective_limits(model)
        keys: list[str] = []
        size = 0
        for line in lines:
            keys.append(json.loads(line)["custom_id"])
            size += len(line) + 1
        if len(keys) > limits.max_requests or size > limits.max_bytes or not keys:
            raise PermanentProviderError(
                f"batch of {len(keys)} requests / {size} bytes breaks the limits",
                provider=self.name, status_code=400, code="invalid_batch")
        for key in keys:
            self._sent[key] += 1
        batch = FakeBatch(id=f"fb_{len(self.batches) + 1}", tag=tag, model=model, keys=keys,
                          attempt_of={k: self._sent[k] for k in keys})
        self.batches[batch.id] = batch
        if self.on_created is not None:
            self.on_created(batch)
        if self.crash_after_create:
            self.crash_after_create -= 1
            raise WorkerCrashed(f"worker died after creating {batch.id}")
        return self._submitted(batch)

    def find_by_tag(self, tag: str) -> SubmittedBatch | None:
        if self.lookup_errors:
            raise self.lookup_errors.pop(0)
        found = [b for b in self.batches.values() if b.tag == tag]
        return self._submitted(found[0]) if found else None

    def poll(self, provider_batch_id: str) -> BatchProgress:
        if self.poll_errors:
            raise self.poll_errors.pop(0)
        batch = self._get(provider_batch_id)
        if not batch.ended:
            batch.polls += 1
            if self.polls_to_finish is not None and batch.polls > self.polls_to_finish:
                self._end(batch, "completed")
        return self._progress(batch)

    def iter_results(self, provider_batch_id: str, progress: BatchProgress) -> Iterator[ItemResult]:
        batch = self._get(provider_batch_id)
        assert batch.ended, "results fetched before the batch ended"
        if batch.status == "failed":
            return
        keys = batch.keys if batch.kept is None else batch.keys[:batch.kept]
        break_after, error = self.fetch_errors.pop(0) if self.fetch_errors else (None, None)
        delivered = 0
        for key in keys:
            if delivered == break_after:
                raise error  # type: ignore[misc]
            if key in self.result_lines:
                result = self._read_line(self.result_lines[key].encode())
                delivered += 1
                if result is not None:
                    yield result.at_line(delivered)
                continue
            outcome = self._outcome(key, batch.attempt_of[key])
            if outcome == "missing":
                continue
            delivered += 1
            yield self._result(key, outcome).at_line(delivered)
        for key in self.stray_keys:
            delivered += 1
            yield self._result(key, "ok").at_line(delivered)

    def cancel(self, provider_batch_id: str) -> BatchProgress:
        if self.cancel_errors:
            raise self.cancel_errors.pop(0)
        batch = self._get(provider_batch_id)
        if not batch.ended:
            batch.kept = self.cancel_keeps
            self._end(batch, "cancelled")
        return self._progress(batch)

    # ---- for tests ------------------------------------------------------------------------
    def finish(self, provider_batch_id: str | None = None) -> None:
        """Complete one (or every) running batch; the next poll sees it ended."""
        for batch in self.batches.values():
            if provider_batch_id in (None, batch.id) and not batch.ended:
                self._end(batch, "completed")

    def batch_keys(self) -> list[list[str]]:
        """The provider keys of every batch received, in submission order."""
        return [b.keys for b in self.batches.values()]

    # ---- internals ------------------------------------------------------------------------
    def _get(self, provider_batch_id: str) -> FakeBatch:
        if provider_batch_id not in self.batches:
            raise ResourceGoneError(f"no batch {provider_batch_id}", provider=self.name,
                                    status_code=404, code="not_found")
        return self.batches[provider_batch_id]

    def _end(self, batch: FakeBatch, status: str) -> None:
        batch.status = status
        if status == "completed" and self.batch_failures:
            batch.failure = self.batch_failures.pop(0)
            batch.status = "failed"

    def _outcome(self, key: str, attempt: int) -> ItemOutcome:
        plan = self.outcomes.get(key) or ["ok"]
        return plan[min(attempt, len(plan)) - 1]

    def _result(self, key: str, outcome: ItemOutcome) -> ItemResult:
        if outcome == "ok":
            text = f"answer to {key}"
            return ItemResult(
                provider_key=key, status=ItemStatus.SUCCEEDED,
                response={"status_code": 200, "body": {"choices": [{"message": {
                    "role": "assistant", "content": text}}]}},
                output_text=text, finish_reason="stop",
                usage=Usage(input_tokens=10, output_tokens=5))
        if outcome == "retryable":
            error = ItemError(type="rate_limit_error", code="rate_limit_exceeded",
                              message="too many requests inside the batch", retryable=True)
        else:
            error = ItemError(type="invalid_request_error", code="invalid_value",
                              message="the request is invalid", retryable=False)
        return ItemResult(provider_key=key, status=ItemStatus.FAILED, error=error,
                          response={"status_code": 429 if error.retryable else 400})

    @staticmethod
    def _read_line(raw: bytes) -> ItemResult | None:
        """A raw result line read the way the adapters read theirs."""
        line = read_result_line(raw)
        if line is None:
            return None
        obj = dict(line.obj or {})
        raw_usage = obj.get("usage")
        usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
        raw_error = obj.get("error")
        if isinstance(raw_error, dict):  # a failed item, its error text as the provider wrote it
            error = ItemError(type=str(raw_error.get("type", "error")),
                              code=raw_error.get("code"), message=str(raw_error.get("message", "")),
                              retryable=bool(raw_error.get("retryable", False)))
            return ItemResult(provider_key=line.custom_id, status=ItemStatus.FAILED,
                              response=obj, error=error)
        return ItemResult(
            provider_key=line.custom_id, status=ItemStatus.SUCCEEDED, response=obj,
            output_text=obj.get("text"), finish_reason=obj.get("finish_reason", "stop"),
            usage=Usage(input_tokens=usage.get("input_tokens", 0),
                        output_tokens=usage.get("output_tokens", 0)))

    def _progress(self, batch: FakeBatch) -> BatchProgress:
        done = len(batch.keys) if batch.status == "completed" else 0
        return BatchProgress(
            phase=BatchPhase.ENDED if batch.ended else BatchPhase.RUNNING,
            provider_status=batch.status, total=len(batch.keys), completed=done,
            failure=batch.failure, raw={"id": batch.id})

    def _submitted(self, batch: FakeBatch) -> SubmittedBatch:
        return SubmittedBatch(provider_batch_id=batch.id, provider_status="validating",
                              input_file_id=f"file_{batch.id}", raw={"tag": batch.tag})

    def describe(self) -> dict[str, Any]:
        """A summary for assertion messages."""
        return {b.id: (b.status, b.keys) for b in self.batches.values()}
