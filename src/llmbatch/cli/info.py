"""``llmbatch info``: which configuration, home, database, broker and provider endpoints (the
emulator among them) this command would use from here, so that "which database am I
looking at?" has an answer before anything is run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from llmbatch.cli.runtime import project_config
from llmbatch.config import AppConfig
from llmbatch.home import Project, sqlite_path

__all__ = ["describe", "info"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
EMULATOR_HEALTH = "/_emulator/health"


def _url(url: str) -> str:
    return make_url(url.removeprefix("sqla+")).render_as_string(hide_password=True) \
        if "://" in url else url


def _store(url: str) -> dict[str, Any]:
    path = sqlite_path(url)
    shown = ("sqla+" if url.startswith("sqla+") else "") + _url(url)
    return {"url": shown, "file": str(path) if path else None,
            "exists": path.exists() if path else None}


def _emulator_at(base_url: str | None) -> bool | None:
    """Whether a local ``base_url`` is served by the llmbatch emulator (None: not local, so
    not asked: nothing here calls a real provider)."""
    if not base_url:
        return None
    parts = urlsplit(base_url)
    if parts.hostname not in _LOOPBACK:
        return None
    try:
        response = httpx.get(f"{parts.scheme}://{parts.netloc}{EMULATOR_HEALTH}", timeout=1.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def describe(cfg: AppConfig, project: Project) -> dict[str, Any]:
    """What ``info --json`` prints."""
    return {
        "config_file": str(project.config_file) if project.config_file else None,
        "home": str(project.home), "home_source": project.home_source,
        "home_exists": project.home.is_dir(),
        "database": _store(cfg.database.url),
        "broker": {**_store(cfg.broker.url), "embedded": cfg.broker.url.startswith("sqla+")},
        "providers": {
            name: {"enabled": p.enabled, "base_url": p.base_url,
                   "emulator": _emulator_at(p.base_url) if p.enabled else None,
                   "api_key": "set" if p.resolved_api_key() else "missing",
                   "models": [m.name for m in p.models]}
            for name, p in sorted(cfg.providers.items())
        },
    }


def _yes_no(value: bool | None, yes: str, no: str, unknown: str = "-") -> str:
    return unknown if value is None else (yes if value else no)


def info(config: Annotated[Path | None, typer.Option(
             "--config", "-c", help="llm_config.yaml (default: found upward, like git)")] = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Which config file, home, database, broker and emulator are in use here."""
    console = Console(soft_wrap=True)
    cfg, project = project_config(config)
    data = describe(cfg, project)
    if as_json:
        console.print_json(json.dumps(data))
        return
    home_note = {"found": "found above", "new": "not created yet: the first command that "
                 "stores something creates it"}.get(project.home_source, project.home_source)
    if project.found and not data["home_exists"]:
        home_note += "; created on first use"
    console.print(f"config:   {data['config_file'] or '<built-in defaults>'}", highlight=False)
    console.print(f"home:     {data['home']}  ({home_note})", highlight=False)
    for key in ("database", "broker"):
        store = data[key]
        state = _yes_no(store["exists"], "exists", "not created yet", "")
        console.print(f"{key + ':':<10}{store['url']}" + (f"  ({state})" if state else ""),
                      highlight=False)
    if not data["providers"]:
        console.print("providers: none configured", highlight=False)
    for name, p in data["providers"].items():
        emulator = _yes_no(p["emulator"], " (the llmbatch emulator)", " (not answering)", "")
        console.print(f"{name}{'' if p['enabled'] else ' (disabled)'}: "
                      f"{p['base_url'] or 'provider default'}{emulator}; api key {p['api_key']}; "
                      f"models: {', '.join(p['models']) or '-'}", highlight=False)
