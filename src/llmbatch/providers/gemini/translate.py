"""The neutral (OpenAI chat-completions) body as a Gemini ``GenerateContentRequest``: pure code.

Rules, each chosen so that a translated request means what the original meant, or is refused
with an ``InputError`` naming the field (never a silent drop):

- ``system``/``developer`` messages become ``systemInstruction`` (one part each). Gemini has a
  single instruction for the whole conversation, so a system message *after* the first
  user/assistant turn cannot keep its position and is refused.
- ``user`` -> role ``user``; ``assistant`` -> role ``model``; assistant ``tool_calls`` ->
  ``functionCall`` parts; ``tool`` messages -> ``functionResponse`` parts in a ``user`` turn
  (consecutive tool messages share one turn), named after the call they answer.
- Media (``image_url`` and ``file`` parts): ``data:`` URLs (``image_url.url``,
  ``file.file_data``) -> ``inlineData``. ``https://``/``http://`` URLs and ``gs://`` Cloud
  Storage references (``image_url.url``, ``file.file_url``) -> ``fileData {fileUri, mimeType}``:
  since 2026-01 Gemini fetches such URIs itself in every endpoint, batch included (PROVIDER_APIS
  C.10). The neutral format carries no MIME type for a URL, so it is read from the extension of
  ``file.filename`` or of the URL's path (a fixed table, not the host's ``/etc/mime.types``);
  an ``image_url`` must name an ``image/*`` type. A URL whose type cannot be told, and a
  ``file.file_id`` (an OpenAI file means nothing to Gemini), are refused by field.
- Sampling: ``max_completion_tokens``/``max_tokens`` -> ``maxOutputTokens``, ``temperature``,
  ``top_p`` -> ``topP``, ``stop`` -> ``stopSequences`` (at most 5), ``n`` -> ``candidateCount``,
  ``seed``, ``presence_penalty``/``frequency_penalty``, ``logprobs``/``top_logprobs`` ->
  ``responseLogprobs``/``logprobs`` - all real ``GenerationConfig`` fields.
- ``response_format``: ``json_object`` -> ``responseMimeType: application/json``;
  ``json_schema`` -> that plus ``responseJsonSchema`` (plain JSON Schema, which Gemini accepts
  as is; ``responseSchema`` would need a lossy conversion to its OpenAPI subset).
- ``tools`` (functions only) -> ``functionDeclarations`` with ``parametersJsonSchema``;
  ``tool_choice`` -> ``toolConfig.functionCallingConfig`` (none/auto/required -> NONE/AUTO/ANY,
  a named function -> ANY + ``allowedFunctionNames``). ``parallel_tool_calls: false`` cannot be
  enforced and is refused.
- ``user`` (an abuse-monitoring id that does not change the output) is ignored. Every other
  field is refused by name.

Embeddings (``to_embed_content``): one neutral item is one ``EmbedContentRequest``, so one
vector. ``input`` must be one string -> ``content.parts[0].text``. A list is refused: Gemini's
request embeds a single ``Content`` (several parts would be merged into one vector, not one
vector each), so a list cannot keep its meaning. ``dimensions`` -> ``outputDimensionality``;
``encoding_format`` may only be ``float`` (Gemini returns floats). ``taskType`` and ``title``
have no neutral equivalent and are never invented; send a ``native`` body to set them.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from llmbatch.errors import InputError
from llmbatch.providers.cache_markers import without_cache_markers

__all__ = ["FINISH_REASONS", "candidate_text", "check_web_urls", "finish_reason",
           "to_embed_content", "to_generate_content"]

_IGNORED: Final = frozenset({"user"})
_DATA_URL: Final = re.compile(r"^data:([\w.+-]+/[\w.+-]+);base64,(.*)$", re.DOTALL)
# URI schemes Gemini fetches itself (C.10): web URLs, public or pre-signed, and Cloud Storage.
_FETCHED_SCHEMES: Final = frozenset({"https", "http", "gs"})
# Python's built-in extension table only: the host's /etc/mime.types must not change a request.
_MIME_TYPES: Final = mimetypes.MimeTypes(filenames=())
MAX_STOP_SEQUENCES: Final = 5

# Gemini finishReason -> the neutral (OpenAI) finish_reason.
FINISH_REASONS: Final = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "content_filter",
}


def _refuse(field: str, message: str) -> InputError:
    return InputError(message, field=field)


def _number(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refuse(f"body.{name}", "must be a number")
    return value


def _integer(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse(f"body.{name}", "must be an integer")
    return value


def _text_parts(content: Any, where: str, *, images: bool) -> list[dict[str, Any]]:
    """Parts of an OpenAI ``content`` (a string or a list of typed parts)."""
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise _refuse(where, "must be a string or a list of content parts")
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        here = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"text": part["text"]})
        elif kind == "image_url" and images:
            parts.append(_image(part.get("image_url"), f"{here}.image_url"))
        elif kind == "file" and images:
            parts.append(_file(part.get("file"), f"{here}.file"))
        else:
            raise _refuse(here, f"content part type {kind!r} cannot be sent to Gemini here "
                          "(text, image_url and file parts only, media in user messages "
                          "only; use a native body)")
    return parts


def _inline(match: re.Match[str], where: str) -> dict[str, Any]:
    try:
        base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _refuse(where, "the data: URL is not valid base64") from exc
    return {"inlineData": {"mimeType": match.group(1), "data": match.group(2)}}


def _guess_mime(*names: str | None) -> str | None:
    for name in names:
        if name:
            mime, _ = _MIME_TYPES.guess_type(name, strict=False)
            if mime is not None:
                return mime
    return None


def _fetched(url: str, where: str, *, filename: str | None, image: bool) -> dict[str, Any]:
    """A ``fileData`` part for a URL Gemini fetches itself, or a refusal naming ``where``."""
    parsed = urlsplit(url)
    if parsed.scheme.lower() not in _FETCHED_SCHEMES or not parsed.netloc:
        raise _refuse(where, "must be a data: URL, an http(s) URL or a gs://bucket/object "
                      "reference")
    mime = _guess_mime(filename, parsed.path)
    if mime is None:
        hint = "file.filename or the URL path" if not image else "the URL path"
        raise _refuse(where, f"Gemini needs the MIME type of {parsed.scheme}:// media and it "
                      f"cannot be told from {hint} (no known extension); use a native body "
                      "with fileData.mimeType")
    if image and not mime.startswith("image/"):
        raise _refuse(where, f"an image_url must point at an image, not {mime}")
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _image(image: Any, where: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, Mapping) else None
    if not isinstance(url, str):
        raise _refuse(f"{where}.url", "must be a string")
    match = _DATA_URL.match(url)
    if match is not None:
        return _inline(match, f"{where}.url")
    return _fetched(url, f"{where}.url", filename=None, image=True)


def _file(file: Any, where: str) -> dict[str, Any]:
    """An OpenAI-style ``file`` part: ``file_data`` (a data: URL) or ``file_url`` (http(s) or
    gs://), with an optional ``filename`` whose extension gives the MIME type."""
    if not isinstance(file, Mapping):
        raise _refuse(where, "must be an object")
    filename = file.get("filename")
    if filename is not None and not isinstance(filename, str):
        raise _refuse(f"{where}.filename", "must be a string")
    if file.get("file_id") is not None:
        raise _refuse(f"{where}.file_id", "an OpenAI file id cannot be sent to Gemini; give "
                      "file_data (a data: URL) or file_url (http(s) or gs://)")
    data, url = file.get("file_data"), file.get("file_url")
    if (data is None) == (url is None):
        raise _refuse(where, "give exactly one of file_data or file_url")
    if data is not None:
        match = _DATA_URL.match(data) if isinstance(data, str) else None
        if match is None:
            raise _refuse(f"{where}.file_data", "must be a base64 data: URL "
                          "(data:<mime>;base64,...)")
        return _inline(match, f"{where}.file_data")
    if not isinstance(url, str):
        raise _refuse(f"{where}.file_url", "must be a string")
    return _fetched(url, f"{where}.file_url", filename=filename, image=False)


def _function_call(call: Any, where: str) -> tuple[str, str, dict[str, Any]]:
    """(call id, name, functionCall part) of an assistant tool call."""
    fn = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(call, Mapping) or call.get("type", "function") != "function" \
            or not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise _refuse(where, "only function tool calls with a name can be translated")
    raw = fn.get("arguments", "{}")
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise _refuse(f"{where}.function.arguments", "is not valid JSON") from exc
    if not isinstance(args, dict):
        raise _refuse(f"{where}.function.arguments", "must be a JSON object")
    return str(call.get("id", "")), fn["name"], {"functionCall": {"name": fn["name"],
                                                                  "args": args}}


def _contents(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(systemInstruction parts, contents) of an OpenAI message list."""
    if not isinstance(messages, list) or not messages:
        raise _refuse("body.messages", "a chat request needs a non-empty 'messages' list")
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for i, msg in enumerate(messages):
        where = f"body.messages[{i}]"
        if not isinstance(msg, Mapping):
            raise _refuse(where, "must be an object")
        role, content = msg.get("role"), msg.get("content")
        if role in ("system", "developer"):
            if contents:
                raise _refuse(f"{where}.role", "a system message after the conversation has "
                              "started cannot be placed: Gemini has one systemInstruction")
            system.extend(_text_parts(content, f"{where}.content", images=False))
        elif role == "user":
            contents.append({"role": "user",
                             "parts": _text_parts(content, f"{where}.content", images=True)})
        elif role == "assistant":
            parts = [] if content is None else _text_parts(content, f"{where}.content",
                                                            images=False)
            for j, call in enumerate(msg.get("tool_calls") or []):
                call_id, name, part = _function_call(call, f"{where}.tool_calls[{j}]")
                call_names[call_id] = name
                parts.append(part)
            if not parts:
                raise _refuse(f"{where}.content", "an assistant message needs content or "
                              "tool_calls")
            contents.append({"role": "model", "parts": parts})
        elif role == "tool":
            answered = call_names.get(str(msg.get("tool_call_id")))
            if answered is None:
                raise _refuse(f"{where}.tool_call_id", "does not answer a tool call of an "
                              "earlier assistant message (Gemini needs the function name)")
            text = content if isinstance(content, str) else " ".join(
                p["text"] for p in _text_parts(content, f"{where}.content", images=False))
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            response = parsed if isinstance(parsed, dict) else {"content": text}
            part = {"functionResponse": {"name": answered, "response": response}}
            last = contents[-1] if contents else None
            if last is not None and last["role"] == "user" and all(
                    "functionResponse" in p for p in last["parts"]):
                last["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
        else:
            raise _refuse(f"{where}.role", f"unknown role {role!r}")
    if not contents:
        raise _refuse("body.messages", "needs at least one user or assistant message")
    return system, contents


def _generation_config(body: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    limit = _integer(body, "max_completion_tokens")
    legacy = _integer(body, "max_tokens")
    if limit is not None and legacy is not None and limit != legacy:
        raise _refuse("body.max_tokens", "differs from max_completion_tokens; give one")
    if (chosen := limit if limit is not None else legacy) is not None:
        config["maxOutputTokens"] = chosen
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"),
                         ("presence_penalty", "presencePenalty"),
                         ("frequency_penalty", "frequencyPenalty")):
        if (value := _number(body, ours)) is not None:
            config[theirs] = value
    for ours, theirs in (("n", "candidateCount"), ("seed", "seed"),
                         ("top_logprobs", "logprobs")):
        if (count := _integer(body, ours)) is not None:
            config[theirs] = count
    if body.get("logprobs") is not None:
        if not isinstance(body["logprobs"], bool):
            raise _refuse("body.logprobs", "must be a boolean")
        config["responseLogprobs"] = body["logprobs"]
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _refuse("body.stop", "must be a string or a list of strings")
        if len(stops) > MAX_STOP_SEQUENCES:
            raise _refuse("body.stop", f"Gemini takes at most {MAX_STOP_SEQUENCES} stop "
                          "sequences")
        config["stopSequences"] = stops
    fmt = body.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, Mapping) else None
        if kind == "json_object":
            config["responseMimeType"] = "application/json"
        elif kind == "json_schema":
            spec = fmt.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            if not isinstance(schema, Mapping):
                raise _refuse("body.response_format.json_schema.schema",
                              "a json_schema response format needs a schema object")
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = dict(schema)
        elif kind != "text":
            raise _refuse("body.response_format.type", f"unsupported type {kind!r}")
    return config


def _tools(body: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _refuse("body.tools", "must be a list")
        declarations = []
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, Mapping) else None
            if not isinstance(tool, Mapping) or tool.get("type") != "function" \
                    or not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
                raise _refuse(f"body.tools[{i}]", "only function tools can be translated")
            declaration: dict[str, Any] = {"name": fn["name"]}
            if isinstance(fn.get("description"), str):
                declaration["description"] = fn["description"]
            if fn.get("parameters") is not None:
                declaration["parametersJsonSchema"] = fn["parameters"]
            declarations.append(declaration)
        if declarations:
            out["tools"] = [{"functionDeclarations": declarations}]
    choice = body.get("tool_choice")
    if choice is not None:
        modes = {"none": "NONE", "auto": "AUTO", "required": "ANY"}
        if isinstance(choice, str) and choice in modes:
            config: dict[str, Any] = {"mode": modes[choice]}
        elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping) \
                and isinstance(choice["function"].get("name"), str):
            config = {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
        else:
            raise _refuse("body.tool_choice", f"cannot translate {choice!r}")
        out["toolConfig"] = {"functionCallingConfig": config}
    if body.get("parallel_tool_calls") is False:
        raise _refuse("body.parallel_tool_calls", "Gemini cannot be told to avoid parallel "
                      "function calls")
    return out


_HANDLED: Final = frozenset({
    "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "n",
    "seed", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs",
    "response_format", "tools", "tool_choice", "parallel_tool_calls", "model",
})


# "Gemini 2.0 family of models are not supported" for external URLs (C.10).
_NO_WEB_URL_MODELS: Final = re.compile(r"^(models/)?gemini-2\.0")


def check_web_urls(request: Mapping[str, Any], *, model: str, field: str) -> None:
    """Refuse a request whose ``fileData`` names a web URL when ``model`` cannot fetch one
    (the Gemini 2.0 family): the batch would fail it line by line hours later."""
    if not _NO_WEB_URL_MODELS.match(model):
        return
    for i, content in enumerate(request.get("contents") or []):
        parts = content.get("parts") if isinstance(content, Mapping) else None
        for j, part in enumerate(parts if isinstance(parts, list) else []):
            data = part.get("fileData", part.get("file_data")) if isinstance(part, Mapping) \
                else None
            uri = data.get("fileUri", data.get("file_uri")) if isinstance(data, Mapping) \
                else None
            if isinstance(uri, str) and uri.lower().startswith(("http://", "https://")) \
                    and "generativelanguage.googleapis.com/" not in uri:
                raise _refuse(field, f"{model} cannot fetch web URLs (the Gemini 2.0 models "
                              f"do not support them): contents[{i}].parts[{j}] names {uri}; "
                              "use a newer model, a gs:// object or inline data")


# Not mapped, on purpose (docs/providers/gemini.md): how thinking is set, and which values a
# model takes, differ per model generation and per model.
REASONING_EFFORT_REFUSED: Final = (
    "reasoning effort has no faithful Gemini equivalent: Gemini 2.5 models take a thinking "
    "token budget (generationConfig.thinkingConfig.thinkingBudget; some cannot turn thinking "
    "off) and Gemini 3 models a thinking level (thinkingLevel) whose accepted values differ "
    "per model, and the two cannot be combined; remove it, or send native Gemini bodies with "
    "generationConfig.thinkingConfig for the model")


def to_generate_content(body: Mapping[str, Any]) -> dict[str, Any]:
    """A REST ``GenerateContentRequest`` (camelCase JSON) for a neutral chat body.
    ``cache_control`` breakpoints are checked and removed: Gemini caches prefixes implicitly
    (``providers.cache_markers``)."""
    body = without_cache_markers(body)
    for name in sorted(set(body) - _HANDLED - _IGNORED):
        if name == "reasoning_effort":
            raise _refuse("body.reasoning_effort", REASONING_EFFORT_REFUSED)
        raise _refuse(f"body.{name}", "has no Gemini equivalent; remove it or use a native "
                      "body")
    system, contents = _contents(body.get("messages"))
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    if config := _generation_config(body):
        request["generationConfig"] = config
    request.update(_tools(body))
    return request


_EMBED_HANDLED: Final = frozenset({"input", "dimensions", "encoding_format", "model"})


def to_embed_content(body: Mapping[str, Any]) -> dict[str, Any]:
    """A REST ``EmbedContentRequest`` (camelCase JSON) for a neutral embeddings body."""
    for name in sorted(set(body) - _EMBED_HANDLED - _IGNORED):
        raise _refuse(f"body.{name}", "has no Gemini embeddings equivalent; remove it or use a "
                      "native body")
    text = body.get("input")
    if isinstance(text, list):
        raise _refuse("body.input", "a Gemini embedding request embeds one text; send one "
                      "string per item (a list would be merged into a single vector)")
    if not isinstance(text, str) or not text:
        raise _refuse("body.input", "must be a non-empty string")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt != "float":
        raise _refuse("body.encoding_format", f"Gemini returns float vectors only, not {fmt!r}")
    request: dict[str, Any] = {"content": {"parts": [{"text": text}]}}
    dimensions = _integer(body, "dimensions")
    if dimensions is not None:
        if dimensions < 1:
            raise _refuse("body.dimensions", "must be a positive integer")
        request["outputDimensionality"] = dimensions
    return request


def candidate_text(response: Mapping[str, Any]) -> str | None:
    """The text parts of the first candidate, concatenated (thought parts left out)."""
    candidates = response.get("candidates")
    first = candidates[0] if isinstance(candidates, list) and candidates else None
    content = first.get("content") if isinstance(first, Mapping) else None
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if not isinstance(parts, list):
        return None
    texts = [p["text"] for p in parts if isinstance(p, Mapping)
             and isinstance(p.get("text"), str) and not p.get("thought")]
    return "".join(texts) if texts else None


def finish_reason(response: Mapping[str, Any]) -> str | None:
    """The first candidate's finishReason in neutral terms (``tool_calls`` for a STOP that
    called functions); an unknown reason is passed on lower-cased."""
    candidates = response.get("candidates")
    first = candidates[0] if isinstance(candidates, list) and candidates else None
    reason = first.get("finishReason") if isinstance(first, Mapping) else None
    if not isinstance(reason, str):
        return None
    content = first.get("content") if isinstance(first, Mapping) else None
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if reason == "STOP" and isinstance(parts, list) and any(
            isinstance(p, Mapping) and "functionCall" in p for p in parts):
        return "tool_calls"
    return FINISH_REASONS.get(reason, reason.lower())
