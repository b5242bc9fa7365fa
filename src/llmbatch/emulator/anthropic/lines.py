"""One request's fate in a batch: whether it fails (its params as the Messages API judges
them, asynchronously, or an injected ``item_errors`` fault), and the ``errored`` result that
reports it.

Like the other providers' ``lines`` modules, the fate is a pure function of the request, the
batch id, the seed and the drawn fault: computed once at create (so the count of failures is
known) and again when the results are written, with no per-line storage.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

from llmbatch.emulator.anthropic.errors import error_envelope
from llmbatch.emulator.anthropic.params import params_error
from llmbatch.emulator.faults import ItemErrorsFault

__all__ = ["BETA_PARAMS", "EXTENDED_OUTPUT_BETA", "PARAMS", "errored", "failure"]

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

# Extended output (B.4, B.8): batch-only, with this beta, on these models, up to 300,000;
# without it no model writes more than the highest standard cap. (The emulator applies that
# one cap to every model; real models' own caps run from 64k.)
EXTENDED_OUTPUT_BETA: Final = "output-300k-2026-03-24"
EXTENDED_OUTPUT_TOKENS: Final = 300_000
STANDARD_OUTPUT_CAP: Final = 128_000
_EXTENDED_MODELS: Final = re.compile(
    r"^claude-(opus-4[-.][678]|sonnet-4[-.]6|opus-5|sonnet-5)(?!\d)")

_INJECTED = {429: ("rate_limit_error", "Rate limited (injected fault)."),
             529: ("overloaded_error", "Overloaded"),
             400: ("invalid_request_error", "Invalid request (injected fault).")}


def failure(params: Mapping[str, Any], *, batch_id: str, custom_id: str, seed: int,
            item_errors: ItemErrorsFault | None, betas: tuple[str, ...] = ()
            ) -> tuple[str, str] | None:
    """(error type, message) if this request errors, else None.

    Params are validated per request, as Anthropic does (asynchronously): the checks here are
    the ones a plain Messages call would fail on that create-time validation lets through.
    """
    beta = bool(betas)
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
    if (cap := _output_cap(params["model"], betas)) < max_tokens:
        return ("invalid_request_error",
                f"max_tokens: {max_tokens} > {cap}, which is the maximum allowed number of "
                f"output tokens for {params['model']}")
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
    return item_errors.code or kind, text


def _output_cap(model: str, betas: tuple[str, ...]) -> int:
    if EXTENDED_OUTPUT_BETA in betas and _EXTENDED_MODELS.match(model):
        return EXTENDED_OUTPUT_TOKENS
    return STANDARD_OUTPUT_CAP


def errored(kind: str, message: str, request_id: str) -> dict[str, Any]:
    """An ``errored`` result."""
    return {"type": "errored", "error": error_envelope(kind, message, request_id)}
