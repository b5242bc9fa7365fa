"""The OpenAI Files and Batches API as plain methods: parameters in, JSON-able dicts out.

Routes only parse HTTP and call these; unit tests call them directly with a fake clock.
Errors are raised as ``EmulatorHTTPError`` in OpenAI's shape. Methods may block (validating
or writing large files), so async routes run them on a worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmbatch.emulator.faults import FailBatchFault
from llmbatch.emulator.openai.endpoints import ENDPOINTS, unrecognized
from llmbatch.emulator.openai.errors import (
    PROVIDER,
    invalid_value,
    missing_parameter,
    no_such_file,
    openai_error,
)
from llmbatch.emulator.openai.results import write_results
from llmbatch.emulator.openai.state import BatchRecord, FileRecord, OpenAIState, render_batch
from llmbatch.emulator.openai.validation import ScanResult, batch_error, scan_input
from llmbatch.emulator.progress import FinishOrder, Phase, Schedule
from llmbatch.emulator.runtime import EmulatorRuntime

__all__ = ["BATCH_ENDPOINTS", "CREATE_BATCH_NAMES", "UPLOAD_PURPOSES", "OpenAIService",
           "expiry_seconds"]

#: ``CreateBatchRequest``'s names (OpenAI's API description); others are refused with 400.
CREATE_BATCH_NAMES = frozenset({"completion_window", "endpoint", "input_file_id", "metadata",
                                "output_expires_after"})

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
BATCH_ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/embeddings",
                   "/v1/completions", "/v1/moderations", "/v1/images/generations",
                   "/v1/images/edits", "/v1/videos")
BATCH_INPUT_RETENTION_S = 30 * 86_400
_ENQUEUED = (Phase.VALIDATING, Phase.RUNNING, Phase.FINALIZING, Phase.CANCELLING)


def expiry_seconds(value: Any, param: str) -> int:
    """Validate an ``{anchor: created_at, seconds: 3600..2592000}`` expiration policy."""
    if not isinstance(value, dict):
        raise invalid_value(param, "expected an object with 'anchor' and 'seconds'.")
    if value.get("anchor") != "created_at":
        raise invalid_value(f"{param}.anchor", "the only supported anchor is 'created_at'.")
    seconds = value.get("seconds")
    if isinstance(seconds, str) and seconds.isdigit():
        seconds = int(seconds)
    if not isinstance(seconds, int) or not 3600 <= seconds <= 2_592_000:
        raise invalid_value(f"{param}.seconds", "expected an integer from 3600 to 2592000.")
    return seconds


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 16 or not all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
        for k, v in value.items()
    ):
        raise invalid_value("metadata", "expected at most 16 string pairs, keys up to 64 "
                            "characters, values up to 512.")
    return dict(value)


class OpenAIService:
    """Files and batches of one emulator."""

    def __init__(self, runtime: EmulatorRuntime) -> None:
        self.runtime = runtime
        self.state = OpenAIState()
        runtime.on_reset_state(self.state.reset)

    # -- files ---------------------------------------------------------------------------

    def add_file(
        self, *, blob_id: str, filename: str, purpose: str, expires_after_s: int | None
    ) -> dict[str, Any]:
        """Register an uploaded blob as a file (the blob id becomes the file id)."""
        now = int(self.runtime.clock.now())
        if expires_after_s is None and purpose == "batch":
            expires_after_s = BATCH_INPUT_RETENTION_S
        record = FileRecord(
            id=blob_id, filename=filename, purpose=purpose,
            bytes=self.runtime.blobs.size(blob_id), created_at=now,
            expires_at=now + expires_after_s if expires_after_s is not None else None,
        )
        with self.state.lock:
            self.state.files[record.id] = record
        return record.render()

    def file(self, file_id: str, param: str = "id") -> FileRecord:
        """A live file; deleted and expired ones are 404."""
        with self.state.lock:
            record = self.state.files.get(file_id)
        if record is None or record.expired(self.runtime.clock.now()):
            raise no_such_file(file_id, param)
        return record

    def list_files(
        self, *, purpose: str | None, limit: int, order: str, after: str | None
    ) -> dict[str, Any]:
        """A page of files, newest first unless ``order=asc``."""
        now = self.runtime.clock.now()
        with self.state.lock:
            files = [f for f in self.state.files.values()
                     if not f.expired(now) and (purpose is None or f.purpose == purpose)]
        if order == "desc":
            files.reverse()
        start, end = _window([f.id for f in files], after, limit)
        return _page([f.render() for f in files[start:end]], end < len(files))

    def delete_file(self, file_id: str) -> dict[str, Any]:
        """Delete a file and its bytes (a batch using it as input keeps its own link)."""
        self.file(file_id)
        with self.state.lock:
            self.state.files.pop(file_id, None)
        self.runtime.blobs.delete(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    def content_path(self, file_id: str) -> Path:
        """Where a file's bytes are, for streaming."""
        return self.runtime.blobs.path(self.file(file_id).id)

    # -- batches -------------------------------------------------------------------------

    def create_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        """Validate parameters and input file, draw faults, and start the batch's clock."""
        if message := unrecognized(params, CREATE_BATCH_NAMES):
            raise openai_error(400, message)
        for name in ("input_file_id", "endpoint", "completion_window"):
            if params.get(name) in (None, ""):
                raise missing_parameter(name)
        endpoint = params["endpoint"]
        if endpoint not in BATCH_ENDPOINTS:
            raise invalid_value("endpoint", f"'{endpoint}' is not one of "
                                f"{', '.join(BATCH_ENDPOINTS)}.")
        if endpoint not in ENDPOINTS:
            raise openai_error(400, f"The emulator does not implement batches for '{endpoint}'"
                               f" (it has {', '.join(ENDPOINTS)}).", param="endpoint",
                               code="unsupported_value")
        if params["completion_window"] != "24h":
            raise invalid_value("completion_window", "the only supported value is '24h'.")
        metadata = _metadata(params.get("metadata"))
        output_expires_s = None
        if params.get("output_expires_after") is not None:
            output_expires_s = expiry_seconds(params["output_expires_after"],
                                               "output_expires_after")
        source = self.file(str(params["input_file_id"]), "input_file_id")
        if source.purpose != "batch":
            raise openai_error(400, f"The input file must be uploaded with purpose 'batch', "
                               f"not '{source.purpose}'.", param="input_file_id")
        rt = self.runtime
        tags = dict(metadata or {})
        batch_id = rt.ids.new("batch_", length=32, alphabet="hex")
        faults = rt.faults.for_batch(PROVIDER, tags)
        input_blob = f"{batch_id}.input"
        rt.blobs.link(source.id, input_blob)
        scan = scan_input(rt.blobs.path(input_blob), endpoint_url=endpoint,
                          settings=rt.settings.openai, batch_id=batch_id, seed=rt.settings.seed,
                          item_errors=faults.item_errors)
        with self.state.lock:
            now = rt.clock.now()
            self._check_enqueued_tokens(scan, now, input_blob)
            if faults.fail is not None and not scan.errors:
                scan.errors.append(_fail_error(faults.fail))
            timing = rt.settings.timing
            batch = BatchRecord(
                id=batch_id, endpoint=endpoint, input_file_id=source.id, input_blob=input_blob,
                completion_window="24h", metadata=metadata, output_expires_s=output_expires_s,
                created_at=now, expires_at=int(now) + int(timing.completion_window_s),
                scan=scan,
                schedule=Schedule(
                    created_at=now, validate_s=timing.validate_s,
                    run_s=timing.run_s(scan.total), finalize_s=timing.finalize_s,
                    cancel_s=timing.cancel_s, deadline=now + timing.completion_window_s,
                    total=scan.total, fails_validation=bool(scan.errors),
                    halt_fraction=faults.stuck.at_fraction if faults.stuck else None,
                    expire_fraction=faults.expire.at_fraction if faults.expire else None,
                ),
                order=FinishOrder(scan.total, batch_id, scan.failing),
                item_errors=faults.item_errors, poison=faults.poison,
            )
            self.state.batches[batch_id] = batch
        rt.stats.batch_created(PROVIDER, tags)
        return self._view(batch)

    def _check_enqueued_tokens(self, scan: ScanResult, now: float, input_blob: str) -> None:
        """Apply the per-model enqueued-token limit (caller holds the state lock)."""
        limits = self.runtime.settings.openai.enqueued_token_limits
        limit = limits.get(scan.model or "", limits.get("*"))
        if limit is None or scan.errors:
            return
        enqueued = sum(
            b.scan.prompt_tokens for b in self.state.batches.values()
            if b.scan.model == scan.model and b.schedule.snapshot(now).phase in _ENQUEUED
        )
        if enqueued + scan.prompt_tokens <= limit:
            return
        message = (f"Enqueued token limit reached for {scan.model} in organization "
                   f"org-emulator. Limit: {limit:,} enqueued tokens. Please try again once "
                   "some in_progress batches have been completed.")
        if self.runtime.settings.openai.token_limit_mode == "sync":
            self.runtime.blobs.delete(input_blob)
            raise openai_error(429, message, type="invalid_request_error",
                               code="token_limit_exceeded")
        scan.errors.append(batch_error("token_limit_exceeded", message))

    def batch(self, batch_id: str) -> BatchRecord:
        """A batch record, or 404."""
        with self.state.lock:
            batch = self.state.batches.get(batch_id)
        if batch is None:
            raise openai_error(404, f"No batch found with id '{batch_id}'.", param="batch_id")
        return batch

    def batch_tags(self, batch_id: str) -> dict[str, str]:
        """Tags of a batch for fault targeting; none for an unknown id (it will 404)."""
        with self.state.lock:
            batch = self.state.batches.get(batch_id)
        return batch.tags if batch else {}

    def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        """The Batch object as of now."""
        return self._view(self.batch(batch_id))

    def list_batches(self, *, after: str | None, limit: int) -> dict[str, Any]:
        """A page of batches, newest first (only the page is brought up to date)."""
        with self.state.lock:
            batches = list(reversed(self.state.batches.values()))
        start, end = _window([b.id for b in batches], after, limit)
        return _page([self._view(b) for b in batches[start:end]], end < len(batches))

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        """Request cancellation; the batch shows ``cancelling`` and later ``cancelled``."""
        batch = self.batch(batch_id)
        with batch.lock:
            now = self.runtime.clock.now()
            if not batch.schedule.request_cancel(now):
                status = self._view_unlocked(batch)["status"]
                raise openai_error(400, f"Cannot cancel a batch with status '{status}'.",
                                   param="batch_id")
        return self._view(batch)

    def _view(self, batch: BatchRecord) -> dict[str, Any]:
        with batch.lock:
            return self._view_unlocked(batch)

    def _view_unlocked(self, batch: BatchRecord) -> dict[str, Any]:
        """Render as of now, writing result files first if the batch just reached them."""
        snap = batch.schedule.snapshot(self.runtime.clock.now())
        if snap.phase.has_results and batch.results is None:
            results, records = write_results(self.runtime, batch, snap)
            with self.state.lock:
                for record in records:
                    self.state.files[record.id] = record
            batch.results = results
        return render_batch(batch, snap)


def _fail_error(fault: FailBatchFault) -> dict[str, Any]:
    return batch_error(fault.code, fault.message or f"The batch failed ({fault.code}).")


def _window(ids: list[str], after: str | None, limit: int) -> tuple[int, int]:
    """The slice after cursor ``after``; an unknown cursor yields an empty slice."""
    start = ids.index(after) + 1 if after in ids else (len(ids) if after else 0)
    return start, min(start + limit, len(ids))


def _page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """A cursor-paginated list (``first_id``/``last_id`` null on an empty page)."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
