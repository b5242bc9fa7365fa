"""A Redis broker that accepts the connection and never answers (a failover, a NAT or firewall
timeout, a hung server): a publish gives up after ``broker.socket_timeout_s`` instead of
holding the request or task that made it, and its database connection, forever."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from llmbatch.config import AppConfig
from llmbatch.service_layer.wakeups import TolerantPublisher
from llmbatch.worker.app import CeleryPublisher, make_celery

CAP_S = 120  # generous: without the timeout the publish never ends at all


@pytest.fixture
def silent_broker() -> Iterator[int]:
    """A loopback port whose server reads every connection and never writes a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)  # kept open, never answered

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_a_publish_to_a_broker_that_never_answers_gives_up(silent_broker: int) -> None:
    config = AppConfig.model_validate({
        "database": {"url": "sqlite://"},
        "broker": {"url": f"redis://127.0.0.1:{silent_broker}/0", "socket_timeout_s": 0.5},
    })
    publisher = TolerantPublisher(CeleryPublisher(make_celery(config)), quiet=True)
    sent = threading.Thread(target=publisher.publish, args=("llmbatch.plan", "job-1"),
                            daemon=True)
    sent.start()
    sent.join(CAP_S)
    assert not sent.is_alive(), f"the publish still waits after {CAP_S} s"
    assert publisher.failures and "imeout" in publisher.failures[0], publisher.failures
