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


# kombu's SQLAlchemy transport maps its tables with ``noload`` (tests/unit/test_sqla_broker.py)
@pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning")
def test_readyz_is_503_when_the_embedded_broker_cannot_be_written(tmp_path: Path) -> None:
    """A connection to the embedded broker never opens its file: the probe takes the file's
    write lock, so a broker whose file cannot be opened or written is not ready (the worker
    refuses it at start; the API used to say "ok")."""
    from fastapi.testclient import TestClient

    from llmbatch.cli.api import build_api

    (tmp_path / "broker.db").mkdir()  # a directory where the database file should be
    config = tmp_path / "llm_config.yaml"
    config.write_text(f"database: {{url: 'sqlite:///{tmp_path / 'llmbatch.db'}'}}\n"
                      f"broker: {{url: 'sqla+sqlite:///{tmp_path / 'broker.db'}'}}\n",
                      encoding="utf-8")
    app, _, _, rt = build_api(config)
    try:
        answer = TestClient(app).get("/readyz")  # type: ignore[arg-type]
        assert answer.status_code == 503
        assert answer.json()["detail"] == "not ready: broker: InfrastructureError"
    finally:
        rt.close()

    (tmp_path / "broker.db").rmdir()  # now it can be created
    app, _, _, rt = build_api(config)
    try:
        assert TestClient(app).get("/readyz").json() == {  # type: ignore[arg-type]
            "status": "ready", "database": "ok", "broker": "ok"}
    finally:
        rt.close()
