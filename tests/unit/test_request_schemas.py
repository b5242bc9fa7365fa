"""The request schemas shipped in the package are what ``tests/fixtures/extract_request_schemas.py``
makes from the official API descriptions (checked when ``../shared/specs`` is present; without
it the shipped copies stand)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

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


def test_the_role_dispatch_gives_the_verdict_of_the_one_of_it_replaces() -> None:
    """The fast validator checks a message against the branch its role names only
    (``dispatch_on_role``); over messages right and wrong in every way that matters to the
    choice of branch, the verdict is the one the ``oneOf`` gives."""
    import itertools

    import fastjsonschema

    from llmbatch.schemas import dispatch_on_role, load_document

    document = load_document("llmbatch.schemas", "neutral_requests.json")
    schemas = document["components"]["schemas"]
    assert dispatch_on_role(schemas)["ChatCompletionRequestMessage"] != \
        schemas["ChatCompletionRequestMessage"]

    def compiled(components: dict[str, Any]) -> Any:
        return fastjsonschema.compile({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "components": {**document["components"], "schemas": components},
            "$ref": "#/components/schemas/CreateChatCompletionRequest"}, use_default=False)

    def verdict(validate: Any, body: dict[str, Any]) -> bool:
        try:
            validate(body)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    one_of, dispatched = compiled(schemas), compiled(dispatch_on_role(schemas))
    roles = ["user", "system", "developer", "assistant", "tool", "function", "bogus", None, 5]
    contents = ["hi", "", None, 3, [{"type": "text", "text": "x"}], [], {"a": 1}]
    extras: list[dict[str, Any]] = [{}, {"name": "n"}, {"tool_call_id": "t"}, {"zzz": 1},
                                    {"tool_calls": [{"id": "1", "type": "function", "function":
                                                     {"name": "f", "arguments": "{}"}}]}]
    seen = set()
    for role, content, extra in itertools.product(roles, contents, extras):
        message: Any = {**extra, **({"role": role} if role is not None else {}),
                        **({"content": content} if content is not None else {})}
        for messages in ([message], [{"role": "user", "content": "q"}, message], ["x"]):
            body = {"model": "m", "messages": messages}
            expected = verdict(one_of, body)
            seen.add(expected)
            assert verdict(dispatched, body) == expected, body
    assert seen == {True, False}
