"""``llmbatch emulator``: serve the emulator (the default), and steer a running one's faults.

    llmbatch emulator [--host H] [--port P] [--profile fast|chaos|FILE]   serve (foreground)
    llmbatch emulator faults list  [--url URL] [--json]
    llmbatch emulator faults add   KIND [key=value ...] [--url URL] [--replace] [--seed N]
    llmbatch emulator faults add   --file rules.yaml
    llmbatch emulator faults clear [--url URL]

``faults`` talks to the control API of an emulator already running (``--url``, else
``$LLMBATCH_EMULATOR_URL``, else ``http://127.0.0.1:8765``) through ``EmulatorControl``;
serving needs the ``llmbatch[emulator]`` extra, steering does not. ``key=value`` pairs are
the fields of a rule (docs/emulator.md, "Faults"); values are read as YAML scalars (``3``,
``0.5``, ``true``), and ``match.K=V`` adds a tag to the rule's ``match``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmbatch.errors import ConfigError, InputError
from llmbatch.testing.control import DEFAULT_URL, URL_ENV, EmulatorControl

__all__ = ["emulator_app", "parse_rule"]

emulator_app = typer.Typer(
    invoke_without_command=True,
    help="Serve emulated provider batch APIs (the default), or steer a running emulator.")
faults_app = typer.Typer(no_args_is_help=True,
                         help="Fault rules of a running emulator (its control API).")
emulator_app.add_typer(faults_app, name="faults")
console = Console()

UrlOpt = Annotated[str | None, typer.Option(
    "--url", help=f"Emulator root (default: ${URL_ENV}, else {DEFAULT_URL})")]
KINDS = ("http", "delay", "item_errors", "fail_batch", "expire", "stuck", "poison_output")


@emulator_app.callback()
def serve(ctx: typer.Context, host: str = "127.0.0.1", port: int = 8765,
          profile: Annotated[Path | None, typer.Option(
              help="YAML with timing, limits and faults, or a bundled profile name "
                   "(default, fast, chaos)")] = None) -> None:
    """Serve emulated provider batch APIs (offline testing, the demo, benchmarks)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        from llmbatch.emulator.server import serve as run
    except ImportError as exc:
        raise ConfigError(f"the emulator needs the llmbatch[emulator] extra ({exc.name} is "
                          "missing): pip install 'llmbatch[emulator]'") from exc
    run(host, port, profile)


def parse_rule(kind: str, pairs: list[str]) -> dict[str, Any]:
    """A rule from its kind and ``key=value`` pairs (``match.K=V`` builds ``match``)."""
    if kind not in KINDS:
        raise InputError(f"unknown fault kind {kind!r}; one of {', '.join(KINDS)}",
                         field="kind")
    rule: dict[str, Any] = {"kind": kind}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InputError(f"{pair!r} is not key=value", field="rule")
        if key.startswith("match."):
            rule.setdefault("match", {})[key.removeprefix("match.")] = raw
            continue
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        rule[key] = value
    return rule


def _rules_from_file(path: Path) -> list[dict[str, Any]]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read fault rules: {exc}", file=str(path)) from exc
    rules = loaded.get("rules") if isinstance(loaded, dict) else loaded
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise InputError("expected a list of rules, or a mapping with 'rules'", file=str(path))
    return rules


def _show(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(view))
        return
    rules = view.get("rules", [])
    if not rules:
        console.print(f"no fault rules (seed {view.get('seed')})")
        return
    table = Table("#", "kind", "provider", "where", "details", "left", "fired",
                  title=f"fault rules (seed {view.get('seed')})")
    for i, rule in enumerate(rules):
        details = {k: v for k, v in rule.items() if k not in (
            "kind", "provider", "operation", "match", "remaining", "fired", "times")}
        where = rule.get("operation", "batch")
        if rule.get("match"):
            where += " " + ",".join(f"{k}={v}" for k, v in rule["match"].items())
        left = "always" if rule.get("remaining") is None else str(rule["remaining"])
        table.add_row(str(i), rule["kind"], rule.get("provider", "*"), escape(where),
                      escape(", ".join(f"{k}={v}" for k, v in details.items()
                                       if v is not None)), left, str(rule.get("fired", 0)))
    console.print(table)


@faults_app.command("list")
def faults_list(url: UrlOpt = None, as_json: Annotated[bool, typer.Option(
        "--json", help="Print the control API's JSON")] = False) -> None:
    """Show the active rules, how many times each has fired and has left."""
    with EmulatorControl(url) as control:
        _show(control.faults(), as_json)


@faults_app.command("add")
def faults_add(
    kind: Annotated[str | None, typer.Argument(help=f"One of {', '.join(KINDS)}")] = None,
    fields: Annotated[list[str] | None, typer.Argument(
        help="Rule fields as key=value (e.g. operation=batches.create status=429 times=1)")]
    = None,
    file: Annotated[Path | None, typer.Option(
        "--file", "-f", help="YAML or JSON list of rules instead of KIND")] = None,
    replace: Annotated[bool, typer.Option(help="Replace every rule instead of appending")]
    = False,
    seed: Annotated[int | None, typer.Option(help="Restart the probability draws")] = None,
    url: UrlOpt = None,
) -> None:
    """Add fault rules to a running emulator."""
    if (kind is None) == (file is None):
        raise InputError("give a fault KIND with key=value fields, or --file, not both")
    rules = _rules_from_file(file) if file is not None else [
        parse_rule(str(kind), fields or [])]
    with EmulatorControl(url) as control:
        view = control.set_faults(rules, mode="replace" if replace else "append", seed=seed)
    console.print(f"{len(rules)} rule(s) {'set' if replace else 'added'}; "
                  f"{len(view.get('rules', []))} active")


@faults_app.command("clear")
def faults_clear(url: UrlOpt = None) -> None:
    """Remove every rule (``POST /_emulator/reset`` brings the profile's back)."""
    with EmulatorControl(url) as control:
        control.clear_faults()
    console.print("fault rules cleared")
