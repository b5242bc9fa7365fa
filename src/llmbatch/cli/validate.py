"""``llmbatch validate FILE --provider P --model M`` (and ``submit --dry-run``): the input
door's whole verdict on a file without storing anything. Every problem is one
``file:line: field '…': reason`` line (the first ``MAX_LISTED``, then how many more), printed
as text, never as markup (it quotes the user's input). Exit 0 when the file would be
accepted, 2 when not (docs/cli.md, "Validation and exit codes")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from llmbatch.cli.common import ConfigOpt, warn
from llmbatch.cli.exit_codes import ExitCode
from llmbatch.domain.models import Endpoint
from llmbatch.service_layer.intake import IntakeReport
from llmbatch.service_layer.model_checks import job_options_of

if TYPE_CHECKING:
    from llmbatch.api.validation_models import ValidationOut

__all__ = ["BetaOpt", "print_report", "print_verdict", "validate", "warn"]

BetaOpt = Annotated[list[str] | None, typer.Option(
    "--beta", help="A provider beta for this job, repeatable (Anthropic: anthropic-beta, "
                   "e.g. output-300k-2026-03-24; docs/providers/anthropic.md)")]



_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True, highlight=False)


def print_report(report: IntakeReport, *, provider: str,
                 warnings: list[str] | None = None) -> int:
    """Print the verdict on a file (``warnings``: the report's own unless given, as a remote
    API's verdict brings them); the exit code it means."""
    for line in report.warnings() if warnings is None else warnings:
        warn(line)
    refusal = report.error()
    if refusal is not None:
        for line in str(refusal).splitlines():
            _err.print(line, markup=False)
        return ExitCode.BAD_INPUT
    _out.print(f"ok: {report.requests} request(s) in {report.file} for "
               f"{provider}/{report.model}", markup=False)
    return ExitCode.OK


def print_verdict(verdict: ValidationOut, *, provider: str) -> int:
    """``print_report`` of a remote API's verdict (``POST /v1/validations``)."""
    return print_report(verdict.report(), provider=provider, warnings=verdict.warnings)


def validate(
    file: Annotated[Path, typer.Argument(help="JSONL, one request per line")],
    provider: Annotated[str, typer.Option(help="openai, anthropic, gemini, ...")],
    model: Annotated[str, typer.Option(help="Model name as the provider knows it")],
    endpoint: Annotated[Endpoint, typer.Option(
        help="chat, embeddings, responses, completions or moderations")] = Endpoint.CHAT,
    strict_model: Annotated[bool, typer.Option(
        "--strict-model", help="Refuse lines whose body.model differs from --model")] = False,
    config: ConfigOpt = None,
    beta: BetaOpt = None,
) -> None:
    """Check FILE as submit would, store nothing: list every problem (exit 2) or say ok."""
    from llmbatch.bootstrap import build_runtime
    from llmbatch.cli.runtime import project_config
    from llmbatch.cli.source import remote_source
    from llmbatch.service_layer.intake import validate_file

    remote = remote_source()
    if remote is not None:  # the API's providers and models decide
        sys.exit(print_verdict(remote.validate(file, provider=provider, model=model,
                                               endpoint=endpoint, strict_model=strict_model,
                                               betas=beta), provider=provider))
    rt = build_runtime(project_config(config)[0])
    try:
        report = validate_file(rt, file, provider=provider, model=model, endpoint=endpoint,
                               strict_model=strict_model, job_options=job_options_of(beta))
    finally:
        rt.close()
    sys.exit(print_report(report, provider=provider))
