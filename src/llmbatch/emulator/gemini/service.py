"""The Gemini Files and Batch API as plain methods: parameters in, JSON-able dicts out.

Routes parse HTTP and call these; errors are ``EmulatorHTTPError`` in Gemini's shape. What is
checked where, as the real service appears to (the synchronous part is documented; where a
file's bad lines fail is not, and is our choice):

- at create (400/404): the body's shape, unknown ``batch`` fields, the model, an inline body
  over ``max_inline_bytes`` (20 MiB), an unknown or non-JSONL input file;
- while validating (batch FAILED with an Operation ``error``): a file line that is not a JSON
  object with a ``request`` object, an empty file, or an injected ``fail_batch`` fault (whose
  ``code`` becomes the ErrorInfo ``reason``);
- per request (an ``error`` entry, code 400): what ``generate.reject`` (or, in an embeddings
  batch, ``embed.reject``) refuses, plus injected ``item_errors``.

Embeddings batches (``asyncBatchEmbedContent``) share everything with generate batches - the
envelope, both input modes, lifecycle, faults, results - except the per-request check and
answer (``embed``) and the resource type names.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import IO, Any

from llmbatch.emulator.faults import BatchFaults, ItemErrorsFault
from llmbatch.emulator.gemini.errors import PROVIDER, bad_request, rpc_error
from llmbatch.emulator.gemini.fields import Violation, check
from llmbatch.emulator.gemini.lines import line_failure
from llmbatch.emulator.gemini.results import write_results
from llmbatch.emulator.gemini.state import (
    BatchRecord,
    FileRecord,
    GeminiState,
    UploadSession,
    render_file,
    render_operation,
)
from llmbatch.emulator.gemini.webhook_events import webhook_config_problem
from llmbatch.emulator.progress import FinishOrder, Schedule
from llmbatch.emulator.runtime import EmulatorRuntime

__all__ = ["CREATE_METHODS", "GeminiService"]

# The create verb of each batch kind (``models/{model}:<verb>``).
CREATE_METHODS = {"batchGenerateContent": "generate", "asyncBatchEmbedContent": "embed"}

# The message a create body is parsed into, per batch kind (see ``fields``).
_CREATE_MESSAGES = {"generate": "CreateGenerateContentBatch", "embed": "CreateEmbedContentBatch"}


def _first(mapping: dict[str, Any], camel: str, snake: str) -> Any:
    return mapping.get(camel, mapping.get(snake))


class GeminiService:
    """Files and batches of one emulator."""

    def __init__(self, runtime: EmulatorRuntime) -> None:
        self.runtime = runtime
        self.state = GeminiState()
        runtime.on_reset_state(self.state.reset)

    @property
    def settings(self) -> Any:
        return self.runtime.settings.gemini

    # -- files -----------------------------------------------------------------------------

    def start_upload(self, metadata: dict[str, Any], declared_size: int | None,
                     mime_type: str | None) -> UploadSession:
        """Open a resumable upload session for a new file."""
        file_meta = metadata.get("file") if isinstance(metadata.get("file"), dict) else {}
        assert isinstance(file_meta, dict)
        name = _first(file_meta, "name", "name") or self.runtime.ids.new(
            "files/", length=12, alphabet="hex")
        mime = mime_type or _first(file_meta, "mimeType", "mime_type")
        if not isinstance(mime, str) or not mime:
            raise rpc_error(400, "Missing MIME type for the uploaded file.")
        if declared_size is not None and declared_size > self.settings.max_file_bytes:
            raise rpc_error(400, f"File size {declared_size} exceeds the maximum of "
                            f"{self.settings.max_file_bytes} bytes.")
        now = self.runtime.clock.now()
        record = FileRecord(name=str(name), display_name=_first(file_meta, "displayName",
                                                                "display_name"),
                            mime_type=mime, size=0, sha256="", created_at=now,
                            expires_at=now + self.settings.file_retention_s, source="UPLOADED")
        session = UploadSession(id=self.runtime.ids.new("", length=32), file=record,
                                declared_size=declared_size)
        with self.state.lock:
            self.state.uploads[session.id] = session
        return session

    def upload_chunk(self, session_id: str, offset: int, data: bytes,
                     finalize: bool) -> FileRecord | None:
        """Append a chunk; on finalize register the file and return it."""
        with self.state.lock:
            session = self.state.uploads.get(session_id)
        if session is None:
            raise rpc_error(404, "Upload session not found or expired.")
        if offset != session.received:
            raise rpc_error(400, f"Invalid upload offset {offset}; expected "
                            f"{session.received}.")
        path = self.runtime.blobs.path(session.file.blob)
        with path.open("ab") as handle:
            handle.write(data)
        session.received += len(data)
        if session.received > self.settings.max_file_bytes:
            self.runtime.blobs.delete(session.file.blob)
            raise rpc_error(400, "The uploaded file is too large.")
        if not finalize:
            return None
        digest = hashlib.sha256(path.read_bytes()).digest()
        session.file.size = session.received
        session.file.sha256 = base64.b64encode(digest).decode()
        with self.state.lock:
            self.state.uploads.pop(session_id, None)
            self.state.files[session.file.name] = session.file
        return session.file

    def file(self, name: str) -> FileRecord:
        """A live file, or 403/404 as Google answers for files you cannot see."""
        with self.state.lock:
            record = self.state.files.get(name)
        if record is None or record.expires_at <= self.runtime.clock.now():
            raise rpc_error(403, f"You do not have permission to access the File "
                            f"{name.split('/')[-1]} or it may not exist.")
        return record

    def list_files(self, page_size: int, token: str | None, *, base_url: str,
                   version: str) -> dict[str, Any]:
        now = self.runtime.clock.now()
        with self.state.lock:
            files = [f for f in reversed(self.state.files.values()) if f.expires_at > now]
        page, next_token = _page(files, page_size, token)
        body: dict[str, Any] = {"files": [render_file(f, base_url, version) for f in page]}
        if next_token:
            body["nextPageToken"] = next_token
        return body

    def delete_file(self, name: str) -> dict[str, Any]:
        record = self.file(name)
        with self.state.lock:
            self.state.files.pop(name, None)
        self.runtime.blobs.delete(record.blob)
        return {}

    def download(self, name: str) -> FileRecord:
        """A generated file to stream (uploaded files cannot be downloaded)."""
        record = self.file(name)
        if record.source != "GENERATED":
            raise rpc_error(400, "Only generated files can be downloaded.",
                            reason="FILE_NOT_DOWNLOADABLE")
        return record

    # -- batches ---------------------------------------------------------------------------

    def check_model(self, model: str, version: str,
                    method: str = "batchGenerateContent") -> str:
        """``models/{name}``, or 404 for an unknown model or one without ``method`` (only
        models with ``embedding`` in their name embed, and only they)."""
        name = model.removeprefix("models/")
        embeds = "embedding" in name
        if not name.startswith(tuple(self.settings.model_prefixes)) \
                or embeds != (CREATE_METHODS.get(method) == "embed"):
            raise rpc_error(404, f"models/{name} is not found for API version {version}, or is "
                            f"not supported for {method}. Call ListModels to see the "
                            "list of available models and their supported methods.")
        return f"models/{name}"

    def create_batch(self, model: str, body: Any, faults: BatchFaults,
                     kind: str = "generate") -> dict[str, Any]:
        """Validate the create body, store the input as a JSONL blob, schedule the batch
        (``kind``: ``generate`` or ``embed``)."""
        try:
            check(body, _CREATE_MESSAGES[kind])
        except Violation as exc:
            raise bad_request(exc.message, exc.field) from None
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, dict):
            raise rpc_error(400, "* BatchGenerateContentRequest.batch: batch is required")
        if (problem := webhook_config_problem(batch)) is not None:
            raise rpc_error(400, problem)
        display = _first(batch, "displayName", "display_name")
        if not isinstance(display, str) or not display:
            raise rpc_error(400, "* GenerateContentBatch.display_name: display_name is required")
        config = _first(batch, "inputConfig", "input_config")
        if not isinstance(config, dict):
            raise rpc_error(400, "* GenerateContentBatch.input_config: input_config is required")
        name = self.runtime.ids.new("batches/", length=30, alphabet="hex")
        blob = name.replace("/", "-") + ".input"
        file_name = _first(config, "fileName", "file_name")
        requests = config.get("requests")
        if (file_name is None) == (requests is None):
            raise rpc_error(400, "* GenerateContentBatch.input_config: exactly one of file_name "
                            "and requests must be set")
        if file_name is not None:
            source = self.file(str(file_name))
            if source.source != "UPLOADED":
                raise rpc_error(400, f"{file_name} is not an uploaded input file.")
            self.runtime.blobs.link(source.blob, blob)
        else:
            self._write_inline(requests, blob)
        total, failing, failure = self._scan(blob, name, faults.item_errors, kind)
        if faults.fail is not None and failure is None:
            failure = _op_error(faults.fail.message or f"The batch failed "
                                  f"({faults.fail.code}).", [{
                                      "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                      "reason": faults.fail.code, "domain": "googleapis.com"}])
        rt, timing = self.runtime, self.runtime.settings.timing
        now = rt.clock.now()
        record = BatchRecord(
            name=name, model=model, display_name=display, input_file=file_name,
            input_blob=blob, created_at=now, failing=failing, item_errors=faults.item_errors,
            failure=failure, order=FinishOrder(total, name, failing), kind=kind,
            poison=faults.poison,
            schedule=Schedule(
                created_at=now, validate_s=timing.validate_s, run_s=timing.run_s(total),
                finalize_s=timing.finalize_s, cancel_s=timing.cancel_s,
                deadline=now + self.settings.expire_after_s, total=total,
                fails_validation=failure is not None,
                halt_fraction=faults.stuck.at_fraction if faults.stuck else None,
                expire_fraction=faults.expire.at_fraction if faults.expire else None))
        with self.state.lock:
            self.state.batches[name] = record
        rt.stats.batch_created(PROVIDER, record.tags)
        return self.view(record, with_inline=False)

    def _write_inline(self, requests: Any, blob: str) -> None:
        items = requests.get("requests") if isinstance(requests, dict) else None
        if not isinstance(items, list) or not items:
            raise rpc_error(400, "* GenerateContentBatch.input_config.requests.requests: at "
                            "least one request is required")
        with self.runtime.blobs.path(blob).open("wb") as handle:
            for i, item in enumerate(items):
                request = item.get("request") if isinstance(item, dict) else None
                metadata = item.get("metadata") if isinstance(item, dict) else None
                if not isinstance(request, dict) or not (metadata is None or (
                        isinstance(metadata, dict)
                        and all(isinstance(v, str) for v in metadata.values()))):
                    self.runtime.blobs.delete(blob)
                    raise rpc_error(400, f"* GenerateContentBatch.input_config.requests."
                                    f"requests[{i}]: request must be an object and metadata a "
                                    "map of strings")
                line = {"request": request, **({"metadata": metadata} if metadata else {})}
                handle.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")

    def _scan(self, blob: str, name: str, item_errors: ItemErrorsFault | None, kind: str
              ) -> tuple[int, list[int], dict[str, Any] | None]:
        """(requests, failing indexes, batch failure) of the input blob, in one pass."""
        total = 0
        failing: list[int] = []
        with self.runtime.blobs.path(blob).open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    return total, failing, _op_error(f"Line {number} of the input file "
                                                       "is empty.")
                try:
                    line = json.loads(raw)
                except ValueError:
                    line = None
                if not isinstance(line, dict) or not isinstance(line.get("request"), dict):
                    return total, failing, _op_error(
                        f"Line {number} of the input file is not a JSON object with a "
                        "'request' object.")
                if line_failure(line["request"], batch=name, index=total,
                                seed=self.runtime.settings.seed,
                                item_errors=item_errors, kind=kind) is not None:
                    failing.append(total)
                total += 1
        if total == 0:
            return 0, [], _op_error("The batch input is empty.")
        return total, failing, None

    def batch(self, name: str) -> BatchRecord:
        with self.state.lock:
            record = self.state.batches.get(name)
        if record is None:
            raise rpc_error(404, f"Batch {name} not found.")
        return record

    def batch_tags(self, name: str) -> dict[str, str]:
        with self.state.lock:
            record = self.state.batches.get(name)
        return record.tags if record else {}

    def view(self, batch: BatchRecord, *, with_inline: bool = True) -> dict[str, Any]:
        """Render as of now, writing the results first if the batch just reached them."""
        with batch.lock:
            snap = batch.schedule.snapshot(self.runtime.clock.now())
            if snap.phase.has_results and snap.phase.terminal and batch.results is None:
                batch.results, record = write_results(self.runtime, batch, snap)
                if record is not None:
                    with self.state.lock:
                        self.state.files[record.name] = record
            inline = None
            if with_inline and batch.results is not None and batch.results.inline_blob:
                inline = _read_jsonl(self.runtime.blobs.path(batch.results.inline_blob).open("rb"))
            return render_operation(batch, snap, inline)

    def list_batches(self, page_size: int, token: str | None) -> dict[str, Any]:
        """Newest first; inline responses are left out of listed batches (GET shows them)."""
        with self.state.lock:
            batches = list(reversed(self.state.batches.values()))
        page, next_token = _page(batches, page_size, token)
        body: dict[str, Any] = {"operations": [self.view(b, with_inline=False) for b in page]}
        if next_token:
            body["nextPageToken"] = next_token
        return body

    def cancel(self, name: str) -> dict[str, Any]:
        batch = self.batch(name)
        with batch.lock:
            if not batch.schedule.request_cancel(self.runtime.clock.now()):
                raise rpc_error(400, f"Batch {name} is already in a terminal state and cannot "
                                "be cancelled.", reason="FAILED_PRECONDITION")
        return {}

    def delete(self, name: str) -> dict[str, Any]:
        batch = self.batch(name)
        with self.state.lock:
            self.state.batches.pop(name, None)
        self.runtime.blobs.delete(batch.input_blob)
        return {}


def _op_error(message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An Operation ``error``: a google.rpc.Status proper (gRPC code 3 INVALID_ARGUMENT, no
    ``status`` string, which only HTTP error envelopes carry)."""
    return {"code": 3, "message": message, **({"details": details} if details else {})}


def _read_jsonl(handle: IO[bytes]) -> list[dict[str, Any]]:
    with handle:
        return [json.loads(line) for line in handle if line.strip()]


def _page(items: list[Any], page_size: int, token: str | None) -> tuple[list[Any], str | None]:
    """Offset pagination behind an opaque token."""
    try:
        start = int(token, 16) if token else 0
    except ValueError:
        raise rpc_error(400, "Invalid page token.") from None
    end = start + page_size
    return items[start:end], (format(end, "x") if end < len(items) else None)

