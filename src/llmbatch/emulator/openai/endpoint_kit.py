"""What every emulated endpoint shares: its protocol, its refusal and its usage.

Kept apart from the endpoints themselves (``endpoints``, ``text_endpoints``) so that each
endpoint module imports this one and none imports another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Endpoint", "Rejection", "Usage", "positive_int", "unrecognized"]


@dataclass(frozen=True)
class Rejection:
    """A 4xx the endpoint gives a body, as an OpenAI error."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None
    type: str = "invalid_request_error"


@dataclass(frozen=True)
class Usage:
    """Token usage of one response, in the batch aggregate's terms."""

    input: int = 0
    cached: int = 0
    output: int = 0
    reasoning: int = 0


class Endpoint(Protocol):
    """One emulated endpoint."""

    def reject(self, body: Mapping[str, Any]) -> Rejection | None:
        """The 4xx this body would get from the real endpoint, if any."""
        ...

    def prompt_tokens(self, body: Mapping[str, Any]) -> int:
        """Input tokens (also what counts against the enqueued-token limit)."""
        ...

    def respond(
        self, body: Mapping[str, Any], *, created: int, response_id: str, default_dim: int
    ) -> tuple[dict[str, Any], Usage]:
        """The 200 response body and its usage."""
        ...


def positive_int(body: Mapping[str, Any], name: str, minimum: int = 1) -> Rejection | None:
    """OpenAI's refusal of ``body[name]`` when present and not an integer >= ``minimum``."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        return Rejection(400, f"Invalid type for '{name}': expected an integer, but got "
                         f"{type(value).__name__} instead.", name, "invalid_type")
    if value < minimum:
        return Rejection(400, f"Invalid '{name}': integer below minimum value. Expected a "
                         f"value >= {minimum}, but got {value} instead.", name,
                         "integer_below_min_value")
    return None


def unrecognized(body: Mapping[str, Any], names: frozenset[str]) -> str | None:
    """OpenAI's refusal of the first body name its request schema lacks, if any."""
    extra = next((name for name in body if name not in names), None)
    return None if extra is None else f"Unrecognized request argument supplied: {extra}"
