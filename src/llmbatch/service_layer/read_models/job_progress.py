"""Read model of a running job's progress as honestly as it can be told: the items whose
results are stored, what the provider says it has done on the batches not fetched yet (some
providers report live counts; others stay at zero until the end), an ETA from the polling
model's outlook, and why it is held up if it is."""

from __future__ import annotations

from dataclasses import dataclass

from llmbatch.bootstrap import Runtime
from llmbatch.config import LatencyPrior
from llmbatch.domain.models import BatchPhase
from llmbatch.domain.polling import expected_time_left_s
from llmbatch.domain.states import BatchStatus
from llmbatch.errors import LLMBatchError
from llmbatch.service_layer.read_models.jobs import job_detail
from llmbatch.service_layer.read_models.stalls import Stall, why_waiting
from llmbatch.service_layer.read_models.values import BatchSummary, JobDetail

__all__ = ["JobProgress", "job_progress"]

_AT_PROVIDER = (BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING, BatchStatus.ENDED)


@dataclass(frozen=True, slots=True)
class JobProgress:
    """``fetched``: items in a final status in the database. ``at_provider_done`` of
    ``at_provider_total``: requests the provider reports done (completed or failed) in the
    batches whose results are not stored yet. ``eta_s``: median time left of the slowest
    running batch (None when nothing runs at the provider yet)."""

    job: JobDetail
    fetched: int
    at_provider_done: int
    at_provider_total: int
    eta_s: float | None
    reasons: tuple[Stall, ...]

    @property
    def done(self) -> int:
        """What a bar shows as done: stored results plus provider-side counts not fetched."""
        return min(self.fetched + self.at_provider_done, self.job.item_count)


def _provider_done(batch: BatchSummary) -> int:
    counts = batch.request_counts
    return int(counts.get("completed", 0)) + int(counts.get("failed", 0))


def _prior(rt: Runtime, provider: str) -> LatencyPrior | None:
    try:
        own = rt.registry.get(provider).latency_prior
    except LLMBatchError:  # a provider this process cannot build: no ETA, nothing worse
        return None
    return rt.config.polling.prior(provider, own)


def job_progress(rt: Runtime, job_id: str, *, tenant: str | None = None) -> JobProgress:
    """The job's progress now (``NotFoundError`` if there is no such job, or it is another
    ``tenant``'s)."""
    job = job_detail(rt, job_id, tenant=tenant)
    now = rt.clock()
    unfetched = [b for b in job.batches if b.status in _AT_PROVIDER]
    eta: float | None = None
    running = [b for b in unfetched if b.status is BatchStatus.IN_PROGRESS and b.submitted_at]
    prior = _prior(rt, job.provider) if running else None
    if prior is not None:
        eta = max(expected_time_left_s(
            rt.config.polling, prior=prior, phase=BatchPhase.RUNNING,
            elapsed_s=(now - b.submitted_at).total_seconds() if b.submitted_at else 0.0,
            done=_provider_done(b), total=int(b.request_counts.get("total", b.item_count)))
            for b in running)
    return JobProgress(
        job=job, fetched=job.finished_items,
        at_provider_done=sum(_provider_done(b) for b in unfetched),
        at_provider_total=sum(b.item_count for b in unfetched), eta_s=eta,
        reasons=tuple(why_waiting(job, now, lease_s=rt.config.worker.lease_s)))
