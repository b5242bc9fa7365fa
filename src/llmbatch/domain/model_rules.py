"""What a model accepts, as far as it is known for certain, and the checks of one request
against it: the parameters it refuses, the endpoints it serves, the most output it writes and
the tokens its context window holds. Pure values and functions, no I/O.

Why at submit: a provider validates each request of a batch on its own, hours later, so a
parameter the model refuses fails *every* line of a job long after it was accepted. Knowing
the model's rules up front turns that into one refusal at create time, naming file, line and
field.

Where the rules come from: each provider adapter knows its vendor's (``BatchProvider.
model_rules``: the price catalogue's context window plus the vendor's own table), and config
overrides them per model (``providers.<name>.models[]``). An unknown model has empty rules:
nothing is refused for it.

Conservative by design: a rule refuses only what the provider will certainly refuse. The
context-window check in particular counts a *lower bound* of the prompt's tokens
(``certain_tokens``), not the estimate, because llmbatch ships no tokenizer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from llmbatch.domain.models import Endpoint
from llmbatch.domain.tokens import CHARS_PER_TOKEN
from llmbatch.errors import InputError

__all__ = ["LOWER_BOUND_CHARS_PER_TOKEN", "ModelRules", "certain_tokens", "rule_problems"]

# No common tokenizer averages more characters per token than this over a long prompt (prose
# runs at about 4, code at 3, other scripts lower); only degenerate repetition does. The
# estimate of ``domain.tokens`` counts 4, so the certain count is 4/10 of it.
LOWER_BOUND_CHARS_PER_TOKEN: Final = 10


@dataclass(frozen=True)
class ModelRules:
    """The rules of one model for one job.

    ``refused``: top-level body fields the model refuses, each with the values it still takes
    (its default, e.g. ``temperature: 1`` on a reasoning model; empty: none at all), and
    ``hints`` an optional word per field on what to use instead. ``endpoints``: what it serves
    (None: unknown, not checked). ``max_output_tokens``: the most a request may ask for.
    ``context_window``: input tokens, plus output when ``window_counts_output`` (the vendor
    refuses a request whose prompt and requested output together exceed it). ``sources``
    says where the rules come from, for messages and docs.
    """

    model: str
    refused: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    hints: Mapping[str, str] = field(default_factory=dict)
    endpoints: frozenset[Endpoint] | None = None
    max_output_tokens: int | None = None
    context_window: int | None = None
    window_counts_output: bool = True
    sources: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.refused or self.endpoints is not None
                    or self.max_output_tokens or self.context_window)

    def overridden(self, *, refused: tuple[str, ...] | None = None,
                   max_output_tokens: int | None = None, context_window: int | None = None,
                   source: str) -> ModelRules:
        """These rules with the given values replacing the known ones (None: kept)."""
        changed = replace(self, sources=(*self.sources, source))
        if refused is not None:
            changed = replace(changed, refused={name: () for name in refused}, hints={})
        if max_output_tokens is not None:
            changed = replace(changed, max_output_tokens=max_output_tokens)
        if context_window is not None:
            changed = replace(changed, context_window=context_window)
        return changed


def certain_tokens(estimated: int) -> int:
    """The prompt tokens a request holds at the least, from ``domain.tokens``'s estimate."""
    return estimated * CHARS_PER_TOKEN // LOWER_BOUND_CHARS_PER_TOKEN


def rule_problems(rules: ModelRules, body: Mapping[str, Any] | None, *,
                  estimated_tokens: int, output_tokens: int | None,
                  output_field: str) -> list[InputError]:
    """What ``rules`` refuse in one request: each refused field of the neutral ``body`` (None
    for a native body, whose fields the provider's own check judges), a requested output above
    the model's most, and a prompt that certainly does not fit the context window. Fields are
    named from the line (``body.…``, or ``output_field`` for the output limit)."""
    problems: list[InputError] = []
    for name, accepted in rules.refused.items():
        if body is not None and name in body and not _accepted(body[name], accepted):
            hint = rules.hints.get(name)
            also = f" (only {_shown(accepted)})" if accepted else ""
            problems.append(InputError(
                f"model {rules.model} does not accept {name}{also}"
                + (f"; {hint}" if hint else ""), field=f"body.{name}"))
    if rules.max_output_tokens and output_tokens and output_tokens > rules.max_output_tokens:
        problems.append(InputError(
            f"model {rules.model} writes at most {rules.max_output_tokens:,} output tokens, "
            f"{output_tokens:,} asked", field=output_field))
    if rules.context_window:
        prompt = certain_tokens(estimated_tokens)
        total = prompt + ((output_tokens or 0) if rules.window_counts_output else 0)
        if total > rules.context_window:
            asked = (f" plus {output_tokens:,} output tokens asked"
                     if rules.window_counts_output and output_tokens else "")
            problems.append(InputError(
                f"does not fit the {rules.context_window:,}-token context window of "
                f"{rules.model}: the prompt holds at least {prompt:,} tokens{asked}",
                field="body" if body is not None else "native"))
    return problems


def _accepted(value: Any, accepted: tuple[Any, ...]) -> bool:
    """``value`` is one of ``accepted`` (``True`` is not ``1`` here, unlike in Python)."""
    return any(value == ok and isinstance(value, bool) == isinstance(ok, bool)
               for ok in accepted)


def _shown(values: tuple[Any, ...]) -> str:
    return " or ".join(repr(v) if isinstance(v, str) else str(v).lower()
                       if isinstance(v, bool) else str(v) for v in values)
