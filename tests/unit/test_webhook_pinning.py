"""Webhook deliveries connect to the addresses the SSRF check accepted, never to what the
host name resolves to afterwards (DNS rebinding): the URL, the Host header and TLS SNI keep
the name, the TCP connection goes to the checked address, and any other host is refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from llmbatch.webhooks.pinning import PinnedTransport
from llmbatch.webhooks.settings import WebhooksConfig
from llmbatch.webhooks.urls import WebhookRefused, check_webhook_target

# ``.test`` is reserved (RFC 2606): the system resolver never answers it, so a delivery that
# reaches the receiver can only have connected to the address the check was given.
HOST = "rebind.test"


@pytest.fixture
def receiver() -> Iterator[tuple[int, list[str]]]:
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            hosts.append(self.headers["host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], hosts
    finally:
        server.shutdown()
        server.server_close()


def client(transport: PinnedTransport) -> httpx.Client:
    return httpx.Client(transport=transport, trust_env=False, timeout=5)


def test_the_connection_goes_to_the_checked_address_under_the_original_name(
        receiver: tuple[int, list[str]]) -> None:
    port, hosts = receiver
    config = WebhooksConfig(allowed_hosts=(HOST,), allow_private_addresses=True)
    target = check_webhook_target(config, f"http://{HOST}:{port}/hook",
                                  lambda _h, _p: ["127.0.0.1"])
    assert target.addresses == ("127.0.0.1",) and target.port == port
    transport = PinnedTransport()
    transport.pin(target)
    with client(transport) as http:
        assert http.post(target.url, content=b"{}").status_code == 204
        # Another host, or the same host on another port, is not what was checked.
        for other in (f"http://127.0.0.1:{port}/hook", f"http://{HOST}:{port + 1}/hook"):
            with pytest.raises(httpx.ConnectError, match="not the checked webhook target"):
                http.post(other, content=b"{}")
    assert hosts == [f"{HOST}:{port}"]


def test_nothing_is_connected_before_a_check() -> None:
    with client(PinnedTransport()) as http, pytest.raises(httpx.ConnectError):
        http.post("http://127.0.0.1:9/hook", content=b"{}")


def test_a_name_that_resolves_to_a_private_address_is_refused_before_any_pin() -> None:
    config = WebhooksConfig(allowed_hosts=(HOST,))
    answers = iter([["93.184.216.34", "127.0.0.1"]])  # one private answer is enough
    with pytest.raises(WebhookRefused, match="non-public address"):
        check_webhook_target(config, f"https://{HOST}/hook", lambda _h, _p: next(answers))
