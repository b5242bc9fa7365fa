"""``llmbatch webhooks ...``: look at the outbox, send events again, deliver now."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from llmbatch.cli.common import ConfigOpt, console
from llmbatch.cli.runtime import stored_runtime

__all__ = ["webhooks_app"]

webhooks_app = typer.Typer(no_args_is_help=True,
                           help="Job notifications: the outbox, its delivery log, replays.")


@webhooks_app.command("replay")
def replay(
    job: Annotated[str | None, typer.Option(help="Only this job's events")] = None,
    event: Annotated[str | None, typer.Option("--id", help="Only this event (msg_...)")] = None,
    failed: Annotated[bool, typer.Option(help="Only events given up on")] = False,
    deliver: Annotated[bool, typer.Option(help="Deliver now instead of by the workers")] = False,
    config: ConfigOpt = None,
) -> None:
    """Make events due again, under their original ids (receivers drop ones they have)."""
    from llmbatch.errors import InputError
    from llmbatch.webhooks.outbox import WebhookOutbox

    if job is None and event is None and not failed:
        raise InputError("say which events: --job JOB_ID, --id EVENT_ID or --failed")
    rt = stored_runtime(config)
    with rt.engine.begin() as conn:
        count = WebhookOutbox(conn).replay(rt.clock(), job_id=job, event_id=event,
                                           failed_only=failed)
    console.print(f"{count} event(s) due again")
    if deliver and count:
        from llmbatch.webhooks.delivery import deliver_due

        console.print(f"{deliver_due(rt)} delivered")


@webhooks_app.command("deliver")
def deliver(config: ConfigOpt = None) -> None:
    """Attempt every due event once, now (the workers do this on their own)."""
    from llmbatch.webhooks.delivery import deliver_due

    console.print(f"{deliver_due(stored_runtime(config))} delivered")


@webhooks_app.command("log")
def show_log(job: Annotated[str | None, typer.Argument(help="A job id (default: all)")] = None,
             limit: int = 50, config: ConfigOpt = None) -> None:
    """Events in the outbox, newest first, with their delivery state."""
    from llmbatch.webhooks.outbox import WebhookOutbox

    rt = stored_runtime(config)
    with rt.engine.connect() as conn:
        rows = WebhookOutbox(conn).entries(job, limit)
    table = Table("event", "job", "type", "status", "attempts", "last error")
    for row in rows:
        table.add_row(row.id, row.job_id, row.type, row.status, str(row.attempts),
                      row.last_error or "")
    console.print(table)
