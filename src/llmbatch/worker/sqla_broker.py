"""kombu's SQLAlchemy transport, minus the bug that makes ``polling_interval`` unusable with it
and two races between processes opening a new broker database: creating its tables
(``SQLAlchemyChannel._open``) and declaring the queue (``SQLAlchemyChannel._get_or_create``).

kombu passes every transport option it does not know to ``sqlalchemy.create_engine``, and
``polling_interval`` (read by kombu's own virtual transport) is not among those it removes, so
setting it, which the embedded mode needs to react in tenths of a second rather than in a
second, makes the first publish fail with "Invalid argument(s) 'polling_interval' sent to
create_engine()". This channel removes kombu's own options before building the engine.

``make_celery`` selects it for ``sqla+`` broker URLs through the explicit ``broker_transport``
setting (URL-derived transport names may not name modules).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from kombu.transport import sqlalchemy as kombu_sqla
from kombu.transport.sqlalchemy.models import metadata as kombu_metadata
from kombu.utils.json import dumps
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import sessionmaker

__all__ = ["SQLAlchemyChannel", "SQLAlchemyTransport"]

# Transport options kombu reads itself; the rest are create_engine() arguments.
_KOMBU_OPTIONS = frozenset({
    "queue_tablename", "message_tablename", "callback", "errback", "max_retries",
    "interval_start", "interval_step", "interval_max", "retry_errors", "polling_interval",
})

# Each attempt that fails does so because another process created a table after this one
# looked: a new attempt finds it. One per table of kombu's (queues and messages; its metadata
# holds them only once a channel has mapped them), and one more.
_CREATE_ATTEMPTS = 3


class SQLAlchemyChannel(kombu_sqla.Channel):
    """Builds the broker's engine from the engine options only, and can store a group of
    messages in one transaction (``grouped``): kombu commits every message on its own, about
    3 ms each on SQLite, which made a tick waking 10,000 batches take most of a minute."""

    _grouping = False

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """Messages put inside the block are committed together when it ends (or none of
        them, if it raises: the tick's later pass publishes them again)."""
        self._grouping = True
        try:
            yield
        except BaseException:
            # No session yet when opening the broker failed; a rollback that fails too would
            # hide the error that matters, which is the one raised.
            if self._session is not None:
                with suppress(Exception):
                    self._session.rollback()
            raise
        else:
            self.session.commit()
        finally:
            self._grouping = False

    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if not self._grouping:
            return super()._put(queue, payload, **kwargs)  # type: ignore[no-untyped-call]
        queue_row = self._get_or_create(queue)
        self.session.add(self.message_cls(dumps(payload), queue_row))  # type: ignore[no-untyped-call]
        return None

    def _get_or_create(self, queue: str) -> Any:
        """The queue's row, created if missing. kombu's own lock is per process: a worker
        starting while the API publishes its first job both insert the row, and the loser's
        unique-name error (which kombu does not catch) failed that job's ``POST`` with a 500
        after the job was stored. The loser now reads the winner's row."""
        try:
            return super()._get_or_create(queue)  # type: ignore[no-untyped-call]
        except IntegrityError:
            self.session.rollback()
            return self.session.query(self.queue_cls).filter(
                self.queue_cls.name == queue).one()

    def _open(self) -> Any:
        """kombu's, except that its tables are created with ``_create_tables``."""
        hostname = self.connection.client.hostname
        with kombu_sqla._MUTEX:
            if hostname not in self._engines:
                engine = self._engine_from_config()
                _create_tables(engine)
                self._engines[hostname] = engine, sessionmaker(bind=engine)
        return self._engines[hostname]

    def check_writable(self, queue: str) -> None:
        """Open the broker database, create its tables and the queue's row if missing, and
        take its write lock once: raises the database's error when any of it cannot be done.
        A worker that starts without this check on a file it cannot open or write connects,
        loses the connection and connects again, forever."""
        self._get_or_create(queue)
        try:
            self.session.execute(text("BEGIN IMMEDIATE"))
        finally:
            self.session.rollback()

    def _engine_from_config(self) -> Engine:
        conninfo: Any = self.connection.client
        options = {k: v for k, v in conninfo.transport_options.items()
                   if k not in _KOMBU_OPTIONS}
        return create_engine(conninfo.hostname, **options)


class SQLAlchemyTransport(kombu_sqla.Transport):
    """kombu's SQLAlchemy transport with ``SQLAlchemyChannel``."""

    Channel = SQLAlchemyChannel


def _create_tables(engine: Engine) -> None:
    """kombu's tables, created if missing. A worker starting while the API publishes its first
    job both open a new broker database: each looks for the tables, and the one whose
    ``CREATE TABLE`` comes second fails ("table kombu_queue already exists" on SQLite). kombu
    does not catch that, and the job's ``POST`` failed with a 500 after the job was stored.
    Looking again finds the other process's table; after ``_CREATE_ATTEMPTS`` the error is
    real and raised."""
    for attempt in range(1, _CREATE_ATTEMPTS + 1):
        try:
            kombu_metadata.create_all(engine)
            return
        except DBAPIError:
            if attempt == _CREATE_ATTEMPTS:
                raise
