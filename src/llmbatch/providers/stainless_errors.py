"""Translating the exceptions of a Stainless-generated SDK (``openai``, ``anthropic``) into
``llmbatch.errors``.

Both SDKs raise the same classes (``APITimeoutError``, ``APIConnectionError``,
``APIStatusError``, ``APIResponseValidationError`` under one base error) over the same
transport, so the skeleton lives here and each adapter's ``errors`` module supplies only what
is its own: the SDK module, the provider name, how to read ``(code, message)`` off a status
error, and its own rules (``Classify``): which answers mean the object is gone
(``ResourceGoneError``), a quota refusal (``QuotaExceededError``), or a permanent 429.
No vendor SDK is imported here, and an adapter's ``errors`` module names its SDK without
importing it: the SDK (and its transport) is imported when an error is translated, which only
happens after a call, so a process that only validates and stores jobs (``submit``) never
loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from importlib import import_module
from types import ModuleType
from typing import Any

from llmbatch.errors import (
    AuthenticationError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from llmbatch.providers.retry_after import parse_retry_after

__all__ = ["StainlessErrors", "error_for_status", "transport_error"]


def transport_error() -> type[Exception]:
    """The SDKs' transport error: httpx2's in openai 3.x / anthropic 1.x+, httpx's before."""
    try:
        from httpx2 import HTTPError
    except ImportError:  # pragma: no cover - older SDKs
        from httpx import HTTPError  # type: ignore[assignment]
    return HTTPError

# (status error) -> (provider's error code, human message or None for the SDK's own)
Describe = Callable[[Any], tuple[str | None, str | None]]
# (HTTP status, or None for an error the SDK raised without a response; provider's code;
# operation) -> the error class it becomes, or None for the common mapping by status
Classify = Callable[[int | None, str | None, str], type[ProviderError] | None]


def error_for_status(status: int, message: str, *, provider: str, code: str | None,
                     retry_after: float | None = None) -> ProviderError:
    """The error for an HTTP error status: 429 rate limited, 401/403 authentication,
    408/409/>=500 transient, any other status permanent."""
    if status == 429:
        return RateLimitedError(message, provider=provider, status_code=status, code=code,
                                retry_after=retry_after)
    if status in (401, 403):
        return AuthenticationError(message, provider=provider, status_code=status, code=code)
    if status in (408, 409) or status >= 500:
        return TransientProviderError(message, provider=provider, status_code=status, code=code)
    return PermanentProviderError(message, provider=provider, status_code=status, code=code)


def _common(status: int | None, code: str | None, operation: str) -> type[ProviderError] | None:
    return None


@dataclass(frozen=True)
class StainlessErrors:
    """``translate_error`` and ``calling`` for one Stainless SDK, named by its module
    (``"openai"``) and root error class (``"OpenAIError"``), imported on first use."""

    provider: str
    sdk_module: str  # exposes the four API error classes
    base_error: str  # the SDK's root error (``OpenAIError``, ``AnthropicError``)
    describe: Describe
    classify: Classify = _common

    @property
    def sdk(self) -> ModuleType:
        return import_module(self.sdk_module)

    @cached_property
    def sdk_errors(self) -> tuple[type[BaseException], ...]:
        """Errors that can escape the SDK: its own, and the transport's while a streamed body
        is read (the SDK wraps transport errors only while it sends the request)."""
        return (getattr(self.sdk, self.base_error), transport_error())

    def translate_error(self, exc: BaseException, *, operation: str) -> ProviderError:
        """The ``llmbatch.errors`` equivalent of an SDK or transport exception."""
        provider, sdk = self.provider, self.sdk
        if isinstance(exc, ProviderError):
            return exc
        if isinstance(exc, sdk.APITimeoutError):
            return TransientProviderError(f"{operation}: request timed out", provider=provider,
                                          code="timeout")
        if isinstance(exc, sdk.APIConnectionError):
            cause = f" ({exc.__cause__})" if exc.__cause__ else ""
            return TransientProviderError(f"{operation}: {exc.message}{cause}",
                                          provider=provider, code="connection_error")
        if isinstance(exc, sdk.APIStatusError):
            return self._from_status(exc, operation)
        if isinstance(exc, sdk.APIResponseValidationError):
            return TransientProviderError(f"{operation}: unreadable response: {exc.message}",
                                          provider=provider, status_code=exc.status_code,
                                          code="invalid_response")
        if isinstance(exc, transport_error()):
            return TransientProviderError(f"{operation}: connection broke: {exc!r}",
                                          provider=provider, code="connection_error")
        cls = self.classify(None, None, operation) or PermanentProviderError
        return cls(f"{operation}: {exc}", provider=provider)

    def _from_status(self, exc: Any, operation: str) -> ProviderError:
        status: int = exc.status_code
        code, text = self.describe(exc)
        message = f"{operation}: {text if text is not None else exc.message}"
        retry_after = parse_retry_after(exc.response.headers) if status == 429 else None
        cls = self.classify(status, code, operation)
        if cls is None:
            return error_for_status(status, message, provider=self.provider, code=code,
                                    retry_after=retry_after)
        if issubclass(cls, RateLimitedError):
            return cls(message, provider=self.provider, status_code=status, code=code,
                       retry_after=retry_after)
        return cls(message, provider=self.provider, status_code=status, code=code)

    @contextmanager
    def calling(self, operation: str) -> Iterator[None]:
        """Run SDK calls, translating what they raise (``from`` the cause)."""
        try:
            yield
        except self.sdk_errors as exc:
            raise self.translate_error(exc, operation=operation) from exc
