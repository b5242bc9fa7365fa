"""The neutral request format (an OpenAI chat-completions body) as Anthropic Messages params.

Pure functions, no SDK. The rule is DESIGN §1: a translation that cannot be faithful is an
``InputError`` naming the field, at submit time, never a silent drop; a field is dropped only
when dropping it cannot change the answer (e.g. ``presence_penalty: 0``, ``store: false``).

Decisions (see docs/providers/anthropic.md for the full table):

- ``system``/``developer`` messages become ``system``; they must come before the first
  user/assistant message (Anthropic has one system prompt, a later one would move meaning).
- Consecutive messages of one role are merged into one message with several content blocks
  (what the Messages API does itself with consecutive user turns); the first conversational
  message must be ``user``. ``tool`` messages become ``tool_result`` blocks of a user turn,
  assistant ``tool_calls`` become ``tool_use`` blocks.
- ``max_tokens`` (or ``max_completion_tokens``) is required by Anthropic; absent, the
  configured default is used. Its value is not judged here: Anthropic validates params per
  request, so a bad value is one ``errored`` result, not a refused batch.
- ``temperature``/``top_p`` depend on the API version: 2026-10-21 rejects them (even at their
  defaults), so they are refused there; 2023-06-01 takes ``temperature`` only in [0, 1].
- JSON schema output maps to ``output_config.format``; bare JSON mode (``json_object``) has no
  Anthropic equivalent and is refused.
- ``cache_control`` breakpoints (prompt caching) are kept where they were put: on a content
  part it stays on that block, on a message it goes to the message's last block (a system
  message's last system block, a tool message's ``tool_result``), on a function tool it stays
  on that tool. Only ``{"type": "ephemeral"}`` with an optional ``ttl`` of ``5m`` or ``1h`` is
  accepted; anything else is an ``InputError``, never dropped (docs/cost.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from llmbatch.errors import InputError

__all__ = ["API_VERSIONS", "DEFAULT_API_VERSION", "LEGACY_API_VERSION", "to_anthropic_params"]

LEGACY_API_VERSION: Final = "2023-06-01"
DEFAULT_API_VERSION: Final = "2026-10-21"  # what anthropic SDK 2.x sends
API_VERSIONS: Final = frozenset({LEGACY_API_VERSION, DEFAULT_API_VERSION})
_SAMPLING_REFUSED: Final = frozenset({DEFAULT_API_VERSION})

_DATA_URL: Final = re.compile(r"^data:(image/[A-Za-z0-9.+-]+);base64,(.*)$", re.DOTALL)
_IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# Fields whose *zero/neutral* value is harmless to drop, and which are refused otherwise.
_NEUTRAL: Final = {"presence_penalty": (0, 0.0), "frequency_penalty": (0, 0.0),
                   "n": (1,), "logprobs": (False,), "store": (False,)}
_REFUSED: Final = frozenset({"top_logprobs", "logit_bias", "seed", "service_tier",
                             "reasoning_effort", "modalities", "audio", "prediction",
                             "web_search_options", "functions", "function_call",
                             "stream_options", "metadata", "verbosity"})
# Not mapped, on purpose (docs/providers/anthropic.md): extended thinking takes a token budget,
# and Anthropic publishes no budget for an effort level; its own effort setting is per model.
REASONING_EFFORT_REFUSED: Final = (
    "reasoning effort has no faithful Anthropic equivalent: extended thinking takes a token "
    "budget (thinking.budget_tokens, at least 1024 and below max_tokens) and Anthropic "
    "publishes no budget for an effort level, while its own output_config.effort is "
    "supported by some models only; remove it, or send native Anthropic bodies with "
    "'thinking' or 'output_config.effort' for a model that takes them")
_HANDLED: Final = frozenset({"messages", "max_tokens", "max_completion_tokens", "temperature",
                             "top_p", "stop", "response_format", "tools", "tool_choice",
                             "user", "stream", "model",
                             "parallel_tool_calls"})


def _err(message: str, field: str) -> InputError:
    return InputError(message, field=field)


_CACHE_TTLS: Final = frozenset({"5m", "1h"})


def _cache_control(value: Any, where: str) -> dict[str, Any]:
    """A checked copy of a ``cache_control`` breakpoint."""
    if not isinstance(value, Mapping) or value.get("type") != "ephemeral" or set(value) - {
            "type", "ttl"}:
        raise _err('cache_control must be {"type": "ephemeral"} with an optional "ttl"',
                   f"{where}.cache_control")
    ttl = value.get("ttl")
    if ttl is not None and ttl not in _CACHE_TTLS:
        raise _err(f"cache_control ttl must be 5m or 1h, got {ttl!r}",
                   f"{where}.cache_control.ttl")
    return dict(value)


def _mark_last(blocks: list[dict[str, Any]], msg: Mapping[str, Any], where: str) -> None:
    """A message-level ``cache_control`` goes on the message's last block."""
    if msg.get("cache_control") is not None and blocks:
        blocks[-1]["cache_control"] = _cache_control(msg["cache_control"], where)


def to_anthropic_params(body: Mapping[str, Any], *, model: str, api_version: str,
                        default_max_tokens: int) -> dict[str, Any]:
    """Anthropic ``params`` for one neutral chat body (``InputError`` naming the field)."""
    for key in body:
        if key in _HANDLED:
            continue
        if key in _NEUTRAL:
            if body[key] is None or body[key] in _NEUTRAL[key]:
                continue
            raise _err(f"{key}={body[key]!r} has no Anthropic equivalent", f"body.{key}")
        if key == "reasoning_effort" and body[key] is not None:
            raise _err(REASONING_EFFORT_REFUSED, "body.reasoning_effort")
        if key in _REFUSED:
            if body[key] is None:
                continue
            raise _err(f"'{key}' has no Anthropic equivalent; remove it or send a native "
                       "Anthropic body", f"body.{key}")
        raise _err(f"unknown field '{key}' cannot be translated to Anthropic", f"body.{key}")
    if body.get("stream"):
        raise _err("streaming is not possible in a batch", "body.stream")

    system, messages = _messages(body.get("messages"))
    params: dict[str, Any] = {"model": model, "max_tokens": _max_tokens(body, default_max_tokens),
                              "messages": messages}
    if system is not None:
        params["system"] = system
    _sampling(body, params, api_version)
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _err("must be a string or a list of strings", "body.stop")
        if stops:
            params["stop_sequences"] = stops
    fmt = _output_format(body.get("response_format"))
    if fmt is not None:
        params["output_config"] = {"format": fmt}
    tools = _tools(body.get("tools"))
    if tools:
        params["tools"] = tools
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"), bool(tools))
    if choice is not None:
        params["tool_choice"] = choice
    user = body.get("user")
    if user is not None:
        if not isinstance(user, str):
            raise _err("must be a string", "body.user")
        params["metadata"] = {"user_id": user}
    return params


def _max_tokens(body: Mapping[str, Any], default: int) -> Any:
    given = {k: body[k] for k in ("max_tokens", "max_completion_tokens")
             if body.get(k) is not None}
    if len(set(map(json.dumps, given.values()))) > 1:
        raise _err("max_tokens and max_completion_tokens differ; give one",
                   "body.max_completion_tokens")
    value = next(iter(given.values()), default)
    if not isinstance(value, int) or isinstance(value, bool):
        field = next(iter(given), "max_tokens")
        raise _err("must be an integer", f"body.{field}")
    return value


def _sampling(body: Mapping[str, Any], params: dict[str, Any], api_version: str) -> None:
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if api_version in _SAMPLING_REFUSED:
            raise _err(f"Anthropic API version {api_version} rejects '{name}' in batches "
                       f"(even at its default); remove it or configure api_version "
                       f"{LEGACY_API_VERSION}", f"body.{name}")
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _err("must be a number", f"body.{name}")
        if not 0 <= value <= 1:
            raise _err(f"Anthropic accepts {name} from 0 to 1, got {value}", f"body.{name}")
        params[name] = value


def _output_format(fmt: Any) -> dict[str, Any] | None:
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, Mapping) else None
    if kind == "text":
        return None
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise _err("json_schema needs a 'schema' object", "body.response_format.json_schema")
        return {"type": "json_schema", "schema": dict(schema)}
    if kind == "json_object":
        raise _err("Anthropic has no bare JSON mode; use response_format type 'json_schema'",
                   "body.response_format")
    raise _err(f"unsupported response_format type {kind!r}", "body.response_format")


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _err("must be a list", "body.tools")
    out = []
    for i, tool in enumerate(tools):
        where = f"body.tools[{i}]"
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(tool, Mapping) or tool.get("type") != "function" or not isinstance(
                fn, Mapping) or not isinstance(fn.get("name"), str):
            raise _err("only function tools with a name can be translated", where)
        converted: dict[str, Any] = {"name": fn["name"],
                                     "input_schema": dict(fn.get("parameters")
                                                          or {"type": "object"})}
        if fn.get("description"):
            converted["description"] = fn["description"]
        if fn.get("strict"):
            converted["strict"] = True
        if tool.get("cache_control") is not None:
            converted["cache_control"] = _cache_control(tool["cache_control"], where)
        out.append(converted)
    return out


def _tool_choice(choice: Any, parallel: Any, have_tools: bool) -> dict[str, Any] | None:
    result: dict[str, Any] | None
    if choice is None:
        result = {"type": "auto"} if have_tools and parallel is False else None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "required":
        result = {"type": "any"}
    elif choice == "none":
        result = {"type": "none"}
    elif isinstance(choice, Mapping) and choice.get("type") == "function" and isinstance(
            choice.get("function"), Mapping) and isinstance(choice["function"].get("name"), str):
        result = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise _err("must be auto, required, none or a function choice", "body.tool_choice")
    if result is not None and parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def _messages(messages: Any) -> tuple[Any, list[dict[str, Any]]]:
    if not isinstance(messages, list) or not messages:
        raise _err("a chat request needs a non-empty 'messages' list", "body.messages")
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"body.messages[{i}]"
        if not isinstance(msg, Mapping):
            raise _err("must be an object", where)
        if msg.get("name") is not None:
            raise _err("Anthropic messages have no 'name'", f"{where}.name")
        role = msg.get("role")
        if role in ("system", "developer"):
            if out:
                raise _err("a system/developer message after the conversation started has "
                           "no Anthropic equivalent (one system prompt per request)", where)
            blocks = _text_blocks(msg.get("content"), where)
            _mark_last(blocks, msg, where)
            system.extend(blocks)
            continue
        if role == "user":
            blocks = _user_blocks(msg.get("content"), where)
            role = "user"
        elif role == "assistant":
            blocks = _assistant_blocks(msg, where)
        elif role == "tool":
            if not isinstance(msg.get("tool_call_id"), str):
                raise _err("a tool message needs 'tool_call_id'", f"{where}.tool_call_id")
            text = _text_blocks(msg.get("content"), where)
            blocks = [{"type": "tool_result", "tool_use_id": msg["tool_call_id"],
                       "content": text}]
            role = "user"
        else:
            raise _err(f"unknown role {role!r}", f"{where}.role")
        _mark_last(blocks, msg, where)
        if not out and role != "user":
            raise _err("Anthropic conversations must start with a user message", f"{where}.role")
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    if not out:
        raise _err("needs at least one user message", "body.messages")
    for message in out:  # a lone text block is sent as a plain string, the common form
        blocks = message["content"]
        if len(blocks) == 1 and blocks[0]["type"] == "text" and "cache_control" not in blocks[0]:
            message["content"] = blocks[0]["text"]
    if not system:
        return None, out
    if all(set(b) == {"type", "text"} for b in system):
        return "\n\n".join(b["text"] for b in system), out
    return system, out


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _err("must be a string or a list of text parts", f"{where}.content")
    blocks = []
    for j, part in enumerate(content):
        if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(
                part.get("text"), str):
            raise _err("only text parts are possible here", f"{where}.content[{j}]")
        blocks.append(_with_cache({"type": "text", "text": part["text"]}, part,
                                  f"{where}.content[{j}]"))
    return blocks


def _with_cache(block: dict[str, Any], part: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``block`` with the part's ``cache_control``, when it has one."""
    if part.get("cache_control") is not None:
        block["cache_control"] = _cache_control(part["cache_control"], where)
    return block


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise _err("must be a string or a non-empty list of parts", f"{where}.content")
    blocks = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append(_with_cache({"type": "text", "text": part["text"]}, part, at))
        elif kind == "image_url":
            blocks.append(_with_cache(_image(part.get("image_url"), at), part, at))
        else:
            raise _err(f"content part type {kind!r} cannot be translated to Anthropic", at)
    return blocks


def _image(spec: Any, where: str) -> dict[str, Any]:
    url = spec.get("url") if isinstance(spec, Mapping) else spec
    if not isinstance(url, str):
        raise _err("image_url needs a 'url'", f"{where}.image_url")
    match = _DATA_URL.match(url)
    if match:
        media = match.group(1).lower()
        if media not in _IMAGE_TYPES:
            raise _err(f"Anthropic takes {', '.join(sorted(_IMAGE_TYPES))}, not {media}",
                       f"{where}.image_url")
        return {"type": "image", "source": {"type": "base64", "media_type": media,
                                            "data": match.group(2)}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _err("an image must be an http(s) URL or a base64 data URL", f"{where}.image_url")


def _assistant_blocks(msg: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    content = msg.get("content")
    blocks = [] if content in (None, "") else _text_blocks(content, where)
    calls = msg.get("tool_calls") or []
    if not isinstance(calls, list):
        raise _err("must be a list", f"{where}.tool_calls")
    for k, call in enumerate(calls):
        at = f"{where}.tool_calls[{k}]"
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(call.get("id"), str):
            raise _err("a tool call needs 'id' and 'function'", at)
        try:
            arguments = json.loads(fn.get("arguments") or "{}")
        except (TypeError, ValueError) as exc:
            raise _err("arguments are not valid JSON", f"{at}.function.arguments") from exc
        if not isinstance(arguments, dict):
            raise _err("arguments must be a JSON object", f"{at}.function.arguments")
        blocks.append({"type": "tool_use", "id": call["id"], "name": fn.get("name"),
                       "input": arguments})
    if not blocks:
        raise _err("an assistant message needs content or tool_calls", f"{where}.content")
    return blocks
