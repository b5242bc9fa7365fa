"""What ``embedContent`` answers for one request inside an embeddings batch, deterministically.

``reject`` returns the per-request error the real service would give a bad
``EmbedContentRequest`` (no content, no text, a bad ``outputDimensionality`` or ``taskType``);
``respond`` returns ``{"embedding": {"values": [...]}, "tokenCount": n}`` - the
``SingleEmbedContentResponse`` the SDK types (``google.genai.types``) - whose unit vector
derives from the text alone (``synth.embedding``, as the OpenAI emulator's embeddings do), so
the same text always gets the same vector whatever the batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from llmbatch.emulator import synth
from llmbatch.emulator.gemini.fields import Violation, check

__all__ = ["DEFAULT_DIMENSIONS", "MAX_DIMENSIONS", "TASK_TYPES", "reject", "respond"]

# Small by default (the emulator's OpenAI side uses 8 too); gemini-embedding-001 gives 3072.
DEFAULT_DIMENSIONS: Final = 8
MAX_DIMENSIONS: Final = 3072
TASK_TYPES: Final = frozenset({
    "TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY",
    "CLASSIFICATION", "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY"})


def _get(mapping: Mapping[str, Any], camel: str, snake: str) -> Any:
    return mapping.get(camel, mapping.get(snake))


def _text(request: Mapping[str, Any]) -> str:
    content = request.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return " ".join(p["text"] for p in parts or [] if isinstance(p, Mapping)
                    and isinstance(p.get("text"), str))


def reject(request: Mapping[str, Any]) -> str | None:
    """The INVALID_ARGUMENT message this request gets, if any."""
    try:
        check(request, "EmbedContentRequest")
    except Violation as exc:
        return exc.message
    content = request.get("content")
    if not isinstance(content, Mapping):
        return "* EmbedContentRequest.content: content is not specified"
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        return "* EmbedContentRequest.content.parts: contents.parts must not be empty."
    if not _text(request).strip():
        return "* EmbedContentRequest.content: the content has no text to embed."
    dim = _get(request, "outputDimensionality", "output_dimensionality")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)
                            or not 1 <= dim <= MAX_DIMENSIONS):
        return ("* EmbedContentRequest.output_dimensionality: output_dimensionality must be in "
                f"[1, {MAX_DIMENSIONS}].")
    task = _get(request, "taskType", "task_type")
    if task is not None and task not in TASK_TYPES:
        return f"Invalid value at 'task_type' (type.googleapis.com/TaskType), \"{task}\""
    return None


def prompt_tokens(request: Mapping[str, Any]) -> int:
    """Tokens of the text to embed (at least 1)."""
    return max(synth.estimate_tokens(_text(request)), 1)


def respond(request: Mapping[str, Any]) -> dict[str, Any]:
    """A ``SingleEmbedContentResponse`` for a request ``reject`` let through."""
    dim = _get(request, "outputDimensionality", "output_dimensionality") or DEFAULT_DIMENSIONS
    return {"embedding": {"values": synth.embedding(synth.digest(_text(request)), int(dim))},
            "tokenCount": prompt_tokens(request)}
