"""The neutral chat body -> Gemini GenerateContentRequest translation, and responses back."""

from __future__ import annotations

from typing import Any

import pytest

from llmbatch.errors import InputError
from llmbatch.providers.gemini.translate import (
    candidate_text,
    finish_reason,
    to_embed_content,
    to_generate_content,
)

PNG = "data:image/png;base64,iVBORw0KGgo="


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return to_generate_content(body)


def refused(field: str, **body: Any) -> None:
    with pytest.raises(InputError) as err:
        translate(**body)
    assert err.value.field == field, err.value


def test_roles_and_system_instruction() -> None:
    request = translate(messages=[
        {"role": "system", "content": "be brief"}, {"role": "developer", "content": "no lists"},
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        {"role": "user", "content": [{"type": "text", "text": "and"},
                                     {"type": "image_url", "image_url": {"url": PNG}}]}])
    assert request["systemInstruction"] == {"parts": [{"text": "be brief"}, {"text": "no lists"}]}
    assert request["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "hello"}]},
        {"role": "user", "parts": [{"text": "and"}, {"inlineData": {
            "mimeType": "image/png", "data": "iVBORw0KGgo="}}]}]
    assert "generationConfig" not in request


def test_generation_config_maps_every_sampling_field() -> None:
    request = translate(max_tokens=50, temperature=0.2, top_p=0.9, stop="END", n=2, seed=7,
                        presence_penalty=0.1, frequency_penalty=0.3, logprobs=True,
                        top_logprobs=3, user="u-1")
    assert request["generationConfig"] == {
        "maxOutputTokens": 50, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"],
        "candidateCount": 2, "seed": 7, "presencePenalty": 0.1, "frequencyPenalty": 0.3,
        "responseLogprobs": True, "logprobs": 3}
    assert translate(max_completion_tokens=9)["generationConfig"] == {"maxOutputTokens": 9}


def test_json_modes() -> None:
    assert translate(response_format={"type": "json_object"})["generationConfig"] == {
        "responseMimeType": "application/json"}
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    config = translate(response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": schema, "strict": True}})["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}
    assert "generationConfig" not in translate(response_format={"type": "text"})


def test_tools_tool_calls_and_tool_results() -> None:
    request = translate(
        messages=[{"role": "user", "content": "weather?"},
                  {"role": "assistant", "content": None, "tool_calls": [
                      {"id": "c1", "type": "function",
                       "function": {"name": "get", "arguments": '{"city": "Oslo"}'}},
                      {"id": "c2", "type": "function",
                       "function": {"name": "get", "arguments": '{"city": "Rome"}'}}]},
                  {"role": "tool", "tool_call_id": "c1", "content": '{"t": 3}'},
                  {"role": "tool", "tool_call_id": "c2", "content": "sunny"}],
        tools=[{"type": "function", "function": {"name": "get", "description": "d",
                                                 "parameters": {"type": "object"}}}],
        tool_choice={"type": "function", "function": {"name": "get"}})
    assert request["contents"][1] == {"role": "model", "parts": [
        {"functionCall": {"name": "get", "args": {"city": "Oslo"}}},
        {"functionCall": {"name": "get", "args": {"city": "Rome"}}}]}
    assert request["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get", "response": {"t": 3}}},
        {"functionResponse": {"name": "get", "response": {"content": "sunny"}}}]}
    assert request["tools"] == [{"functionDeclarations": [
        {"name": "get", "description": "d", "parametersJsonSchema": {"type": "object"}}]}]
    assert request["toolConfig"] == {"functionCallingConfig": {
        "mode": "ANY", "allowedFunctionNames": ["get"]}}
    for choice, mode in (("none", "NONE"), ("auto", "AUTO"), ("required", "ANY")):
        assert translate(tool_choice=choice)["toolConfig"]["functionCallingConfig"] == {
            "mode": mode}


@pytest.mark.parametrize(("field", "body"), [
    ("body.logit_bias", {"logit_bias": {"1": 2}}),
    ("body.reasoning_effort", {"reasoning_effort": "low"}),
    ("body.stop", {"stop": ["a", "b", "c", "d", "e", "f"]}),
    ("body.parallel_tool_calls", {"parallel_tool_calls": False}),
    ("body.max_tokens", {"max_tokens": 5, "max_completion_tokens": 6}),
    ("body.temperature", {"temperature": "hot"}),
    ("body.response_format.json_schema.schema", {"response_format": {"type": "json_schema"}}),
    ("body.tools[0]", {"tools": [{"type": "web_search"}]}),
    ("body.tool_choice", {"tool_choice": "sometimes"}),
    ("body.messages[1].role", {"messages": [{"role": "user", "content": "a"},
                                            {"role": "system", "content": "late"}]}),
    ("body.messages[0].content[0].image_url.url", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}]}]}),
    ("body.messages[0].content[0]", {"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {}}]}]}),
    ("body.messages[0].tool_call_id", {"messages": [{"role": "tool", "tool_call_id": "x",
                                                     "content": "r"}]}),
    ("body.messages", {"messages": [{"role": "system", "content": "only"}]}),
])
def test_what_cannot_be_faithful_is_refused_by_field(field: str, body: dict[str, Any]) -> None:
    refused(field, **body)


def user_parts(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    request = translate(messages=[{"role": "user", "content": list(parts)}])
    parts_out: list[dict[str, Any]] = request["contents"][0]["parts"]
    return parts_out


def test_media_by_url_and_cloud_storage_become_file_data() -> None:
    """C.10: web URLs and gs:// references go as fileData, the MIME type from the extension."""
    assert user_parts(
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.PNG?sig=a.b"}},
        {"type": "image_url", "image_url": {"url": "gs://bucket/pics/dog.webp"}},
        {"type": "file", "file": {"file_url": "https://s3.example.com/r?X-Sig=1",
                                  "filename": "report.pdf"}},
        {"type": "file", "file": {"file_url": "gs://bucket/data/table.csv"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=",
                                  "filename": "x.pdf"}},
    ) == [
        {"fileData": {"mimeType": "image/png",
                      "fileUri": "https://example.com/cat.PNG?sig=a.b"}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "gs://bucket/pics/dog.webp"}},
        {"fileData": {"mimeType": "application/pdf",
                      "fileUri": "https://s3.example.com/r?X-Sig=1"}},
        {"fileData": {"mimeType": "text/csv", "fileUri": "gs://bucket/data/table.csv"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


@pytest.mark.parametrize(("field", "part"), [
    ("body.messages[0].content[0].image_url.url",  # no extension: MIME type unknown
     {"type": "image_url", "image_url": {"url": "https://example.com/image"}}),
    ("body.messages[0].content[0].image_url.url",  # not an image
     {"type": "image_url", "image_url": {"url": "https://example.com/a.pdf"}}),
    ("body.messages[0].content[0].image_url.url",  # no bucket
     {"type": "image_url", "image_url": {"url": "gs:///a.png"}}),
    ("body.messages[0].content[0].file.file_id", {"type": "file", "file": {"file_id": "f-1"}}),
    ("body.messages[0].content[0].file", {"type": "file", "file": {"filename": "a.pdf"}}),
    ("body.messages[0].content[0].file.file_data",
     {"type": "file", "file": {"file_data": "JVBERi0=", "filename": "a.pdf"}}),
    ("body.messages[0].content[0].file.file_url",
     {"type": "file", "file": {"file_url": "https://example.com/download"}}),
    ("body.messages[0].content[0].file.filename",
     {"type": "file", "file": {"file_url": "gs://b/a.pdf", "filename": 3}}),
])
def test_media_that_cannot_be_sent_is_refused_by_field(field: str, part: dict[str, Any]) -> None:
    refused(field, messages=[{"role": "user", "content": [part]}])


def test_responses_normalise() -> None:
    response = {"candidates": [{"content": {"parts": [
        {"text": "thinking", "thought": True}, {"text": "Hel"}, {"text": "lo"}]},
        "finishReason": "MAX_TOKENS"}]}
    assert candidate_text(response) == "Hello"
    assert finish_reason(response) == "length"
    call = {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f"}}]},
                            "finishReason": "STOP"}]}
    assert candidate_text(call) is None and finish_reason(call) == "tool_calls"
    assert finish_reason({"candidates": [{"finishReason": "SAFETY"}]}) == "content_filter"
    assert finish_reason({"candidates": [{"finishReason": "OTHER"}]}) == "other"
    assert candidate_text({}) is None and finish_reason({}) is None


def test_an_embeddings_body_becomes_one_embed_content_request() -> None:
    assert to_embed_content({"input": "hello", "model": "m", "user": "u"}) == {
        "content": {"parts": [{"text": "hello"}]}}
    assert to_embed_content({"input": "x", "dimensions": 256, "encoding_format": "float"}) == {
        "content": {"parts": [{"text": "x"}]}, "outputDimensionality": 256}


@pytest.mark.parametrize(("field", "body"), [
    ("body.input", {"input": ["a", "b"]}),  # one request embeds one content: no faithful map
    ("body.input", {"input": ["a"]}),
    ("body.input", {"input": [1, 2, 3]}),  # token arrays
    ("body.input", {"input": ""}),
    ("body.input", {}),
    ("body.encoding_format", {"input": "x", "encoding_format": "base64"}),
    ("body.dimensions", {"input": "x", "dimensions": 0}),
    ("body.dimensions", {"input": "x", "dimensions": "8"}),
    ("body.task_type", {"input": "x", "task_type": "RETRIEVAL_QUERY"}),
])
def test_embeddings_that_cannot_be_faithful_are_refused_by_field(
        field: str, body: dict[str, Any]) -> None:
    with pytest.raises(InputError) as err:
        to_embed_content(body)
    assert err.value.field == field, err.value


def test_the_neutral_schema_lets_url_media_parts_through_to_the_translation() -> None:
    from llmbatch.domain.models import Endpoint
    from llmbatch.domain.requests import body_problems

    body = {"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_url": "gs://b/a.pdf", "filename": "a.pdf"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}
    assert body_problems(body, endpoint=Endpoint.CHAT, model="gemini-2.5-flash") == []


def test_gemini_2_0_models_cannot_take_web_urls() -> None:
    """C.10: "Gemini 2.0 family of models are not supported" for external URLs."""
    from llmbatch.providers.gemini.translate import check_web_urls

    request = to_generate_content({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]})
    check_web_urls(request, model="gemini-2.5-flash", field="body.messages")
    with pytest.raises(InputError) as err:
        check_web_urls(request, model="gemini-2.0-flash", field="body.messages")
    assert err.value.field == "body.messages" and "example.com/a.png" in err.value.message
    cloud = {"contents": [{"parts": [{"fileData": {"fileUri": "gs://b/a.png"}}]}]}
    check_web_urls(cloud, model="models/gemini-2.0-flash", field="native")
