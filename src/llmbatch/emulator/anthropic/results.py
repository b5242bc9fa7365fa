"""Writing a batch's results, once, when it ends: one ``{"custom_id", "result"}`` JSON object
per line, no blank line (the SDK's JSONL decoder fails on one), in input order (Anthropic
documents "any order"; clients join on ``custom_id``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from llmbatch.emulator.anthropic import lines, messages
from llmbatch.emulator.anthropic.caching import PromptCache
from llmbatch.emulator.anthropic.state import COUNTERS, BatchRecord
from llmbatch.emulator.faults import json_line, poison_answer
from llmbatch.emulator.progress import Phase, Snapshot
from llmbatch.emulator.runtime import EmulatorRuntime

__all__ = ["results_blob", "write_results"]


def results_blob(record: BatchRecord) -> str:
    """The blob an ended batch's results are written to."""
    return f"{record.blob}.results"


def write_results(runtime: EmulatorRuntime, record: BatchRecord, snap: Snapshot,
                  cache: PromptCache | None = None) -> dict[str, int]:
    """Write every request's result line; the request counts of the ended batch. ``cache``
    holds the prompt prefixes written by earlier requests (``caching``)."""
    counts = dict.fromkeys(COUNTERS, 0)
    cut = "expired" if snap.phase is Phase.EXPIRED else "canceled"
    seed = runtime.settings.seed
    src = runtime.blobs.path(record.blob)
    dst = runtime.blobs.path(results_blob(record))
    with src.open("rb") as requests, dst.open("wb") as out:
        for index, raw in enumerate(requests):
            item = json.loads(raw)
            custom_id, params = item["custom_id"], item["params"]
            h = hashlib.sha256(f"{record.id}:{index}".encode()).hexdigest()
            if record.order.rank(index) >= snap.finished:
                result: dict[str, Any] = {"type": cut}
                counts[cut] += 1
            else:
                failed = lines.failure(params, batch_id=record.id, custom_id=custom_id,
                                       seed=seed, item_errors=record.item_errors,
                                       betas=record.betas)
                if failed is not None:
                    result = lines.errored(failed[0], failed[1], f"req_{h[:24]}")
                    counts["errored"] += 1
                else:
                    answer = messages.message(params, f"msg_{h[24:48]}", cache)
                    poison = record.poison
                    if poison is not None and poison.hits(seed, record.id, custom_id):
                        answer = poison_answer(answer, poison.poison)
                    result = {"type": "succeeded", "message": answer}
                    counts["succeeded"] += 1
            out.write(json_line({"custom_id": custom_id, "result": result}) + b"\n")
    return counts
