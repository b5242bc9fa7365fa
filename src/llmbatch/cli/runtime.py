"""What every command builds first: the project's configuration and a runtime on its database.

Kept apart from ``cli/main.py`` so that commands in their own modules (``info``, ``wait``...)
build their runtime exactly as the core commands do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from llmbatch.bootstrap import Runtime, build_runtime
from llmbatch.config import AppConfig
from llmbatch.db.reachability import require_database
from llmbatch.errors import ConfigError
from llmbatch.home import HOME_ENV, Project, load_project_config, sqlite_path
from llmbatch.service_layer.unit_of_work import Publisher
from llmbatch.service_layer.wakeups import DeferredPublisher

__all__ = ["close_when_done", "closing_at_the_end", "ensure_schema", "is_embedded",
           "project_config", "runtime",
           "stored_runtime"]


# What the running command opened (runtimes, API clients), closed when ``main()`` ends; None
# outside a command, so a library caller (``llmbatch.Client``) keeps owning what it builds.
_to_close: list[Callable[[], None]] | None = None


@contextlib.contextmanager
def closing_at_the_end() -> Iterator[None]:
    """Around one command: close what it opened when it ends, however it ends. A command run
    in-process (tests, an application calling ``main()``) would otherwise leave its provider
    clients' and API client's sockets to the garbage collector, which warns
    (``ResourceWarning``) in whatever code runs then."""
    global _to_close
    outer, _to_close = _to_close, []
    try:
        yield
    finally:
        opened, _to_close = _to_close, outer
        for close in reversed(opened):
            with contextlib.suppress(Exception):  # closing never hides the command's outcome
                close()


def close_when_done(close: Callable[[], None]) -> None:
    """Have ``close`` called when the running command ends (nothing outside a command)."""
    if _to_close is not None:
        _to_close.append(close)


def project_config(path: Path | None) -> tuple[AppConfig, Project]:
    """The configuration (SQLite paths absolute) and where the project's files are."""
    return load_project_config(path)


def _in_home(url: str, project: Project) -> bool:
    path = sqlite_path(url)
    return path is not None and (path.parent == project.home or project.home in path.parents)


def _prepare_home(cfg: AppConfig, project: Project, *, publish: bool) -> None:
    """Create the home when the embedded database lives there, or the embedded broker and
    this command publishes (first use); a command that only reads creates nothing else."""
    if _in_home(cfg.database.url, project) or (publish and _in_home(cfg.broker.url, project)):
        project.ensure_home()


def runtime(path: Path | None, *, publish: bool = False, broker: bool = False) -> Runtime:
    """A runtime for a command that may store something (the home is created if needed);
    ``broker``: the command consumes from the broker (a worker, beat) without publishing."""
    return _build(*project_config(path), publish=publish, broker=broker)


def _build(cfg: AppConfig, project: Project, *, publish: bool, broker: bool = False) -> Runtime:
    _prepare_home(cfg, project, publish=publish or broker)
    rt = build_runtime(cfg, DeferredPublisher(lambda: _celery_publisher(cfg))
                       if publish else None)
    close_when_done(rt.close)
    return rt


def _celery_publisher(cfg: AppConfig) -> Publisher:
    """The Celery publisher, imported and built when a command first publishes."""
    from llmbatch.worker.app import CeleryPublisher, make_celery

    return CeleryPublisher(make_celery(cfg))


def stored_runtime(path: Path | None, *, publish: bool = False) -> Runtime:
    """The runtime of a command about jobs already stored (status, results, cancel...).

    In a project (found upward, or ``$LLMBATCH_HOME``) the embedded database is created on
    first use, so ``llmbatch jobs`` there lists no jobs instead of failing. Outside any
    project, or for a database file named elsewhere that does not exist, nothing is created:
    the command says in one line where it looked."""
    cfg, project = project_config(path)
    db_file = sqlite_path(cfg.database.url)
    if db_file is not None and not db_file.exists():
        if not project.found and _in_home(cfg.database.url, project):
            raise ConfigError(
                f"no llmbatch project here: no {db_file} (nor a .llmbatch/ or llm_config.yaml "
                f"in any directory above); `llmbatch submit` starts one in the current "
                f"directory, or set {HOME_ENV}")
        if not _in_home(cfg.database.url, project):
            raise ConfigError(f"no llmbatch database at {db_file}: nothing was submitted with "
                              f"this configuration (check database.url)")
    rt = _build(cfg, project, publish=publish)
    require_database(rt.engine)
    ensure_schema(rt)
    return rt


def ensure_schema(rt: Runtime) -> None:
    """The embedded SQLite file is migrated on the spot; a shared server database only by an
    explicit ``llmbatch db upgrade``, never by whichever worker restarts first with new code.
    A schema at head is told without importing Alembic (``db.schema_version``)."""
    from llmbatch.db.schema_version import at_head

    if at_head(rt.engine):
        return
    from llmbatch.db.migrate import pending_revisions, upgrade

    if rt.engine.dialect.name == "sqlite":
        upgrade(rt.engine)
        return
    pending = pending_revisions(rt.engine)
    if pending:
        raise ConfigError(f"the database schema is behind this version of llmbatch "
                          f"(pending: {', '.join(reversed(pending))}); run: llmbatch db upgrade")


def is_embedded(cfg: AppConfig) -> bool:
    """Whether the broker is the embedded SQLite one (nobody else runs the workers)."""
    return cfg.broker.url.startswith("sqla+sqlite")
