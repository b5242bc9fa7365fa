"""``submit`` options that set a job's own retention (how long its data may live at the
provider; docs/privacy.md), and the overrides they make for ``create_job``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from llmbatch.errors import InputError, InputProblems

__all__ = ["InputExpiryOpt", "KeepProviderDataOpt", "OutputExpiryOpt", "naming_options",
           "retention_overrides"]

# The option that sets each key of a job's retention (the API's ``retention.<key>`` field).
OPTION_OF_KEY = {"delete_when_stored": "--keep-provider-data/--delete-provider-data",
                 "input_expires_after_s": "--input-expires-after",
                 "output_expires_after_s": "--output-expires-after"}

KeepProviderDataOpt = Annotated[bool | None, typer.Option(
    "--keep-provider-data/--delete-provider-data",
    help="Keep the provider's copy of the job's batches (input, results) until the provider "
         "expires it, or delete it once the results are stored (default: the provider's "
         "retention.delete_when_stored, normally delete)", show_default=False)]
InputExpiryOpt = Annotated[int | None, typer.Option(
    "--input-expires-after", metavar="SECONDS", min=1,
    help="Ask the provider to expire the uploaded input after SECONDS (OpenAI: 86400 to "
         "2592000)")]
OutputExpiryOpt = Annotated[int | None, typer.Option(
    "--output-expires-after", metavar="SECONDS", min=1,
    help="Ask the provider to expire the result files after SECONDS (OpenAI: 3600 to 2592000)")]


def retention_overrides(keep: bool | None, input_s: int | None,
                        output_s: int | None) -> dict[str, Any] | None:
    """The job's ``retention`` overrides, or None when no option was given."""
    overrides: dict[str, Any] = {}
    if keep is not None:
        overrides["delete_when_stored"] = not keep
    if input_s is not None:
        overrides["input_expires_after_s"] = input_s
    if output_s is not None:
        overrides["output_expires_after_s"] = output_s
    return overrides or None


@contextmanager
def naming_options(overrides: Mapping[str, Any] | None) -> Iterator[None]:
    """Refusals of the job's retention named by the option the user typed
    (``option '--output-expires-after': ...``) rather than by the field the service and the API
    name (``retention.output_expires_after_s``), local or remote alike. Only keys the options
    set are renamed: any other problem is raised as it came."""
    try:
        yield
    except InputError as exc:
        renamed = _renamed(exc, overrides or {})
        if renamed is exc:
            raise
        raise renamed from exc


def _renamed(exc: InputError, overrides: Mapping[str, Any]) -> InputError:
    if isinstance(exc, InputProblems):
        problems = [_renamed(p, overrides) for p in exc.problems]
        if all(new is old for new, old in zip(problems, exc.problems, strict=True)):
            return exc
        return InputProblems(problems, total=exc.total, file=exc.source)
    key = (exc.field or "").removeprefix("retention.")
    if exc.field == key or key not in overrides or key not in OPTION_OF_KEY:
        return exc
    return InputError(f"option '{OPTION_OF_KEY[key]}': {exc.message}", file=exc.file,
                      line=exc.line)
