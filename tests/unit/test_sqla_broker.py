"""The embedded broker (kombu's SQLAlchemy transport on SQLite, ``worker.sqla_broker``): two
processes creating its tables, or declaring its queue, at once; a group of messages that
cannot be stored; a worker's check that it can open and write the broker."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from llmbatch.config import AppConfig
from llmbatch.errors import InfrastructureError
from llmbatch.service_layer.wakeups import TolerantPublisher
from llmbatch.worker.app import QUEUE, CeleryPublisher, make_celery, require_embedded_broker

TRANSPORT = "llmbatch.worker.sqla_broker:SQLAlchemyTransport"

# kombu's own table mapping, not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:sqlalchemy.exc.SADeprecationWarning")


class _NotYet:
    """A lookup made before the other process's insert: finds nothing."""

    def filter(self, *_: Any) -> _NotYet:
        return self

    def first(self) -> None:
        return None


def test_the_process_that_loses_the_race_to_create_the_queue_reads_the_winners_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker starting while the API publishes its first job: both look for the queue's
    row, find none, and insert it. kombu's lock is per process, so the second insert hits the
    unique name; that used to fail the job's ``POST`` with a 500 (after the job was stored)."""
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    with Connection(url, transport=TRANSPORT) as winner, \
            Connection(url, transport=TRANSPORT) as loser:
        channel: Any = loser.default_channel
        real_query = channel.session.query
        looked = []

        def query(*args: Any) -> Any:
            if len(looked) < 2:  # kombu looks twice (before and after its lock) before inserting
                looked.append(args)
                return _NotYet()
            return real_query(*args)

        monkeypatch.setattr(channel.session, "query", query)
        winner.default_channel.queue_declare("llmbatch")  # the winner's insert lands first

        row = channel._get_or_create("llmbatch")

        assert row.name == "llmbatch" and len(looked) == 2
        channel._put("llmbatch", {"body": "after the race"})
        assert winner.default_channel._size("llmbatch") == 1


def test_the_process_that_loses_the_race_to_create_the_tables_uses_the_winners(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both processes open a new broker database, find no tables, and create them: the other
    process's ``CREATE TABLE`` lands between this one's look and its own, which then fails
    ("table kombu_queue already exists"). That used to fail the job's ``POST`` with a 500."""
    path = tmp_path / "broker.db"
    url = f"sqlite:///{path}"
    with Connection(url, transport=TRANSPORT) as conn:
        channel: Any = conn.default_channel
        make_engine = channel._engine_from_config
        raced = []

        def engine_with_a_rival() -> Any:
            engine = make_engine()

            @event.listens_for(engine, "before_cursor_execute")
            def rival_creates_first(_conn: Any, _cursor: Any, statement: str,
                                    *_: Any) -> None:
                if statement.lstrip().startswith("CREATE TABLE kombu_queue") and not raced:
                    raced.append(statement)
                    with sqlite3.connect(path) as rival:  # the other process
                        rival.execute(statement)
            return engine

        monkeypatch.setattr(channel, "_engine_from_config", engine_with_a_rival)
        monkeypatch.setattr(type(channel), "_engines", {})  # kombu's per-process cache

        channel._put("llmbatch", {"body": "after the race"})

        assert raced, "the rival's CREATE TABLE did not happen"
        assert channel._size("llmbatch") == 1


def test_a_broker_database_that_cannot_be_created_fails_after_a_bound(tmp_path: Path) -> None:
    """Looking again is for the race above only: an error that stays is raised."""
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'broker.db'}"
    with Connection(url, transport=TRANSPORT) as conn, \
            pytest.raises(OperationalError, match="unable to open database file"):
        conn.default_channel._put("llmbatch", {"body": "nowhere to go"})


def test_a_group_of_messages_that_cannot_be_stored_says_why(tmp_path: Path) -> None:
    """``grouped`` rolls its session back on an error; when opening the broker is what failed
    there is no session, and the rollback's own error hid the cause (the API logged
    "'NoneType' object has no attribute 'client'")."""
    home = tmp_path / "broker"
    app = make_celery(AppConfig.model_validate({
        "database": {"url": "sqlite://"},
        "broker": {"url": f"sqla+sqlite:///{home / 'broker.db'}"}}))
    home.rmdir()
    home.write_text("a file where the broker's directory was")  # cannot be opened now
    publisher = TolerantPublisher(CeleryPublisher(app), quiet=True)

    publisher.publish_many([("llmbatch.plan", ("job-1",), None)])

    assert len(publisher.failures) == 1
    assert "unable to open database file" in publisher.failures[0], publisher.failures


def test_a_worker_refuses_an_embedded_broker_it_cannot_open_and_starts_on_one_it_can(
        tmp_path: Path) -> None:
    """Celery would connect, lose the connection and connect again forever; the worker's
    start-up check says why in one line instead (exit 3, ``InfrastructureError``)."""
    (tmp_path / "broker.db").mkdir()  # a directory where the database file should be
    bad = make_celery(AppConfig.model_validate({
        "database": {"url": "sqlite://"},
        "broker": {"url": f"sqla+sqlite:///{tmp_path / 'broker.db'}"}}))
    with pytest.raises(InfrastructureError, match=r"embedded broker at .*broker\.db cannot be "
                                                  r"opened and written: unable to open"):
        require_embedded_broker(bad)

    good = make_celery(AppConfig.model_validate({
        "database": {"url": "sqlite://"},
        "broker": {"url": f"sqla+sqlite:///{tmp_path / 'ok' / 'broker.db'}"}}))
    require_embedded_broker(good)
    with Connection(f"sqlite:///{tmp_path / 'ok' / 'broker.db'}", transport=TRANSPORT) as conn:
        assert conn.default_channel._size(QUEUE) == 0  # its tables and queue row are there


def test_the_start_up_check_leaves_a_server_broker_to_celery() -> None:
    """A Redis or RabbitMQ broker down at start is waited for by Celery, which says so in its
    log; the check does not open a connection that would wait for it without a word."""
    for url in ("redis://127.0.0.1:1/0", "amqp://guest:guest@127.0.0.1:1//"):
        require_embedded_broker(make_celery(AppConfig.model_validate({
            "database": {"url": "sqlite://"}, "broker": {"url": url}})))
