"""``llmbatch validate FILE --provider P --model M`` (and ``submit --dry-run``): the input
door's whole verdict on a file without storing anything. Every problem is one
``file:line: field '…': reason`` line (the first ``MAX_LISTED``, then how many more), printed
as text, never as markup (it quotes the user's input). Exit 0 when the file would be
accepted, 2 when not (docs/cli.md, "Validation and exit codes")."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from llmbatch.cli.exit_codes import ExitCode
from llmbatch.domain.models import Endpoint
from llmbatch.service_layer.intake import IntakeReport

__all__ = ["BetaOpt", "job_options_of", "print_report", "validate", "warn"]

BetaOpt = Annotated[list[str] | None, typer.Option(
    "--beta", help="A provider beta for this job, repeatable (Anthropic: anthropic-beta, "
                   "e.g. output-300k-2026-03-24; docs/providers/anthropic.md)")]


def job_options_of(betas: list[str] | None) -> dict[str, Any] | None:
    """The per-job provider options the command line gave (None: none)."""
    return {"betas": list(betas)} if betas else None

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True, highlight=False)


def warn(text: str) -> None:
    """One warning line on stderr (text, not markup)."""
    _err.print(f"warning: {text}", markup=False)


def print_report(report: IntakeReport, *, provider: str) -> int:
    """Print the verdict on a file; the exit code it means."""
    for line in report.warnings():
        warn(line)
    refusal = report.error()
    if refusal is not None:
        for line in str(refusal).splitlines():
            _err.print(line, markup=False)
        return ExitCode.BAD_INPUT
    _out.print(f"ok: {report.requests} request(s) in {report.file} for "
               f"{provider}/{report.model}", markup=False)
    return ExitCode.OK


def validate(
    file: Annotated[Path, typer.Argument(help="JSONL, one request per line")],
    provider: Annotated[str, typer.Option(help="openai, anthropic, gemini, ...")],
    model: Annotated[str, typer.Option(help="Model name as the provider knows it")],
    endpoint: Annotated[Endpoint, typer.Option(
        help="chat, embeddings, responses, completions or moderations")] = Endpoint.CHAT,
    strict_model: Annotated[bool, typer.Option(
        "--strict-model", help="Refuse lines whose body.model differs from --model")] = False,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="llm_config.yaml (default: $LLMBATCH_CONFIG, ./llm_config.yaml)",
    )] = None,
    beta: BetaOpt = None,
) -> None:
    """Check FILE as submit would, store nothing: list every problem (exit 2) or say ok."""
    from llmbatch.bootstrap import build_runtime
    from llmbatch.config import load_config
    from llmbatch.service_layer.intake import validate_file

    rt = build_runtime(load_config(config))
    try:
        report = validate_file(rt, file, provider=provider, model=model, endpoint=endpoint,
                               strict_model=strict_model, job_options=job_options_of(beta))
    finally:
        rt.engine.dispose()
    sys.exit(print_report(report, provider=provider))
