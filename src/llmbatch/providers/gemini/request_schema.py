"""A ``native`` line's body checked against Google's description of a ``GenerateContentRequest``
or ``EmbedContentRequest`` (vendored in ``request_schemas.json`` by
``tests/fixtures/extract_request_schemas.py``). The API parses requests as protocol buffers
and refuses unknown field names, so the vendored schemas do too (each field also under its
snake_case name, which protobuf JSON accepts); checked at submit so that a typo such as a part
``{"txt": ...}`` is refused there rather than failing a batch."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, Final

from llmbatch.domain.models import Endpoint
from llmbatch.errors import InputError
from llmbatch.schemas import SchemaSet, load_document

__all__ = ["native_problems"]

_ROOTS: Final = {Endpoint.CHAT: "GenerateContentRequest",
                 Endpoint.EMBEDDINGS: "EmbedContentRequest"}


@cache
def _schemas() -> SchemaSet:
    return SchemaSet(load_document(__package__ or "llmbatch.providers.gemini",
                                   "request_schemas.json"), "urn:llmbatch:gemini-requests")


def native_problems(native: Mapping[str, Any], *, endpoint: Endpoint,
                    model: str) -> list[InputError]:
    """Problems of ``native`` as the request of ``endpoint``. The batch names the model, so
    a body without one is complete."""
    root = _ROOTS.get(endpoint)
    if root is None:
        return []
    name = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
    return _schemas().input_errors(root, {"model": name, **native}, prefix="native")
