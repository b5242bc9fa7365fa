"""Metrics follow what the services commit: counters and histograms from the unit of work and
the provider calls, gauges read from the database at scrape time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from llmbatch.config import ModelConfig, ProviderConfig
from llmbatch.domain.states import JobStatus
from llmbatch.errors import TransientProviderError
from llmbatch.observability.metrics import exposition_registry, metrics
from llmbatch.service_layer.jobs import create_job

from .harness import MODEL, Driver

Writer = Callable[..., Path]


def value(name: str, **labels: str) -> float:
    metrics()
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(driver: Driver) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client import generate_latest

    text = generate_latest(exposition_registry(driver.rt.engine, lambda _p: 3600.0)).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_job_run_moves_the_counters_once_each(driver: Driver, write_jsonl: Writer) -> None:
    before = {
        "created": value("llmbatch_jobs_created_total", provider="fake", model=MODEL),
        "finished": value("llmbatch_jobs_finished_total", provider="fake", model=MODEL,
                          status="succeeded"),
        "items": value("llmbatch_items_finished_total", provider="fake", model=MODEL,
                       status="succeeded"),
        "durations": value("llmbatch_job_duration_seconds_count", provider="fake",
                           model=MODEL, status="succeeded"),
        "turnaround": value("llmbatch_batch_turnaround_seconds_count", provider="fake",
                            model=MODEL),
        "submits": value("llmbatch_provider_calls_total", provider="fake",
                         operation="submit", outcome="ok"),
        "poll_fail": value("llmbatch_provider_calls_total", provider="fake",
                           operation="poll", outcome="transient"),
        "retries": value("llmbatch_retries_total", provider="fake", step="call"),
        "polls": value("llmbatch_polls_total", provider="fake"),
        "input": value("llmbatch_tokens_total", provider="fake", model=MODEL, kind="input"),
        "cost": value("llmbatch_cost_usd_total", provider="fake", model=MODEL),
    }
    assert driver.fake is not None
    driver.fake.polls_to_finish = 2
    driver.fake.poll_errors = [TransientProviderError("blip", provider="fake")]
    job_id, _ = create_job(driver.rt, write_jsonl(4), provider="fake", model=MODEL)
    driver.drain()

    during = scrape(driver)
    assert during[("llmbatch_batches", (("provider", "fake"), ("status", "in_progress")))] == 1
    assert during[("llmbatch_items_pending",
                   (("provider", "fake"), ("status", "submitted")))] == 4
    assert during[("llmbatch_oldest_unfinished_job_age_seconds",
                   (("provider", "fake"),))] >= 0
    assert during[("llmbatch_batch_deadline_seconds", (("provider", "fake"),))] == 3600.0

    job = driver.run(job_id)
    assert job.status is JobStatus.SUCCEEDED

    after = {
        "created": value("llmbatch_jobs_created_total", provider="fake", model=MODEL),
        "finished": value("llmbatch_jobs_finished_total", provider="fake", model=MODEL,
                          status="succeeded"),
        "items": value("llmbatch_items_finished_total", provider="fake", model=MODEL,
                       status="succeeded"),
        "durations": value("llmbatch_job_duration_seconds_count", provider="fake",
                           model=MODEL, status="succeeded"),
        "turnaround": value("llmbatch_batch_turnaround_seconds_count", provider="fake",
                            model=MODEL),
        "submits": value("llmbatch_provider_calls_total", provider="fake",
                         operation="submit", outcome="ok"),
        "poll_fail": value("llmbatch_provider_calls_total", provider="fake",
                           operation="poll", outcome="transient"),
        "retries": value("llmbatch_retries_total", provider="fake", step="call"),
        "polls": value("llmbatch_polls_total", provider="fake"),
        "input": value("llmbatch_tokens_total", provider="fake", model=MODEL, kind="input"),
        "cost": value("llmbatch_cost_usd_total", provider="fake", model=MODEL),
    }
    delta = {k: after[k] - before[k] for k in before}
    assert delta == {"created": 1, "finished": 1, "items": 4, "durations": 1, "turnaround": 1,
                     "submits": 1, "poll_fail": 1, "retries": 1, "polls": 2, "input": 40,
                     "cost": 0}

    done = scrape(driver)
    assert done[("llmbatch_batches", (("provider", "fake"), ("status", "fetched")))] == 1
    assert done[("llmbatch_batches", (("provider", "fake"), ("status", "in_progress")))] == 0
    assert done.get(("llmbatch_items_pending",
                     (("provider", "fake"), ("status", "submitted"))), 0) == 0
    assert done[("llmbatch_leases_expired", (("provider", "fake"),))] == 0


def test_cost_is_counted_with_configured_prices(make_driver: Callable[..., Driver],
                                                write_jsonl: Writer) -> None:
    priced = make_driver(ProviderConfig(models=(ModelConfig(
        name=MODEL, input_usd_per_mtok=1000.0, output_usd_per_mtok=2000.0),)))
    before = value("llmbatch_cost_usd_total", provider="fake", model=MODEL)
    job_id, _ = create_job(priced.rt, write_jsonl(2), provider="fake", model=MODEL)
    job = priced.run(job_id)
    assert job.cost_usd  # the values already on the items, counted once
    assert round(value("llmbatch_cost_usd_total", provider="fake", model=MODEL) - before,
                 9) == round(float(job.cost_usd), 9)


def test_every_metric_name_has_the_prefix_and_no_id_label() -> None:
    families = list(REGISTRY.collect())
    ours = [f for f in families if f.name.startswith("llmbatch")]
    assert len(ours) >= 15
    for family in ours:
        for sample in family.samples:
            assert not {"job_id", "batch_id", "item_id", "custom_id"} & set(sample.labels)


def test_the_asgi_app_serves_every_family_for_the_api_to_mount(driver: Driver) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from llmbatch.observability.metrics import metrics_app

    api = FastAPI()
    api.mount("/metrics", metrics_app(driver.rt.engine, lambda _p: 60.0))
    with TestClient(api) as client:
        response = client.get("/metrics/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert {"llmbatch_provider_calls", "llmbatch_jobs_finished", "llmbatch_batches",
            "llmbatch_items_pending", "llmbatch_leases_expired"} <= names
