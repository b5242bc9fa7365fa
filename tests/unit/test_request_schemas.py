"""The request schemas shipped in the package are what ``tests/fixtures/extract_request_schemas.py``
makes from the official API descriptions (checked when ``../shared/specs`` is present; without
it the shipped copies stand)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from llmbatch.schemas import neutral_schemas

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.append(str(FIXTURES))

import extract_request_schemas as extractor  # noqa: E402


def spec_dir() -> Path:
    """``$LLMBATCH_SPECS``, else ``../shared/specs`` beside the checkout."""
    return Path(os.environ.get("LLMBATCH_SPECS", extractor.DEFAULT_SPEC_DIR))


def test_the_shipped_request_schemas_match_a_fresh_extraction() -> None:
    specs = spec_dir()
    if not (specs / extractor.OPENAI_SPEC).exists():
        return  # as every extraction check: without ../shared/specs the shipped copies stand
    for key, document in extractor.extract_all(specs).items():
        assert extractor.render(document) == extractor.OUTPUTS[key].read_text(
            encoding="utf-8"), f"re-run tests/fixtures/extract_request_schemas.py ({key})"


def test_the_neutral_schemas_hold_both_endpoints_and_know_the_chat_fields() -> None:
    schemas = neutral_schemas()
    assert {"CreateChatCompletionRequest", "CreateEmbeddingRequest"} <= set(schemas.names())
    assert {"messages", "max_tokens", "temperature", "response_format", "tools"} <= \
        schemas.property_names("CreateChatCompletionRequest")
