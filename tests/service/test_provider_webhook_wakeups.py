"""A provider webhook's wake-up on the fake provider: due now, one poll message, and a
delayed second one for a batch a poll holds at that moment; ended batches are left alone; a
repeated delivery (same webhook-id) wakes nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from llmbatch.config import ModelConfig, ProviderConfig
from llmbatch.db.tables import provider_batches, provider_webhook_receipts
from llmbatch.domain.states import BatchStatus
from llmbatch.providers.webhooks import WebhookNotice
from llmbatch.service_layer import tasks
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.provider_webhooks import RECEIPTS_KEPT_S, wake_for
from llmbatch.service_layer.submission import plan_job, submit_batch
from service.harness import MODEL, Driver


def _submitted(driver: Driver, write_jsonl: Callable[..., Path]) -> tuple[str, str]:
    job_id, _ = create_job(driver.rt, write_jsonl(2), provider="fake", model=MODEL)
    (batch_id,) = plan_job(driver.rt, job_id)
    assert submit_batch(driver.rt, batch_id) is BatchStatus.IN_PROGRESS
    with driver.rt.uow() as uow:
        remote = uow.repo.get_batch(batch_id).provider_batch_id
        # As after a poll: the next one an hour away.
        uow.repo.conn.execute(update(provider_batches).where(
            provider_batches.c.id == batch_id).values(
                next_poll_at=driver.clock() + timedelta(hours=1)))
        uow.commit()
    assert remote is not None
    return batch_id, remote


def test_a_notice_makes_the_batch_due_and_publishes_one_poll(
        driver: Driver, write_jsonl: Callable[..., Path]) -> None:
    batch_id, remote = _submitted(driver, write_jsonl)
    driver.publisher.messages.clear()

    assert wake_for(driver.rt, "fake", WebhookNotice(remote, "batch.completed")) == [batch_id]

    assert driver.publisher.messages == [(tasks.POLL, (batch_id,))]
    with driver.rt.uow() as uow:
        batch = uow.repo.get_batch(batch_id)
        assert batch.next_poll_at == driver.clock() and batch.dispatched_at == driver.clock()
        # Marked dispatched: the tick does not send a second poll for it.
        assert uow.repo.due_batches(driver.clock(), driver.clock() - timedelta(seconds=1),
                                    10) == []


def test_a_batch_held_by_a_poll_gets_a_second_poll_later(
        driver: Driver, write_jsonl: Callable[..., Path]) -> None:
    batch_id, remote = _submitted(driver, write_jsonl)
    with driver.rt.uow() as uow:
        assert uow.repo.claim_batch(batch_id, [BatchStatus.IN_PROGRESS], "poller",
                                    driver.clock(), 60) is not None
        uow.commit()
    driver.publisher.messages.clear()

    assert wake_for(driver.rt, "fake", WebhookNotice(remote, "batch.completed")) == [batch_id]

    assert driver.publisher.messages == [(tasks.POLL, (batch_id,))]  # the delayed one
    with driver.rt.uow() as uow:
        batch = uow.repo.get_batch(batch_id)
        assert batch.next_poll_at == driver.clock() and batch.dispatched_at is None


def test_a_notice_about_an_unknown_or_ended_batch_wakes_nothing(
        driver: Driver, write_jsonl: Callable[..., Path]) -> None:
    assert wake_for(driver.rt, "fake", WebhookNotice("nope", "batch.completed")) == []
    job_id, _ = create_job(driver.rt, write_jsonl(1), provider="fake", model=MODEL)
    driver.run(job_id)
    (batch,) = driver.batches(job_id)
    assert batch.provider_batch_id is not None
    driver.publisher.messages.clear()
    assert wake_for(driver.rt, "fake", WebhookNotice(batch.provider_batch_id, "x")) == []
    assert driver.publisher.messages == []


def _receipts(driver: Driver) -> int:
    with driver.rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(provider_webhook_receipts))
                   .scalar_one())


def test_a_repeated_delivery_wakes_nothing_and_old_receipts_are_dropped(
        make_driver: Callable[..., Driver], database_url: str,
        write_jsonl: Callable[..., Path]) -> None:
    driver = make_driver(ProviderConfig(models=(ModelConfig(name=MODEL),)),
                         database_url=database_url)
    batch_id, remote = _submitted(driver, write_jsonl)
    driver.publisher.messages.clear()
    notice = WebhookNotice(remote, "batch.completed", delivery_id="wh_1")

    assert wake_for(driver.rt, "fake", notice) == [batch_id]
    assert wake_for(driver.rt, "fake", notice) is None  # the vendor's retry of it
    assert driver.publisher.messages == [(tasks.POLL, (batch_id,))]
    assert _receipts(driver) == 1
    # The same id from another provider, or another delivery: acted on.
    assert wake_for(driver.rt, "other", notice) == []
    again = WebhookNotice(remote, "batch.completed", delivery_id="wh_2")
    assert wake_for(driver.rt, "fake", again) == [batch_id]
    assert _receipts(driver) == 3

    driver.clock.advance(RECEIPTS_KEPT_S + 1)  # past every vendor's retries: forgotten
    assert wake_for(driver.rt, "fake", WebhookNotice(remote, "x", delivery_id="wh_3")) == [
        batch_id]
    assert _receipts(driver) == 1
