"""The limits every input line is held to before anything else looks at it, and the checks of a
neutral body that its schema cannot express. Pure functions, no I/O.

Why each limit exists (docs/cli.md, "Validation and exit codes", lists them for users):

- ``MAX_LINE_BYTES``: a line is read whole into memory; past this it is refused unread.
- ``MAX_DEPTH``: Python's JSON parser recurses per level (about 1,000 deep it raises
  ``RecursionError``) and so do the validators, the SQL JSON encoders and the provider SDKs;
  no real request nests a tenth of this.
- ``INT_LIMIT``: an integer must fit 64 bits (PostgreSQL's ``jsonb`` and every provider parse
  numbers as such); the digits are counted before Python converts them, so an integer of
  more than 4,300 digits is a refusal, not Python's ``ValueError``.
- ``MAX_CUSTOM_ID_CHARS``: the id is a unique key in the database (``items.custom_id``,
  indexed); 256 characters stay well inside PostgreSQL's index row limit at 4 bytes each.
- NUL and lone surrogates: PostgreSQL refuses ``\\u0000`` in text and JSON, and a lone
  surrogate is not UTF-8, so no database or provider can store or receive either.
- ``MAX_OUTPUT_TOKENS``: ``max_tokens`` 0, negative or 2^70 is refused here, not hours later
  by the provider; no model writes more than a million tokens in one answer.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

import orjson

from llmbatch.errors import InputError

__all__ = [
    "INT_LIMIT",
    "MAX_CUSTOM_ID_CHARS",
    "MAX_DEPTH",
    "MAX_LINE_BYTES",
    "MAX_OUTPUT_TOKENS",
    "decode_json_line",
    "decode_storable_line",
    "needs_careful_parser",
    "neutral_body_problems",
    "neutral_limits_schema",
    "storable_problem",
]

MAX_LINE_BYTES: Final = 64 * 1024 * 1024
MAX_DEPTH: Final = 64
INT_LIMIT: Final = 2**63
MAX_CUSTOM_ID_CHARS: Final = 256
MAX_OUTPUT_TOKENS: Final = 1_000_000
_MAX_INT_DIGITS: Final = len(str(INT_LIMIT)) + 1  # sign included
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")
# Digit runs that may be an integer outside ±2^63 (which has 19 digits): such a line takes the
# careful parser. Mapping every digit to "0" and looking for 19 of them is a C scan.
# The same pass maps "[" to "{", so that one count of the copy bounds the nesting.
_DIGITS_AS_ZEROS: Final = bytes.maketrans(b"123456789[", b"000000000{")
_LONG_DIGITS: Final = b"0" * 19


def needs_careful_parser(raw: bytes) -> bool:
    """Whether ``raw`` holds a run of 19 or more digits: the lines ``decode_storable_line``
    leaves to the careful parser, because ``orjson`` may read such a number otherwise (an
    integer past 2^63; a decimal halfway between two doubles padded past ~768 digits, which it
    rounds up, not to even). (Not ``storable.has_long_digit_run``, whose twenty digits are
    what a result's integers past 64 bits need.)"""
    return raw.translate(_DIGITS_AS_ZEROS).find(_LONG_DIGITS) >= 0  # ``find``: see plain_chat


class _Refused(ValueError):
    """Raised from inside the JSON parser's hooks; becomes an ``InputError``."""


def _parse_int(text: str) -> int:
    if len(text) > _MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text.lstrip('-'))} digits is out of range "
                       f"(integers must lie within ±2^63)")
    value = int(text)
    if not -INT_LIMIT <= value < INT_LIMIT:
        raise _Refused(f"integer {value} is out of range (integers must lie within ±2^63)")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {text[:40]} is too large to be a finite number")
    return value


def _parse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON (no provider accepts it)")


def decode_json_line(text: str) -> Any:
    """``text`` parsed as JSON, refusing what no database or provider could take: NaN and
    Infinity, integers beyond 64 bits, numbers that overflow, nesting past ``MAX_DEPTH``.
    ``InputError`` (no field) otherwise, never another exception."""
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                           parse_constant=_parse_constant)
    except _Refused as exc:
        raise InputError(str(exc), field=_refused_at(text)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise InputError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # any other refusal of the parser
        raise InputError(f"not valid JSON: {str(exc)[:120]}") from None
    return value


def decode_storable_line(text: str, *, raw: bytes | None = None) -> Any:
    """``decode_json_line`` and then ``storable_problem``, as one: the value, or the
    ``InputError`` of the first refusal. ``raw`` is ``text`` as UTF-8 when the caller has it
    (the line as read), which spares encoding it again.

    The fast path: ``orjson`` parses the line when its text shows nothing the careful parser
    would judge differently. ``orjson`` refuses on its own NaN, Infinity, numbers that overflow
    a double, lone surrogates and deep nesting, and an integer outside ±2^63 needs a run of at
    least 19 digits, which sends the line to the careful parser; any refusal there goes to
    ``decode_json_line`` for its exact words. A value parsed that way can hold nothing
    ``storable_problem`` refuses when the text has no ``\\u0000`` escape (the only way to write
    a NUL: JSON text cannot hold a raw one, and surrogates come as valid pairs or are refused)
    and at most ``MAX_DEPTH`` brackets (no node can then be deeper), so the walk is skipped.
    """
    if raw is None:
        try:
            raw = text.encode()
        except UnicodeEncodeError:  # a lone surrogate in the text: the careful parser says so
            raw = b""
    scanned = raw.translate(_DIGITS_AS_ZEROS)
    if raw and _LONG_DIGITS not in scanned:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            if b"\\u0000" not in raw and scanned.count(b"{") <= MAX_DEPTH:
                return value
            problem = storable_problem(value)
            if problem is not None:
                raise problem
            return value
    value = decode_json_line(text)
    problem = storable_problem(value)
    if problem is not None:
        raise problem
    return value


class _Marker:
    """Stands in for a refused number while ``_refused_at`` looks for where it was."""


def _refused_at(text: str) -> str | None:
    """The field of the first number ``decode_json_line`` refused: the text parsed again with
    refused numbers replaced by a marker, then searched (it parsed once, so it parses again)."""
    marker = _Marker()

    def as_int(digits: str) -> Any:
        try:
            return _parse_int(digits)
        except _Refused:
            return marker

    def as_float(number: str) -> Any:
        try:
            return _parse_float(number)
        except _Refused:
            return marker

    try:
        value = json.loads(text, parse_int=as_int, parse_float=as_float,
                           parse_constant=lambda _: marker)
    except (ValueError, RecursionError):
        return None
    for path, _, node in _walk(value):
        if node is marker:
            return path or None
    return None


def storable_problem(value: Any) -> InputError | None:
    """The first place in a parsed line that cannot be stored or sent: nesting past
    ``MAX_DEPTH``, a NUL character or a lone surrogate (in a value or a key). Iterative, so a
    deep value cannot exhaust the stack here."""
    for path, depth, node in _walk(value):
        if depth > MAX_DEPTH:
            shown = path if len(path) <= 60 else path[:59] + "…"
            return InputError(f"nested deeper than {MAX_DEPTH} levels", field=shown or None)
        if isinstance(node, str):
            found = _UNSTORABLE.search(node)
            if found is not None:
                what = "a NUL character" if found.group() == "\x00" else "a lone surrogate"
                return InputError(f"holds {what} (U+{ord(found.group()):04X}) at character "
                                  f"{found.start()}, which cannot be stored",
                                  field=path or None)
    return None


def _walk(value: Any) -> Iterator[tuple[str, int, Any]]:
    """(path, depth, node) of every node; keys are checked as nodes of their parent's path."""
    stack: list[tuple[str, int, Any]] = [("", 0, value)]
    while stack:
        path, depth, node = stack.pop()
        yield path, depth, node
        if depth > MAX_DEPTH:
            return
        if isinstance(node, dict):
            for key, child in node.items():
                yield path, depth, key
                stack.append((f"{path}.{key}" if path else str(key), depth + 1, child))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", depth + 1, child) for i, child in enumerate(node))


def neutral_body_problems(body: Mapping[str, Any], *, chat: bool,
                          embeddings: bool | None = None) -> list[InputError]:
    """What the OpenAI schema allows but no provider will run: token limits out of range,
    empty prompts. Fields are named from the line (``body.…``). ``embeddings`` defaults to
    ``not chat`` (the two endpoints that once were all); other endpoints get the limits only."""
    problems: list[InputError] = []
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) \
                and not 1 <= value <= MAX_OUTPUT_TOKENS:
            problems.append(InputError(f"must be from 1 to {MAX_OUTPUT_TOKENS:,}, got {value}",
                                       field=f"body.{name}"))
    if chat:
        messages = body.get("messages")
        for i, message in enumerate(messages if isinstance(messages, list) else []):
            if isinstance(message, (dict, Mapping)) and _maybe_empty(message.get("content")):
                problems += _empty_content(message, f"body.messages[{i}]")
    elif embeddings is not False:  # None: the old two-endpoint reading, not chat = embeddings
        problems += _empty_input(body.get("input"))
    return problems


def neutral_limits_schema(*, chat: bool, embeddings: bool | None = None) -> dict[str, Any]:
    """``neutral_body_problems`` as a JSON Schema, for a validator that decides in one call
    that a body is clean (``domain.requests``): a body that fits it has none of those
    problems. Sufficient, not necessary: it refuses some bodies the checks accept (an empty
    assistant content beside its tool calls; ``0.0`` tokens, an integer to JSON Schema, a
    float to Python), which then go through the checks, which decide."""
    in_range = {"anyOf": [{"not": {"type": "integer"}},
                          {"minimum": 1, "maximum": MAX_OUTPUT_TOKENS}]}
    properties: dict[str, Any] = dict.fromkeys(
        ("max_tokens", "max_completion_tokens", "max_output_tokens"), in_range)
    if chat:
        empty_text = {"required": ["type", "text"], "properties": {
            "type": {"const": "text"}, "text": {"const": ""}}}
        properties["messages"] = {"items": {"properties": {"content": {
            "not": {"enum": ["", []]}, "items": {"not": empty_text}}}}}
    elif embeddings is not False:
        properties["input"] = {"not": {"const": ""}, "items": {"not": {"enum": ["", []]}}}
    return {"properties": properties}


def _maybe_empty(content: Any) -> bool:
    """Whether ``_empty_content`` could find anything: the common content, a non-empty
    string, is told apart without building the message's field name."""
    return not (isinstance(content, str) and content) and content is not None


def _empty_content(message: Mapping[str, Any], where: str) -> list[InputError]:
    content = message.get("content")
    if content is None:
        return []  # absent content is the schema's call (assistant tool calls need none)
    if message.get("role") == "assistant" and message.get("tool_calls") and not content:
        return []
    if content == "" or content == []:
        return [InputError("is empty: a message needs some content", field=f"{where}.content")]
    if isinstance(content, list):
        return [InputError("is empty", field=f"{where}.content[{j}].text")
                for j, part in enumerate(content)
                if isinstance(part, Mapping) and part.get("type") == "text"
                and part.get("text") == ""]
    return []


def _empty_input(value: Any) -> list[InputError]:
    if value == "":
        return [InputError("is empty: there is nothing to embed", field="body.input")]
    if isinstance(value, list):
        return [InputError("is empty: there is nothing to embed", field=f"body.input[{i}]")
                for i, item in enumerate(value) if item == "" or item == []]
    return []
