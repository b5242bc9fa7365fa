"""``llmbatch estimate FILE --provider P --model M``: what a file will cost before it is
submitted (``service_layer.estimates``): tokens, the batch price, the synchronous price and
the saving, expected and at most."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmbatch.bootstrap import Runtime, build_runtime
from llmbatch.cli.common import ConfigOpt
from llmbatch.cli.costs import usd
from llmbatch.cli.source import remote_source
from llmbatch.domain.models import Endpoint
from llmbatch.service_layer.estimates import Estimate, estimate_file

__all__ = ["estimate_command", "history_runtime"]

console = Console()


def history_runtime(config: Path | None) -> tuple[Runtime, bool]:
    """The runtime, and whether its database can be read for history: an embedded SQLite
    file that does not exist yet is not created by a read-only command."""
    from sqlalchemy.engine import make_url

    from llmbatch.cli.runtime import close_when_done, project_config
    from llmbatch.db.migrate import pending_revisions, upgrade

    cfg, _ = project_config(config)  # found as every other command finds it
    rt = build_runtime(cfg)
    close_when_done(rt.close)
    url = make_url(rt.config.database.url)
    if url.get_backend_name() == "sqlite":
        if url.database not in (None, "", ":memory:") and not Path(url.database).exists():
            return rt, False
        upgrade(rt.engine)
        return rt, True
    return rt, not pending_revisions(rt.engine)


def _show(est: Estimate) -> None:
    console.print(f"[bold]{est.requests}[/bold] requests for {est.provider}/{est.model}",
                  highlight=False)
    table = Table("", "expected", "at most", title=None)
    table.add_row("input tokens", f"{est.input_tokens}", f"{est.input_tokens_bound}")
    table.add_row("output tokens", f"{est.output_tokens_expected}", f"{est.output_tokens_bound}")
    table.add_row("batch price", usd(est.batch_usd_expected), usd(est.batch_usd_bound))
    table.add_row("synchronous price", usd(est.sync_usd_expected), usd(est.sync_usd_bound))
    table.add_row("saving", usd(est.saving_usd_expected),
                  usd(None if est.sync_usd_bound is None or est.batch_usd_bound is None
                      else est.sync_usd_bound - est.batch_usd_bound))
    console.print(table)
    console.print(f"output expected: {est.output_basis}", highlight=False)
    console.print(f"error: {est.input_error}", highlight=False)
    if est.defaulted_output_bounds:
        console.print(f"{est.defaulted_output_bounds} request(s) set no max_tokens: bounded by "
                      "cost.default_max_output_tokens", highlight=False)
    if est.price_source:
        console.print(f"prices: {est.price_source}", highlight=False)
    if est.note:
        console.print(f"[yellow]warning:[/yellow] {est.note}", highlight=False)


def estimate_command(
    file: Annotated[Path, typer.Argument(help="JSONL, one request per line")],
    provider: Annotated[str, typer.Option(help="openai, anthropic, gemini, ...")],
    model: Annotated[str, typer.Option(help="Model name as the provider knows it")],
    endpoint: Annotated[Endpoint, typer.Option(
        help="chat, embeddings, responses, completions or moderations")] = Endpoint.CHAT,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
    config: ConfigOpt = None,
) -> None:
    """Estimate what FILE costs in a batch, what it would cost synchronously, and the saving."""
    remote = remote_source()
    if remote is not None:  # the API's prices, and its history of the caller's tenant
        est = remote.backend.estimate(file, provider=provider, model=model,
                                      endpoint=endpoint).estimate()
    else:
        rt, learn = history_runtime(config)
        est = estimate_file(rt, file, provider=provider, model=model, endpoint=endpoint,
                            learn=learn)
    if as_json:
        console.print_json(json.dumps(est.as_dict()))
    else:
        _show(est)
