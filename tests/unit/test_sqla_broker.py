"""The embedded broker (kombu's SQLAlchemy transport on SQLite, ``worker.sqla_broker``): two
processes declaring its queue at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

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
