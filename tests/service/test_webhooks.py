"""Webhooks: every terminal event reaches a real HTTP receiver on loopback exactly once after
dedup by id, each signature verified with the ``standardwebhooks`` package, through failed
deliveries and an outage; disallowed URLs are refused at submit with nothing stored."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook

from llmbatch.db import tables
from llmbatch.domain.states import is_terminal
from llmbatch.errors import PermanentProviderError
from llmbatch.service_layer.jobs import cancel_job, create_job
from llmbatch.webhooks.outbox import WebhookOutbox
from llmbatch.webhooks.settings import WebhooksConfig
from llmbatch.webhooks.urls import WebhookRefused, check_webhook_url

from .harness import MODEL, Driver

SECRET = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw=="  # base64 of a test key


class Receiver:
    """A loopback HTTP server that answers 500 to its first ``fail_first`` requests, verifies
    every signature, and can be taken down and brought back on the same port."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.requests = 0
        self.received: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.up()

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests += 1
                if receiver.requests <= receiver.fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                try:
                    Webhook(SECRET).verify(body, dict(self.headers))
                except Exception:
                    receiver.bad_signatures += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                receiver.received.append({"id": self.headers["webhook-id"],
                                          **json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/llmbatch"

    def unique(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.received}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(fail_first=3)
    yield server
    if server._server is not None:
        server.down()


WEBHOOKS = WebhooksConfig(allowed_hosts=("127.0.0.1",), allow_private_addresses=True,
                          secret=SECRET, base_delay_s=1.0, max_delay_s=4.0)


def real_time_driver(make_driver: Callable[..., Driver], database_url: str) -> Driver:
    driver = make_driver(database_url=database_url, webhooks=WEBHOOKS)
    driver.clock.now = datetime.now(UTC)  # receivers refuse stale signature timestamps
    return driver


def settle(driver: Driver, job_ids: list[str], rounds: int = 40) -> None:
    for _ in range(rounds):
        if all(is_terminal(driver.job(j).status) for j in job_ids):
            return
        driver.tick(1)
    raise AssertionError("jobs did not finish")


def outbox_rows(driver: Driver) -> list[Any]:
    with driver.rt.engine.connect() as conn:
        return list(conn.execute(select(tables.webhook_outbox)).all())


def test_every_terminal_event_arrives_once_after_dedup_through_failures_and_an_outage(
        make_driver: Callable[..., Driver], database_url: str, write_jsonl: Callable[..., Path],
        receiver: Receiver) -> None:
    driver = real_time_driver(make_driver, database_url)
    assert driver.fake is not None
    succeeded, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL,
                              webhook_url=receiver.url)
    settle(driver, [succeeded])
    driver.fake.submit_errors = [PermanentProviderError("refused", provider="fake")]
    failed, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL,
                           webhook_url=receiver.url)
    settle(driver, [failed])
    driver.fake.polls_to_finish = None
    cancelled, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL,
                              webhook_url=receiver.url)
    driver.drain()
    cancel_job(driver.rt, cancelled)
    settle(driver, [cancelled])
    assert receiver.requests >= 3  # the first deliveries got a 500
    assert "pending" in {r.status for r in outbox_rows(driver)}

    receiver.down()  # an outage: connection refused, retried with backoff
    for _ in range(3):
        driver.tick(5)
    during = outbox_rows(driver)
    assert sum(r.attempts for r in during) > receiver.requests  # refused while down

    receiver.up()  # back on the same port
    for _ in range(10):
        if all(r.status == "delivered" for r in outbox_rows(driver)):
            break
        driver.tick(5)
    rows = outbox_rows(driver)
    assert {r.status for r in rows} == {"delivered"}
    with driver.rt.engine.begin() as conn:  # a replay sends the same ids again
        assert WebhookOutbox(conn).replay(driver.clock(), job_id=succeeded) == 1
    driver.tick(1)

    unique = receiver.unique()
    assert receiver.bad_signatures == 0
    assert len(receiver.received) == 4  # one replayed duplicate
    assert receiver.requests > 4  # 500s answered first
    assert set(unique) == {r.id for r in rows}
    assert sorted(r["type"] for r in unique.values()) == [
        "job.cancelled", "job.failed", "job.succeeded"]
    by_job = {r["data"]["job_id"]: r for r in unique.values()}
    assert by_job[succeeded]["data"]["counts"] == {"succeeded": 3}
    assert by_job[failed]["data"]["status"] == "failed"
    assert by_job[cancelled]["data"]["status"] == "cancelled"
    with driver.rt.engine.connect() as conn:
        codes = [c for c, in conn.execute(select(tables.webhook_deliveries.c.status_code))]
    assert codes.count(204) == 4  # the delivery log: every attempt and its answer
    assert codes.count(500) >= 3 and codes.count(None) >= 3  # failures, then the outage


@pytest.mark.parametrize(("url", "why"), [
    ("http://example.com/hook", "not in webhooks.allowed_hosts"),
    ("ftp://127.0.0.1/hook", "only http and https"),
    ("http://user:pw@127.0.0.1/hook", "credentials"),
    ("http://localhost/hook", "non-public address"),
    ("http://10.1.2.3/hook", "non-public address"),
])
def test_a_disallowed_webhook_url_is_refused_at_submit_and_nothing_is_stored(
        make_driver: Callable[..., Driver], write_jsonl: Callable[..., Path], url: str,
        why: str) -> None:
    config = WebhooksConfig(allowed_hosts=("127.0.0.1", "localhost", "10.1.2.3"),
                            secret=SECRET)
    driver = make_driver(webhooks=config)
    with pytest.raises(WebhookRefused, match=why) as refused:
        create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL, webhook_url=url)
    assert refused.value.field == "webhook_url"
    assert "pw" not in str(refused.value)
    with driver.rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.jobs)).scalar() == 0


def test_hosts_match_exactly_or_by_listed_domain() -> None:
    config = WebhooksConfig(allowed_hosts=("*.hooks.example",), allow_private_addresses=False)
    public = lambda _host, _port: ["93.184.216.34"]  # noqa: E731
    assert check_webhook_url(config, "https://a.hooks.example/x", public)
    with pytest.raises(WebhookRefused):
        check_webhook_url(config, "https://hooks.example.evil.test/x", public)
    with pytest.raises(WebhookRefused, match="non-public"):
        check_webhook_url(config, "https://a.hooks.example/x", lambda _h, _p: ["169.254.1.1"])
