"""Writing a batch's output and error files, once, when the batch reaches its results.

Streams the (validated) input file line by line and writes both result files as it goes;
memory holds one block of lines at a time. Lines are shuffled within blocks (deterministically)
because the real service does not keep input order either: clients must match on
``custom_id``.

Partial results (cancel, expiry): requests that finished before the cut are written as usual
(successes to the output file, failures to the error file, both counted); requests that had
not finished are written to the error file as non-HTTP errors (``batch_expired``, or
``batch_cancelled`` unless the settings say to omit them) and are *not* counted in
``request_counts.failed``, matching what users report from the real API.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from llmbatch.emulator.faults import json_line, poison_answer
from llmbatch.emulator.openai.endpoints import ENDPOINTS, Usage
from llmbatch.emulator.openai.lines import (
    BATCH_CANCELLED,
    BATCH_EXPIRED,
    LineFailure,
    failure_line,
    line_failure,
    success_line,
)
from llmbatch.emulator.openai.state import BatchRecord, FileRecord, Results
from llmbatch.emulator.openai.validation import iter_requests
from llmbatch.emulator.progress import Phase, Snapshot
from llmbatch.emulator.runtime import EmulatorRuntime

__all__ = ["write_results"]

BLOCK_LINES = 512
DEFAULT_RETENTION_S = 30 * 86_400


@dataclass
class _Sink:
    """One result file being written, in shuffled blocks."""

    path: Path
    handle: IO[bytes]
    rng: random.Random
    block: list[bytes] = field(default_factory=list)
    lines: int = 0

    def add(self, record: dict[str, Any]) -> None:
        self.block.append(json_line(record))
        if len(self.block) >= BLOCK_LINES:
            self.flush()

    def flush(self) -> None:
        if self.block:
            self.rng.shuffle(self.block)
            self.handle.write(b"\n".join(self.block) + b"\n")
            self.lines += len(self.block)
            self.block.clear()


def _ids(batch_id: str, index: int) -> tuple[str, str, str]:
    """(line id, request id, response id) for request ``index``: stable for a batch."""
    h = hashlib.sha256(f"{batch_id}:{index}".encode()).hexdigest()
    return f"batch_req_{h[:32]}", f"req_{h[32:64]}", h[8:37]


def _cut(snap: Snapshot, cancelled_requests: str) -> tuple[str, str] | None:
    """The non-HTTP error written for requests unfinished at the cut, if any."""
    if snap.phase == Phase.EXPIRED:
        return BATCH_EXPIRED
    if snap.phase == Phase.CANCELLED and cancelled_requests == "error_file":
        return BATCH_CANCELLED
    return None


def write_results(
    runtime: EmulatorRuntime, batch: BatchRecord, snap: Snapshot
) -> tuple[Results, list[FileRecord]]:
    """Write the result files of ``batch`` as of ``snap`` (a phase with results).

    Returns the results and the file records to register (none for a batch cancelled before
    it started: nothing ran, so there is nothing to report).
    """
    if Phase.RUNNING not in snap.times:
        return Results(None, None, 0, 0, Usage()), []
    settings = runtime.settings
    endpoint = ENDPOINTS[batch.endpoint]
    start = snap.times[Phase.RUNNING]
    run_s = batch.schedule.run_s
    total = batch.schedule.total
    # Files date from when results were prepared, whichever poll first saw them.
    made_at = snap.times.get(Phase.FINALIZING) or max(snap.times.values())
    unfinished = _cut(snap, settings.openai.cancelled_requests)
    ids = {kind: runtime.ids.new("file-") for kind in ("output", "error")}
    sinks: dict[str, _Sink] = {}
    usage = {"input": 0, "cached": 0, "output": 0, "reasoning": 0}
    completed = failed = 0
    try:
        for kind in ("output", "error"):
            path = runtime.blobs.path(ids[kind])
            sinks[kind] = _Sink(path, path.open("wb"), random.Random(f"{batch.id}:{kind}"))
        input_path = runtime.blobs.path(batch.input_blob)
        for index, line in iter_requests(input_path):
            custom_id, body = line["custom_id"], line["body"]
            line_id, request_id, response_id = _ids(batch.id, index)
            if batch.order.rank(index) >= snap.finished:
                if unfinished is not None:
                    cut = LineFailure("error", unfinished[0], unfinished[1])
                    sinks["error"].add(failure_line(line_id, custom_id, request_id, cut))
                continue
            failure = line_failure(body=body, endpoint=endpoint, batch_id=batch.id,
                                   custom_id=custom_id, seed=settings.seed,
                                   item_errors=batch.item_errors)
            if failure is not None:
                failed += 1
                sinks["error"].add(failure_line(line_id, custom_id, request_id, failure))
                continue
            done_at = start + run_s * (batch.order.rank(index) + 1) / total
            response, used = endpoint.respond(body, created=int(done_at),
                                              response_id=response_id,
                                              default_dim=settings.openai.embedding_dim)
            completed += 1
            for key in usage:
                usage[key] += getattr(used, key)
            if batch.poison is not None and batch.poison.hits(settings.seed, batch.id, custom_id):
                response = poison_answer(response, batch.poison.poison)
            sinks["output"].add(success_line(line_id, custom_id, request_id, response))
        for sink in sinks.values():
            sink.flush()
    finally:
        for sink in sinks.values():
            sink.handle.close()
    records = []
    final_ids: dict[str, str | None] = {}
    retention = batch.output_expires_s or DEFAULT_RETENTION_S
    for kind, sink in sinks.items():
        if sink.lines == 0:
            runtime.blobs.delete(ids[kind])
            final_ids[kind] = None
            continue
        final_ids[kind] = ids[kind]
        records.append(FileRecord(
            id=ids[kind], filename=f"{batch.id}_{kind}.jsonl", purpose="batch_output",
            bytes=sink.path.stat().st_size, created_at=int(made_at),
            expires_at=int(made_at) + retention,
        ))
    results = Results(final_ids["output"], final_ids["error"], completed, failed,
                      Usage(**usage))
    return results, records
