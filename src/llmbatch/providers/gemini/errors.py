"""The one place where ``google-genai`` and transport exceptions become ``llmbatch.errors``.

| raised                                             | llmbatch error                    |
|----------------------------------------------------|-----------------------------------|
| httpx2 TimeoutException                            | TransientProviderError "timeout"  |
| httpx2 other transport errors (connect, reset...)  | TransientProviderError            |
| APIError 408, 409, 499, >= 500                     | TransientProviderError            |
| APIError 429 at ``batches.create``, no retry delay | QuotaExceededError                |
| APIError 429 otherwise                             | RateLimitedError + retry_after    |
| APIError 404                                       | ResourceGoneError                 |
| APIError 403 on a file (get, download, delete)     | ResourceGoneError                 |
| APIError 401, 403, 400 with reason API_KEY_INVALID | AuthenticationError               |
| other APIError 4xx                                 | PermanentProviderError            |
| anything else                                      | PermanentProviderError            |

Gone: Google answers 403 "You do not have permission to access the File ... or it may not
exist" for a file that was deleted or expired (uploaded files live 48 h; result files are
kept for a limited time), so on a file a 403 is gone unless its reason names the credentials;
treating it as an authentication problem made a fetch retry a vanished result file forever.
Quota: batch limits (concurrent batches, enqueued tokens per model) refuse a create with
429 ``RESOURCE_EXHAUSTED`` and nothing is created, so the batch waits for room.

``retry_after`` comes from the body's ``google.rpc.RetryInfo.retryDelay`` (how Google says it),
else ``retry-after-ms`` / ``retry-after`` headers. Raw HTTP calls made next to the SDK raise
the SDK's own ``APIError`` (``APIError.raise_for_response``), so both paths meet here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from llmbatch.errors import (
    AuthenticationError,
    PermanentProviderError,
    ProviderError,
    QuotaExceededError,
    RateLimitedError,
    ResourceGoneError,
    TransientProviderError,
)
from llmbatch.providers.retry_after import parse_retry_after

if TYPE_CHECKING:  # imported when an error is translated: ``submit`` never loads the SDK
    from google.genai import errors as genai_errors

__all__ = ["PROVIDER", "calling", "retry_delay", "sdk_errors", "translate_error"]

PROVIDER: Final = "gemini"
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
# Calls on a file that existed: a 403 from them means the file is gone.
_EXISTING_FILE_OPERATIONS: Final = frozenset({"files.get", "files.download", "files.delete"})
# ErrorInfo reasons that make a 403 about the key, not the object asked for.
_CREDENTIAL_REASONS: Final = frozenset({"API_KEY_INVALID", "CREDENTIALS_MISSING",
                                        "API_KEY_SERVICE_BLOCKED", "SERVICE_DISABLED"})


def retry_delay(details: Any, headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait: RetryInfo ``retryDelay`` ("1.5s") first, then the headers."""
    error = details.get("error") if isinstance(details, Mapping) else None
    items = error.get("details") if isinstance(error, Mapping) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and str(item.get("@type", "")).endswith("RetryInfo"):
            match = _DURATION.match(str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return parse_retry_after(headers) if headers is not None else None


def _reason(details: Any) -> str | None:
    error = details.get("error") if isinstance(details, Mapping) else None
    items = error.get("details") if isinstance(error, Mapping) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and isinstance(item.get("reason"), str):
            return str(item["reason"])
    return None


def _from_api_error(exc: genai_errors.APIError, operation: str) -> ProviderError:
    status = int(exc.code) if isinstance(exc.code, int) else 0
    reason = _reason(exc.details)
    code = reason or (exc.status if isinstance(exc.status, str) else None)
    message = f"{operation}: {exc.message or exc.details}"
    if status == 429:
        headers = getattr(getattr(exc, "response", None), "headers", None)
        retry_after = retry_delay(exc.details, headers)
        # The enqueued-token quota refuses a create with 429 and no retry delay
        # (PROVIDER_APIS.md, Gemini limits); a 429 that says when to come back is the
        # ordinary per-minute rate limit, waited out like any other.
        quota = operation == "batches.create" and retry_after is None
        limited = QuotaExceededError if quota else RateLimitedError
        return limited(message, provider=PROVIDER, status_code=status, code=code,
                       retry_after=retry_after)
    if status == 404 or (status == 403 and operation in _EXISTING_FILE_OPERATIONS
                         and reason not in _CREDENTIAL_REASONS):
        return ResourceGoneError(message, provider=PROVIDER, status_code=status, code=code)
    if status in (401, 403) or reason == "API_KEY_INVALID":
        return AuthenticationError(message, provider=PROVIDER, status_code=status, code=code)
    if status in (408, 409, 499) or status >= 500:
        return TransientProviderError(message, provider=PROVIDER, status_code=status, code=code)
    return PermanentProviderError(message, provider=PROVIDER, status_code=status or None,
                                  code=code)


def sdk_errors() -> tuple[type[BaseException], ...]:
    """What can escape the SDK or the raw calls: its API error and the transport's."""
    import httpx2
    from google.genai import errors as genai_errors

    return (genai_errors.APIError, httpx2.HTTPError)


def translate_error(exc: BaseException, *, operation: str) -> ProviderError:
    """The ``llmbatch.errors`` equivalent of an SDK or transport exception (raise it ``from``)."""
    import httpx2
    from google.genai import errors as genai_errors

    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        return _from_api_error(exc, operation)
    if isinstance(exc, httpx2.TimeoutException):
        return TransientProviderError(f"{operation}: request timed out", provider=PROVIDER,
                                      code="timeout")
    if isinstance(exc, httpx2.HTTPError):
        return TransientProviderError(f"{operation}: connection failed: {exc!r}",
                                      provider=PROVIDER, code="connection_error")
    return PermanentProviderError(f"{operation}: {exc}", provider=PROVIDER)


@contextmanager
def calling(operation: str) -> Iterator[None]:
    """Run SDK or raw calls, translating what they raise (``from`` the cause)."""
    try:
        yield
    except sdk_errors() as exc:
        raise translate_error(exc, operation=operation) from exc
