"""Webhook connections pinned to the addresses the SSRF check accepted.

``webhooks.urls`` resolves a webhook's host and refuses private addresses; if the delivery
then let the HTTP client resolve the name again, a name under the receiver's control could
answer a public address to the check and ``127.0.0.1`` to the connect (DNS rebinding). So
the delivery's client connects through ``PinnedTransport``: its network backend opens the
TCP connection to one of the checked addresses and to nothing else, while the URL, the
``Host`` header, TLS SNI and certificate verification all keep the original host name.

httpx takes no network backend, so the transport is httpx's own with its httpcore pool
rebuilt around one (``_pool``, the attribute httpx's ``HTTPTransport`` sends through).
"""

from __future__ import annotations

import contextlib
import typing

import httpcore
import httpx

from llmbatch.webhooks.urls import CheckedTarget

__all__ = ["PinnedTransport"]


def _names(host: str) -> set[str]:
    """The spellings of one host name an HTTP client may use (IDNA for non-ASCII names)."""
    names = {host}
    with contextlib.suppress(UnicodeError):
        names.add(host.encode("idna").decode("ascii"))
    return names


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the current target's checked addresses only."""

    def __init__(self) -> None:
        self.inner = httpcore.SyncBackend()
        self.target: CheckedTarget | None = None

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
                    ) -> httpcore.NetworkStream:
        target = self.target
        name = host.strip("[]").lower().rstrip(".")
        if target is None or port != target.port or name not in _names(target.host):
            raise httpcore.ConnectError(f"{host}:{port} is not the checked webhook target")
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in target.addresses:
            try:
                return self.inner.connect_tcp(address, port, timeout, local_address,
                                              socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # a checked target has at least one address
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None
                            = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks are delivered over TCP only")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """An httpx transport whose connections go to ``pin(target)``'s addresses. No
    connection is kept alive: each delivery connects to the addresses checked just before."""

    def __init__(self) -> None:
        super().__init__()
        self._backend = _PinnedBackend()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_keepalive_connections=0,
            network_backend=self._backend)

    def pin(self, target: CheckedTarget) -> None:
        """Connect to ``target``'s checked addresses until pinned elsewhere."""
        self._backend.target = target
