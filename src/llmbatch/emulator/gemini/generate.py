"""What ``generateContent`` answers for one request inside a batch, deterministically.

``reject`` returns the per-request error the real service would give a semantically bad request
(no contents, unknown role, out-of-range generation settings); ``respond`` returns a
``GenerateContentResponse`` whose text and token counts derive from the request alone (see
``synth``). ``gemini-2.5*`` models "think" unless ``thinkingBudget`` is 0, so
``thoughtsTokenCount`` shows up as it does for real.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from llmbatch.emulator import synth
from llmbatch.emulator.gemini.fields import Violation, check

__all__ = ["prompt_tokens", "reject", "respond"]

_ROLES = ("user", "model")
# What Gemini fetches by URI (PROVIDER_APIS C.10): web URLs, public or pre-signed; Cloud
# Storage objects; Files API uploads (their https ``uri``).
_URI_SCHEMES = ("https://", "http://", "gs://")
_MIME = re.compile(r"^[\w.+-]+/[\w.+-]+$")


def _config(request: Mapping[str, Any]) -> Mapping[str, Any]:
    config = request.get("generationConfig", request.get("generation_config"))
    return config if isinstance(config, Mapping) else {}


def _get(mapping: Mapping[str, Any], camel: str, snake: str) -> Any:
    return mapping.get(camel, mapping.get(snake))


def reject(request: Mapping[str, Any]) -> str | None:
    """The INVALID_ARGUMENT message this request gets, if any (proto field names, as Google's
    messages use them)."""
    try:
        check(request, "GenerateContentRequest")
    except Violation as exc:
        return exc.message
    contents = request.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for i, content in enumerate(contents):
        parts = content.get("parts") if isinstance(content, Mapping) else None
        if not isinstance(parts, list) or not parts:
            return f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be " \
                   "empty."
        role = content.get("role")
        if role is not None and role not in _ROLES:
            return f"Please use a valid role: {', '.join(_ROLES)}."
        for j, part in enumerate(parts):
            if (problem := _file_data_problem(part, f"contents[{i}].parts[{j}]")) is not None:
                return problem
    config = _config(request)
    limit = _get(config, "maxOutputTokens", "max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        return ("* GenerateContentRequest.generation_config.max_output_tokens: "
                "max_output_tokens must be positive.")
    temperature = config.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float)
                                        and 0 <= temperature <= 2):
        return "* GenerateContentRequest.generation_config.temperature: must be in [0.0, 2.0]"
    count = _get(config, "candidateCount", "candidate_count")
    if count is not None and not (isinstance(count, int) and 1 <= count <= 8):
        return "* GenerateContentRequest.generation_config.candidate_count: must be in [1, 8]"
    stops = _get(config, "stopSequences", "stop_sequences")
    if isinstance(stops, list) and len(stops) > 5:
        return "* GenerateContentRequest.generation_config.stop_sequences: at most 5 allowed"
    return None


def _file_data_problem(part: Any, where: str) -> str | None:
    """What is wrong with a part's ``fileData`` (``fileUri`` is required, C.10), if anything."""
    data = _get(part, "fileData", "file_data") if isinstance(part, Mapping) else None
    if not isinstance(data, Mapping):
        return None
    uri = _get(data, "fileUri", "file_uri")
    if not isinstance(uri, str) or not uri:
        return f"* GenerateContentRequest.{where}.file_data.file_uri: file_uri is required."
    if not uri.lower().startswith(_URI_SCHEMES):
        return f"* GenerateContentRequest.{where}.file_data.file_uri: Unsupported file uri: {uri}"
    mime = _get(data, "mimeType", "mime_type")
    if mime is not None and not (isinstance(mime, str) and _MIME.match(mime)):
        return f"* GenerateContentRequest.{where}.file_data.mime_type: Unsupported MIME type: " \
               f"{mime}"
    return None


def _text(content: Any) -> str:
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return " ".join(p["text"] for p in parts or [] if isinstance(p, Mapping)
                    and isinstance(p.get("text"), str))


def prompt_tokens(request: Mapping[str, Any]) -> int:
    """Prompt text tokens plus a little framing per turn."""
    system = _get(request, "systemInstruction", "system_instruction")
    total = 1 + (2 + synth.estimate_tokens(_text(system)) if system else 0)
    for content in request.get("contents") or []:
        total += 2 + synth.estimate_tokens(_text(content))
    return total


def _function_call(request: Mapping[str, Any], seed: bytes) -> dict[str, Any] | None:
    """A ``functionCall`` part for about half the requests declaring functions; always under
    ``functionCallingConfig.mode`` ``ANY`` (among ``allowedFunctionNames`` when given), never
    under ``NONE``. ``args`` satisfy the declaration's ``parameters`` (Gemini ``Schema``) or
    ``parametersJsonSchema``."""
    declared = [d for tool in request.get("tools") or [] if isinstance(tool, Mapping)
                for d in _get(tool, "functionDeclarations", "function_declarations") or []
                if isinstance(d, Mapping) and isinstance(d.get("name"), str)]
    tool_config = _get(request, "toolConfig", "tool_config")
    calling = _get(tool_config, "functionCallingConfig", "function_calling_config") if \
        isinstance(tool_config, Mapping) else None
    mode = str(calling.get("mode", "AUTO")).upper() if isinstance(calling, Mapping) else "AUTO"
    allowed = _get(calling, "allowedFunctionNames", "allowed_function_names") if isinstance(
        calling, Mapping) else None
    if isinstance(allowed, list) and allowed:
        declared = [d for d in declared if d["name"] in allowed] or declared
    wanted = {"ANY": "required", "NONE": "none"}.get(mode, "auto")
    if not declared or not synth.wants_tool_call(seed, wanted):
        return None
    declaration = declared[synth.pick_tool(seed, [d["name"] for d in declared])]
    schema = _get(declaration, "parametersJsonSchema", "parameters_json_schema") or \
        declaration.get("parameters") or {"type": "OBJECT"}
    return {"name": declaration["name"], "args": synth.json_instance(schema, seed)}


def respond(request: Mapping[str, Any], *, model: str, response_id: str) -> dict[str, Any]:
    """A ``GenerateContentResponse`` with ``candidateCount`` candidates."""
    seed = synth.digest(request)
    config = _config(request)
    limit = _get(config, "maxOutputTokens", "max_output_tokens")
    thinking = _get(config, "thinkingConfig", "thinking_config")
    budget = _get(thinking, "thinkingBudget", "thinking_budget") if isinstance(
        thinking, Mapping) else None
    thinks = "2.5" in model and budget != 0
    mime = _get(config, "responseMimeType", "response_mime_type")
    schema = _get(config, "responseJsonSchema", "response_json_schema") or _get(
        config, "responseSchema", "response_schema")
    candidates, output, thoughts = [], 0, 0
    for index in range(int(_get(config, "candidateCount", "candidate_count") or 1)):
        cand_seed = synth.stream(seed, 32, f"candidate:{index}")
        length, cut = synth.reply_length(cand_seed, limit if isinstance(limit, int) else None)
        call = _function_call(request, cand_seed)
        if call is not None:
            output += max(synth.estimate_tokens(json.dumps(call["args"])), 1)
            candidates.append({"content": {"parts": [{"functionCall": call}], "role": "model"},
                               "finishReason": "STOP", "index": index})
            continue
        if mime == "application/json":
            text = json.dumps(synth.json_instance(schema, cand_seed) if schema
                              else {"answer": synth.reply_words(cand_seed, length)})
            length = max(synth.estimate_tokens(text), 1)
        else:
            text = synth.reply_words(cand_seed, length)
        output += length
        thoughts += length // 2 if thinks else 0
        candidates.append({"content": {"parts": [{"text": text}], "role": "model"},
                           "finishReason": "MAX_TOKENS" if cut else "STOP", "index": index})
    prompt = prompt_tokens(request)
    cached = synth.cached_tokens(seed, prompt)
    usage: dict[str, Any] = {"promptTokenCount": prompt, "candidatesTokenCount": output,
                             "totalTokenCount": prompt + output + thoughts,
                             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
    if cached:
        usage["cachedContentTokenCount"] = cached
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return {"candidates": candidates, "usageMetadata": usage,
            "modelVersion": model.removeprefix("models/"), "responseId": response_id}
