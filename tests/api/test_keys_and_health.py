"""``llmbatch keys`` prints a key once and never again; ``/readyz`` says which dependency is
down."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmbatch.api.app import create_app
from llmbatch.cli.main import app as cli

from .conftest import ApiWorld


def test_keys_create_prints_the_key_once_list_never_and_revoke_ends_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLMBATCH_CONFIG", raising=False)
    monkeypatch.delenv("LLMBATCH_DATABASE_URL", raising=False)
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--tenant", "acme", "--name", "ci"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("lbk_") and len(key) > 50

    listed = runner.invoke(cli, ["keys", "list"], env={"COLUMNS": "200"})
    assert "acme" in listed.stdout and key.split("_")[1] in listed.stdout
    assert key not in listed.stdout and key.split("_", 2)[2] not in listed.stdout

    from llmbatch.cli.runtime import stored_runtime
    from llmbatch.service_layer.api_keys import authenticate

    rt = stored_runtime(None)  # the database the CLI used (the project's home)
    assert authenticate(rt, key) is not None
    revoked = runner.invoke(cli, ["keys", "revoke", key.split("_")[1]])
    assert revoked.exit_code == 0, revoked.output
    assert authenticate(rt, key) is None
    rt.close()


def test_readyz_is_503_naming_the_broker_when_it_cannot_be_reached(api_world: ApiWorld) -> None:
    def down() -> None:
        raise ConnectionRefusedError("no broker here")

    api_world.app = create_app(api_world.driver.rt, broker_ping=down)
    answer = api_world.client(None).get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["detail"] == "not ready: broker: ConnectionRefusedError"
    api_world.app = create_app(api_world.driver.rt, broker_ping=lambda: None)
    assert api_world.client(None).get("/readyz").json() == {
        "status": "ready", "database": "ok", "broker": "ok"}
