"""Model rules and per-job provider options at job creation: the neutral mechanism around
``domain.model_rules`` (vendor knowledge stays in each adapter's ``model_rules`` and
``job_options_model``).

- ``job_adapter``: the adapter as one job sees it (its per-job options checked, merged) and
  the options to store with the job; a model that does not serve the job's endpoint is
  refused here, before the file is read.
- ``LineRules``: the per-line check the input door (``service_layer.intake``) runs on every
  line, so ``submit``, ``validate``, ``submit --dry-run`` and the API refuse alike.
- ``stored_job_adapter``: the same view for a stored job, for the worker that submits it.

Per-job options are stored in the job's ``config_snapshot`` under ``job_options`` (an existing
JSON column; no migration), the same place the provider's config at creation is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from llmbatch.domain.model_rules import ModelRules, rule_problems
from llmbatch.domain.models import Endpoint, RequestLine
from llmbatch.errors import InputError
from llmbatch.providers.base import BatchProvider

__all__ = ["JOB_OPTIONS_KEY", "LineRules", "job_adapter", "job_options_of", "job_rules",
           "stored_job_adapter"]

JOB_OPTIONS_KEY: Final = "job_options"


class _Unset:
    """``LineRules.problems`` was not given the output limit (None is a value: no limit)."""


_UNSET: Final = _Unset()
# Stands in for the line's output field in ``rule_problems``' answer until one names it.
_OUTPUT_FIELD: Final = "\0output-field"
_OUTPUT_KEYS: Final = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def job_options_of(betas: list[str] | None) -> dict[str, Any] | None:
    """The per-job provider options a caller gave as separate arguments (None: none), in the
    form ``job_adapter`` checks: every door (CLI, API, client) builds them here."""
    return {"betas": list(betas)} if betas else None


def job_rules(adapter: BatchProvider, model: str, endpoint: Endpoint) -> ModelRules:
    """The adapter's rules for ``model``, with what ``providers.<name>.models[]`` sets for it
    replacing them."""
    rules = adapter.model_rules(model, endpoint=endpoint)
    entry = adapter.config.model(model)
    if entry is None or (entry.refused_params is None and entry.context_window is None
                         and entry.max_output_tokens is None):
        return rules
    return rules.overridden(refused=entry.refused_params,
                            max_output_tokens=entry.max_output_tokens,
                            context_window=entry.context_window,
                            source=f"config providers.{adapter.name}.models[{model}]")


def job_adapter(adapter: BatchProvider, *, model: str, endpoint: Endpoint,
                job_options: Mapping[str, Any] | None = None
                ) -> tuple[BatchProvider, dict[str, Any]]:
    """``(adapter for the job, options to store)``; ``InputError`` for an option the provider
    does not take (a beta not known to work in batches, say) or a model that does not serve
    ``endpoint``."""
    options = adapter.job_options(job_options or {})
    view = adapter.for_job(options)
    rules = job_rules(view, model, endpoint)
    if rules.endpoints is not None and endpoint not in rules.endpoints:
        served = ", ".join(sorted(str(e) for e in rules.endpoints)) or "none"
        raise InputError(f"model {model} does not serve {endpoint} requests (it serves: "
                         f"{served})", field="endpoint")
    return view, options


def stored_job_adapter(adapter: BatchProvider, snapshot: Mapping[str, Any]) -> BatchProvider:
    """The adapter as a stored job sees it (its ``config_snapshot``'s per-job options)."""
    return adapter.for_job(snapshot.get(JOB_OPTIONS_KEY) or {})


class LineRules:
    """The model's rules applied to each line of one job's file."""

    def __init__(self, adapter: BatchProvider, *, model: str, endpoint: Endpoint) -> None:
        self.adapter = adapter
        self.endpoint = endpoint
        self.rules = job_rules(adapter, model, endpoint)
        self._empty = self.rules.empty  # asked for every line

    def problems(self, request: RequestLine, estimated_tokens: int, *,
                 output_tokens: int | _Unset | None = _UNSET) -> list[InputError]:
        """What the model certainly refuses in ``request`` (fields named ``body.…`` or
        ``native.…``); nothing for a model without known rules. ``output_tokens`` is the
        adapter's ``max_output_tokens`` for it when the caller has it already."""
        if self._empty:
            return []
        if isinstance(output_tokens, _Unset):
            output_tokens = self.adapter.max_output_tokens(request, endpoint=self.endpoint)
        body = request.body if request.native is None else None
        problems = rule_problems(self.rules, body, estimated_tokens=estimated_tokens,
                                 output_tokens=output_tokens, output_field=_OUTPUT_FIELD)
        if not problems:
            return problems
        # The output field is worked out only for a refusal that names it, not for every line.
        return [InputError(p.message, field=_output_field(request))
                if p.field == _OUTPUT_FIELD else p for p in problems]


def _output_field(request: RequestLine) -> str:
    """The line's field that sets its output limit (or the body, when a default applies)."""
    root, body = ("native", request.native) if request.native is not None else \
        ("body", request.body or {})
    key = next((k for k in _OUTPUT_KEYS if k in body), None)
    return f"{root}.{key}" if key else root
