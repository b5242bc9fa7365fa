"""``llmbatch keys``: API keys of the REST API. A key is printed once, at creation; the
database keeps only its hash."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmbatch.bootstrap import Runtime
from llmbatch.cli.common import ConfigOpt
from llmbatch.cli.runtime import ensure_schema, runtime

__all__ = ["keys_app"]

keys_app = typer.Typer(no_args_is_help=True, help="API keys of the REST API (llmbatch api).")
console = Console()


def _rt(config: Path | None) -> Runtime:
    rt = runtime(config)
    ensure_schema(rt)
    return rt


@keys_app.command("create")
def create(tenant: Annotated[str, typer.Option(help="The tenant whose jobs the key reaches")],
           name: Annotated[str | None, typer.Option(help="A label for the key")] = None,
           admin: Annotated[bool, typer.Option(help="May read every tenant's jobs")] = False,
           config: ConfigOpt = None) -> None:
    """Create a key and print it (this once: only its hash is stored)."""
    from llmbatch.service_layer.api_keys import create_key

    info, key = create_key(_rt(config), tenant=tenant, name=name, admin=admin)
    typer.echo(f"created key {info.id} (prefix {info.prefix}) for tenant {info.tenant}"
               f"{' (admin)' if admin else ''}; it is shown only now:", err=True)
    typer.echo(key)


@keys_app.command("list")
def list_(tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys")] = None,
          config: ConfigOpt = None) -> None:
    """Keys (never their secrets)."""
    from llmbatch.service_layer.api_keys import list_keys

    table = Table("id", "prefix", "tenant", "name", "admin", "created", "revoked")
    for k in list_keys(_rt(config), tenant=tenant):
        table.add_row(k.id, k.prefix, k.tenant, k.name or "", "yes" if k.admin else "",
                      k.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                      k.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if k.revoked_at else "")
    console.print(table)


@keys_app.command("revoke")
def revoke(key: Annotated[str, typer.Argument(help="The key's id or prefix")],
           config: ConfigOpt = None) -> None:
    """Revoke a key: requests with it answer 401 from now on."""
    from llmbatch.service_layer.api_keys import revoke_key

    revoke_key(_rt(config), key)
    typer.echo(f"revoked {key}")
