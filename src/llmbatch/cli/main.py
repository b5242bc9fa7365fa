"""The ``llmbatch`` command."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from llmbatch.bootstrap import Runtime
from llmbatch.cli import api as cli_api
from llmbatch.cli import info as cli_info
from llmbatch.cli import reading as cli_reading
from llmbatch.cli import results as cli_results
from llmbatch.cli import retry as cli_retry
from llmbatch.cli import runtime as cli_runtime
from llmbatch.cli import validate as cli_validate
from llmbatch.cli import wait as cli_wait
from llmbatch.cli.common import ConfigOpt, console, err
from llmbatch.cli.embedded import EmbeddedWorker
from llmbatch.cli.emulator_faults import emulator_app
from llmbatch.cli.estimate import estimate_command
from llmbatch.cli.exit_codes import ExitCode, exit_code_for
from llmbatch.cli.keys import keys_app
from llmbatch.cli.retention_options import (
    InputExpiryOpt,
    KeepProviderDataOpt,
    OutputExpiryOpt,
    naming_options,
    retention_overrides,
)
from llmbatch.cli.source import (
    API_URL_ENV,
    JobSource,
    LocalSource,
    api_url,
    job_source,
    local_only,
    set_api_url,
)
from llmbatch.cli.usage import usage_command
from llmbatch.cli.validate import BetaOpt
from llmbatch.cli.validate import validate as validate_cmd
from llmbatch.cli.webhooks import webhooks_app
from llmbatch.domain.models import Endpoint
from llmbatch.errors import ConfigError, LLMBatchError
from llmbatch.observability.logging import LogFormat
from llmbatch.observability.redaction import redact
from llmbatch.service_layer.model_checks import job_options_of
from llmbatch.service_layer.submit_options import SubmitOptions

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Run bulk LLM work through the providers' native batch APIs.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
config_app = typer.Typer(no_args_is_help=True, help="Configuration file.")


def _show_version(value: bool) -> None:
    if value:
        from llmbatch.version import __version__

        console.print(f"llmbatch {__version__}")
        raise typer.Exit()


_debug = False
"""Set by ``--debug``: errors are shown with their traceback."""


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="Print the version and exit.")] = False,
          debug: Annotated[bool, typer.Option(
              "--debug", help="Show the full traceback of an error.")] = False,
          api_url: Annotated[str | None, typer.Option(
              "--api-url", envvar=API_URL_ENV, show_envvar=False,
              help="Job commands talk to this llmbatch API (key: $LLMBATCH_API_KEY)")] = None,
          ) -> None:
    """Run bulk LLM work through the providers' native batch APIs."""
    global _debug
    _debug = debug
    set_api_url(api_url)


app.add_typer(db_app, name="db")
app.add_typer(webhooks_app, name="webhooks")
app.command("validate")(validate_cmd)
app.add_typer(config_app, name="config")
app.add_typer(emulator_app, name="emulator")


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="JSONL, one request per line")],
    provider: Annotated[str, typer.Option(help="openai, anthropic, gemini, ...")],
    model: Annotated[str, typer.Option(help="Model name as the provider knows it")],
    name: Annotated[str | None, typer.Option(help="A label for the job")] = None,
    endpoint: Annotated[Endpoint, typer.Option(
        help="chat, embeddings, responses, completions or moderations")] = Endpoint.CHAT,
    idempotency_key: Annotated[str | None, typer.Option(
        help="Same key + same content returns the existing job")] = None,
    max_cost: Annotated[Decimal | None, typer.Option(
        help="USD cap on the job's batch cost: refused at submit if its upper bound is over "
             "(docs/cost.md)")] = None,
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
    webhook_url: Annotated[str | None, typer.Option(
        help="Notify this URL (signed, Standard Webhooks) when the job ends")] = None,
    keep_provider_data: KeepProviderDataOpt = None,
    input_expires_after: InputExpiryOpt = None,
    output_expires_after: OutputExpiryOpt = None,
    beta: BetaOpt = None,
) -> None:
    """Validate FILE, store it as a job and hand it to the workers."""
    retention = retention_overrides(keep_provider_data, input_expires_after,
                                    output_expires_after)
    if worker:
        local_only("--worker")
    stack = ExitStack()
    booted: list[EmbeddedWorker] = []  # started while the file is stored (--wait), if any
    if api_url():
        source: JobSource = job_source(config, publish=True, new=True)
        if dry_run:
            sys.exit(cli_validate.print_verdict(source.validate(
                file, provider=provider, model=model, endpoint=endpoint,
                strict_model=strict_model, betas=beta), provider=provider))
        with naming_options(retention):
            job_id, created = source.create_job(
                file, provider=provider, model=model, endpoint=endpoint, name=name,
                idempotency_key=idempotency_key, retention=retention, betas=beta,
                options=SubmitOptions(strict_model=strict_model, max_cost=max_cost,
                                      webhook_url=webhook_url))
        console.print(f"{'created' if created else 'existing'} job [bold]{job_id}[/bold]")
    else:
        def boot_worker(rt: Runtime) -> None:
            # --wait that starts a worker: it boots (imports, Celery, its beat: seconds) while
            # the file is stored instead of after; a failed submit lets it go unawaited.
            if wait and (worker if worker is not None else LocalSource(rt).embedded_broker):
                booted.append(stack.enter_context(cli_wait.embedded_worker(config,
                                                                           LocalSource(rt))))

        try:
            with naming_options(retention):
                rt, job_id = _submit_local(
                    file, provider=provider, model=model, name=name, endpoint=endpoint,
                    idempotency_key=idempotency_key, max_cost=max_cost,
                    webhook_url=webhook_url, strict_model=strict_model, dry_run=dry_run,
                    config=config, retention=retention, job_options=job_options_of(beta),
                    before_ingest=boot_worker)
        except BaseException:
            for early in booted:
                early.detach()
            raise
        source = LocalSource(rt)
    if not wait:
        console.print(job_id) if not console.is_terminal else None
        return
    start_worker = source.embedded_broker if worker is None else worker
    with stack:  # the summary is printed before a booted worker is stopped
        sys.exit(cli_wait.wait_and_report(source, job_id, config,
                                          start_worker and not booted, console))


def _submit_local(file: Path, *, provider: str, model: str, name: str | None,
                  endpoint: Endpoint, idempotency_key: str | None, max_cost: Decimal | None,
                  webhook_url: str | None, strict_model: bool, dry_run: bool,
                  config: Path | None,
                  retention: dict[str, Any] | None = None,
                  job_options: dict[str, Any] | None = None,
                  before_ingest: Callable[[Runtime], None] | None = None,
                  ) -> tuple[Runtime, str]:
    """``submit`` on the local database: every problem of the file at once, the database's
    reachability in one line, and a job that is stored said to be stored even when the
    broker cannot be told (the tick picks it up). The runtime it used, and the job's id."""
    from llmbatch.cli.validate import print_report, warn
    from llmbatch.db.reachability import require_database
    from llmbatch.service_layer.jobs import create_job
    from llmbatch.service_layer.wakeups import TolerantPublisher

    if dry_run:
        from llmbatch.service_layer.intake import validate_file

        report = validate_file(cli_runtime.runtime(config), file, provider=provider, model=model,
                               endpoint=endpoint, strict_model=strict_model,
                               job_options=job_options)
        sys.exit(print_report(report, provider=provider))
    rt = cli_runtime.runtime(config, publish=True)
    rt.publisher = wakeups = TolerantPublisher(rt.publisher, quiet=True)
    require_database(rt.engine)
    cli_runtime.ensure_schema(rt)
    if before_ingest is not None:
        before_ingest(rt)
    job_id, created = create_job(rt, file, provider=provider, model=model, endpoint=endpoint,
                                 name=name, idempotency_key=idempotency_key,
                                 webhook_url=webhook_url, max_cost=max_cost,
                                 strict_model=strict_model, warn=warn, retention=retention,
                                 job_options=job_options)
    console.print(f"{'created' if created else 'existing'} job [bold]{job_id}[/bold]")
    if wakeups.failures:
        warn(f"job {job_id} is stored, but the broker could not be reached to wake a worker "
             f"({wakeups.failures[0]}); the scheduler tick picks the job up once the broker "
             "is back and a worker and beat run. Do not submit it again.")
    return rt, job_id


@app.command()
def cancel(job_id: str, config: ConfigOpt = None) -> None:
    """Cancel a job; partial results the provider kept are still fetched."""
    new_status = job_source(config, publish=True).cancel_job(job_id)
    console.print(f"job {job_id}: {new_status}")


for _command in (cli_reading.status, cli_reading.jobs, cli_results.results, cli_retry.retry,
                 cli_reading.events, cli_wait.wait, cli_info.info):
    app.command()(_command)
app.command("api")(cli_api.api_command)
app.add_typer(keys_app, name="keys")
app.command("estimate")(estimate_command)
app.command("usage")(usage_command)


@app.command()
def worker(
    config: ConfigOpt = None,
    concurrency: Annotated[int, typer.Option(help="Parallel tasks")] = 4,
    pool: Annotated[str, typer.Option(help="prefork, threads or solo")] = "threads",
    beat: Annotated[bool, typer.Option(help="Also run the scheduler tick in this process")] = False,
    loglevel: str = "WARNING",
    hostname: Annotated[str | None, typer.Option(
        "--hostname", "-n", help="Celery node name (default: unique, llmbatch-<pid>-<id>@%h)",
    )] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus metrics on this port (/metrics)")] = None,
    log_format: Annotated[LogFormat | None, typer.Option(
        help="json or console (default: console in a terminal, else json)")] = None,
) -> None:
    """Run a Celery worker for the lifecycle tasks (any number per host)."""
    from llmbatch.observability.logging import configure_logging
    from llmbatch.worker.app import QUEUE, make_celery, require_embedded_broker, run_celery
    from llmbatch.worker.naming import node_name

    rt = cli_runtime.runtime(config, broker=True)
    configure_logging(loglevel, log_format, rt.config)
    if metrics_port is not None:
        from llmbatch.observability.exposition import start_worker_metrics

        start_worker_metrics(rt.config, metrics_port)
    rt.registry.check_limits()  # a limit above the provider's own stops the worker here
    cli_runtime.ensure_schema(rt)
    celery = make_celery(rt.config)
    require_embedded_broker(celery)
    argv = ["worker", f"--concurrency={concurrency}", f"--pool={pool}", f"--loglevel={loglevel}",
            "-Q", QUEUE, "--without-gossip", "--without-mingle",
            f"--hostname={node_name(hostname)}"]
    from llmbatch.worker.heap import freeze_when_started

    freeze_when_started(rt.registry.preload)  # every pool: the start-up heap is never garbage
    if not beat:
        sys.exit(run_celery(celery, argv))
    from llmbatch.worker.beat_thread import THREADED_POOLS, add_beat_thread

    with _beat_schedule(config) as schedule:
        if pool in THREADED_POOLS:  # the beat as a thread, not a second interpreter
            add_beat_thread(celery, schedule)
            code = run_celery(celery, argv)
        else:
            code = run_celery(celery, [*argv, "--beat", f"--schedule={schedule}"])
    sys.exit(code)


@app.command("beat")
def beat_cmd(config: ConfigOpt = None, loglevel: str = "WARNING",
             log_format: Annotated[LogFormat | None, typer.Option(
                 help="json or console (default: console in a terminal, else json)")] = None,
             ) -> None:
    """Run the scheduler (one per deployment): the tick that enqueues due work and repairs."""
    from llmbatch.observability.logging import configure_logging
    from llmbatch.worker.app import make_celery, run_celery

    rt = cli_runtime.runtime(config, broker=True)
    configure_logging(loglevel, log_format, rt.config)
    with _beat_schedule(config) as schedule:
        code = run_celery(make_celery(rt.config), ["beat", f"--loglevel={loglevel}",
                                                    f"--schedule={schedule}"])
    sys.exit(code)


@contextmanager
def _beat_schedule(config: Path | None) -> Iterator[Path]:
    """Beat's own bookkeeping file (it holds nothing we need to keep): one per process, in the
    project's home, removed on exit with whatever suffixes the shelve backend added (and those
    of processes killed before they could remove theirs)."""
    import os

    _, project = cli_runtime.project_config(config)
    home = project.ensure_home()
    for stale in home.glob("beat-schedule-*"):
        pid = stale.name.removeprefix("beat-schedule-").split(".")[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            stale.unlink(missing_ok=True)
    path = home / f"beat-schedule-{os.getpid()}"
    try:
        yield path
    finally:
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, revision: str = "head") -> None:
    """Create or migrate the database schema."""
    from llmbatch.db.migrate import upgrade

    rt = cli_runtime.runtime(config)
    upgrade(rt.engine, revision)
    console.print(f"database at {rt.engine.url.render_as_string(hide_password=True)}: "
                  f"{revision}")


@config_app.command("validate")
def config_validate(file: Annotated[Path | None, typer.Argument()] = None) -> None:
    """Check a config file; print each problem with its path."""
    try:
        cfg, _ = cli_runtime.project_config(file)
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
    """Entry point: run the CLI. llmbatch errors and usage errors are one line (or a few, for a
    list of problems) with the exit code of ``cli/exit_codes.py``; an unexpected error is one
    line too, exit 1, pointing at ``--debug``, which shows any error's traceback instead. A
    message is printed as text, never as markup: it may quote the user's input."""
    try:
        with cli_runtime.closing_at_the_end():
            code = app(standalone_mode=False)
    except LLMBatchError as exc:
        _report(exc, exit_code_for(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(ExitCode.INTERRUPTED)
    except _usage_errors() as exc:
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    except Exception as exc:  # a bug or an unforeseen environment problem
        _report(exc, ExitCode.INTERNAL, unexpected=True)
    if isinstance(code, int) and code:
        sys.exit(code)


def _report(exc: Exception, code: int, *, unexpected: bool = False) -> None:
    if _debug or "--debug" in sys.argv[1:2]:
        err.print_exception(show_locals=False)
    elif unexpected:
        err.print(f"[red]error:[/red] unexpected {type(exc).__name__}: {escape(redact(str(exc)))} "
                  "(run again with --debug for the traceback, and please report it)",
                  highlight=False)
    else:
        err.print(f"[red]error:[/red] {escape(redact(str(exc)))}", highlight=False)
    sys.exit(code)
