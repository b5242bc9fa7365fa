"""One request's fate in a batch, and the result line that reports it.

Like the OpenAI emulator, the fate is a pure function of the request, the batch id, the seed
and the drawn ``item_errors`` fault: computed once at create (so the count of failures is
known) and again when the results are written, with no per-line storage. Successful replies
are ``Message`` objects from ``synth`` (deterministic text, plausible usage).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from llmbatch.emulator import synth
from llmbatch.emulator.anthropic.errors import error_envelope
from llmbatch.emulator.faults import ItemErrorsFault

__all__ = ["errored", "failure", "message"]

# The names ``CreateMessageParams`` takes (Anthropic's API description, ``additionalProperties:
# false``), plus ``stream``, which gets its own refusal below. Checked against the description
# by tests/contract/test_emulator_strictness.py when ../shared/specs is present.
PARAMS: Final = frozenset({
    "model", "messages", "cache_control", "container", "inference_geo", "max_tokens",
    "metadata", "output_config", "service_tier", "stop_sequences", "system", "temperature",
    "thinking", "tool_choice", "tools", "top_k", "top_p", "stream"})
# What ``BetaCreateMessageParams`` adds; taken when the create carries ``anthropic-beta``.
BETA_PARAMS: Final = frozenset({"context_management", "mcp_servers", "output_format", "speed",
                                "user_profile_id"})

_INJECTED = {429: ("rate_limit_error", "Rate limited (injected fault)."),
             529: ("overloaded_error", "Overloaded"),
             400: ("invalid_request_error", "Invalid request (injected fault).")}


def failure(params: Mapping[str, Any], *, batch_id: str, custom_id: str, seed: int,
            item_errors: ItemErrorsFault | None, beta: bool = False
            ) -> tuple[str, str] | None:
    """(error type, message) if this request errors, else None.

    Params are validated per request, as Anthropic does (asynchronously): the checks here are
    the ones a plain Messages call would fail on that create-time validation lets through.
    """
    allowed = PARAMS | BETA_PARAMS if beta else PARAMS
    for name in params:
        if name not in allowed:
            return "invalid_request_error", f"{name}: Extra inputs are not permitted"
    for name in ("model", "max_tokens", "messages"):
        if name not in params:
            return "invalid_request_error", f"{name}: Field required"
    if not isinstance(params["model"], str) or not params["model"]:
        return "invalid_request_error", "model: Input should be a valid string"
    max_tokens = params.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return ("invalid_request_error",
                "max_tokens: Input should be greater than or equal to 1")
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        return "invalid_request_error", "messages: at least one message is required"
    if params.get("stream"):
        return "invalid_request_error", "stream: streaming is not supported in batches"
    if item_errors is None or item_errors.rate <= 0:
        return None
    draw = hashlib.blake2b(f"{seed}:{batch_id}:{custom_id}".encode(), digest_size=8).digest()
    if int.from_bytes(draw[:6], "big") / 2**48 >= item_errors.rate:
        return None
    status = item_errors.status_code
    kind, text = _INJECTED.get(status, ("api_error", "Internal server error (injected fault).")
                               if status >= 500 else ("invalid_request_error",
                                                      f"Request failed ({status}, injected)."))
    return item_errors.code or kind, text


def errored(kind: str, message: str, request_id: str) -> dict[str, Any]:
    """An ``errored`` result."""
    return {"type": "errored", "error": error_envelope(kind, message, request_id)}


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


def message(params: Mapping[str, Any], message_id: str) -> dict[str, Any]:
    """The ``Message`` a successful request returns (spec ``Message``, all required keys)."""
    seed = synth.digest(params)
    max_tokens = params.get("max_tokens")
    prompt = synth.chat_prompt_tokens(params.get("messages"), system=params.get("system"))
    cached = synth.cached_tokens(seed, prompt)
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
            "input_tokens": prompt - cached, "output_tokens": n,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "server_tool_use": None, "service_tier": "batch", "inference_geo": None,
        },
    }
