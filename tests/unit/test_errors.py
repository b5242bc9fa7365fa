"""The exception tree: every class survives pickling with its attributes (Celery ships them
between processes) and reads well."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import llmbatch.errors as errors_module
from llmbatch.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    InfrastructureError,
    InputError,
    InputProblems,
    InvalidTransition,
    LLMBatchError,
    NotFoundError,
    PermanentProviderError,
    ProviderError,
    QuotaExceededError,
    RateLimitedError,
    ResourceGoneError,
    TransientProviderError,
)

EXAMPLES: list[LLMBatchError] = [
    LLMBatchError("root"),
    ConfigError("c.yaml: invalid configuration", ["a.b: unknown key", "c[0]: bad"]),
    ConfigError("c.yaml: cannot read config"),
    InputError("not valid JSON", file="in.jsonl", line=3, field="body.messages"),
    InputError("unknown provider 'x'", field="provider"),
    InputError("the file holds no requests", file="in.jsonl"),
    InputProblems([InputError("is required", file="in.jsonl", line=2, field="body.messages"),
                   InputError("not valid JSON", file="in.jsonl", line=5)], total=7,
                  file="in.jsonl"),
    NotFoundError("no job 'job_1'"),
    ConflictError("idempotency key 'k' was used"),
    InfrastructureError("the database at 127.0.0.1:5432 cannot be reached"),
    InvalidTransition("JobStatus: succeeded -> running is not allowed"),
    ProviderError("odd", provider="openai", status_code=418, code="teapot"),
    TransientProviderError("bad gateway", provider="openai", status_code=502),
    RateLimitedError("slow down", provider="anthropic", code="rate_limit", retry_after=12.5),
    RateLimitedError("slow down"),
    PermanentProviderError("invalid request", provider="gemini", status_code=400,
                           code="invalid_value"),
    AuthenticationError("bad key", provider="openai", status_code=401, code="invalid_api_key"),
    QuotaExceededError("queue full", provider="openai", code="token_limit_exceeded",
                       retry_after=4.0),
    ResourceGoneError("no such file", provider="gemini", status_code=403,
                      code="PERMISSION_DENIED"),
]
ATTRIBUTES = ["message", "problems", "file", "line", "field", "provider", "status_code", "code",
              "retry_after", "retryable"]


def state(exc: BaseException) -> dict[str, Any]:
    return {"type": type(exc), "args": _plain(exc.args), "str": str(exc),
            **{a: _plain(getattr(exc, a)) for a in ATTRIBUTES if hasattr(exc, a)}}


def _plain(value: Any) -> Any:
    """Exceptions compare by identity: nested ones (``InputProblems.problems``) by state."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return state(value) if isinstance(value, BaseException) else value


@pytest.mark.parametrize("exc", EXAMPLES, ids=lambda e: type(e).__name__)
def test_every_error_pickles_with_its_attributes(exc: LLMBatchError) -> None:
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        clone = pickle.loads(pickle.dumps(exc, protocol=protocol))
        assert state(clone) == state(exc)


def test_the_examples_cover_every_exception_class() -> None:
    exported = {getattr(errors_module, name) for name in errors_module.__all__}
    classes = {c for c in exported if isinstance(c, type) and issubclass(c, BaseException)}

    def subclasses(cls: type) -> set[type]:
        return {cls} | {s for sub in cls.__subclasses__() for s in subclasses(sub)
                        if s.__module__ == errors_module.__name__}

    assert subclasses(LLMBatchError) == classes
    assert {type(e) for e in EXAMPLES} == classes


def test_a_pickled_error_can_still_be_caught_by_its_family() -> None:
    clone = pickle.loads(pickle.dumps(RateLimitedError("x", retry_after=1)))
    with pytest.raises(TransientProviderError):
        raise clone
    assert clone.retryable and clone.status_code == 429


@pytest.mark.parametrize(("exc", "retryable"), [
    (TransientProviderError("x"), True),
    (RateLimitedError("x"), True),
    (PermanentProviderError("x"), False),
    (AuthenticationError("x"), False),
    (QuotaExceededError("x"), True),
    (ResourceGoneError("x"), False),
    (ProviderError("x"), False),
])
def test_retryable_follows_the_family(exc: ProviderError, retryable: bool) -> None:
    assert exc.retryable is retryable


@pytest.mark.parametrize(("exc", "text"), [
    (InputError("bad", file="f.jsonl", line=3, field="body"), "f.jsonl:3: field 'body': bad"),
    (InputError("bad", file="f.jsonl", line=3), "f.jsonl:3: bad"),
    (InputError("bad", file="f.jsonl"), "f.jsonl: bad"),
    (InputError("unknown model", field="model"), "field 'model': unknown model"),
    (InputError("bad"), "bad"),
    (ConfigError("c.yaml: invalid", ["a: x", "b: y"]), "c.yaml: invalid\n  a: x\n  b: y"),
    (RateLimitedError("slow", provider="openai"), "[openai 429] slow"),
    (PermanentProviderError("no", provider="gemini", status_code=400, code="bad"),
     "[gemini 400 bad] no"),
    (TransientProviderError("timeout"), "timeout"),
])
def test_messages_say_where_and_what(exc: LLMBatchError, text: str) -> None:
    assert str(exc) == text


def test_input_problems_list_every_problem_then_count_the_rest() -> None:
    exc = InputProblems([InputError("is required", file="in.jsonl", line=2, field="body"),
                         InputError("not valid JSON", file="in.jsonl", line=5)], total=7,
                        file="in.jsonl")

    assert str(exc).splitlines() == ["in.jsonl: 7 problems",
                                     "in.jsonl:2: field 'body': is required",
                                     "in.jsonl:5: not valid JSON",
                                     "... and 5 more problem(s) not listed"]
    # The first problem is the error's own, for callers that know only InputError.
    assert (exc.file, exc.line, exc.field, exc.message) == ("in.jsonl", 2, "body", "is required")
    assert isinstance(exc, InputError)


def test_the_tree_is_as_drawn() -> None:
    assert issubclass(InvalidTransition, ConflictError)
    assert issubclass(RateLimitedError, TransientProviderError)
    assert issubclass(AuthenticationError, PermanentProviderError)
    assert issubclass(QuotaExceededError, RateLimitedError)
    assert issubclass(ResourceGoneError, PermanentProviderError)
    for cls in (TransientProviderError, PermanentProviderError):
        assert issubclass(cls, ProviderError)
    for cls in (ConfigError, InputError, NotFoundError, ConflictError, ProviderError):
        assert issubclass(cls, LLMBatchError)
