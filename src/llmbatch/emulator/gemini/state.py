"""The Gemini emulator's records (files, upload sessions, batches) and their JSON views.

Bytes live in the shared blob store; records are small. A batch keeps its input as a JSONL blob
of ``{"key"?, "request"}`` lines whatever the input mode, so inline and file batches share one
result writer. Views follow the live API (PROVIDER_APIS.md C.1): the batch is an Operation whose
``metadata`` is the ``GenerateContentBatch`` (``BATCH_STATE_*``, int64 counters as strings,
RFC 3339 times), with the output in both ``metadata.output`` and ``response``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from llmbatch.emulator.faults import ItemErrorsFault, PoisonOutputFault
from llmbatch.emulator.progress import FinishOrder, Phase, Schedule, Snapshot

__all__ = ["BatchRecord", "FileRecord", "GeminiState", "Results", "UploadSession",
           "render_file", "render_operation", "rfc3339", "state_of"]

TYPE_PREFIX = "type.googleapis.com/google.ai.generativelanguage.v1beta."
_STATE = {Phase.VALIDATING: "PENDING", Phase.RUNNING: "RUNNING", Phase.FINALIZING: "RUNNING",
          Phase.COMPLETED: "SUCCEEDED", Phase.FAILED: "FAILED", Phase.CANCELLED: "CANCELLED",
          Phase.EXPIRED: "EXPIRED"}


def rfc3339(moment: float) -> str:
    """``2026-01-01T00:00:00.123456Z``."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class FileRecord:
    """An uploaded or generated file (``files/{id}``)."""

    name: str
    display_name: str | None
    mime_type: str
    size: int
    sha256: str
    created_at: float
    expires_at: float
    source: str  # UPLOADED | GENERATED
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def blob(self) -> str:
        return self.name.replace("/", "-")


def render_file(record: FileRecord, base_url: str, version: str) -> dict[str, Any]:
    """The File resource; ``downloadUri`` only for generated files (uploads cannot be read)."""
    body: dict[str, Any] = {
        "name": record.name, "mimeType": record.mime_type, "sizeBytes": str(record.size),
        "createTime": rfc3339(record.created_at), "updateTime": rfc3339(record.created_at),
        "expirationTime": rfc3339(record.expires_at), "sha256Hash": record.sha256,
        "uri": f"{base_url}/{version}/{record.name}", "state": "ACTIVE", "source": record.source,
    }
    if record.display_name:
        body["displayName"] = record.display_name
    if record.source == "GENERATED":
        body["downloadUri"] = f"{base_url}/download/{version}/{record.name}:download?alt=media"
    return body


@dataclass
class UploadSession:
    """A resumable upload between ``start`` and ``finalize``."""

    id: str
    file: FileRecord
    declared_size: int | None
    received: int = 0


@dataclass(frozen=True)
class Results:
    """What result generation produced: counts, and the result file or inline-results blob."""

    succeeded: int
    failed: int
    responses_file: str | None
    inline_blob: str | None


@dataclass
class BatchRecord:
    """One batch: parameters, what validation learned, schedule and (once made) results."""

    name: str
    model: str
    display_name: str
    input_file: str | None
    input_blob: str
    created_at: float
    schedule: Schedule
    order: FinishOrder
    failing: list[int]
    item_errors: ItemErrorsFault | None
    failure: dict[str, Any] | None  # the Operation error of a batch that fails
    results: Results | None = None
    kind: str = "generate"  # "generate" (batchGenerateContent) or "embed" (asyncBatchEmbedContent)
    poison: PoisonOutputFault | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def inline(self) -> bool:
        return self.input_file is None

    @property
    def tags(self) -> dict[str, str]:
        """What fault rules and stats match on."""
        return {"displayName": self.display_name}


class GeminiState:
    """All files, upload sessions and batches of the Gemini emulator."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.files: dict[str, FileRecord] = {}
        self.uploads: dict[str, UploadSession] = {}
        self.batches: dict[str, BatchRecord] = {}

    def reset(self) -> None:
        """Forget everything (the blob store is cleared by the runtime)."""
        with self.lock:
            self.files.clear()
            self.uploads.clear()
            self.batches.clear()


def state_of(snap: Snapshot) -> str:
    """``BATCH_STATE_*`` of a snapshot; cancelling shows the state it is leaving."""
    if snap.phase == Phase.CANCELLING:
        return "BATCH_STATE_" + ("RUNNING" if Phase.RUNNING in snap.times else "PENDING")
    return "BATCH_STATE_" + _STATE[snap.phase]


def render_operation(batch: BatchRecord, snap: Snapshot,
                     inline_responses: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The Operation for ``batch`` as of ``snap``; ``inline_responses`` when they are shown.

    Embeddings batches are ``EmbedContentBatch`` resources whose inline output is also sent
    under ``inlinedResponses``: google-genai renames it to ``inlinedEmbedContentResponses``
    client-side when the entries hold an ``embedding`` (``t_recv_batch_job_destination``)."""
    total = batch.schedule.total
    if batch.results is not None:
        ok, failed = batch.results.succeeded, batch.results.failed
    else:
        failed = batch.order.failed_before(snap.finished) if Phase.RUNNING in snap.times else 0
        ok = snap.finished - failed
    terminal = snap.phase.terminal and (batch.results is not None
                                        or snap.phase == Phase.FAILED)
    updated = max([batch.created_at, *snap.times.values()])
    resource = "EmbedContentBatch" if batch.kind == "embed" else "GenerateContentBatch"
    metadata: dict[str, Any] = {
        "@type": TYPE_PREFIX + resource,
        "name": batch.name, "model": batch.model, "displayName": batch.display_name,
        "createTime": rfc3339(batch.created_at), "updateTime": rfc3339(updated),
        "state": state_of(snap), "priority": "0",
        "batchStats": {"requestCount": str(total), "successfulRequestCount": str(ok),
                       "failedRequestCount": str(failed),
                       "pendingRequestCount": str(max(total - ok - failed, 0))},
    }
    if batch.input_file is not None:
        metadata["inputConfig"] = {"fileName": batch.input_file}
    body: dict[str, Any] = {"name": batch.name, "metadata": metadata}
    if terminal:
        metadata["endTime"] = rfc3339(updated)
        body["done"] = True
        output: dict[str, Any] | None = None
        if batch.results is not None and batch.results.responses_file:
            output = {"responsesFile": batch.results.responses_file}
        elif inline_responses is not None:
            output = {"inlinedResponses": {"inlinedResponses": inline_responses}}
        if output is not None:
            metadata["output"] = output
            body["response"] = {"@type": TYPE_PREFIX + resource + "Output", **output}
        if snap.phase == Phase.FAILED and batch.failure is not None:
            body["error"] = batch.failure
    return body

