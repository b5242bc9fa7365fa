"""Where llmbatch keeps its files (``llmbatch.home``): a project found upward like git, or
``$LLMBATCH_HOME``; SQLite paths made absolute against the right directory; no directory
made outside the home."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbatch.errors import ConfigError
from llmbatch.home import find_project, load_project_config, sqlite_path


def env_for(root: Path, **extra: str) -> dict[str, str]:
    return {"LLMBATCH_CEILING_DIRECTORIES": str(root), **extra}


def test_a_project_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    (tmp_path / "llm_config.yaml").write_text("{}\n", encoding="utf-8")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)

    cfg, project = load_project_config(cwd=deep, env=env_for(tmp_path))

    assert (project.home, project.home_source, project.found) == (
        tmp_path / ".llmbatch", "found", True)
    assert project.config_file == tmp_path / "llm_config.yaml"
    assert sqlite_path(cfg.database.url) == tmp_path / ".llmbatch" / "llmbatch.db"
    assert sqlite_path(cfg.broker.url) == tmp_path / ".llmbatch" / "broker.db"


def test_a_llmbatch_directory_marks_a_project_too(tmp_path: Path) -> None:
    (tmp_path / ".llmbatch").mkdir()
    (tmp_path / "sub").mkdir()

    project = find_project(cwd=tmp_path / "sub", env=env_for(tmp_path))

    assert (project.home, project.config_file) == (tmp_path / ".llmbatch", None)


def test_no_project_above_means_a_new_one_here_and_nothing_created(tmp_path: Path) -> None:
    project = find_project(cwd=tmp_path, env=env_for(tmp_path))

    assert (project.home, project.home_source, project.found) == (
        tmp_path / ".llmbatch", "new", False)
    assert list(tmp_path.iterdir()) == []


def test_the_search_stops_at_a_ceiling(tmp_path: Path) -> None:
    (tmp_path / "llm_config.yaml").write_text("{}\n", encoding="utf-8")
    inner = tmp_path / "inner"
    inner.mkdir()

    assert not find_project(cwd=inner, env=env_for(inner)).found


def test_llmbatch_home_wins_and_may_hold_the_config(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "llm_config.yaml").write_text("worker: {lease_s: 7}\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    cfg, project = load_project_config(cwd=elsewhere,
                                       env=env_for(tmp_path, LLMBATCH_HOME=str(home)))

    assert (project.home, project.home_source) == (home, "$LLMBATCH_HOME")
    assert cfg.worker.lease_s == 7
    assert sqlite_path(cfg.database.url) == home / "llmbatch.db"


def test_a_relative_path_in_a_config_file_is_relative_to_that_file(tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf"
    (conf_dir / "data").mkdir(parents=True)
    (conf_dir / "llm_config.yaml").write_text(
        "database: {url: 'sqlite:///data/jobs.db'}\n", encoding="utf-8")
    cwd = tmp_path / "work"
    cwd.mkdir()

    cfg, _ = load_project_config(conf_dir / "llm_config.yaml", cwd=cwd, env=env_for(tmp_path))

    assert sqlite_path(cfg.database.url) == conf_dir / "data" / "jobs.db"


def test_a_relative_path_from_the_environment_is_relative_to_the_current_directory(
        tmp_path: Path) -> None:
    cfg, _ = load_project_config(
        cwd=tmp_path, env=env_for(tmp_path, LLMBATCH_DATABASE_URL="sqlite:///here.db"))

    assert sqlite_path(cfg.database.url) == tmp_path / "here.db"


def test_a_database_in_a_directory_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"directory /nonexistent/dir does not exist"):
        load_project_config(cwd=tmp_path, env=env_for(
            tmp_path, LLMBATCH_DATABASE_URL="sqlite:////nonexistent/dir/x.db"))
    assert not Path("/nonexistent").exists()


def test_the_home_is_created_only_below_an_existing_directory(tmp_path: Path) -> None:
    project = find_project(cwd=tmp_path, env=env_for(tmp_path))
    assert project.ensure_home() == tmp_path / ".llmbatch"
    assert (tmp_path / ".llmbatch").is_dir()

    orphan = find_project(cwd=tmp_path, env=env_for(
        tmp_path, LLMBATCH_HOME=str(tmp_path / "no" / "such" / "home")))
    with pytest.raises(ConfigError, match="does not exist"):
        orphan.ensure_home()
    assert not (tmp_path / "no").exists()


def test_a_config_named_explicitly_makes_its_directory_the_project(tmp_path: Path) -> None:
    conf_dir = tmp_path / "proj"
    conf_dir.mkdir()
    (conf_dir / "llm_config.yaml").write_text("{}\n", encoding="utf-8")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()

    cfg, project = load_project_config(conf_dir / "llm_config.yaml", cwd=cwd,
                                       env=env_for(tmp_path))

    assert project.home == conf_dir / ".llmbatch"
    assert sqlite_path(cfg.database.url) == conf_dir / ".llmbatch" / "llmbatch.db"
