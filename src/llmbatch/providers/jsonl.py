"""Writing JSONL batch inputs and reading JSONL result streams, shared by the provider
adapters."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, Final, NamedTuple

import orjson
import structlog

from llmbatch import json_text
from llmbatch.domain.models import ItemResult, new_tuple
from llmbatch.domain.storable import is_plain_json_text, is_plain_strict_json
from llmbatch.errors import InputError
from llmbatch.providers.base import BatchLimits

__all__ = ["ResultLine", "compact_json", "display_name", "parse_result_stream",
           "read_result_line", "split_lines", "spool_jsonl"]

log = structlog.get_logger(__name__)



# Types ``orjson`` would write on its own but the standard encoder refuses: handed to the
# fallback below, which refuses them as before.
_ORJSON_STRICT: Final = (orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
                         | orjson.OPT_PASSTHROUGH_SUBCLASS)


def compact_json(obj: Any, *, field: str) -> bytes:
    """``obj`` as one line of compact UTF-8 JSON, for a batch line or a request body.

    Refuses, as an ``InputError`` naming ``field``, what no provider can be sent faithfully
    (NaN or Infinity, values JSON has no word for, cycles). A lone surrogate (``"\ud800"``) is
    a legal JSON escape but not UTF-8: such an object is written with escapes instead.

    ``orjson`` writes it (every line of a job is encoded at submit: the standard encoder was a
    tenth of ingest), except where it would not say the same: it writes NaN and Infinity as
    ``null``, so output holding ``null`` anywhere is written again by the standard encoder,
    which refuses them; whatever ``orjson`` refuses (integers past 64 bits, non-string keys,
    lone surrogates, types JSON has no word for) goes there too, for its words.
    """
    try:
        data = orjson.dumps(obj, option=_ORJSON_STRICT)
    except orjson.JSONEncodeError:
        pass
    else:
        if data.find(b"null") < 0:  # ``find``, not ``in``: see domain.plain_chat
            return data
    try:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"cannot be written as JSON: {exc}", field=field) from exc
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("ascii")


def display_name(tag: str) -> str:
    """``llmbatch-<tag>`` with the tag cut to 100 characters safe in a file or display name."""
    return f"llmbatch-{re.sub(r'[^A-Za-z0-9_.-]', '_', tag)[:100]}"


def spool_jsonl(lines: Iterable[bytes], spool: IO[bytes], limits: BatchLimits, *,
                vendor: str) -> tuple[int, int]:
    """Write newline-terminated lines; (count, bytes). Refuses what the planner should never
    have built: a line with a newline, more than ``vendor``'s limits, an empty batch."""
    count = size = 0
    for line in lines:
        if b"\n" in line:
            raise ValueError(f"line {count + 1} of the batch contains a newline")
        count += 1
        size += len(line) + 1
        if count > limits.max_requests or size > limits.max_bytes:
            raise ValueError(f"batch exceeds the {vendor} limits ({limits.max_requests} "
                             f"requests, {limits.max_bytes} bytes) at line {count}")
        spool.write(line + b"\n")
    if count == 0:
        raise ValueError("a batch needs at least one line")
    return count, size


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Bytes chunks -> lines, split on ``\\n`` only.

    httpx's ``iter_lines`` follows ``str.splitlines`` and also breaks on U+2028, U+0085 and
    friends, which JSON allows unescaped inside strings (model output contains them), so it
    would cut valid result lines in two. Splitting bytes on ``\\n`` is exact for UTF-8 JSONL.
    Each chunk is split in C (``bytes.split``); a chunk holding no newline is kept aside and
    joined once its line ends, so a line spread over many chunks is copied once, not once per
    chunk.
    """
    pending: list[bytes] = []  # the start of a line that has not ended yet
    for chunk in chunks:
        if b"\n" not in chunk:
            if chunk:
                pending.append(chunk)
            continue
        if pending:
            pending.append(chunk)
            chunk = b"".join(pending)
            pending.clear()
        lines = chunk.split(b"\n")
        if last := lines.pop():
            pending.append(last)
        for line in lines:
            yield line.rstrip(b"\r")
    if pending:
        yield b"".join(pending).rstrip(b"\r")


def parse_result_stream(chunks: Iterable[bytes],
                        parse: Callable[[bytes, int], ItemResult | None],
                        *, provider: str, **where: Any) -> Iterator[ItemResult]:
    """The results in a JSONL body, one ``parse``d line at a time; blank lines are skipped.

    A line ``parse`` cannot read (``None``: not even its key) is logged with its number and
    skipped, not raised: its item simply has no result, which the service layer treats like
    any item a provider did not return (retryable), whereas raising would make one garbled
    line block every other result of the batch on every fetch attempt. ``where`` (batch,
    file) goes into the log line. Each result carries its line number, which an operator
    needs when one of them cannot be stored: ``parse`` is given it, so the usual result is
    built once (a copy of a frozen result costs about as much as ``orjson`` parsing the line).
    A parser that read the line with ``read_result_line`` passes on its ``plain`` verdict
    (``ItemResult.plain``); other lines are judged here (``is_plain_json_text``).
    """
    for line_no, raw in enumerate(split_lines(chunks), start=1):
        if not raw or raw.isspace():  # blank (a line is not copied to be told so)
            continue
        result = parse(raw, line_no)
        if result is None:
            log.error("llmbatch.provider.result_line_unreadable", provider=provider,
                      line=line_no, length=len(raw), **where)
            continue
        if result.plain and result.line == line_no:
            yield result
        else:
            yield result.at_line(line_no, plain=result.plain or is_plain_json_text(raw))


_UNREAD: Final = object()
_CUSTOM_ID_RE: Final = re.compile(rb'"custom_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _deeply_nested(raw: bytes) -> Any:
    """A line nested deeper than the strict parser went with the stack it had (it stops at
    the interpreter's recursion limit, counted from wherever it was called): ``orjson``'s own
    limit is a fixed 1,024 levels, so whether such a line reads does not depend on the caller.
    Read, it is a value the storable check refuses for its depth (unstorable, its usage
    kept), as it always was; ``_UNREAD`` when ``orjson`` cannot read it either."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _UNREAD


class ResultLine(NamedTuple):
    """One result line keyed by ``custom_id``. ``obj`` is None when the line is not valid JSON
    and only the id could be read from it (its item then fails as retryable). ``plain``: the
    line holds nothing a database must have escaped or refused (``domain.storable``), so its
    result need not be walked before it is stored. (A tuple, not a dataclass: one per result
    line, on the hot path of every fetch.)"""

    custom_id: str
    obj: Mapping[str, Any] | None
    plain: bool = False


def read_result_line(raw: bytes) -> ResultLine | None:
    """Parse a ``{"custom_id": ..., ...}`` result line; salvage the id from a garbled one.
    ``None`` when not even the custom_id is readable.

    The usual line is parsed once by the strict parser (``json_text.strict_loads``), whose
    strictness (no NaN, no lone surrogate, no raw control character, integers read exactly)
    leaves one byte scan to tell that it is plain (``storable.is_plain_strict_json``);
    anything else goes through the standard parser, as ``json_text.loads`` does.
    """
    obj: Any
    try:
        obj = json_text.strict_loads(raw)
        plain = is_plain_strict_json(raw)
    except ValueError:
        obj, plain = _UNREAD, False
    except RecursionError:  # deeper than this call stack leaves the parser room for
        obj, plain = _deeply_nested(raw), False
    try:
        if obj is _UNREAD:  # what json_text.loads would do after the strict parser gave up
            obj = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        match = _CUSTOM_ID_RE.search(raw)
        if match is None:
            return None
        try:
            custom_id = json.loads(b'"' + match.group(1) + b'"')
        except ValueError:
            return None
        return ResultLine(custom_id, None) if isinstance(custom_id, str) and custom_id else None
    custom_id = obj.get("custom_id") if isinstance(obj, dict) else None
    if not isinstance(custom_id, str) or not custom_id:
        return None
    return new_tuple(ResultLine, (custom_id, obj, plain))  # once per line: see new_tuple
