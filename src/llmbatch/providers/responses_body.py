"""A Responses body (the neutral form of a ``responses`` job) as the chat body it means, for
adapters whose translators take the chat form (every provider but the one whose format the
neutral form is).

The rule is DESIGN §1: faithful or refused. What a chat body can say the same way is moved:
``instructions`` -> a leading system message, ``input`` (a string, or message, function-call
and function-call-output items) -> ``messages``, ``max_output_tokens`` ->
``max_completion_tokens``, ``text.format`` -> ``response_format``, flat function ``tools`` ->
chat function tools, ``reasoning.effort`` -> ``reasoning_effort``; fields both forms share
(``temperature``, ``top_p``, ``user``, ...) pass as they are, and the target translator decides
on them as it does for a chat job. What has no chat meaning is refused here, naming the field:
server-side state (``previous_response_id``, ``conversation``, ``prompt``, ``background``),
built-in tools (web search, file search, ...), items a chat message cannot carry (reasoning
items, item references, files). The target translator's own refusals are renamed back to the
Responses field (``body.messages[1]`` -> ``body.input[0]``), so a user reads the field of
their own line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final, TypeVar

from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.errors import InputError

__all__ = ["chat_from_responses", "encode_as_chat"]

T = TypeVar("T")

# Fields with the same name and meaning in both bodies: the chat translator judges them.
_SHARED: Final = frozenset({
    "temperature", "top_p", "user", "metadata", "service_tier", "store", "stream",
    "parallel_tool_calls", "safety_identifier", "prompt_cache_key", "prompt_cache_retention",
    "top_logprobs", "tool_choice", "model"})
# Fields that are harmless at these values (their defaults) and refused otherwise.
_DEFAULTS: Final = {"background": (False,), "truncation": ("disabled",), "include": ([],),
                    "max_tool_calls": ()}
_STATEFUL: Final = {
    "previous_response_id": "continues a response stored at OpenAI",
    "conversation": "continues a conversation stored at OpenAI",
    "prompt": "names a prompt template stored at OpenAI",
    "context_management": "asks OpenAI's server-side context management",
}
_CHAT_ROLES: Final = frozenset({"user", "assistant", "system", "developer"})
_RENAMES: Final = (("body.max_completion_tokens", "body.max_output_tokens"),
                   ("body.response_format", "body.text.format"),
                   ("body.reasoning_effort", "body.reasoning.effort"),
                   ("body.verbosity", "body.text.verbosity"))


def _refuse(message: str, field: str) -> InputError:
    return InputError(message, field=field)


def chat_from_responses(body: Mapping[str, Any]) -> tuple[dict[str, Any],
                                                           Callable[[str | None], str | None]]:
    """The chat body for a Responses ``body``, and the function that renames a field of the
    chat body back to the Responses field it came from. ``InputError`` (naming the Responses
    field) for what has no faithful chat form."""
    chat: dict[str, Any] = {}
    origins: list[str] = []  # origins[i]: the Responses field chat message i came from
    for key, value in body.items():
        if key in _SHARED:
            chat[key] = value
        elif key in _STATEFUL:
            if value is not None:
                raise _refuse(f"'{key}' {_STATEFUL[key]}; only OpenAI can run it (send the "
                              "whole conversation in 'input' instead)", f"body.{key}")
        elif key in _DEFAULTS:
            if value is not None and value not in _DEFAULTS[key]:
                raise _refuse(f"{key}={value!r} has no equivalent outside OpenAI; remove it",
                              f"body.{key}")
        elif key == "max_output_tokens":
            chat["max_completion_tokens"] = value
        elif key == "reasoning":
            _reasoning(value, chat)
        elif key == "text":
            _text(value, chat)
        elif key == "tools":
            chat["tools"] = _tools(value)
        elif key not in ("instructions", "input") and value is not None:
            raise _refuse(f"'{key}' has no equivalent outside OpenAI; remove it or send the "
                          "job to OpenAI", f"body.{key}")
    if isinstance(chat.get("tool_choice"), Mapping):
        chat["tool_choice"] = _tool_choice(chat["tool_choice"])
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _refuse("only a string can be translated", "body.instructions")
        messages.append({"role": "system", "content": instructions})
        origins.append("body.instructions")
    _input(body.get("input"), messages, origins)
    chat["messages"] = messages
    return chat, _renamer(origins)


def encode_as_chat(request: RequestLine, endpoint: Endpoint,
                   encode: Callable[[RequestLine, Endpoint], T]) -> T:
    """``encode(request, endpoint)``, a Responses body first made the chat body it means (the
    endpoint then ``CHAT``) and every refusal renamed to the Responses field."""
    if endpoint is not Endpoint.RESPONSES:
        return encode(request, endpoint)
    if request.body is None:
        return encode(request, Endpoint.CHAT)
    chat, where = chat_from_responses(request.body)
    try:
        return encode(replace(request, body=chat), Endpoint.CHAT)
    except InputError as exc:
        raise InputError(exc.message, field=where(exc.field)) from None


def _renamer(origins: list[str]) -> Callable[[str | None], str | None]:
    def where(field: str | None) -> str | None:
        if field is None:
            return None
        match = re.match(r"body\.messages\[(\d+)\]", field)
        if match and int(match.group(1)) < len(origins):
            return origins[int(match.group(1))] + field[match.end():]
        if field == "body.messages":
            return "body.input"
        tool = re.match(r"body\.tools\[(\d+)\]\.function", field)
        if tool:
            return field[:tool.end() - len(".function")] + field[tool.end():]
        for chat_name, name in _RENAMES:
            if field == chat_name or field.startswith(chat_name + "."):
                return name + field[len(chat_name):]
        return field
    return where


def _reasoning(value: Any, chat: dict[str, Any]) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise _refuse("must be an object", "body.reasoning")
    for key, given in value.items():
        if key == "effort":
            if given is not None:
                chat["reasoning_effort"] = given
        elif given is not None:
            raise _refuse(f"reasoning.{key} has no equivalent outside OpenAI; remove it",
                          f"body.reasoning.{key}")


def _text(value: Any, chat: dict[str, Any]) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise _refuse("must be an object", "body.text")
    for key, given in value.items():
        if key == "format":
            fmt = _format(given)
            if fmt is not None:
                chat["response_format"] = fmt
        elif given is not None:
            chat[key] = given  # verbosity: a chat field too, judged by the translator


def _format(fmt: Any) -> dict[str, Any] | None:
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": spec}
    if kind in ("text", "json_object"):
        return {"type": kind}
    raise _refuse(f"text format type {kind!r} cannot be translated", "body.text.format")


def _tools(tools: Any) -> Any:
    if not isinstance(tools, list):
        return tools  # the chat translator names the problem
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if kind != "function":
            raise _refuse(f"the built-in tool type {kind!r} runs only at OpenAI; only "
                          "function tools can be translated", f"body.tools[{i}]")
        assert isinstance(tool, Mapping)
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict")
                    if tool.get(k) is not None}
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Mapping[str, Any]) -> Any:
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _refuse("only auto, none, required or a function choice can be translated",
                  "body.tool_choice")


def _input(value: Any, messages: list[dict[str, Any]], origins: list[str]) -> None:
    if isinstance(value, str):
        messages.append({"role": "user", "content": value})
        origins.append("body.input")
        return
    if not isinstance(value, list) or not value:
        raise _refuse("a string or a non-empty list of items is needed", "body.input")
    for i, item in enumerate(value):
        where = f"body.input[{i}]"
        if not isinstance(item, Mapping):
            raise _refuse("must be an object", where)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
            origins.append(where)
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments")}}
            if messages and messages[-1]["role"] == "assistant":  # one turn, several calls
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
                origins.append(where)
        elif kind == "function_call_output":
            output = item.get("output")
            if not isinstance(output, str):
                raise _refuse("only a string output can be translated", f"{where}.output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"),
                             "content": output})
            origins.append(where)
        else:
            raise _refuse(f"an input item of type {kind!r} has no equivalent outside OpenAI",
                          f"{where}.type")


def _message(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _CHAT_ROLES:
        raise _refuse(f"unknown role {role!r}", f"{where}.role")
    content = item.get("content")
    if isinstance(content, list):
        content = [_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    return {"role": role, "content": content}


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") not in (None, "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_image":
        raise _refuse("only an image given by 'image_url' can be translated (a file_id names "
                      "a file stored at OpenAI)", where)
    raise _refuse(f"a content part of type {kind!r} cannot be translated", where)
