"""Validation of a batch input file, as the real service does it before running anything.

One streaming pass over the file (nothing but the set of custom_ids is held) that reports
batch-level errors in the ``errors.data[]`` shape (``{code, message, param, line}``, lines
1-based) and, for a valid file, what running it needs: the request count, the model, the
prompt tokens to count against the enqueued-token limit, and which requests will fail.

Codes, as reported by users of the real API (PROVIDER_APIS.md A.2): ``invalid_json_line``,
``url_mismatch``, ``model_mismatch``, ``duplicate_custom_id``, ``empty_file``,
``too_many_tasks``. The emulator adds ``file_too_large`` (input over the batch byte limit)
and ``missing_required_parameter`` / ``invalid_value`` for lines lacking ``custom_id``,
``method``, ``body`` or ``body.model``; the real texts for those are not documented.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmbatch.emulator.faults import ItemErrorsFault
from llmbatch.emulator.openai.endpoints import ENDPOINTS
from llmbatch.emulator.openai.lines import line_failure
from llmbatch.emulator.settings import OpenAISettings

__all__ = ["MODEL_OPTIONAL", "ScanResult", "batch_error", "iter_requests", "scan_input"]

# Endpoints whose body may leave ``model`` out (moderations defaults to its latest model).
MODEL_OPTIONAL = frozenset({"/v1/moderations"})


@dataclass
class ScanResult:
    """What validation learned about an input file."""

    total: int = 0
    model: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    failing: list[int] = field(default_factory=list)
    prompt_tokens: int = 0


def batch_error(
    code: str, message: str, *, line: int | None = None, param: str | None = None
) -> dict[str, Any]:
    """One ``BatchError``."""
    return {"code": code, "message": message, "param": param, "line": line}


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, stripped bytes) of every line, blank lines included."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            yield number, raw.rstrip(b"\r\n")


def iter_requests(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(request index, parsed line) of a file that passed validation."""
    index = 0
    for _, raw in _lines(path):
        if raw.strip():
            yield index, json.loads(raw)
            index += 1


def _check_line(
    raw: bytes, number: int, endpoint_url: str, result: ScanResult, seen: set[str]
) -> tuple[str, dict[str, Any]] | None:
    """(custom_id, body) of a well-formed line, or None after recording its error."""
    try:
        line = json.loads(raw)
    except ValueError:
        line = None
    if not isinstance(line, dict):
        result.errors.append(batch_error(
            "invalid_json_line", "This line is not parseable as valid JSON.", line=number))
        return None
    custom_id = line.get("custom_id")
    problem: tuple[str, str, str] | None = None
    body = line.get("body")
    if not isinstance(custom_id, str) or not custom_id:
        problem = ("missing_required_parameter", "Missing required parameter: 'custom_id'.",
                   "custom_id")
    elif line.get("method") != "POST":
        problem = ("invalid_value", "Invalid value for 'method': only 'POST' is supported.",
                   "method")
    elif line.get("url") != endpoint_url:
        problem = ("url_mismatch", f"The URL '{line.get('url')}' does not match the batch "
                   f"endpoint '{endpoint_url}'.", "url")
    elif not isinstance(body, dict):
        problem = ("missing_required_parameter", "Missing required parameter: 'body'.", "body")
    elif (not isinstance(body.get("model"), str) or not body["model"]) and not (
            endpoint_url in MODEL_OPTIONAL and "model" not in body):
        problem = ("missing_required_parameter", "Missing required parameter: 'body.model'.",
                   "body.model")
    elif result.model is not None and body.get("model", result.model) != result.model:
        problem = ("model_mismatch", f"The model '{body['model']}' does not match the model "
                   f"'{result.model}' of the first request: a batch takes one model.",
                   "body.model")
    elif custom_id in seen:
        problem = ("duplicate_custom_id", f"The custom_id '{custom_id}' is used by more than "
                   "one request; custom_id values must be unique within a batch.", "custom_id")
    if problem is not None:
        result.errors.append(batch_error(problem[0], problem[1], line=number, param=problem[2]))
        if result.model is None and isinstance(body, dict) and isinstance(body.get("model"), str):
            result.model = body["model"]
        return None
    assert isinstance(custom_id, str) and isinstance(body, dict)
    seen.add(custom_id)
    result.model = body.get("model", result.model)
    return custom_id, body


def scan_input(
    path: Path,
    *,
    endpoint_url: str,
    settings: OpenAISettings,
    batch_id: str,
    seed: int,
    item_errors: ItemErrorsFault | None,
) -> ScanResult:
    """Validate ``path`` for a batch on ``endpoint_url`` and plan its failures."""
    result = ScanResult()
    size = path.stat().st_size
    if size > settings.max_batch_bytes:
        result.errors.append(batch_error(
            "file_too_large", f"The batch input file is {size:,} bytes; the limit is "
            f"{settings.max_batch_bytes:,} bytes."))
        return result
    endpoint = ENDPOINTS[endpoint_url]
    seen: set[str] = set()
    blank_lines: list[int] = []
    for number, raw in _lines(path):
        if not raw.strip():
            blank_lines.append(number)  # an error only if a request follows it
            continue
        for blank in blank_lines:
            result.errors.append(batch_error(
                "invalid_json_line", "This line is not parseable as valid JSON.", line=blank))
        blank_lines.clear()
        if result.total >= settings.max_requests:
            result.errors = [batch_error(
                "too_many_tasks", f"The batch input file has more than the "
                f"{settings.max_requests:,} requests allowed in one batch.")]
            return result
        index = result.total
        result.total += 1
        checked = _check_line(raw, number, endpoint_url, result, seen)
        if len(result.errors) >= settings.max_reported_errors:
            break
        if checked is None:
            continue
        custom_id, body = checked
        result.prompt_tokens += endpoint.prompt_tokens(body)
        if line_failure(body=body, endpoint=endpoint, batch_id=batch_id, custom_id=custom_id,
                        seed=seed, item_errors=item_errors) is not None:
            result.failing.append(index)
    if result.total == 0 and not result.errors:
        result.errors.append(batch_error("empty_file", "The batch input file is empty."))
    return result
