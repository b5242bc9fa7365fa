"""``submit`` options that set a job's own retention (how long its data may live at the
provider; docs/privacy.md), and the overrides they make for ``create_job``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

__all__ = ["InputExpiryOpt", "KeepProviderDataOpt", "OutputExpiryOpt", "retention_overrides"]

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
