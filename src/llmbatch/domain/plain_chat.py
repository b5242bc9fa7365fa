"""The plain chat line: the shape nearly every line of a chat job has, read in one typed pass.

``domain.requests.parse_request_line`` checks any line: the envelope, the neutral body
against its request schema (``NEUTRAL_SCHEMAS``), the limits; then the intake encodes it,
walks it for its token estimate and applies the model's rules. That was ~40 us a line, about
four times what storing it costs (issue 13). Most lines are one shape: an id, a list of
role + text messages and a few numeric settings. ``PlainChatReader`` decodes a line into
strict ``msgspec`` types of that shape (unknown fields, other roles, content parts, nulls and
out-of-range numbers refused), which takes about as long as parsing the JSON alone.

The verdict is sufficient, not necessary, like ``requests._certainly_clean``: a line the
reader accepts is one ``parse_request_line`` accepts, with the same ``RequestLine`` (the body
dict is ``orjson``'s, as there) and ``estimate_tokens`` gives it the same count
(``tests/unit/test_plain_chat.py`` holds both paths to that, line by line, over a corpus of
good and bad lines and generated ones). Any other line (``None`` here) goes through the full
checks, which decide and say why. Pure functions, no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, NamedTuple

import msgspec
import orjson
from msgspec import UNSET, Meta, Struct, UnsetType

from llmbatch.domain.input_limits import (
    INT_LIMIT,
    MAX_CUSTOM_ID_CHARS,
    MAX_OUTPUT_TOKENS,
    needs_careful_parser,
)
from llmbatch.domain.models import Endpoint, new_tuple
from llmbatch.domain.tokens import tokens_for

__all__ = ["PlainChat", "PlainChatReader"]

# Each field as the neutral chat schema and ``input_limits`` allow it, or narrower (no nulls;
# integers within ±2^63, which msgspec would take to 2^64): whatever these accept, the schema
# and the limits accept.
_OutputTokens = Annotated[int, Meta(ge=1, le=MAX_OUTPUT_TOKENS)]
_Penalty = Annotated[float, Meta(ge=-2, le=2)]


class _Message(Struct, forbid_unknown_fields=True):
    """A message whose content is non-empty text (the schema's string branch)."""

    role: Literal["system", "user", "assistant", "developer"]
    content: Annotated[str, Meta(min_length=1)]
    name: str | UnsetType = UNSET


class _Body(Struct, forbid_unknown_fields=True):
    messages: Annotated[list[_Message], Meta(min_length=1)]
    model: str | UnsetType = UNSET
    max_tokens: _OutputTokens | UnsetType = UNSET
    max_completion_tokens: _OutputTokens | UnsetType = UNSET
    temperature: Annotated[float, Meta(ge=0, le=2)] | UnsetType = UNSET
    top_p: Annotated[float, Meta(ge=0, le=1)] | UnsetType = UNSET
    n: Annotated[int, Meta(ge=1, le=128)] | UnsetType = UNSET
    seed: Annotated[int, Meta(ge=-INT_LIMIT, le=INT_LIMIT - 1)] | UnsetType = UNSET
    presence_penalty: _Penalty | UnsetType = UNSET
    frequency_penalty: _Penalty | UnsetType = UNSET
    logprobs: bool | UnsetType = UNSET
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | UnsetType = UNSET
    store: bool | UnsetType = UNSET
    user: str | UnsetType = UNSET


class _Line(Struct, forbid_unknown_fields=True):
    custom_id: Annotated[str, Meta(min_length=1, max_length=MAX_CUSTOM_ID_CHARS)]
    body: _Body
    method: Literal["POST"] | UnsetType = UNSET
    url: Literal["/v1/chat/completions"] | UnsetType = UNSET  # ENDPOINT_URLS[Endpoint.CHAT]


_DECODER: Final = msgspec.json.Decoder(_Line)
# The one way to write a NUL in JSON text (which no database stores): such a line takes the
# full checks, which refuse it.
_NUL_ESCAPE: Final = b"\\u0000"
# Every escape starts with one, and most lines hold none: one byte is found faster. (Searched
# with ``find``, here and on the other hot paths, not ``in``: bytes' ``in`` first tries its
# operand as an integer, raising and clearing an error each time, as costly as the search.)
_ESCAPE: Final = b"\\"


class PlainChat(NamedTuple):
    """A plain chat line: its id, its body as ``parse_request_line`` leaves it (``model``
    removed), that body as ``orjson`` writes it (written once, for the stored request and for
    an adapter that sends the body as it is) and its ``estimate_tokens``. A tuple: one is made
    per line."""

    custom_id: str
    body: dict[str, Any]
    body_json: bytes
    tokens: int


class PlainChatReader:
    """Reads the plain chat lines of one job (its model); ``read`` gives ``None`` for any
    other line, and for a body naming another model (the full checks warn or refuse)."""

    def __init__(self, model: str) -> None:
        self.model = model

    @staticmethod
    def applies_to(endpoint: Endpoint) -> bool:
        return endpoint is Endpoint.CHAT

    def read(self, raw: bytes) -> PlainChat | None:
        # The value is ``orjson``'s, as the full path's, except where the full path reads the
        # line carefully (a run of 19 digits): such a line takes the full path.
        if (raw.find(_ESCAPE) >= 0 and raw.find(_NUL_ESCAPE) >= 0) or needs_careful_parser(raw):
            return None
        try:
            line = _DECODER.decode(raw)
            # The verdict is the typed decode; the value is ``orjson``'s, as the full path's.
            body = orjson.loads(raw)["body"]
        except (msgspec.DecodeError, orjson.JSONDecodeError):  # ValidationError included
            return None
        given = line.body.model
        if given is not UNSET:
            if given != self.model:
                return None
            del body["model"]
        chars = 0
        messages = line.body.messages
        for message in messages:
            if not message.content.startswith("data:"):
                chars += len(message.content)
            if message.name is not UNSET and not message.name.startswith("data:"):
                chars += len(message.name)
        return new_tuple(PlainChat, (line.custom_id, body,  # once per line: see new_tuple
                                     orjson.dumps(body), tokens_for(chars, len(messages))))
