"""Budgets through the services: a job's --max-cost and a tenant's monthly budget refuse at
submit with the figures, or make batches wait; a batch reserves its upper bound before it goes
and settles to its actual cost when its results are stored."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from llmbatch.config import ModelConfig, ProviderConfig
from llmbatch.cost_config import BudgetConfig, CostConfig
from llmbatch.db import tables
from llmbatch.domain.states import BatchStatus, JobStatus
from llmbatch.pricing import from_pusd
from llmbatch.service_layer.budgets import BudgetExceededError
from llmbatch.service_layer.jobs import create_job, retry_lineage

from .harness import MODEL, Driver

Writer = Callable[..., Path]
PRICED = ProviderConfig(models=(ModelConfig(name=MODEL, input_usd_per_mtok=Decimal(1),
                                            output_usd_per_mtok=Decimal(4)),))
# A request of write_jsonl is estimated at 10 input tokens (bound: 15) with max_tokens 20: its
# batch bound is (15 x $1 + 20 x $4) / 1M / 2 = $0.0000475, three of them $0.0001425. The
# fake provider answers 10 input and 5 output tokens: (10 x $1 + 5 x $4) / 1M / 2 = $0.000015.


@pytest.fixture
def budget_driver(make_driver: Callable[..., Driver],
                  database_url: str) -> Callable[..., Driver]:
    """A driver on each backend with prices and ``limit`` as the default tenant's budget."""
    def build(limit: str | None, on_exceed: str = "refuse") -> Driver:
        tenants = {} if limit is None else {"default": Decimal(limit)}
        return make_driver(PRICED, database_url=database_url, cost=CostConfig(
            budgets=BudgetConfig(tenants=tenants, on_exceed=on_exceed)))
    return build


def ledger(driver: Driver) -> dict[str, int]:
    with driver.rt.engine.connect() as conn:
        return {r.scope: int(r.committed_pusd) for r in conn.execute(
            select(tables.budget_ledgers)).all()}


def reservations(driver: Driver) -> list[tuple[str, int, int | None]]:
    with driver.rt.engine.connect() as conn:
        return [(r.status, int(r.reserved_pusd), r.actual_pusd) for r in conn.execute(
            select(tables.budget_reservations)).all()]


def test_a_job_over_its_max_cost_is_refused_with_the_figures_and_nothing_is_stored(
        budget_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = budget_driver(None)
    with pytest.raises(BudgetExceededError) as caught:
        create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL,
                   max_cost=Decimal("0.0001"))
    assert caught.value.field == "max_cost"
    assert caught.value.message == (
        "job refused: over the job's --max-cost: $0.0001 limit, $0 already committed, this "
        "needs up to $0.0001425 more")
    with driver.rt.engine.connect() as conn:
        assert conn.execute(select(tables.jobs)).all() == []


def test_a_batch_reserves_its_bound_and_settles_to_the_items_cost(
        budget_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = budget_driver("1")
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL,
                           max_cost=Decimal("0.0002"))
    bounds = [int(i.cost_bound_pusd) for i in driver.items(job_id)]
    assert bounds == [47_500_000] * 3
    driver.fake.polls_to_finish = None
    driver.drain()  # planned and submitted: the bound is held
    assert reservations(driver) == [("held", sum(bounds), None)]
    assert set(ledger(driver).values()) == {sum(bounds)}

    driver.fake.polls_to_finish = 0
    job = driver.run(job_id)

    actual = sum(int(i.cost_pusd) for i in driver.items(job_id))
    assert job.status is JobStatus.SUCCEEDED and job.cost_usd == from_pusd(actual)
    assert actual == 3 * (10 * 1 + 5 * 4) * 10**6 // 2  # 10 in, 5 out at half of $1 / $4
    assert reservations(driver) == [("settled", sum(bounds), actual)]
    assert set(ledger(driver).values()) == {actual}


def test_a_tenant_over_its_month_is_refused_at_submit(
        budget_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = budget_driver("0.0002")
    driver.fake.polls_to_finish = None
    create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    driver.drain()  # its batch holds $0.0001425 of the $0.0002

    with pytest.raises(BudgetExceededError) as caught:
        create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    assert caught.value.field == "tenant"
    assert "monthly budget of default" in caught.value.message
    assert "$0.0002 limit, $0.0001425 already committed" in caught.value.message


def test_waiting_batches_say_why_and_go_once_the_budget_settles(
        budget_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = budget_driver("0.0002", on_exceed="wait")
    driver.fake.polls_to_finish = None
    first, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    driver.drain()
    second, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    driver.drain()

    (waiting,) = driver.batches(second)
    assert waiting.status is BatchStatus.PLANNED
    assert waiting.error_code == "waiting_for_budget"
    (event,) = [e for e in driver.event_rows(second) if e.type == "batch.waiting_for_quota"]
    assert event.data["reason"] == "waiting_for_budget"
    assert "monthly budget of default" in event.data["message"]

    driver.fake.polls_to_finish = 0
    assert driver.run(first).status is JobStatus.SUCCEEDED
    assert driver.run(second).status is JobStatus.SUCCEEDED
    limit = 200_000_000  # $0.0002
    assert sum(a for _, _, a in reservations(driver) if a is not None) <= limit
    assert [s for s, _, _ in reservations(driver)] == ["settled", "settled"]


def test_a_batch_that_can_never_fit_fails_with_the_figures(
        budget_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    driver = budget_driver("0.0001", on_exceed="wait")
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    job = driver.run(job_id)

    assert job.status is JobStatus.FAILED
    (batch,) = driver.batches(job_id)
    assert batch.error_code == "over_budget" and "$0.0001 limit" in (batch.error or "")
    assert {i.error["code"] for i in driver.items(job_id)} == {"over_budget"}
    assert reservations(driver) == []


def test_a_retry_reserves_the_bound_of_the_items_it_sends_again(
        budget_driver: Callable[..., Driver], write_jsonl: Writer) -> None:
    """The child job's items keep their bound (``copy_latest_for_retry``): its batch holds
    it against the budgets as the parent's did, instead of going out for nothing."""
    driver = budget_driver("1")
    driver.fake.outcomes.update({"q-0": ["permanent"]})
    job_id, _ = create_job(driver.rt, write_jsonl(3), provider="fake", model=MODEL)
    driver.fake.polls_to_finish = 0
    driver.run(job_id)
    (bound,) = [int(i.cost_bound_pusd) for i in driver.items(job_id) if i.custom_id == "q-0"]

    child = retry_lineage(driver.rt, job_id)
    assert [int(i.cost_bound_pusd) for i in driver.items(child.child_id)] == [bound]
    driver.fake.polls_to_finish = None
    driver.drain()  # the retry's batch is sent, its bound held
    assert ("held", bound, None) in reservations(driver)
