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
from typing import Any

from llmbatch.emulator import synth
from llmbatch.emulator.anthropic.caching import PromptCache
from llmbatch.emulator.anthropic.errors import error_envelope
from llmbatch.emulator.faults import ItemErrorsFault

__all__ = ["errored", "failure", "message"]

_INJECTED = {429: ("rate_limit_error", "Rate limited (injected fault)."),
             529: ("overloaded_error", "Overloaded"),
             400: ("invalid_request_error", "Invalid request (injected fault).")}


def failure(params: Mapping[str, Any], *, batch_id: str, custom_id: str, seed: int,
            item_errors: ItemErrorsFault | None) -> tuple[str, str] | None:
    """(error type, message) if this request errors, else None.

    Params are validated per request, as Anthropic does (asynchronously): the checks here are
    the ones a plain Messages call would fail on that create-time validation lets through.
    """
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
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        text = json.dumps(synth.json_instance(fmt.get("schema"), seed), separators=(",", ":"))
        cut = False
    else:
        text = synth.reply_words(seed, n)
    return {
        "id": message_id, "type": "message", "role": "assistant",
        "content": [{"type": "text", "text": text, "citations": None}],
        "model": params.get("model"),
        "stop_reason": "max_tokens" if cut else "end_turn",
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
