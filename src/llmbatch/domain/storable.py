"""Results as the databases can hold them: text escaped, unrepresentable values refused.

A result line can be valid JSON and still hold values the job store cannot keep: PostgreSQL
stores no NUL character in text or JSONB (models do emit NUL); no database stores a lone
UTF-16 surrogate (``"\\ud800"`` is a legal JSON escape, not Unicode text); JSONB refuses NaN
and Infinity; token counts live in 32-bit integer columns. One such value used to fail its
whole chunk on every fetch attempt, so the batch never finished. These rules make every
result storable before it is written, the same way on every database (a job's results do not
depend on where it ran):

- **Text is escaped and the item keeps its outcome.** NUL and lone surrogates become U+FFFD
  (what ``errors="replace"`` gives for bytes that are not text) in the output text, the
  finish reason, the error fields and every string and key of the stored response. The
  provider billed the answer and the rest of it is intact, so a success stays a success.
- **Values that cannot be represented are refused.** A token count outside
  ``0..MAX_TOKEN_COUNT``, NaN or Infinity, JSON nested deeper than ``MAX_JSON_DEPTH``, or a
  value that is not JSON at all: a success fails with ``result_unstorable`` ("result line N:
  <reason>", not retryable: the provider would answer the same); a failure keeps its own
  error (and whether it is retryable) and loses only the part that cannot be stored.

Integers of any size inside the response are kept: both databases store them exactly.

Checking a parsed response costs more than parsing it, so a result read from a line whose
bytes show none of the above (``is_plain_json_text``: a few substring scans in C; after the
strict parser, ``is_plain_strict_json``: one) skips the walk; only its token counts are
checked, and its depth by the encoder that writes its response as text (``storable_result``).
Lines that fail that scan, and results that were not read from a line, take the full check.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final, NamedTuple

from llmbatch.domain.models import USAGE_KINDS, ItemError, ItemResult, Usage, new_tuple
from llmbatch.domain.states import ItemStatus

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_TOKEN_COUNT",
    "REPLACEMENT",
    "UNSTORABLE_CODE",
    "StorableResult",
    "escape_text",
    "has_long_digit_run",
    "is_plain_json_text",
    "is_plain_strict_json",
    "storable_result",
    "unstorable_result",
]

UNSTORABLE_CODE: Final = "result_unstorable"
REPLACEMENT: Final = "\ufffd"
# Token columns are 32-bit integers on PostgreSQL; no model's context is within 1,000x of it.
MAX_TOKEN_COUNT: Final = 2**31 - 1
# Far deeper than any provider's response; shallow enough that checking (and serialising) it
# never comes near Python's recursion limit.
MAX_JSON_DEPTH: Final = 256

_NOT_TEXT: Final = re.compile("[\x00\ud800-\udfff]")
# In JSON text: a NUL or surrogate escape (``\\u0000``, ``\\ud800``...).
_BAD_ESCAPE: Final = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
# Digit runs long enough for an integer past 64 bits (2**64 has 20 digits): mapping every
# digit to "0" and looking for twenty of them is a C scan, where a regex walks every position.
_DIGITS_AS_ZEROS: Final = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS: Final = b"0" * 20


class StorableResult(NamedTuple):
    """A result made storable. ``escaped``: some text was changed; ``problem``: why part of
    the result (or, for a success, the whole of it) could not be stored as it came. (A tuple,
    as ``ItemResult`` is: one per result line.)"""

    result: ItemResult
    escaped: bool = False
    problem: str | None = None


class _Unstorable(Exception):
    """A value the databases cannot represent; ``path`` is filled in while unwinding."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what
        self.path: list[str] = []

    def reason(self, root: str) -> str:
        return escape_text(f"{root}{''.join(reversed(self.path))} {self.what}")


def escape_text(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD; the same object when clean.

    A string from ``json.loads`` holds surrogates only unpaired (a valid pair is decoded into
    one character), so every surrogate left is a lone one.
    """
    if text.isascii():
        return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
    return _NOT_TEXT.sub(REPLACEMENT, text) if _NOT_TEXT.search(text) else text


def _clean_text(text: str) -> bool:
    return "\x00" not in text if text.isascii() else _NOT_TEXT.search(text) is None


def _is_clean_json(value: Any, depth: int) -> bool:
    """Whether ``value`` can be stored as it is: the fast check every result takes (leaves
    are checked inline, a list of numbers in one ``sum``); ``_storable_json`` runs only when
    it answers False."""
    kind = type(value)
    if kind is dict:
        if depth >= MAX_JSON_DEPTH:
            return False
        search = _NOT_TEXT.search
        for key, item in value.items():  # _clean_text inlined: this loop is the hot path
            if type(key) is not str or (
                    "\x00" in key if key.isascii() else search(key) is not None):
                return False
            leaf = type(item)
            if leaf is str:
                if "\x00" in item if item.isascii() else search(item) is not None:
                    return False
            elif leaf is float:
                if item - item != 0.0:  # NaN or an infinity
                    return False
            elif not (leaf is int or leaf is bool or item is None
                      or _is_clean_json(item, depth + 1)):
                return False
        return True
    if kind is list:
        if depth >= MAX_JSON_DEPTH:
            return False
        if value and type(value[0]) is float:
            # Embeddings: thousands of floats summed in C, finite iff every one is (a sum
            # past 1e308, an element that is not a number or an integer past any float, takes
            # the loop below).
            try:
                total = sum(value)
            except (TypeError, OverflowError):
                total = math.inf
            if total - total == 0.0:
                return True
        return all(_is_clean_json(item, depth + 1) for item in value)
    if kind is str:
        return _clean_text(value)
    if kind is float:
        return bool(value - value == 0.0)
    return kind is int or kind is bool or value is None


def _storable_json(value: Any, depth: int) -> Any:
    """``value`` with its strings (and keys) escaped, the same object when nothing changed;
    raises ``_Unstorable`` for what cannot be stored."""
    kind = type(value)
    if kind is str:
        return escape_text(value)
    if kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _Unstorable(f"is {value}, which JSON storage refuses")
        return value
    if kind is not dict and kind is not list:
        raise _Unstorable(f"is a {kind.__name__} value, not JSON")
    if depth >= MAX_JSON_DEPTH:
        raise _Unstorable(f"is nested deeper than {MAX_JSON_DEPTH} levels")
    if kind is list:
        copy: list[Any] | None = None
        for index, item in enumerate(value):
            try:
                clean = _storable_json(item, depth + 1)
            except _Unstorable as exc:
                exc.path.append(f"[{index}]")
                raise
            if clean is not item and copy is None:
                copy = list(value[:index])
            if copy is not None:
                copy.append(clean)
        return value if copy is None else copy
    changed: dict[Any, Any] | None = None
    for position, (key, item) in enumerate(value.items()):
        if not isinstance(key, str):
            raise _Unstorable(f"has a {type(key).__name__} key, not JSON")
        clean_key = escape_text(key)
        try:
            clean = _storable_json(item, depth + 1)
        except _Unstorable as exc:
            exc.path.append(f".{key}" if key.isidentifier() else f"[{key!r}]")
            raise
        if (clean_key is not key or clean is not item) and changed is None:
            changed = dict(list(value.items())[:position])
        if changed is not None:
            changed[clean_key] = clean
    return value if changed is None else changed


def _usage_problem(usage: Usage | None) -> str | None:
    if usage is None:
        return None
    for index, count in enumerate(usage):
        if type(count) is not int or not 0 <= count <= MAX_TOKEN_COUNT:
            return f"usage.{USAGE_KINDS[index]} is {count!r}, outside 0..{MAX_TOKEN_COUNT}"
    return None


def _escaped_error(error: ItemError | None) -> ItemError | None:
    if error is None:
        return None
    kind, message = escape_text(error.type), escape_text(error.message)
    code = escape_text(error.code) if error.code is not None else None
    if kind is error.type and message is error.message and code is error.code:
        return error
    return replace(error, type=kind, message=message, code=code)


def unstorable_result(result: ItemResult, reason: str, *,
                      usage: Usage | None = None) -> ItemResult:
    """``result``'s item failed for good with ``result_unstorable``: the line and the reason,
    nothing of the answer kept but ``usage`` (what the provider billed, when it is valid)."""
    where = f"result line {result.line}" if result.line is not None else "result"
    return ItemResult(
        provider_key=result.provider_key, status=ItemStatus.FAILED, usage=usage,
        line=result.line,
        error=ItemError(type=UNSTORABLE_CODE, code=UNSTORABLE_CODE,
                        message=escape_text(f"{where}: {reason}"), retryable=False))


def _is_clean(result: ItemResult) -> bool:
    error, usage = result.error, result.usage
    return (_clean_text(result.provider_key)
            and (result.output_text is None or _clean_text(result.output_text))
            and (result.finish_reason is None or _clean_text(result.finish_reason))
            and (error is None or (_clean_text(error.type) and _clean_text(error.message)
                                   and (error.code is None or _clean_text(error.code))))
            and (usage is None or _usage_problem(usage) is None)
            and _is_clean_json(result.response, 0))


def has_long_digit_run(raw: bytes) -> bool:
    """Whether ``raw`` holds twenty digits in a row (an integer some parsers cannot keep)."""
    return raw.translate(_DIGITS_AS_ZEROS).find(_LONG_DIGITS) >= 0


def is_plain_json_text(raw: bytes) -> bool:
    """Whether every value parsed from the JSON text ``raw`` is storable as it is, whatever
    the parser: no NUL or surrogate escape (and, for valid JSON, no raw NUL or surrogate),
    no ``NaN`` or ``Infinity``, no integer past 64 bits, fewer brackets than
    ``MAX_JSON_DEPTH``. Token counts are not judged here. False answers are allowed (a
    model's text that says "NaN" takes the full check), wrong True answers are not."""
    if raw.find(b"\\u") >= 0 and _BAD_ESCAPE.search(raw) is not None:
        return False
    if raw.find(b"NaN") >= 0 or raw.find(b"Infinity") >= 0:
        return False
    if raw.count(b"{") + raw.count(b"[") >= MAX_JSON_DEPTH:
        return False
    return not has_long_digit_run(raw)


def is_plain_strict_json(raw: bytes) -> bool:
    """``is_plain_json_text`` for text the strict parser (``json_text.strict_loads``) has just
    read without complaint: such text holds no NaN, Infinity, raw control character or lone
    surrogate (the parser refuses them) and its integers were read exactly, so only NUL
    escapes are left to look for. A valid surrogate pair is one character, storable like any
    other. The depth is not looked at here: the writer of a plain result's response refuses
    what is nested deeper than it goes (``storable_result``), where counting the brackets of
    every line cost a sixth of reading it."""
    # A backslash first (one byte, found or not at memchr speed): most lines have none.
    # ``find``, not ``in``: bytes' ``in`` first tries its operand as an integer, raising and
    # clearing an error each time, as costly as the search.
    return raw.find(b"\\") < 0 or raw.find(b"\\u0000") < 0


def storable_result(result: ItemResult,
                    encode: Callable[[dict[str, Any]], str | None] | None = None,
                    ) -> StorableResult:
    """``result`` as every supported database can store it (see the module docstring).
    ``encode`` given (JSON text out of a parsed response): the result comes back with its
    response as that text (``ItemResult.response_json``) and the parsed response let go, made
    in the same copy (a fetch holds a chunk of results until it is written, and a thousand
    parsed responses kept alive make the garbage collector walk them again and again).

    A plain result (``ItemResult.plain``) skips the walk when ``encode`` writes its response:
    ``encode`` answers None for what it will not write as it is, which must include anything
    nested ``MAX_JSON_DEPTH`` deep or deeper (``json_text.dumps_shallow``); such a result
    takes the full check, and keeps its parsed response if it passes."""
    if result.plain and encode is not None and _usage_problem(result.usage) is None:
        written = _as_text(result, encode)
        if written is not None:
            return new_tuple(StorableResult, (written, False, None))
    if _is_clean(result):
        return StorableResult(_as_text(result, encode) or result)
    key = escape_text(result.provider_key)
    text = escape_text(result.output_text) if result.output_text is not None else None
    finish = escape_text(result.finish_reason) if result.finish_reason is not None else None
    error = _escaped_error(result.error)
    response, problem = result.response, None
    try:
        response = _storable_json(result.response, 0)
    except _Unstorable as exc:
        response, problem = None, exc.reason("response")
    usage = result.usage
    usage_problem = _usage_problem(usage)
    if usage_problem is not None:
        usage, problem = None, problem or usage_problem
    escaped = (key is not result.provider_key or text is not result.output_text
               or finish is not result.finish_reason or error is not result.error
               or (problem is None and response is not result.response))
    if problem is None and not escaped:
        return StorableResult(_as_text(result, encode) or result)
    clean = result._replace(provider_key=key, output_text=text, finish_reason=finish,
                            error=error, response=response, usage=usage, response_json=None)
    if problem is not None and result.status is ItemStatus.SUCCEEDED:
        clean = unstorable_result(clean, problem, usage=usage)
    return StorableResult(_as_text(clean, encode) or clean, escaped=escaped, problem=problem)


def _as_text(result: ItemResult,
             encode: Callable[[dict[str, Any]], str | None] | None) -> ItemResult | None:
    """``result`` with its response as ``encode``d text and no parsed response (as it is
    when there is no ``encode``, no response, or the text is there already); None when
    ``encode`` will not write the response."""
    if encode is None or result.response is None:
        return result
    text = result.response_json if result.response_json is not None else encode(result.response)
    if text is None:
        return None
    return new_tuple(ItemResult, (result.provider_key, result.status, None, result.output_text,
                                  result.finish_reason, result.usage, result.error, result.line,
                                  result.plain, text))
