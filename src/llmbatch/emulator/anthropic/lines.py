"""One request's fate in a batch: whether it fails (its params as the Messages API judges
them, asynchronously, or an injected ``item_errors`` fault), and the ``errored`` result that
reports it.

Like the other providers' ``lines`` modules, the fate is a pure function of the request, the
batch id, the seed and the drawn fault: computed once at create (so the count of failures is
known) and again when the results are written, with no per-line storage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

from llmbatch.emulator.anthropic.errors import error_envelope
from llmbatch.emulator.anthropic.params import params_error
from llmbatch.emulator.faults import ItemErrorsFault

__all__ = ["BETA_PARAMS", "PARAMS", "errored", "failure"]

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
    if (message := params_error(params, beta=beta)) is not None:
        return "invalid_request_error", message
    if item_errors is None or item_errors.rate <= 0:
        return None
    draw = hashlib.blake2b(f"{seed}:{batch_id}:{custom_id}".encode(), digest_size=8).digest()
    if int.from_bytes(draw[:6], "big") / 2**48 >= item_errors.rate:
        return None
    status = item_errors.status_code
    kind, text = _INJECTED.get(status, ("api_error", "Internal server error (injected fault).")
                               if status >= 500 else ("invalid_request_error",
                                                      f"Request failed ({status}, injected)."))
    return item_errors.code or kind, item_errors.message or text


def errored(kind: str, message: str, request_id: str) -> dict[str, Any]:
    """An ``errored`` result."""
    return {"type": "errored", "error": error_envelope(kind, message, request_id)}
