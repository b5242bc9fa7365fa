"""kombu's Redis transport, minus a crash that stops a worker when the broker restarts.

When the Redis connection drops, Celery's consumer closes the old connection with
``ignore_errors`` (which swallows the transport's connection errors) and reconnects. But
closing the channel first tries to give its unacked messages back, which builds a client from
the connection's settings; by then kombu may already have cleared them
(``connection.client`` is None), so the close raises ``AttributeError``, which is not a
connection error: Celery reports an "Unrecoverable error" and the worker exits instead of
reconnecting (seen in ``tests/integration/test_service_faults.py``, about one broker restart
in six). This channel reports that state as the connection error it is, so the close is
skipped like any other on a dead connection and the consumer reconnects. Nothing is lost by
the skipped give-back: the broker holding those messages is gone, and llmbatch's tick
re-enqueues every due batch from the database.

``make_celery`` selects it for ``redis://`` broker URLs (``rediss://`` keeps kombu's own: kombu
enables TLS by the transport name).
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis

__all__ = ["RedisChannel", "RedisTransport"]


class RedisChannel(kombu_redis.Channel):
    """A channel whose connection settings are gone raises ``redis.ConnectionError``."""

    def _connparams(self, asynchronous: bool = False) -> Any:
        connection = self.connection
        if connection is None or getattr(connection, "client", None) is None:
            raise redis.exceptions.ConnectionError(
                "the broker connection of this channel is already closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with ``RedisChannel``."""

    Channel = RedisChannel
