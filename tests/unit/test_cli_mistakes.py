"""Every command, driven with the mistakes people make (a missing argument, an unknown job
id, a bad option value, a missing file, a database that is not there): each is one error
line with the documented exit code (``cli/exit_codes.py``), never a traceback, and
``--debug`` shows the traceback instead.

The CLI's ``main()`` runs in this process (what the ``llmbatch`` script calls), in a project
directory of its own; the subprocess test in ``test_cli_usage.py`` covers the installed
entry point.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from llmbatch.cli import main as cli
from llmbatch.cli.exit_codes import ExitCode

MODEL = "gpt-4o-mini"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project directory with a config, an input file and nothing submitted yet."""
    for var in ("LLMBATCH_HOME", "LLMBATCH_CONFIG", "LLMBATCH_DATABASE_URL",
                "LLMBATCH_BROKER_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LLMBATCH_CEILING_DIRECTORIES", str(tmp_path))
    config = {"providers": {"openai": {"base_url": "http://127.0.0.1:9/openai/v1",
                                       "api_key": "k", "models": [{"name": MODEL}]}}}
    (tmp_path / "llm_config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (tmp_path / "in.jsonl").write_text(
        '{"custom_id": "a", "body": {"messages": [{"role": "user", "content": "hi"}]}}\n',
        encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "_debug", False)
    yield tmp_path


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            *args: str) -> tuple[int, str, str]:
    """``llmbatch ARGS``: (exit code, stdout, stderr)."""
    monkeypatch.setattr("sys.argv", ["llmbatch", *args])
    try:
        cli.main()
        code: object = 0
    except SystemExit as stopped:
        code = stopped.code
    out, err = capsys.readouterr()
    return (code if isinstance(code, int) else 1 if code else 0), out, err


def a_pending_job(project: Path) -> str:
    """A job stored but never run (no worker here)."""
    from llmbatch.cli.runtime import runtime
    from llmbatch.db.migrate import upgrade
    from llmbatch.service_layer.jobs import create_job

    rt = runtime(None)
    upgrade(rt.engine)
    job_id, _ = create_job(rt, project / "in.jsonl", provider="openai", model=MODEL)
    return job_id


BAD = ExitCode.BAD_INPUT
MISTAKES: list[tuple[list[str], int, str]] = [
    # submit
    (["submit"], BAD, "Missing argument"),
    (["submit", "in.jsonl", "--model", MODEL], BAD, "Missing option '--provider'"),
    (["submit", "nope.jsonl", "--provider", "openai", "--model", MODEL], BAD,
     "cannot read input"),
    (["submit", "in.jsonl", "--provider", "nope", "--model", MODEL], BAD, "unknown provider"),
    (["submit", "in.jsonl", "--provider", "openai", "--model", "nope"], BAD, "unknown model"),
    (["submit", "in.jsonl", "--provider", "openai", "--model", MODEL, "--endpoint", "x"], BAD,
     "Invalid value for '--endpoint'"),
    (["submit", "in.jsonl", "--provider", "openai", "--model", MODEL,
      "--output-expires-after", "60"], BAD,
     "error: option '--output-expires-after': 60 is outside OpenAI's range, 3600 to 2592000"),
    (["submit", "in.jsonl", "--provider", "openai", "--model", MODEL,
      "--input-expires-after", "3600"], BAD,
     "error: option '--input-expires-after': 3600 is outside OpenAI's range, 86400 to 2592000"),
    (["submit", "in.jsonl", "--provider", "openai", "--model", MODEL,
      "--input-expires-after", "0"], BAD, "Invalid value for '--input-expires-after'"),
    # status, events, cancel, wait
    (["status"], BAD, "Missing argument"),
    (["status", "job_nope"], BAD, "no job 'job_nope'"),
    (["status", "job_nope", "--bogus"], BAD, "No such option"),
    (["events", "job_nope"], BAD, "no job 'job_nope'"),
    (["cancel", "job_nope"], BAD, "no job 'job_nope'"),
    (["cancel"], BAD, "Missing argument"),
    (["wait", "job_nope"], BAD, "no job 'job_nope'"),
    (["wait", "job_nope", "--timeout", "-1"], BAD, "Invalid value for '--timeout'"),
    # jobs
    (["jobs", "--limit", "abc"], BAD, "Invalid value for '--limit'"),
    (["jobs", "--limit", "0"], BAD, "Invalid value for '--limit'"),
    (["jobs", "--status", "bogus"], BAD, "Invalid value for '--status'"),
    # results
    (["results"], BAD, "Missing argument"),
    (["results", "job_nope"], BAD, "no job 'job_nope'"),
    (["results", "job_nope", "--format", "xml"], BAD, "Invalid value for '--format'"),
    (["results", "job_nope", "--fields", "custom_id,nope"], BAD, "unknown field(s) nope"),
    # retry
    (["retry", "job_nope"], BAD, "no job 'job_nope'"),
    (["retry"], BAD, "Missing argument"),
    # the rest
    (["info", "--bogus"], BAD, "No such option"),
    (["worker", "--concurrency", "many"], BAD, "Invalid value for '--concurrency'"),
    (["beat", "--bogus"], BAD, "No such option"),
    (["emulator", "--port", "http"], BAD, "Invalid value for '--port'"),
    (["db", "upgrade", "--bogus"], BAD, "No such option"),
    (["config", "validate", "missing.yaml"], BAD, "cannot read config"),
    (["demo", "--items", "some"], BAD, "Invalid value for '--items'"),
    (["no-such-command"], BAD, "No such command"),
]


@pytest.mark.parametrize(("args", "code", "says"), MISTAKES,
                         ids=[" ".join(m[0]) or "-" for m in MISTAKES])
def test_a_mistake_is_one_error_line_with_its_exit_code(
        project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str], code: int, says: str) -> None:
    got, out, err = run_cli(monkeypatch, capsys, *args)

    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.lower().startswith("error:")]
    assert (got, len(errors)) == (code, 1), err
    assert says in errors[0]


def test_results_of_a_job_still_running_say_so_unless_partial(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    job_id = a_pending_job(project)

    code, out, err = run_cli(monkeypatch, capsys, "results", job_id)
    assert (code, out) == (ExitCode.JOB_FAILURES, "")
    assert err.count("\n") == 1 and "--partial" in err

    code, out, err = run_cli(monkeypatch, capsys, "results", job_id, "--partial")
    assert code == 0 and '"status": "pending"' in out and "not final yet" in err


def test_retrying_a_job_still_running_is_one_line(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    job_id = a_pending_job(project)

    code, _, err = run_cli(monkeypatch, capsys, "retry", job_id)

    assert (code, err.count("\n")) == (ExitCode.BAD_INPUT, 1)
    assert "retry it once it has ended" in err


def test_a_database_directory_that_does_not_exist_is_refused_not_created(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    missing = project / "nonexistent" / "dir"
    monkeypatch.setenv("LLMBATCH_DATABASE_URL", f"sqlite:///{missing}/x.db")

    code, _, err = run_cli(monkeypatch, capsys, "jobs")

    assert (code, err.count("\n")) == (ExitCode.BAD_INPUT, 1)
    assert f"directory {missing} does not exist" in err
    assert not (project / "nonexistent").exists()


def test_an_unreachable_database_is_exit_3(project: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("psycopg")
    monkeypatch.setenv("LLMBATCH_DATABASE_URL",
                       "postgresql+psycopg://someone:secret@127.0.0.1:1/llmbatch")

    code, _, err = run_cli(monkeypatch, capsys, "jobs")

    assert (code, err.count("\n")) == (ExitCode.UNAVAILABLE, 1)
    assert "the database at" in err and "cannot be reached" in err and "secret" not in err


def test_debug_shows_the_traceback(project: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "--debug", "status", "job_nope")

    assert code == ExitCode.BAD_INPUT
    assert "Traceback" in err and "NotFoundError" in err


def test_an_unexpected_error_is_one_line_pointing_at_debug(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("something nobody planned for")

    monkeypatch.setattr("llmbatch.service_layer.read_models.list_jobs", broken)

    code, _, err = run_cli(monkeypatch, capsys, "jobs")

    assert (code, err.count("\n")) == (ExitCode.INTERNAL, 1)
    assert "RuntimeError: something nobody planned for" in err and "--debug" in err
