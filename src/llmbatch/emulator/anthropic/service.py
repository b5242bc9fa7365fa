"""The Message Batches API as plain methods: parameters in, JSON-able dicts out.

Validation at create is what the real service does synchronously (PROVIDER_APIS.md B.2, B.4):
body shape, 1..100,000 requests, the 256 MB body (413 ``request_too_large``), the custom_id
pattern and uniqueness, ``params`` an object, no names beyond ``requests``/``custom_id``/``params``
(400 "...: Extra inputs are not permitted"). ``params`` themselves are validated
asynchronously, as for real (B.2): a missing ``max_tokens`` or ``model``, or a name the
Messages API does not take, lands as an ``errored`` result of that request alone.

Requests are kept in the blob store (one JSONL blob per batch), never in memory; results are
written once, when the batch ends, and streamed back. Phases come from the shared
``Schedule``: validating/running/finalizing read as ``in_progress``, cancelling as
``canceling``, every terminal phase as ``ended`` (Anthropic has no failed/expired batch).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from llmbatch.emulator.anthropic import lines
from llmbatch.emulator.anthropic.caching import PromptCache
from llmbatch.emulator.anthropic.errors import PROVIDER, anthropic_error, invalid_request
from llmbatch.emulator.anthropic.results import results_blob, write_results
from llmbatch.emulator.anthropic.state import BatchRecord, render_batch, rfc3339
from llmbatch.emulator.progress import FinishOrder, Schedule, Snapshot
from llmbatch.emulator.runtime import EmulatorRuntime

__all__ = ["AnthropicService", "BatchRecord", "rfc3339"]

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
RETENTION_S = 29 * 86_400


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
                     base_url: str = "", *, betas: tuple[str, ...] = ()) -> dict[str, Any]:
        """Validate the body, store its requests, draw faults, start the clock. ``betas``
        (the create's ``anthropic-beta``) apply to every request (B.8)."""
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
        for name in body:
            if name != "requests":
                raise invalid_request(f"{name}: Extra inputs are not permitted")
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
                if lines.failure(item["params"], batch_id=batch_id,
                                    custom_id=item["custom_id"], seed=rt.settings.seed,
                                    item_errors=faults.item_errors, betas=betas) is not None:
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
                tags=tags, poison=faults.poison, betas=betas)
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
        self.runtime.blobs.delete(results_blob(record))
        return {"id": batch_id, "type": "message_batch_deleted"}

    def results_path(self, batch_id: str) -> Path:
        """Where an ended batch's results are; 404 before the end (``results_url`` is null)."""
        record = self.batch(batch_id)
        self.view(record)  # writes the results if the batch just ended
        if record.counts is None:
            raise anthropic_error(404, f"Results for message batch {batch_id} are not "
                                  "available yet.")
        return self.runtime.blobs.path(results_blob(record))

    # -- rendering -------------------------------------------------------------------------

    def _snapshot(self, record: BatchRecord) -> Snapshot:
        return record.schedule.snapshot(self.runtime.clock.now())

    def view(self, record: BatchRecord, base_url: str = "") -> dict[str, Any]:
        """The MessageBatch as of now, writing the results first if it just ended."""
        with record.lock:
            snap = self._snapshot(record)
            if snap.phase.terminal and record.counts is None:
                record.counts = write_results(self.runtime, record, snap, self.prompt_cache)
        return render_batch(record, snap, base_url)


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
    for name in item:
        if name not in ("custom_id", "params"):
            raise invalid_request(f"requests.{i}.{name}: Extra inputs are not permitted")
