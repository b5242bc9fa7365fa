"""Read models: every query for what people read, in one place, returning frozen values.

The CLI uses them now and the API next; neither reads a repository nor opens a unit of work
to show something. Each read runs in a read-only transaction (``db.read_queries.reading``):
one consistent snapshot that never takes SQLite's write lock, so watching a large job never
slows its workers. The SQL lives in ``db/read_queries.py``; the lifecycle's own reads (what a
task needs to act) stay on the ``Repository``.

    job_summary(rt, job_id)          JobSummary: status and item counts (progress bars)
    job_detail(rt, job_id)           JobDetail: + usage, cost, provider batches (status)
    list_jobs(rt, ...)               Page[JobSummary]: newest first; filters; cursor
    job_events(rt, job_id, ...)      Page[EventRecord]: the timeline; cursor = last event id
    iter_job_events(rt, job_id)      Iterator[EventRecord]: all of it, page after page
    job_items(rt, job_id, ...)       Page[ItemSummary]: status filter; cursor = last seq
    job_results(rt, job_id)          Iterator[ResultRecord]: one per input line, in order
    lineage_results(rt, job_id)      Iterator[ResultRecord]: the same, merged over a job and
                                     its retries (latest attempt wins)
    usage.usage_report(rt, by, ...)  list[UsageRow]: spend grouped by provider/model/tenant/day

Every function takes ``tenant``: None reads all tenants; otherwise another tenant's job is
``NotFoundError``, like a job that does not exist. A bad ``cursor`` or ``limit`` is
``InputError``.
"""

from llmbatch.service_layer.read_models.cursors import MAX_PAGE_SIZE
from llmbatch.service_layer.read_models.items import job_items, job_results
from llmbatch.service_layer.read_models.jobs import job_detail, job_summary, list_jobs
from llmbatch.service_layer.read_models.lineage import lineage_results
from llmbatch.service_layer.read_models.timeline import iter_job_events, job_events
from llmbatch.service_layer.read_models.values import (
    FINAL_ITEM_STATUSES,
    BatchSummary,
    EventRecord,
    ItemAttempt,
    ItemSummary,
    JobDetail,
    JobSummary,
    Page,
    ResultRecord,
)

__all__ = [
    "FINAL_ITEM_STATUSES",
    "MAX_PAGE_SIZE",
    "BatchSummary",
    "EventRecord",
    "ItemAttempt",
    "ItemSummary",
    "JobDetail",
    "JobSummary",
    "Page",
    "ResultRecord",
    "iter_job_events",
    "job_detail",
    "job_events",
    "job_items",
    "job_results",
    "job_summary",
    "lineage_results",
    "list_jobs",
]
