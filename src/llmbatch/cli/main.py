"""The ``llmbatch`` command."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmbatch.bootstrap import Runtime, build_runtime
from llmbatch.cli.exit_codes import ExitCode, exit_code_for
from llmbatch.cli.validate import validate as validate_cmd
from llmbatch.config import AppConfig, load_config
from llmbatch.domain.models import Endpoint
from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.errors import ConfigError, LLMBatchError
from llmbatch.service_layer import read_models

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Run bulk LLM work through the providers' native batch APIs.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
config_app = typer.Typer(no_args_is_help=True, help="Configuration file.")


def _show_version(value: bool) -> None:
    if value:
        from llmbatch import __version__

        console.print(f"llmbatch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="Print the version and exit.")] = False) -> None:
    """Run bulk LLM work through the providers' native batch APIs."""


app.add_typer(db_app, name="db")
app.command("validate")(validate_cmd)
app.add_typer(config_app, name="config")

console = Console()
# Errors are never wrapped: a wrapped "file:line" is useless to an editor, grep or CI log.
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", help="llm_config.yaml (default: $LLMBATCH_CONFIG, ./llm_config.yaml)")]


def _config(path: Path | None) -> AppConfig:
    return load_config(path)


def _runtime(path: Path | None, *, publish: bool = False) -> Runtime:
    config = _config(path)
    if not publish:
        return build_runtime(config)
    from llmbatch.worker.app import CeleryPublisher, make_celery

    return build_runtime(config, CeleryPublisher(make_celery(config)))


def _stored_runtime(path: Path | None, *, publish: bool = False) -> Runtime:
    """The runtime of a command about jobs already stored (status, results, cancel...): a
    database with nothing in it is said in one line, never created on the way (the embedded
    SQLite path is relative to the current directory, so a command run elsewhere would
    otherwise open, and leave behind, a new empty one)."""
    from sqlalchemy.engine import make_url

    config = _config(path)
    url = make_url(config.database.url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not Path(url.database).exists():
        raise ConfigError(f"no llmbatch database at {Path(url.database).resolve()}: nothing was "
                          "submitted with this configuration here (database.url is relative "
                          "to the current directory; run from where you submitted, or set it)")
    rt = _runtime(path, publish=publish)
    _ensure_schema(rt)
    return rt


def _ensure_schema(rt: Runtime) -> None:
    """The embedded SQLite file is migrated on the spot; a shared server database only by an
    explicit ``llmbatch db upgrade``, never by whichever worker restarts first with new code."""
    from llmbatch.db.migrate import pending_revisions, upgrade

    if rt.engine.dialect.name == "sqlite":
        upgrade(rt.engine)
        return
    pending = pending_revisions(rt.engine)
    if pending:
        raise ConfigError(f"the database schema is behind this version of llmbatch "
                          f"(pending: {', '.join(reversed(pending))}); run: llmbatch db upgrade")


def _is_embedded(config: AppConfig) -> bool:
    return config.broker.url.startswith("sqla+sqlite")


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="JSONL, one request per line")],
    provider: Annotated[str, typer.Option(help="openai, anthropic, gemini, ...")],
    model: Annotated[str, typer.Option(help="Model name as the provider knows it")],
    name: Annotated[str | None, typer.Option(help="A label for the job")] = None,
    endpoint: Annotated[Endpoint, typer.Option(help="chat or embeddings")] = Endpoint.CHAT,
    idempotency_key: Annotated[str | None, typer.Option(
        help="Same key + same content returns the existing job")] = None,
    wait: Annotated[bool, typer.Option(help="Show progress until the job ends")] = False,
    worker: Annotated[bool | None, typer.Option(
        help="Start an embedded worker while waiting (default: on with the SQLite broker)",
    )] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only check FILE (as llmbatch validate): store nothing")] = False,
    strict_model: Annotated[bool, typer.Option(
        "--strict-model", help="Refuse lines whose body.model differs from --model "
                               "(default: they run on --model, with a warning)")] = False,
    config: ConfigOpt = None,
) -> None:
    """Validate FILE, store it as a job and hand it to the workers."""
    from llmbatch.cli.validate import print_report, warn
    from llmbatch.db.reachability import require_database
    from llmbatch.service_layer.jobs import create_job
    from llmbatch.service_layer.wakeups import TolerantPublisher

    if dry_run:
        from llmbatch.service_layer.intake import validate_file

        report = validate_file(_runtime(config), file, provider=provider, model=model,
                               endpoint=endpoint, strict_model=strict_model)
        sys.exit(print_report(report, provider=provider))
    rt = _runtime(config, publish=True)
    rt.publisher = wakeups = TolerantPublisher(rt.publisher, quiet=True)
    require_database(rt.engine)
    _ensure_schema(rt)
    job_id, created = create_job(rt, file, provider=provider, model=model, endpoint=endpoint,
                                 name=name, idempotency_key=idempotency_key,
                                 strict_model=strict_model, warn=warn)
    console.print(f"{'created' if created else 'existing'} job [bold]{job_id}[/bold]")
    if wakeups.failures:
        warn(f"job {job_id} is stored, but the broker could not be reached to wake a worker "
             f"({wakeups.failures[0]}); the scheduler tick picks the job up once the broker "
             "is back and a worker and beat run. Do not submit it again.")
    if not wait:
        console.print(job_id) if not console.is_terminal else None
        return
    start_worker = _is_embedded(rt.config) if worker is None else worker
    sys.exit(_wait_and_report(rt, job_id, config, start_worker))


def _wait_and_report(rt: Runtime, job_id: str, config: Path | None, start_worker: bool) -> int:
    from llmbatch.cli.embedded import EmbeddedWorker
    from llmbatch.cli.progress import wait_for_job

    ctx = EmbeddedWorker(config) if start_worker else nullcontext()
    with ctx:
        job = wait_for_job(rt, job_id, console)
    console.print(f"job {job.id}: {job.status}")
    return 0 if job.status is JobStatus.SUCCEEDED else 1


@app.command()
def status(job_id: str, config: ConfigOpt = None,
           as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A job's status, item counts, usage and provider batches."""
    job = read_models.job_detail(_stored_runtime(config), job_id)
    batches = job.batches
    data: dict[str, Any] = {
        "id": job.id, "name": job.name, "status": str(job.status), "provider": job.provider,
        "model": job.model, "endpoint": str(job.endpoint), "items": job.item_count,
        "counts": {str(k): v for k, v in sorted(job.counts.items())},
        "usage": job.usage.as_dict(), "cost_usd": job.cost_usd,
        "parent_job_id": job.parent_job_id, "created_at": job.created_at.isoformat(),
        "completed_at": job.completed_at.isoformat() if job.completed_at else None,
        "error": job.error,
        "batches": [{"id": b.id, "status": str(b.status), "provider_batch_id":
                     b.provider_batch_id, "provider_status": b.provider_status,
                     "items": b.item_count, "attempt": b.attempt, "polls": b.poll_count,
                     "error": b.error} for b in batches],
    }
    if as_json:
        console.print_json(json.dumps(data))
        return
    console.print(f"[bold]{job.id}[/bold] {job.status}  {job.provider}/{job.model}  "
                  f"{job.item_count} items")
    console.print("  " + "  ".join(f"{k}={v}" for k, v in data["counts"].items()))
    console.print(f"  usage: {data['usage']}  cost: "
                  f"{'-' if job.cost_usd is None else f'${job.cost_usd:.6f}'}")
    if job.error:
        console.print(f"  error: {job.error}")
    table = Table("batch", "status", "provider id", "provider status", "items", "polls")
    for b in batches:
        table.add_row(b.id, str(b.status), b.provider_batch_id or "-", b.provider_status or "-",
                      str(b.item_count), str(b.poll_count))
    console.print(table)


@app.command()
def jobs(config: ConfigOpt = None, limit: int = 20,
         status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status")] = None,
         ) -> None:
    """Recent jobs."""
    page = read_models.list_jobs(_stored_runtime(config), limit=limit, status=status)
    table = Table("status", "provider", "model", "items", "succeeded", "created")
    table.add_column("job", no_wrap=True)
    for job in page.entries:
        table.add_row(str(job.status), job.provider, job.model, str(job.item_count),
                      str(job.counts.get(ItemStatus.SUCCEEDED, 0)),
                      job.created_at.strftime("%Y-%m-%d %H:%M:%S"), job.id)
    console.print(table)


@app.command()
def results(job_id: str, output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
            config: ConfigOpt = None) -> None:
    """One JSON line per input line, in input order (stdout or -o FILE)."""
    records = read_models.job_results(_stored_runtime(config), job_id)
    out = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        count = 0
        for record in records:
            out.write(json.dumps(record.as_dict(), ensure_ascii=False) + "\n")
            count += 1
    finally:
        if output:
            out.close()
    if output:
        err.print(f"wrote {count} results to {output}")


@app.command()
def cancel(job_id: str, config: ConfigOpt = None) -> None:
    """Cancel a job; partial results the provider kept are still fetched."""
    from llmbatch.service_layer.jobs import cancel_job

    new_status = cancel_job(_stored_runtime(config, publish=True), job_id)
    console.print(f"job {job_id}: {new_status}")


@app.command()
def retry(job_id: str, config: ConfigOpt = None,
          wait: Annotated[bool, typer.Option(help="Show progress until the new job ends")] = False,
          worker: Annotated[bool | None, typer.Option(
              help="Start an embedded worker while waiting")] = None) -> None:
    """Start a child job of JOB's failed and expired items (after you fixed the cause)."""
    from llmbatch.service_layer.jobs import retry_job

    rt = _stored_runtime(config, publish=True)
    child_id, count = retry_job(rt, job_id)
    console.print(f"created job [bold]{child_id}[/bold] retrying {count} item(s) of {job_id}")
    if wait:
        start_worker = _is_embedded(rt.config) if worker is None else worker
        sys.exit(_wait_and_report(rt, child_id, config, start_worker))


@app.command()
def events(job_id: str, config: ConfigOpt = None) -> None:
    """A job's timeline."""
    evs = read_models.iter_job_events(_stored_runtime(config), job_id)
    table = Table("time", "event", "batch", "from", "to", "data")
    for e in evs:
        table.add_row(e.at.strftime("%H:%M:%S.%f")[:-3], e.type, e.batch_id or "",
                      e.from_status or "", e.to_status or "", json.dumps(e.data)[:80])
    console.print(table)


@app.command()
def worker(
    config: ConfigOpt = None,
    concurrency: Annotated[int, typer.Option(help="Parallel tasks")] = 4,
    pool: Annotated[str, typer.Option(help="prefork, threads or solo")] = "threads",
    beat: Annotated[bool, typer.Option(help="Also run the scheduler tick in this process")] = False,
    loglevel: str = "WARNING",
) -> None:
    """Run a Celery worker for the lifecycle tasks."""
    from llmbatch.observability.logging import configure_logging
    from llmbatch.worker.app import QUEUE, make_celery

    cfg = _config(config)
    configure_logging(loglevel)
    rt = build_runtime(cfg)
    rt.registry.check_limits()  # a limit above the provider's own stops the worker here
    _ensure_schema(rt)
    argv = ["worker", f"--concurrency={concurrency}", f"--pool={pool}", f"--loglevel={loglevel}",
            "-Q", QUEUE, "--without-gossip", "--without-mingle"]
    if beat:
        argv += ["--beat", f"--schedule={_beat_schedule_path(cfg)}"]
    make_celery(cfg).worker_main(argv)


@app.command("beat")
def beat_cmd(config: ConfigOpt = None, loglevel: str = "WARNING") -> None:
    """Run the scheduler (one per deployment): the tick that enqueues due work and repairs."""
    from llmbatch.worker.app import make_celery

    cfg = _config(config)
    make_celery(cfg).start(["beat", f"--loglevel={loglevel}",
                            f"--schedule={_beat_schedule_path(cfg)}"])


def _beat_schedule_path(cfg: AppConfig) -> Path:
    """Beat's own bookkeeping file, one per broker (it holds nothing we need to keep)."""
    import hashlib
    import tempfile

    digest = hashlib.sha256(cfg.broker.url.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"llmbatch-beat-{digest}"


@app.command()
def emulator(host: str = "127.0.0.1", port: int = 8765,
             profile: Annotated[Path | None, typer.Option(
                 help="YAML with timing, limits and faults")] = None) -> None:
    """Serve emulated provider batch APIs (offline testing, the demo, benchmarks)."""
    from llmbatch.emulator.server import serve

    serve(host, port, profile)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, revision: str = "head") -> None:
    """Create or migrate the database schema."""
    from llmbatch.db.migrate import upgrade

    rt = _runtime(config)
    upgrade(rt.engine, revision)
    console.print(f"database at {rt.engine.url.render_as_string(hide_password=True)}: "
                  f"{revision}")


@config_app.command("validate")
def config_validate(file: Annotated[Path | None, typer.Argument()] = None) -> None:
    """Check a config file; print each problem with its path."""
    try:
        cfg = load_config(file)
        from llmbatch.providers.registry import ProviderRegistry

        ProviderRegistry(cfg).check_limits()
    except ConfigError as exc:
        # One unwrapped ``path: message`` line per problem, so it can be grepped; exit 2 like
        # every other llmbatch error (sys.exit: main() drops typer.Exit codes).
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        for problem in exc.problems:
            err.print(problem, markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    console.print(f"ok: {len(cfg.providers)} provider(s): {', '.join(cfg.providers) or '-'}")


@app.command()
def demo(
    items: Annotated[int, typer.Option(help="Prompts per provider")] = 24,
    keep: Annotated[Path | None, typer.Option(help="Keep the demo's files here")] = None,
) -> None:
    """Zero set-up: emulated providers, SQLite, an embedded worker."""
    from llmbatch.cli.demo import run_demo

    sys.exit(run_demo(console, items=items, keep=keep))


def _usage_errors() -> tuple[type[Exception], ...]:
    """Click's usage errors (unknown command or option, bad value): typer >= 0.29 raises those
    of the click it bundles, older typer those of click itself; both are shown the same way."""
    import click

    kinds: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as BundledClickException
    except ImportError:  # typer before 0.29
        pass
    else:
        kinds.append(BundledClickException)
    return tuple(kinds)


def main() -> None:
    """Entry point: run the CLI; llmbatch errors and usage errors are one line and exit 2
    (a message is printed as text, never as markup: it may quote the user's input)."""
    try:
        code = app(standalone_mode=False)
    except LLMBatchError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        sys.exit(exit_code_for(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(ExitCode.INTERRUPTED)
    except _usage_errors() as exc:
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    if isinstance(code, int) and code:
        sys.exit(code)
