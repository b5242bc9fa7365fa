"""Writing a batch's results, once, when it reaches a terminal state with results.

File input -> a generated result file (``{"key", "response"|"error"}`` lines, newline-terminated,
no blank lines); inline input -> a blob of inline responses (``{"metadata"?, "response"|"error"}``)
that GET renders under ``inlinedResponses``. Lines keep input order (Gemini does not document
the order; clients join on the key). Embeddings batches write the same entries, answered by
``embed.respond``.

Requests unfinished at a cancel or expiry cut get an error entry (``CANCELLED`` / 499, or
``DEADLINE_EXCEEDED`` / 504) unless ``unfinished_requests`` is ``omit``; they are counted in
neither counter. Whether the real service reports them, and how, is not documented.
Inline errors carry only ``code`` and ``message``: the SDK types ``JobError.details`` as a list
of strings, so a google.rpc ``details`` list would break its parsing.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from llmbatch.emulator.faults import json_line, poison_answer
from llmbatch.emulator.gemini import embed, generate
from llmbatch.emulator.gemini.errors import status_body
from llmbatch.emulator.gemini.lines import line_failure
from llmbatch.emulator.gemini.state import BatchRecord, FileRecord, Results
from llmbatch.emulator.progress import Phase, Snapshot
from llmbatch.emulator.runtime import EmulatorRuntime
from llmbatch.emulator.settings import GeminiSettings

__all__ = ["write_results"]

_UNRUN = {Phase.EXPIRED: (504, "The batch expired before this request was processed."),
          Phase.CANCELLED: (499, "The batch was cancelled before this request was processed.")}


def _entry(line: dict[str, Any], inline: bool, outcome: dict[str, Any]) -> dict[str, Any]:
    if inline:
        metadata = line.get("metadata")
        return {**outcome, **({"metadata": metadata} if metadata else {})}
    key = line.get("key")
    return {**({"key": key} if isinstance(key, str) else {}), **outcome}


def _error(code: int, message: str, inline: bool) -> dict[str, Any]:
    return {"error": {"code": code, "message": message} if inline
            else status_body(code, message)}


def write_results(rt: EmulatorRuntime, batch: BatchRecord, snap: Snapshot
                  ) -> tuple[Results, FileRecord | None]:
    """Write the results of ``batch`` as of ``snap``; the file record for file input."""
    settings: GeminiSettings = rt.settings.gemini
    if Phase.RUNNING not in snap.times or snap.phase == Phase.FAILED:
        return Results(0, 0, None, None), None
    unrun = _UNRUN.get(snap.phase) if settings.unfinished_requests == "error" else None
    out_name = rt.ids.new("files/batch-", length=24, alphabet="hex")
    blob = out_name.replace("/", "-")
    succeeded = failed = 0
    digest = hashlib.sha256()
    with rt.blobs.path(batch.input_blob).open("rb") as source, \
            rt.blobs.path(blob).open("wb") as sink:
        for index, raw in enumerate(source):
            line = json.loads(raw)
            request = line["request"]
            if batch.order.rank(index) >= snap.finished:
                if unrun is None:
                    continue
                outcome = _error(*unrun, batch.inline)
            elif failure := line_failure(request, batch=batch.name, index=index,
                                         seed=rt.settings.seed, item_errors=batch.item_errors,
                                         kind=batch.kind):
                failed += 1
                outcome = _error(*failure, batch.inline)
            elif batch.kind == "embed":
                succeeded += 1
                outcome = {"response": embed.respond(request)}
            else:
                succeeded += 1
                response_id = hashlib.sha256(f"{batch.name}:{index}".encode()).hexdigest()[:22]
                outcome = {"response": generate.respond(request, model=batch.model,
                                                        response_id=response_id)}
            poison = batch.poison
            if "response" in outcome and poison is not None and poison.hits(
                    rt.settings.seed, batch.name, str(line.get("key", index))):
                outcome = poison_answer(outcome, poison.poison)
            data = json_line(_entry(line, batch.inline, outcome)) + b"\n"
            digest.update(data)
            sink.write(data)
    if batch.inline:
        return Results(succeeded, failed, None, blob), None
    made_at = max(snap.times.values())
    record = FileRecord(name=out_name, display_name=f"{batch.display_name}-output",
                        mime_type="application/jsonl", size=rt.blobs.size(blob),
                        sha256=base64.b64encode(digest.digest()).decode(), created_at=made_at,
                        expires_at=made_at + settings.result_retention_s,
                        source="GENERATED", tags=batch.tags)
    return Results(succeeded, failed, out_name, None), record
