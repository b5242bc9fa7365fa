"""One request's fate in a batch: the per-request error the service gives it (``generate`` or
``embed`` ``reject``) or an injected ``item_errors`` fault, else None.

A pure function of the request, the batch, the seed and the drawn fault, so validation at
create and result writing agree without storing anything per line (as in the other providers'
``lines`` modules).
"""

from __future__ import annotations

import hashlib
from typing import Any

from llmbatch.emulator.faults import ItemErrorsFault
from llmbatch.emulator.gemini import embed, generate

__all__ = ["line_failure"]


def line_failure(request: Any, *, batch: str, index: int, seed: int,
                 item_errors: ItemErrorsFault | None, kind: str = "generate"
                 ) -> tuple[int, str] | None:
    """(HTTP code, message) of a request that fails, or None. Pure, so validation and result
    writing agree without storing anything per line."""
    if not isinstance(request, dict):
        return 400, "* BatchGenerateContentRequest.request: must be an object"
    reject = embed.reject if kind == "embed" else generate.reject
    if (message := reject(request)) is not None:
        return 400, message
    if item_errors is None or item_errors.rate <= 0:
        return None
    draw = hashlib.blake2b(f"{seed}:{batch}:{index}".encode(), digest_size=8).digest()
    if int.from_bytes(draw[:6], "big") / 2**48 >= item_errors.rate:
        return None
    code = item_errors.status_code
    if item_errors.message:
        return code, item_errors.message
    return code, {429: "Resource has been exhausted (e.g. check quota).",
                  503: "The model is overloaded. Please try again later."}.get(
        code, "An internal error has occurred." if code >= 500 else "Invalid request (injected).")
