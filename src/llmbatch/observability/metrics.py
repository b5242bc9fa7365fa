"""Every Prometheus metric llmbatch exports, defined here and nowhere else.

Names start with ``llmbatch_`` and carry their unit (``_seconds``, ``_usd``, ``_total``);
labels are bounded: provider, model, status, operation, outcome, event type, never a job,
batch or item id.

Two kinds:

* **counters and histograms** (``Metrics``), updated by the process doing the work: the unit of
  work reports what it committed (``observability.recorder``) and ``limits.provider_call``
  times every provider call. They are built on first use, so a worker can switch the client
  library to multiprocess mode first (``enable_multiprocess``): with prefork pools every
  child writes its own files under ``PROMETHEUS_MULTIPROC_DIR`` and the exposing process
  sums them.
* **gauges read from the database at scrape time** (``DatabaseCollector``): batches by status,
  items not yet final, the age of the oldest unfinished job and batch, expired leases. They
  are the truth of every worker together, so any one process can expose them.

Exposition: ``serve_metrics(port, ...)`` for ``llmbatch worker --metrics-port``, and
``metrics_app(...)``, an ASGI app the API mounts at ``/metrics``.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

__all__ = [
    "DatabaseCollector",
    "Metrics",
    "enable_multiprocess",
    "exposition_registry",
    "metrics",
    "metrics_app",
    "serve_metrics",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Job and batch lifetimes run from seconds (the emulator) to a day (the providers' deadline).
LIFETIME_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 43200,
                    86400, 172800)
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
FINALIZE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


@dataclass(frozen=True)
class Metrics:
    """The counters and histograms (see ``docs/operations.md`` for what each one means)."""

    jobs_created: Counter
    jobs_finished: Counter
    items_finished: Counter
    job_duration: Histogram
    batch_turnaround: Histogram
    fetch_to_finalize: Histogram
    provider_calls: Counter
    provider_call_duration: Histogram
    retries: Counter
    rebatches: Counter
    adoptions: Counter
    polls: Counter
    batch_events: Counter
    tokens: Counter
    cost: Counter

    @classmethod
    def build(cls, registry: CollectorRegistry | None = REGISTRY) -> Metrics:
        reg = registry
        return cls(
            jobs_created=Counter(
                "llmbatch_jobs_created_total", "Jobs stored (retries of a job included).",
                ["provider", "model"], registry=reg),
            jobs_finished=Counter(
                "llmbatch_jobs_finished_total", "Jobs that reached a final status.",
                ["provider", "model", "status"], registry=reg),
            items_finished=Counter(
                "llmbatch_items_finished_total",
                "Items of finished jobs, by their final status.",
                ["provider", "model", "status"], registry=reg),
            job_duration=Histogram(
                "llmbatch_job_duration_seconds", "Job created -> final status.",
                ["provider", "model", "status"], buckets=LIFETIME_BUCKETS, registry=reg),
            batch_turnaround=Histogram(
                "llmbatch_batch_turnaround_seconds",
                "Provider batch submitted -> ended at the provider.",
                ["provider", "model"], buckets=LIFETIME_BUCKETS, registry=reg),
            fetch_to_finalize=Histogram(
                "llmbatch_fetch_to_finalize_seconds",
                "Last batch of a job fetched -> job finalized.",
                ["provider"], buckets=FINALIZE_BUCKETS, registry=reg),
            provider_calls=Counter(
                "llmbatch_provider_calls_total",
                "Provider API operations (submit, poll, cancel, fetch, cleanup) by outcome.",
                ["provider", "operation", "outcome"], registry=reg),
            provider_call_duration=Histogram(
                "llmbatch_provider_call_duration_seconds",
                "Time inside one provider operation (a fetch includes storing its results).",
                ["provider", "operation"], buckets=CALL_BUCKETS, registry=reg),
            retries=Counter(
                "llmbatch_retries_total",
                "Provider steps that failed and were scheduled again (submit or call).",
                ["provider", "step"], registry=reg),
            rebatches=Counter(
                "llmbatch_rebatches_total",
                "Batches planned again for items a previous batch did not settle.",
                ["provider"], registry=reg),
            adoptions=Counter(
                "llmbatch_adoptions_total",
                "Provider batches adopted (created by an attempt that did not record them).",
                ["provider"], registry=reg),
            polls=Counter(
                "llmbatch_polls_total", "Polls that found a batch still running.",
                ["provider"], registry=reg),
            batch_events=Counter(
                "llmbatch_events_total", "Timeline events written, by type.",
                ["provider", "type"], registry=reg),
            tokens=Counter(
                "llmbatch_tokens_total", "Tokens reported on fetched results.",
                ["provider", "model", "kind"], registry=reg),
            cost=Counter(
                "llmbatch_cost_usd_total", "Cost of fetched results (configured prices).",
                ["provider", "model"], registry=reg),
        )

    def initialize(self, providers: Mapping[str, Iterable[str]]) -> None:
        """Create the series of every provider (and model) at zero, so a rate over them is
        0, not "no data", before the first event of a kind (Prometheus' advice)."""
        from llmbatch.domain.states import JobStatus, is_terminal

        for provider, models in providers.items():
            for operation in ("submit", "poll", "cancel", "fetch"):
                self.provider_calls.labels(provider, operation, "ok")
            for step in ("submit", "call"):
                self.retries.labels(provider, step)
            self.rebatches.labels(provider)
            self.adoptions.labels(provider)
            self.polls.labels(provider)
            for model in models:
                self.jobs_created.labels(provider, model)
                for status in JobStatus:
                    if is_terminal(status):
                        self.jobs_finished.labels(provider, model, str(status))
                for kind in ("input", "output", "cached", "reasoning"):
                    self.tokens.labels(provider, model, kind)
                self.cost.labels(provider, model)


_lock = threading.Lock()
_built: list[Metrics] = []


def metrics() -> Metrics:
    """The process's metrics, built on first use (after ``enable_multiprocess``, if any)."""
    if not _built:
        with _lock:
            if not _built:
                _built.append(Metrics.build())
    return _built[0]


def enable_multiprocess(directory: Path) -> None:
    """Switch this process (and the children it forks) to multiprocess mode: values go to
    files under ``directory``, emptied first (files of a previous run would be summed in).
    Must run before the first metric is touched."""
    if _built:
        raise RuntimeError("metrics were built before multiprocess mode was enabled")
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    # The client library picks its value class when imported; choose again now.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


# ---- gauges read from the database ---------------------------------------------------------

DeadlineOf = Callable[[str], float | None]


class DatabaseCollector(Collector):
    """Gauges computed at scrape time with a handful of grouped queries on a read-only
    snapshot (``db.engine.read_only_connection``)."""

    def __init__(self, engine: Engine, deadline_of: DeadlineOf | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._engine = engine
        self._deadline_of = deadline_of
        self._clock = clock

    def describe(self) -> Iterable[Metric]:
        return []  # computed at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        from llmbatch.db.engine import read_only_connection
        from llmbatch.db.result_totals import counts_of
        from llmbatch.db.tables import items, jobs, provider_batches
        from llmbatch.domain.states import BatchStatus, ItemStatus, JobStatus

        now = self._clock()
        b, j, i = provider_batches.c, jobs.c, items.c
        open_jobs = [str(s) for s in (JobStatus.PENDING, JobStatus.RUNNING,
                                      JobStatus.CANCELLING)]
        open_batches = [str(s) for s in (BatchStatus.PLANNED, BatchStatus.SUBMITTING,
                                         BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING,
                                         BatchStatus.ENDED)]
        unsettled = [str(s) for s in (ItemStatus.PENDING, ItemStatus.QUEUED,
                                      ItemStatus.SUBMITTED)]
        with read_only_connection(self._engine) as conn:
            by_status = conn.execute(select(b.provider, b.status, func.count())
                                     .group_by(b.provider, b.status)).all()
            pending = conn.execute(
                select(j.provider, i.status, func.count()).select_from(
                    items.join(jobs, i.job_id == j.id))
                .where(j.status.in_(open_jobs), i.status.in_(unsettled))
                .group_by(j.provider, i.status)).all()
            # Items whose results are stored stay ``submitted`` in their row (db.item_view).
            settled_by_batch = conn.execute(
                select(b.provider, b.result_totals).select_from(
                    provider_batches.join(jobs, b.job_id == j.id))
                .where(j.status.in_(open_jobs), b.result_totals.is_not(None))).all()
            job_counts = conn.execute(select(j.provider, j.model, j.status, func.count())
                                      .group_by(j.provider, j.model, j.status)).all()
            oldest_job = conn.execute(select(j.provider, func.min(j.created_at))
                                      .where(j.status.in_(open_jobs))
                                      .group_by(j.provider)).all()
            oldest_batch = conn.execute(select(b.provider, func.min(b.created_at))
                                        .where(b.status.in_(open_batches))
                                        .group_by(b.provider)).all()
            running = conn.execute(select(b.provider, func.min(b.submitted_at))
                                   .where(b.status.in_([str(BatchStatus.IN_PROGRESS),
                                                        str(BatchStatus.CANCELLING)]))
                                   .group_by(b.provider)).all()
            expired = conn.execute(
                select(b.provider, func.count()).where(
                    b.lease_owner.is_not(None), b.lease_until < now,
                    b.status.in_(open_batches))
                .group_by(b.provider)).all()
        providers = {p for p, _, _ in by_status} | {p for p, _ in oldest_job}

        g = GaugeMetricFamily("llmbatch_jobs", "Jobs by status (database; every process's).",
                              labels=["provider", "model", "status"])
        for provider, model, status, count in job_counts:
            g.add_metric([provider, model, status], count)
        yield g

        g = GaugeMetricFamily("llmbatch_batches", "Provider batches by status (database).",
                              labels=["provider", "status"])
        seen = {(p, s) for p, s, _ in by_status}
        for provider, status, count in by_status:
            g.add_metric([provider, status], count)
        for provider in providers:  # every status present, so a rate or a sum never gaps
            for status in BatchStatus:
                if (provider, str(status)) not in seen:
                    g.add_metric([provider, str(status)], 0)
        yield g

        g = GaugeMetricFamily("llmbatch_items_pending",
                              "Items of unfinished jobs not yet final (database).",
                              labels=["provider", "status"])
        counted = {(p, s): n for p, s, n in pending}
        for provider, stored in settled_by_batch:
            key = (provider, str(ItemStatus.SUBMITTED))
            counted[key] = counted.get(key, 0) - sum(counts_of(stored).values())
        for provider in providers | {p for p, _ in counted}:
            for status in unsettled:
                g.add_metric([provider, status], counted.get((provider, status), 0))
        yield g

        yield self._ages("llmbatch_oldest_unfinished_job_age_seconds",
                         "Age of the oldest job not final (0 when none).", oldest_job,
                         providers, now)
        yield self._ages("llmbatch_oldest_unfinished_batch_age_seconds",
                         "Age of the oldest provider batch not yet fetched (0 when none).",
                         oldest_batch, providers, now)
        yield self._ages("llmbatch_oldest_running_batch_age_seconds",
                         "Time since the oldest batch still at the provider was submitted.",
                         running, providers, now)

        g = GaugeMetricFamily("llmbatch_leases_expired",
                              "Open batches whose lease ran out (a worker died or stalls).",
                              labels=["provider"])
        leases: dict[str, int] = {p: n for p, n in expired}
        for provider in providers | set(leases):
            g.add_metric([provider], leases.get(provider, 0))
        yield g

        if self._deadline_of is not None:
            g = GaugeMetricFamily(
                "llmbatch_batch_deadline_seconds",
                "How long a batch may run at the provider before llmbatch calls it stuck "
                "(provider deadline + stuck_grace_s).", labels=["provider"])
            for provider in sorted(providers):
                deadline = self._deadline_of(provider)
                if deadline is not None:
                    g.add_metric([provider], deadline)
            yield g

    @staticmethod
    def _ages(name: str, doc: str, rows: Iterable[Any], providers: set[str],
              now: datetime) -> GaugeMetricFamily:
        g = GaugeMetricFamily(name, doc, labels=["provider"])
        oldest: Mapping[str, Any] = {p: t for p, t in rows if t is not None}
        for provider in providers | set(oldest):
            moment = oldest.get(provider)
            if isinstance(moment, str):
                moment = datetime.fromisoformat(moment)
            if isinstance(moment, datetime) and moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            g.add_metric([provider], max((now - moment).total_seconds(), 0.0)
                         if moment is not None else 0.0)
        return g


class _ProcessMetrics(Collector):
    """This process's (or, in multiprocess mode, every process's) counters and histograms."""

    def __init__(self) -> None:
        self._multi: Collector | None = None
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            self._multi = multiprocess.MultiProcessCollector(None)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        metrics()  # build them, so a scrape before any work still lists every family
        if self._multi is not None:
            return self._multi.collect()
        return REGISTRY.collect()


def exposition_registry(engine: Engine | None = None,
                        deadline_of: DeadlineOf | None = None) -> CollectorRegistry:
    """A registry for one exposition endpoint: the counters and histograms (summed over
    processes in multiprocess mode) and, given an engine, the database gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProcessMetrics())
    if engine is not None:
        registry.register(DatabaseCollector(engine, deadline_of))
    return registry


def metrics_app(engine: Engine | None = None,
                deadline_of: DeadlineOf | None = None) -> Callable[..., Any]:
    """An ASGI app serving the metrics in the Prometheus text format: mount it at
    ``/metrics`` (``app.mount("/metrics", metrics_app(rt.engine, deadline_of(rt)))``)."""
    from prometheus_client import make_asgi_app

    return make_asgi_app(exposition_registry(engine, deadline_of))


def serve_metrics(port: int, engine: Engine | None = None,
                  deadline_of: DeadlineOf | None = None, host: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` on ``port`` from a daemon thread of this process."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=exposition_registry(engine, deadline_of))

