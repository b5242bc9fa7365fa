"""Where llmbatch keeps its files: one predictable place per project, found like git finds its
repository.

The *home* holds the embedded database, the embedded broker, the beat schedule and logs. It is

1. ``$LLMBATCH_HOME`` when set; else
2. ``<root>/.llmbatch`` where ``<root>`` is the nearest directory, from the current one
   upward, that holds a ``.llmbatch/`` directory or an ``llm_config.yaml`` (the *project*);
   else
3. ``./.llmbatch``: the current directory starts a new project on first use.

The upward search stops below any directory listed in ``$LLMBATCH_CEILING_DIRECTORIES``
(``os.pathsep``-separated, like git's ``GIT_CEILING_DIRECTORIES``), so that a stray
``llm_config.yaml`` in ``/tmp`` cannot capture every directory under it.

The configuration file is ``--config``, else ``$LLMBATCH_CONFIG``, else the project's
``llm_config.yaml``, else ``$LLMBATCH_HOME/llm_config.yaml``, else the built-in defaults.
Relative SQLite paths are resolved against the directory of the file that wrote them (the
config file), the built-in defaults against the home, and environment overrides against the
current directory: never silently against wherever a command happens to run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from llmbatch.config import CONFIG_ENV, DEFAULT_DATA_DIR, AppConfig, load_config
from llmbatch.errors import ConfigError

__all__ = [
    "CEILING_ENV",
    "CONFIG_FILE_NAME",
    "HOME_ENV",
    "Project",
    "find_project",
    "load_project_config",
    "sqlite_path",
]

HOME_ENV = "LLMBATCH_HOME"
CEILING_ENV = "LLMBATCH_CEILING_DIRECTORIES"
CONFIG_FILE_NAME = "llm_config.yaml"
HOME_DIR_NAME = DEFAULT_DATA_DIR.name  # ".llmbatch"


@dataclass(frozen=True)
class Project:
    """Where this invocation's files are, and why."""

    home: Path
    """The directory holding the embedded database, broker, beat schedule and logs."""
    home_source: str
    """How the home was chosen: ``$LLMBATCH_HOME``, ``found`` (a project above) or ``new``."""
    config_file: Path | None
    """The configuration file read, or None for the built-in defaults."""
    found: bool
    """Whether the home was given or found (False: the current directory would start one)."""

    @property
    def beat_schedule(self) -> Path:
        return self.home / "beat-schedule"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def ensure_home(self) -> Path:
        """Create the home (and nothing above it) on first use."""
        if not self.home.parent.is_dir():
            raise ConfigError(f"cannot create the llmbatch home {self.home}: "
                              f"{self.home.parent} does not exist")
        self.home.mkdir(exist_ok=True)
        return self.home


def _ceilings(env: Mapping[str, str]) -> set[Path]:
    raw = env.get(CEILING_ENV, "")
    return {Path(p).resolve() for p in raw.split(os.pathsep) if p}


def _project_root(start: Path, env: Mapping[str, str]) -> Path | None:
    ceilings = _ceilings(env)
    for directory in (start, *start.parents):
        if (directory / HOME_DIR_NAME).is_dir() or (directory / CONFIG_FILE_NAME).is_file():
            return directory
        if directory in ceilings:
            return None
    return None


def find_project(config: Path | None = None, *, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None) -> Project:
    """Locate the home and the configuration file for a command run in ``cwd``."""
    env = os.environ if env is None else env
    cwd = (cwd or Path.cwd()).resolve()
    if config is None and env.get(CONFIG_ENV):
        config = Path(env[CONFIG_ENV])
    # A config file named explicitly makes its directory the project: ``--config`` is then
    # self-contained, wherever the command runs.
    root = (cwd / config).resolve().parent if config is not None else _project_root(cwd, env)
    if env.get(HOME_ENV):
        home, source, found = Path(env[HOME_ENV]).expanduser().resolve(), f"${HOME_ENV}", True
    elif root is not None:
        home, source, found = root / HOME_DIR_NAME, "found", True
    else:
        home, source, found = cwd / HOME_DIR_NAME, "new", False
    if config is None and root is not None and (root / CONFIG_FILE_NAME).is_file():
        config = root / CONFIG_FILE_NAME
    if config is None and (home / CONFIG_FILE_NAME).is_file():
        config = home / CONFIG_FILE_NAME
    config_file = None if config is None else (cwd / config).resolve()
    return Project(home=home, home_source=source, config_file=config_file, found=found)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (``sqlite://`` or kombu's ``sqla+sqlite://``), else None."""
    parsed = make_url(url.removeprefix("sqla+"))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _absolute(url: str, base: Path, default_home: Path | None) -> str:
    """``url`` with a relative SQLite file made absolute against ``base`` (the built-in
    ``.llmbatch/<file>`` default: against the home itself)."""
    path = sqlite_path(url)
    if path is None or path.is_absolute():
        return url
    if default_home is not None and path.parts[:1] == (HOME_DIR_NAME,):
        absolute = default_home.joinpath(*path.parts[1:])
    else:
        absolute = (base / path).resolve()
    prefix = "sqla+" if url.startswith("sqla+") else ""
    return f"{prefix}{make_url(url.removeprefix('sqla+')).set(database=str(absolute))}"


def _check_directory(what: str, url: str, home: Path) -> None:
    """A SQLite file outside the home must be in an existing directory: llmbatch creates its
    own home and nothing else (``sqlite:////nonexistent/dir/x.db`` is refused, not created
    at the filesystem root)."""
    path = sqlite_path(url)
    if path is None:
        return
    directory = path.parent
    if directory.is_dir() or directory == home or home in directory.parents:
        return
    if directory.name == HOME_DIR_NAME and directory.parent.is_dir():
        return  # a config file's own ``.llmbatch/``: a home of its own, created like one
    raise ConfigError(f"{what}: directory {directory} does not exist (create it, or leave "
                      f"{what} unset to use the llmbatch home {home})")


def load_project_config(config: Path | None = None, *, cwd: Path | None = None,
                        env: Mapping[str, str] | None = None) -> tuple[AppConfig, Project]:
    """Load the configuration of the project around ``cwd`` with every SQLite path absolute,
    and say where everything is. Creates nothing."""
    env = os.environ if env is None else env
    cwd = (cwd or Path.cwd()).resolve()
    project = find_project(config, cwd=cwd, env=env)
    cfg = load_config(project.config_file, env={**env, CONFIG_ENV: ""})
    file_base = project.config_file.parent if project.config_file else cwd
    urls: dict[str, str] = {}
    for section, env_var in (("database", "LLMBATCH_DATABASE_URL"),
                             ("broker", "LLMBATCH_BROKER_URL")):
        url: str = getattr(cfg, section).url
        from_env = bool(env.get(env_var))
        from_file = not from_env and section in _sections_set(project.config_file)
        base = cwd if from_env else file_base
        default_home = None if (from_env or from_file) else project.home
        urls[section] = _absolute(url, base, default_home)
        _check_directory(f"{section}.url", urls[section], project.home)
    cfg = cfg.model_copy(update={
        "database": cfg.database.model_copy(update={"url": urls["database"]}),
        "broker": cfg.broker.model_copy(update={"url": urls["broker"]}),
    })
    return cfg, project


def _sections_set(config_file: Path | None) -> set[str]:
    """Which of ``database.url`` and ``broker.url`` the file itself sets (the others are
    defaults, which belong in the home)."""
    if config_file is None:
        return set()
    import yaml

    try:
        data = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):  # load_config has already said what is wrong
        return set()
    if not isinstance(data, dict):
        return set()
    return {s for s in ("database", "broker")
            if isinstance(data.get(s), dict) and data[s].get("url")}
