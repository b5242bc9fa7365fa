"""What a successful request answers: a ``Message`` (spec ``Message``, every required key)
whose text and usage derive from the params alone (see ``synth``); a ``tool_use`` block for
requests offering tools, a JSON text for ``output_config.format`` ``json_schema``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from llmbatch.emulator import synth
from llmbatch.emulator.anthropic.caching import PromptCache

__all__ = ["message"]


def _tool_use(params: Mapping[str, Any], seed: bytes, message_id: str) -> dict[str, Any] | None:
    """A ``tool_use`` block for about half the requests offering client tools (ones with an
    ``input_schema``); always under ``tool_choice`` ``any`` or ``tool``, never under ``none``.
    Its ``input`` satisfies the tool's ``input_schema``."""
    tools = [t for t in params.get("tools") or [] if isinstance(t, Mapping)
             and isinstance(t.get("name"), str) and isinstance(t.get("input_schema"), Mapping)]
    choice = params.get("tool_choice")
    kind = choice.get("type") if isinstance(choice, Mapping) else "auto"
    forced = choice.get("name") if isinstance(choice, Mapping) and kind == "tool" else None
    mode = {"any": "required", "tool": "required", "none": "none"}.get(str(kind), "auto")
    if not tools or not synth.wants_tool_call(seed, mode):
        return None
    tool = tools[synth.pick_tool(seed, [t["name"] for t in tools], forced)]
    return {"type": "tool_use", "id": "toolu_" + message_id.removeprefix("msg_"),
            "name": tool["name"], "input": synth.json_instance(tool["input_schema"], seed),
            "caller": {"type": "direct"}}


def message(params: Mapping[str, Any], message_id: str,
            cache: PromptCache | None = None) -> dict[str, Any]:
    """The ``Message`` a successful request returns (spec ``Message``, all required keys).
    Cache reads and writes come from ``cache`` for prompts with ``cache_control`` breakpoints
    (``caching``); without breakpoints nothing is cached, as at Anthropic."""
    seed = synth.digest(params)
    max_tokens = params.get("max_tokens")
    prompt = synth.chat_prompt_tokens(params.get("messages"), system=params.get("system"))
    cached = (cache or PromptCache()).use(params)
    n, cut = synth.reply_length(seed, max_tokens if isinstance(max_tokens, int) else None)
    config = params.get("output_config")
    fmt = config.get("format") if isinstance(config, Mapping) else None
    call = _tool_use(params, seed, message_id)
    content: list[dict[str, Any]]
    if call is not None:
        content, stop = [call], "tool_use"
        n = max(synth.estimate_tokens(json.dumps(call["input"])), 1)
    elif isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        text = json.dumps(synth.json_instance(fmt.get("schema"), seed), separators=(",", ":"))
        content, stop = [{"type": "text", "text": text, "citations": None}], "end_turn"
    else:
        text = synth.reply_words(seed, n)
        content = [{"type": "text", "text": text, "citations": None}]
        stop = "max_tokens" if cut else "end_turn"
    return {
        "id": message_id, "type": "message", "role": "assistant",
        "content": content,
        "model": params.get("model"),
        "stop_reason": stop,
        "stop_sequence": None, "stop_details": None, "container": None,
        "usage": {
            "input_tokens": prompt - cached.read - cached.written, "output_tokens": n,
            "cache_creation_input_tokens": cached.written,
            "cache_read_input_tokens": cached.read,
            "cache_creation": {"ephemeral_5m_input_tokens": cached.write_5m,
                               "ephemeral_1h_input_tokens": cached.write_1h},
            "server_tool_use": None, "service_tier": "batch", "inference_geo": None,
        },
    }
