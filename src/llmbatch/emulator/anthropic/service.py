"""The Message Batches API as plain methods: parameters in, JSON-able dicts out.

Validation at create is what the real service does synchronously (PROVIDER_APIS.md B.2, B.4):
body shape, 1..100,000 requests, the 256 MB body (413 ``request_too_large``), the custom_id
pattern and uniqueness, ``params`` with ``model`` and ``max_tokens``. Everything else about a
request's params is judged per request and lands as an ``errored`` result, as for real.

Requests are kept in the blob store (one JSONL blob per batch), never in memory; results are
written once, when the batch ends, and streamed back. Phases come from the shared
``Schedule``: validating/running/finalizing read as ``in_progress``, cancelling as
``canceling``, every terminal phase as ``ended`` (Anthropic has no failed/expired batch).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmbatch.emulator.anthropic import messages
from llmbatch.emulator.anthropic.caching import PromptCache
from llmbatch.emulator.anthropic.errors import PROVIDER, anthropic_error, invalid_request
from llmbatch.emulator.faults import ItemErrorsFault, PoisonOutputFault, json_line, poison_answer
from llmbatch.emulator.progress import FinishOrder, Phase, Schedule, Snapshot
from llmbatch.emulator.runtime import EmulatorRuntime

__all__ = ["AnthropicService", "BatchRecord", "rfc3339"]

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
RETENTION_S = 29 * 86_400
_COUNTERS = ("processing", "succeeded", "errored", "canceled", "expired")


def rfc3339(moment: float) -> str:
    """``2024-09-24T18:37:24.100435Z``."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class BatchRecord:
    """One batch: its schedule, where its requests are, and (once ended) its result counts."""

    id: str
    created_at: float
    total: int
    blob: str
    schedule: Schedule
    order: FinishOrder
    item_errors: ItemErrorsFault | None
    tags: dict[str, str]
    counts: dict[str, int] | None = None
    poison: PoisonOutputFault | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class AnthropicService:
    """Batches of one emulator."""

    def __init__(self, runtime: EmulatorRuntime) -> None:
        self.runtime = runtime
        self.lock = threading.RLock()
        self.batches: dict[str, BatchRecord] = {}
        self.prompt_cache = PromptCache()
        runtime.on_reset_state(self.reset)

    def reset(self) -> None:
        """Forget every batch (the runtime clears the blobs)."""
        with self.lock:
            self.batches.clear()
            self.prompt_cache.clear()

    # -- create ----------------------------------------------------------------------------

    def create_batch(self, raw: bytes, tags: dict[str, str],
                     base_url: str = "") -> dict[str, Any]:
        """Validate the body, store its requests, draw faults, start the clock."""
        settings = self.runtime.settings.anthropic
        if len(raw) > settings.max_body_bytes:
            raise anthropic_error(413, "Request exceeds the maximum allowed number of bytes.")
        try:
            body = json.loads(raw)
        except ValueError:
            raise invalid_request("There was an error parsing the body of your request: "
                                  "invalid JSON.") from None
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list):
            raise invalid_request("requests: Field required")
        if not requests:
            raise invalid_request("requests: List should have at least 1 item after "
                                  "validation, not 0")
        if len(requests) > settings.max_requests:
            raise invalid_request(f"requests: List should have at most {settings.max_requests} "
                                  f"items after validation, not {len(requests)}")
        seen: set[str] = set()
        for i, item in enumerate(requests):
            _check_item(i, item, seen)
        rt = self.runtime
        batch_id = rt.ids.new("msgbatch_", length=24)
        faults = rt.faults.for_batch(PROVIDER, tags)
        failing = []
        with rt.blobs.path(batch_id).open("wb") as handle:
            for i, item in enumerate(requests):
                handle.write(json.dumps(item, ensure_ascii=False,
                                        separators=(",", ":")).encode() + b"\n")
                if messages.failure(item["params"], batch_id=batch_id,
                                    custom_id=item["custom_id"], seed=rt.settings.seed,
                                    item_errors=faults.item_errors) is not None:
                    failing.append(i)
        total = len(requests)
        del body, requests
        timing = rt.settings.timing
        with self.lock:
            now = rt.clock.now()
            record = BatchRecord(
                id=batch_id, created_at=now, total=total, blob=batch_id,
                schedule=Schedule(
                    created_at=now, validate_s=timing.validate_s, run_s=timing.run_s(total),
                    finalize_s=timing.finalize_s, cancel_s=timing.cancel_s,
                    deadline=now + timing.completion_window_s, total=total,
                    halt_fraction=faults.stuck.at_fraction if faults.stuck else None,
                    expire_fraction=faults.expire.at_fraction if faults.expire else None),
                order=FinishOrder(total, batch_id, failing), item_errors=faults.item_errors,
                tags=tags, poison=faults.poison)
            self.batches[batch_id] = record
        rt.stats.batch_created(PROVIDER, tags)
        return self.view(record, base_url)

    # -- read, list, cancel, delete ----------------------------------------------------------

    def batch(self, batch_id: str) -> BatchRecord:
        """A batch record, or 404."""
        with self.lock:
            record = self.batches.get(batch_id)
        if record is None:
            raise anthropic_error(404, f"Message batch {batch_id} not found.")
        return record

    def batch_tags(self, batch_id: str) -> dict[str, str]:
        """Tags for fault matching; none for an unknown id (it will 404)."""
        with self.lock:
            record = self.batches.get(batch_id)
        return dict(record.tags) if record else {}

    def list_batches(self, *, limit: int, after_id: str | None, before_id: str | None,
                     base_url: str = "") -> dict[str, Any]:
        """A page, newest first; ``after_id`` pages to older batches, ``before_id`` to newer."""
        with self.lock:
            ids = list(reversed(self.batches))
        if after_id is not None:
            start = ids.index(after_id) + 1 if after_id in ids else len(ids)
            end = min(start + limit, len(ids))
            has_more = end < len(ids)
        elif before_id is not None:
            end = ids.index(before_id) if before_id in ids else 0
            start = max(0, end - limit)
            has_more = start > 0
        else:
            start, end = 0, min(limit, len(ids))
            has_more = end < len(ids)
        data = [self.view(self.batch(i), base_url) for i in ids[start:end]]
        return {"data": data, "has_more": has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None}

    def cancel_batch(self, batch_id: str, base_url: str = "") -> dict[str, Any]:
        """Start cancellation; on a batch that already ended, nothing changes."""
        record = self.batch(batch_id)
        with record.lock:
            record.schedule.request_cancel(self.runtime.clock.now())
        return self.view(record, base_url)

    def delete_batch(self, batch_id: str) -> dict[str, Any]:
        """Delete an ended batch; one still processing is refused (as documented)."""
        record = self.batch(batch_id)
        if not self._snapshot(record).phase.terminal:
            raise invalid_request(f"Batch {batch_id} cannot be deleted while it is still "
                                  "processing. Cancel it first.")
        with self.lock:
            self.batches.pop(batch_id, None)
        self.runtime.blobs.delete(record.blob)
        self.runtime.blobs.delete(f"{record.blob}.results")
        return {"id": batch_id, "type": "message_batch_deleted"}

    def results_path(self, batch_id: str) -> Path:
        """Where an ended batch's results are; 404 before the end (``results_url`` is null)."""
        record = self.batch(batch_id)
        self.view(record)  # writes the results if the batch just ended
        if record.counts is None:
            raise anthropic_error(404, f"Results for message batch {batch_id} are not "
                                  "available yet.")
        return self.runtime.blobs.path(f"{record.blob}.results")

    # -- rendering -------------------------------------------------------------------------

    def _snapshot(self, record: BatchRecord) -> Snapshot:
        return record.schedule.snapshot(self.runtime.clock.now())

    def view(self, record: BatchRecord, base_url: str = "") -> dict[str, Any]:
        """The MessageBatch as of now, writing the results first if it just ended."""
        with record.lock:
            snap = self._snapshot(record)
            ended = snap.phase.terminal
            if ended and record.counts is None:
                record.counts = self._write_results(record, snap)
        counts = dict(record.counts) if ended and record.counts else {
            **dict.fromkeys(_COUNTERS, 0), "processing": record.total}
        ended_at = max(snap.times.values()) if ended and snap.times else None
        cancel_at = record.schedule.cancel_requested_at
        status = "ended" if ended else ("canceling" if snap.phase is Phase.CANCELLING
                                        else "in_progress")
        return {
            "id": record.id, "type": "message_batch", "processing_status": status,
            "request_counts": counts,
            "ended_at": rfc3339(ended_at) if ended_at is not None else None,
            "created_at": rfc3339(record.created_at),
            "expires_at": rfc3339(record.schedule.deadline),
            "archived_at": None,
            "cancel_initiated_at": rfc3339(cancel_at) if cancel_at is not None else None,
            "results_url": (f"{base_url}/v1/messages/batches/{record.id}/results"
                            if ended else None),
        }

    def _write_results(self, record: BatchRecord, snap: Snapshot) -> dict[str, int]:
        """Write every request's result line (one JSON object per line, no blank line)."""
        counts = dict.fromkeys(_COUNTERS, 0)
        cut = "expired" if snap.phase is Phase.EXPIRED else "canceled"
        seed = self.runtime.settings.seed
        src = self.runtime.blobs.path(record.blob)
        dst = self.runtime.blobs.path(f"{record.blob}.results")
        with src.open("rb") as requests, dst.open("wb") as out:
            for index, raw in enumerate(requests):
                item = json.loads(raw)
                custom_id, params = item["custom_id"], item["params"]
                h = hashlib.sha256(f"{record.id}:{index}".encode()).hexdigest()
                if record.order.rank(index) >= snap.finished:
                    result: dict[str, Any] = {"type": cut}
                    counts[cut] += 1
                else:
                    failed = messages.failure(params, batch_id=record.id, custom_id=custom_id,
                                              seed=seed, item_errors=record.item_errors)
                    if failed is not None:
                        result = messages.errored(failed[0], failed[1], f"req_{h[:24]}")
                        counts["errored"] += 1
                    else:
                        answer = messages.message(params, f"msg_{h[24:48]}", self.prompt_cache)
                        poison = record.poison
                        if poison is not None and poison.hits(seed, record.id, custom_id):
                            answer = poison_answer(answer, poison.poison)
                        result = {"type": "succeeded", "message": answer}
                        counts["succeeded"] += 1
                line = {"custom_id": custom_id, "result": result}
                out.write(json_line(line) + b"\n")
        return counts


def _check_item(i: int, item: Any, seen: set[str]) -> None:
    if not isinstance(item, dict):
        raise invalid_request(f"requests.{i}: Input should be a valid dictionary")
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str):
        raise invalid_request(f"requests.{i}.custom_id: Field required")
    if len(custom_id) > 64:
        raise invalid_request(f"requests.{i}.custom_id: String should have at most 64 "
                              "characters")
    if not CUSTOM_ID.match(custom_id):
        raise invalid_request(f"requests.{i}.custom_id: String should match pattern "
                              "'^[a-zA-Z0-9_-]{1,64}$'")
    if custom_id in seen:
        raise invalid_request(f"requests: custom_id '{custom_id}' is used more than once; "
                              "custom_id values must be unique within a batch")
    seen.add(custom_id)
    params = item.get("params")
    if not isinstance(params, dict):
        raise invalid_request(f"requests.{i}.params: Field required")
    for name in ("model", "max_tokens", "messages"):
        if name not in params:
            raise invalid_request(f"requests.{i}.params.{name}: Field required")
    if not isinstance(params["model"], str) or not params["model"]:
        raise invalid_request(f"requests.{i}.params.model: Input should be a valid string")
