"""Fixtures for the API tests: the app in-process over a ``Driver`` runtime (SQLite copy of the
migrated template, the ``fake`` provider, a recording publisher the driver drains), keys of
two tenants and an admin, and an httpx client per key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmbatch.api.app import create_app
from llmbatch.api.settings import ApiConfig
from llmbatch.service_layer.api_keys import create_key
from service.conftest import (  # noqa: F401 - fixtures
    clock,
    database_url,
    make_driver,
    migrated_template,
    postgres_pool,
    postgres_template,
    write_jsonl,
)
from service.harness import MODEL, Driver, chat_line

__all__ = ["MODEL", "ApiWorld", "chat_line"]


@dataclass
class ApiWorld:
    driver: Driver
    app: FastAPI
    keys: dict[str, str]

    def client(self, who: str | None) -> TestClient:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return TestClient(self.app, headers=headers, raise_server_exceptions=False)


@pytest.fixture
def api_world(make_driver: Callable[..., Driver]) -> Iterator[ApiWorld]:  # noqa: F811
    """The app on SQLite."""
    yield from _world(make_driver())


@pytest.fixture
def api_world_any(make_driver: Callable[..., Driver],  # noqa: F811
                  database_url: str) -> Iterator[ApiWorld]:  # noqa: F811
    """The app on SQLite and on PostgreSQL in turn."""
    yield from _world(make_driver(database_url=database_url))


def _world(driver: Driver) -> Iterator[ApiWorld]:
    app = create_app(driver.rt, ApiConfig(rate_limit_per_s=1000, rate_limit_burst=10_000))
    keys = {who: create_key(driver.rt, tenant=tenant, name=who, admin=admin)[1]
            for who, tenant, admin in (("alice", "tenant-a", False), ("bob", "tenant-b", False),
                                       ("root", "ops", True))}
    yield ApiWorld(driver, app, keys)
    driver.rt.close()


def jsonl(n: int, prefix: str = "q") -> bytes:
    return "".join(chat_line(f"{prefix}-{i}", f"question {i}") + "\n"
                   for i in range(n)).encode()
