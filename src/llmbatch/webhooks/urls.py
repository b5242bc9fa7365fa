"""Which webhook URLs llmbatch will call: http(s) only, to a host ``webhooks.allowed_hosts``
names, and never to a loopback, private, link-local or otherwise non-public address unless
``webhooks.allow_private_addresses`` says so (a job's URL must not turn llmbatch into a way to
reach the internal network: SSRF). Checked when a job is submitted and again before every
delivery (the name may resolve elsewhere by then); a delivery then connects to the very
addresses the check accepted (``webhooks.pinning``), never to whatever the name resolves to a
moment later (DNS rebinding)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from llmbatch.errors import InputError
from llmbatch.webhooks.settings import WebhooksConfig

__all__ = ["CheckedTarget", "Resolver", "WebhookRefused", "check_webhook_target",
           "check_webhook_url", "host_allowed"]

Resolver = Callable[[str, int], Iterable[str]]


class WebhookRefused(InputError):
    """A webhook URL llmbatch will not call."""


def _resolve(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port,
                                                                  type=socket.SOCK_STREAM)})


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """``host`` is listed, or falls under a listed ``*.domain``."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower().rstrip(".")
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and host != entry[2:]:
                return True
        elif host == entry:
            return True
    return False


@dataclass(frozen=True)
class CheckedTarget:
    """A URL llmbatch may call, with the addresses its host resolved to when checked: the
    only ones a delivery may connect to."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


def check_webhook_url(config: WebhooksConfig, url: str,
                      resolve: Resolver | None = None) -> str:
    """``url`` if llmbatch may call it; ``WebhookRefused`` (field ``webhook_url``) saying why
    otherwise. The message names the host, never the rest of the URL (it may carry a token)."""
    return check_webhook_target(config, url, resolve).url


def check_webhook_target(config: WebhooksConfig, url: str,
                         resolve: Resolver | None = None) -> CheckedTarget:
    """``check_webhook_url``, keeping the addresses it accepted (to pin the connection);
    ``resolve`` (host, port) -> addresses, ``socket.getaddrinfo`` by default."""
    def refuse(why: str) -> WebhookRefused:
        return WebhookRefused(f"webhook refused: {why}", field="webhook_url")

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise refuse("not a valid URL") from exc
    if parts.scheme not in ("http", "https"):
        raise refuse("only http and https URLs are allowed")
    host = parts.hostname
    if not host:
        raise refuse("the URL names no host")
    if parts.username or parts.password:
        raise refuse("credentials in the URL are not allowed (use the signature)")
    if not config.allowed_hosts:
        raise refuse("no webhook hosts are allowed (webhooks.allowed_hosts is empty)")
    if not host_allowed(host, config.allowed_hosts):
        raise refuse(f"host {host!r} is not in webhooks.allowed_hosts")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = list((resolve or _resolve)(host, port))
    except OSError as exc:
        raise refuse(f"host {host!r} does not resolve") from exc
    if not addresses:
        raise refuse(f"host {host!r} does not resolve")
    if not config.allow_private_addresses:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not ip.is_global or ip.is_multicast:
                raise refuse(f"host {host!r} resolves to a non-public address ({ip}); set "
                             "webhooks.allow_private_addresses to allow it")
    return CheckedTarget(url=url, host=host.lower().rstrip("."), port=port,
                         addresses=tuple(addresses))
