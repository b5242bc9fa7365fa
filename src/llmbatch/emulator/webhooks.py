"""Batch-end webhooks, signed the Standard Webhooks way, as OpenAI and Gemini send them.

OpenAI (project webhooks, PROVIDER_APIS A.10) and Gemini project webhooks (C.9) sign the same
way: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256>``
over ``"{id}.{timestamp}.{raw body}"`` with the base64 key after ``whsec_`` (D.13). Each
provider module registers a *source*: given the emulator's clock, the batches that have ended
and the event each one announces. ``flush`` sends every event not yet acknowledged (2xx) to
the provider's configured target; one that fails is tried again at the next flush (the real
services retry for 24-72 h) under the same ``webhook-id``, as Standard Webhooks senders do, so
that a receiver can tell a repeat. The app flushes every ``webhooks.interval_s`` while a target is
set, and ``POST /_emulator/webhooks/flush`` flushes at once (tests).

Gemini's per-job ``webhookConfig.uris`` deliveries are JWT-signed (RS256, Google's key set),
a scheme whose claims are not published: the emulator accepts ``webhookConfig`` on create but
sends only the project-webhook (HMAC) kind. The signature timestamp is wall time, not the
emulator's (movable) clock: it says when the delivery left, which a receiver checks against
its own clock.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import structlog
from standardwebhooks.webhooks import Webhook

from llmbatch.emulator.settings import WebhookSettings, WebhookTarget

__all__ = ["EndedBatchEvent", "Poster", "WebhookSender"]

log = structlog.get_logger("llmbatch.emulator.webhooks")

# (batch key, event body) of one batch that has ended, from a provider's source.
EndedBatchEvent = tuple[str, dict[str, Any]]
Source = Callable[[float], Iterable[EndedBatchEvent]]
# POST url, body, headers -> HTTP status (tests swap in an in-process client).
Poster = Callable[[str, bytes, dict[str, str]], int]


def _http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    return httpx.post(url, content=body, headers=headers, timeout=10.0,
                      follow_redirects=False).status_code


class WebhookSender:
    """Targets per provider, the sources of ended batches, and what was acknowledged."""

    def __init__(self, settings: WebhookSettings, now: Callable[[], float]) -> None:
        self._targets: dict[str, WebhookTarget | None] = {"openai": settings.openai,
                                                          "gemini": settings.gemini}
        self._sources: dict[str, Source] = {}
        self._acked: set[tuple[str, str]] = set()
        self._ids: dict[tuple[str, str], str] = {}  # one webhook-id per event, retries too
        self._now = now
        self._lock = threading.Lock()
        self.post: Poster = _http_post

    def register(self, provider: str, source: Source) -> None:
        self._sources[provider] = source

    def configure(self, provider: str, target: WebhookTarget | None) -> None:
        """Send ``provider``'s events to ``target`` from now on (None: stop)."""
        if provider not in self._targets:
            raise KeyError(provider)
        self._targets[provider] = target

    def active(self) -> bool:
        return any(t is not None for t in self._targets.values())

    def forget(self) -> None:
        """Drop what was acknowledged (the state reset forgot the batches too)."""
        with self._lock:
            self._acked.clear()
            self._ids.clear()

    def flush(self) -> dict[str, int]:
        """Send every ended batch's event not yet acknowledged; ``{"sent", "failed"}``."""
        sent = failed = 0
        with self._lock:  # one flush at a time: an event is never sent twice at once
            for provider, source in self._sources.items():
                target = self._targets.get(provider)
                if target is None:
                    continue
                for key, event in list(source(self._now())):
                    if (provider, key) in self._acked:
                        continue
                    msg_id = self._ids.setdefault((provider, key), f"wh_{uuid.uuid4().hex}")
                    if self._deliver(provider, target, event, msg_id):
                        self._acked.add((provider, key))
                        self._ids.pop((provider, key), None)
                        sent += 1
                    else:
                        failed += 1
        return {"sent": sent, "failed": failed}

    def _deliver(self, provider: str, target: WebhookTarget, event: dict[str, Any],
                 msg_id: str) -> bool:
        body = orjson.dumps(event)
        at = datetime.now(UTC)
        signature = Webhook(target.secret.get_secret_value()).sign(msg_id, at, body.decode())
        headers = {"content-type": "application/json", "webhook-id": msg_id,
                   "webhook-timestamp": str(int(at.timestamp())),
                   "webhook-signature": signature,
                   "user-agent": f"llmbatch-emulator/{provider}"}
        try:
            status = self.post(target.url, body, headers)
        except httpx.HTTPError as exc:
            log.info("emulator.webhook.failed", provider=provider, error=type(exc).__name__)
            return False
        return 200 <= status < 300
