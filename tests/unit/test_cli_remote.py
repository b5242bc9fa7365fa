"""The job commands against a remote API that is not there, or with a local-only option:
one line, the documented exit code, and nothing created locally (no API process needed; the
output compared with the local CLI's is ``tests/api/test_end_to_end.py``)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from llmbatch.cli import main as cli
from llmbatch.cli.exit_codes import ExitCode


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.argv", ["llmbatch", *args])
    try:
        cli.main()
        code: object = 0
    except SystemExit as stopped:
        code = stopped.code
    out, err = capsys.readouterr()
    return (code if isinstance(code, int) else 1 if code else 0), out, err


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty directory to run in, and the URL of a port nobody listens on."""
    for name in ("LLMBATCH_API_URL", "LLMBATCH_CONFIG", "LLMBATCH_HOME",
                 "LLMBATCH_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("args", [
    ("status", "job_x"), ("status", "job_x", "--json"), ("jobs",), ("events", "job_x"),
    ("results", "job_x"), ("results", "job_x", "--lineage"), ("cancel", "job_x"),
    ("retry", "job_x"), ("wait", "job_x"),
])
def test_an_unreachable_api_is_exit_3_in_one_line_and_nothing_local_is_made(
        nowhere: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], args: tuple[str, ...]) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "--api-url", nowhere, *args)
    assert (code, err.count("\n")) == (ExitCode.UNAVAILABLE, 1), err
    assert f"cannot reach the llmbatch API at {nowhere}/v1" in err
    assert list(tmp_path.iterdir()) == []


def test_the_environment_variable_names_the_api_too(
        nowhere: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LLMBATCH_API_URL", nowhere)
    code, _, err = run_cli(monkeypatch, capsys, "jobs")
    assert code == ExitCode.UNAVAILABLE and nowhere in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [
    ("wait", "job_x", "--worker"), ("retry", "job_x", "--worker", "--wait"),
    ("submit", "prompts.jsonl", "--provider", "openai", "--model", "m", "--wait", "--worker"),
])
def test_worker_is_local_only_with_an_api(
        nowhere: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], args: tuple[str, ...]) -> None:
    code, _, err = run_cli(monkeypatch, capsys, "--api-url", nowhere, *args)
    assert (code, err.count("\n")) == (ExitCode.BAD_INPUT, 1), err
    assert "--worker is local-only" in err
    assert list(tmp_path.iterdir()) == []


def test_the_api_client_a_command_opened_is_closed_when_it_ends(
        nowhere: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (tests, an application calling ``main()``) the command's HTTP client must
    not outlive it: left to the garbage collector, an open socket warns in whatever runs
    then."""
    from llmbatch.client.backends import RemoteBackend

    made: list[RemoteBackend] = []
    original = RemoteBackend.__init__

    def recording(self: RemoteBackend, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(RemoteBackend, "__init__", recording)
    code, _, _ = run_cli(monkeypatch, capsys, "--api-url", nowhere, "jobs")
    assert code == ExitCode.UNAVAILABLE
    assert len(made) == 1 and made[0].http.is_closed
