"""The project's exception tree.

    LLMBatchError
    ├── ConfigError                 configuration file or environment is invalid
    ├── InputError                  a submitted JSONL file is bad (names file, line, field)
    │   └── InputProblems           every problem of a file (listed up to a cap, counted)
    ├── NotFoundError               a job or batch id that does not exist
    ├── ConflictError               idempotency-key reuse with other content, illegal transition
    │   └── InvalidTransition       a status change the transition table forbids
    ├── InfrastructureError         the database or the broker cannot be reached
    └── ProviderError               anything a provider adapter raises
        ├── TransientProviderError  network trouble, timeouts, 5xx: retry with backoff
        │   └── RateLimitedError    429 / overloaded: retry after ``retry_after`` seconds
        │       └── QuotaExceededError  the provider's queue quota is full: wait until
        │                               earlier batches end, not merely back off
        └── PermanentProviderError  4xx the provider will never accept: do not retry
            ├── AuthenticationError 401/403: credentials are wrong; retrying cannot help
            └── ResourceGoneError   the provider no longer has the object (batch, file,
                                    results): asking again cannot bring it back

Which HTTP answers mean what is the adapter's call, made once in its ``errors`` module: "gone"
is a 404 for one API but also a 403 for a file that no longer exists at another, and a quota
refusal is an error code of one vendor's own. Code outside ``llmbatch.providers`` asks
``isinstance``, never a status code or a vendor's error code.

Every exception pickles with its arguments (Celery ships them between processes).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ConflictError",
    "InfrastructureError",
    "InputError",
    "InputProblems",
    "InvalidTransition",
    "LLMBatchError",
    "NotFoundError",
    "PermanentProviderError",
    "ProviderError",
    "QuotaExceededError",
    "RateLimitedError",
    "ResourceGoneError",
    "TransientProviderError",
]


class LLMBatchError(Exception):
    """Root of every error llmbatch raises on purpose."""


class InfrastructureError(LLMBatchError):
    """The database or the broker llmbatch was told to use cannot be reached (down, wrong
    address, refused credentials): nothing about the user's input is wrong, and trying again
    once it is back is safe. The message names which one and where, never a password."""


class ConfigError(LLMBatchError):
    """The configuration is invalid; ``problems`` lists ``path: message`` strings."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message, problems or [])
        self.message = message
        self.problems = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  {p}" for p in self.problems)


class InputError(LLMBatchError):
    """A submitted input is invalid. Carries where: file, line (1-based) and field."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, file, line, field)
        self.message = message
        self.file = file
        self.line = line
        self.field = field

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_input_error, (self.message, self.file, self.line, self.field))

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line) if p is not None)
        field = f" field '{self.field}':" if self.field else ""
        prefix = f"{where}:{field} " if where else (f"{field.strip()} " if field else "")
        return f"{prefix}{self.message}"


def _rebuild_input_error(
    message: str, file: str | None, line: int | None, field: str | None
) -> InputError:
    return InputError(message, file=file, line=line, field=field)


class InputProblems(InputError):
    """Several problems of one input, so that a file is fixed in one round, not one submit per
    problem. ``problems`` are the ones listed (the first ``limit``), ``total`` counts them all;
    the error's own message, line and field are the first problem's, so a caller that knows
    only ``InputError`` still reads something true. ``str()`` is one ``file:line: field '…':
    reason`` line per problem after a count, then how many more there are."""

    def __init__(self, problems: list[InputError], *, total: int | None = None,
                 file: str | None = None) -> None:
        if not problems:
            raise ValueError("InputProblems needs at least one problem")
        first = problems[0]
        super().__init__(first.message, file=first.file or file, line=first.line,
                         field=first.field)
        self.problems = list(problems)
        self.total = max(total or len(problems), len(problems))
        self.source = file or first.file

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_input_problems, (self.problems, self.total, self.source))

    def __str__(self) -> str:
        if self.total == 1:
            return str(self.problems[0])
        head = f"{self.source}: " if self.source else ""
        lines = [f"{head}{self.total} problems"] + [str(p) for p in self.problems]
        hidden = self.total - len(self.problems)
        if hidden:
            lines.append(f"... and {hidden} more problem(s) not listed")
        return "\n".join(lines)


def _rebuild_input_problems(problems: list[InputError], total: int,
                            file: str | None) -> InputProblems:
    return InputProblems(problems, total=total, file=file)


class NotFoundError(LLMBatchError):
    """A job, batch or item id that does not exist."""


class ConflictError(LLMBatchError):
    """The request conflicts with stored state."""


class InvalidTransition(ConflictError):
    """A status change that the transition table does not allow."""


class ProviderError(LLMBatchError):
    """Base of errors coming from a provider adapter.

    ``retryable`` tells the retry policy whether a second attempt can help.
    """

    retryable: bool = False

    def __init__(self, message: str, *, provider: str = "", status_code: int | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_provider_error,
                (type(self), self.message, self.provider, self.status_code, self.code,
                 getattr(self, "retry_after", None)))

    def __str__(self) -> str:
        bits = [b for b in (self.provider, str(self.status_code or ""), self.code or "") if b]
        return f"[{' '.join(bits)}] {self.message}" if bits else self.message


class TransientProviderError(ProviderError):
    """A failure that may go away: connection errors, timeouts, 5xx."""

    retryable = True


class RateLimitedError(TransientProviderError):
    """The provider asked us to slow down; ``retry_after`` is in seconds, if it said."""

    def __init__(self, message: str, *, provider: str = "", status_code: int | None = 429,
                 code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, provider=provider, status_code=status_code, code=code)
        self.retry_after = retry_after


class QuotaExceededError(RateLimitedError):
    """The provider refused new work because its queue quota (e.g. enqueued tokens for a
    model) is full: nothing was created, and room comes back only as earlier batches end."""


class PermanentProviderError(ProviderError):
    """The provider will never accept this request as it is."""


class AuthenticationError(PermanentProviderError):
    """Credentials are missing or wrong."""


class ResourceGoneError(PermanentProviderError):
    """The provider no longer has what we asked for (a batch, a file, a batch's results):
    deleted, expired or never there. Whoever asked settles without it instead of retrying."""


def _rebuild_provider_error(
    cls: type[ProviderError], message: str, provider: str, status_code: int | None,
    code: str | None, retry_after: float | None,
) -> ProviderError:
    if issubclass(cls, RateLimitedError):
        return cls(message, provider=provider, status_code=status_code, code=code,
                   retry_after=retry_after)
    return cls(message, provider=provider, status_code=status_code, code=code)
