"""A ``native`` line's body checked against Anthropic's own description of a Messages request
(``CreateMessageParams``, vendored in ``request_schemas.json`` by
``tests/fixtures/extract_request_schemas.py``). Inside a Message Batch a request Anthropic
refuses is one ``errored`` result, but a body the batch create itself cannot parse (a wrong
type, a missing ``max_tokens``) fails the whole batch, valid neighbours included: so every
native line is checked at submit."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from llmbatch.errors import InputError
from llmbatch.schemas import SchemaSet, load_document

__all__ = ["native_problems"]


@cache
def _schemas() -> SchemaSet:
    return SchemaSet(load_document(__package__ or "llmbatch.providers.anthropic",
                                   "request_schemas.json"), "urn:llmbatch:anthropic-requests")


def native_problems(native: Mapping[str, Any], *, model: str) -> list[InputError]:
    """Problems of ``native`` as a Messages request; ``model`` is filled in as ``encode``
    does, so only a body without one is not refused for it."""
    return _schemas().input_errors("CreateMessageParams", {"model": model, **native},
                                   prefix="native")
