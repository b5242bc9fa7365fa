"""Turning what a Python caller has into a JSONL file of request lines: a path as it is; any
iterable of request dicts or plain strings (a list, a DataFrame's records, a datasets split)
written to a temporary file a line at a time, so a large iterable is never held whole."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["RequestsInput", "as_jsonl", "request_line"]

RequestsInput = str | os.PathLike[str] | Iterable[Mapping[str, Any] | str]
_LINE_KEYS = {"custom_id", "method", "url", "body", "native"}


def request_line(index: int, entry: Mapping[str, Any] | str) -> dict[str, Any]:
    """One request line: a string is a user message; a dict with ``messages`` (or
    ``input``, for embeddings) is a body; a dict of line keys (``custom_id``, ``body``...) is
    taken as it is. Lines without a ``custom_id`` get ``item-<n>`` (0-based, input order)."""
    if isinstance(entry, str):
        return {"custom_id": f"item-{index}",
                "body": {"messages": [{"role": "user", "content": entry}]}}
    line = dict(entry)
    if not set(line) & {"body", "native"}:
        custom_id = line.pop("custom_id", None)
        line = {"body": line} if custom_id is None else {"custom_id": custom_id, "body": line}
    line.setdefault("custom_id", f"item-{index}")
    return line


def as_jsonl(requests: RequestsInput) -> tuple[Path, bool]:
    """``(path, temporary)``: the file to submit, and whether the caller must delete it."""
    if isinstance(requests, str | os.PathLike):
        return Path(requests), False
    if isinstance(requests, Mapping):
        raise TypeError("pass an iterable of requests (a list of dicts), not one dict")
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, deleted by the caller
        "w", encoding="utf-8", prefix="llmbatch-client-", suffix=".jsonl", delete=False)
    with handle:
        for index, entry in enumerate(requests):
            handle.write(json.dumps(request_line(index, entry), ensure_ascii=False) + "\n")
    return Path(handle.name), True
