"""Generates llmbatch-dashboard.json (run from the repository root: python deploy/grafana/make_dashboard.py).
The panels and their expressions are listed here once; tests/integration/test_prometheus.py asks a
real Prometheus for every expression of the generated file."""
import json
panels_spec = [
  ("Jobs", [
    ("Jobs by status", "timeseries", "sum by (status) (llmbatch_jobs)", "short"),
    ("Jobs created per minute (API)", "timeseries", "sum by (provider, model) (rate(llmbatch_jobs_created_total[5m])) * 60", "short"),
    ("Jobs finished (1h) by status", "timeseries", "sum by (status) (increase(llmbatch_jobs_finished_total[1h]))", "short"),
    ("Items finished per minute by status", "timeseries", "sum by (status) (rate(llmbatch_items_finished_total[5m])) * 60", "short"),
    ("Job duration p95", "timeseries", "histogram_quantile(0.95, sum by (le, provider) (rate(llmbatch_job_duration_seconds_bucket[1h])))", "s"),
    ("Job duration p50", "timeseries", "histogram_quantile(0.5, sum by (le, provider) (rate(llmbatch_job_duration_seconds_bucket[1h])))", "s"),
  ]),
  ("Batches", [
    ("Batch turnaround p95 (submitted -> ended)", "timeseries", "histogram_quantile(0.95, sum by (le, provider) (rate(llmbatch_batch_turnaround_seconds_bucket[1h])))", "s"),
    ("Fetch -> finalize p95", "timeseries", "histogram_quantile(0.95, sum by (le, provider) (rate(llmbatch_fetch_to_finalize_seconds_bucket[1h])))", "s"),
    ("Batches by status", "timeseries", "sum by (status) (llmbatch_batches)", "short"),
    ("Items not yet final", "timeseries", "sum by (provider, status) (llmbatch_items_pending)", "short"),
    ("Oldest unfinished job", "stat", "max by (provider) (llmbatch_oldest_unfinished_job_age_seconds)", "s"),
    ("Oldest unfinished batch", "stat", "max by (provider) (llmbatch_oldest_unfinished_batch_age_seconds)", "s"),
    ("Oldest running batch vs deadline", "timeseries", "max by (provider) (llmbatch_oldest_running_batch_age_seconds) / on (provider) max by (provider) (llmbatch_batch_deadline_seconds)", "percentunit"),
    ("Expired leases", "stat", "sum(llmbatch_leases_expired)", "short"),
  ]),
  ("Providers", [
    ("Provider calls per minute by outcome", "timeseries", "sum by (provider, operation, outcome) (rate(llmbatch_provider_calls_total[5m])) * 60", "short"),
    ("Provider call latency p95", "timeseries", "histogram_quantile(0.95, sum by (le, provider, operation) (rate(llmbatch_provider_call_duration_seconds_bucket[5m])))", "s"),
    ("Provider error ratio", "timeseries", "(sum by (provider) (rate(llmbatch_provider_calls_total{outcome!~\"ok|deferred\"}[15m])) or 0 * sum by (provider) (rate(llmbatch_provider_calls_total[15m]))) / sum by (provider) (rate(llmbatch_provider_calls_total{outcome!=\"deferred\"}[15m]))", "percentunit"),
    ("Polls per minute", "timeseries", "sum by (provider) (rate(llmbatch_polls_total[5m])) * 60", "short"),
    ("Retries (1h)", "timeseries", "sum by (provider, step) (increase(llmbatch_retries_total[1h]))", "short"),
    ("Re-batches and adoptions (1h)", "timeseries", "sum by (provider) (increase(llmbatch_rebatches_total[1h])) + sum by (provider) (increase(llmbatch_adoptions_total[1h]))", "short"),
    ("Timeline events per minute by type", "timeseries", "sum by (type) (rate(llmbatch_events_total[5m])) * 60", "short"),
  ]),
  ("Usage and cost", [
    ("Tokens (1h) by kind", "timeseries", "sum by (provider, model, kind) (increase(llmbatch_tokens_total[1h]))", "short"),
    ("Cost (24h), USD", "stat", "sum by (provider, model) (increase(llmbatch_cost_usd_total[24h]))", "currencyUSD"),
  ]),
]
panels=[]; pid=1; y=0
for row, items in panels_spec:
    panels.append({"id": pid, "type": "row", "title": row, "collapsed": False, "gridPos": {"h":1,"w":24,"x":0,"y":y}, "panels": []}); pid+=1; y+=1
    x=0
    for title, kind, expr, unit in items:
        panels.append({"id": pid, "type": kind, "title": title,
                       "datasource": {"type": "prometheus", "uid": "${datasource}"},
                       "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
                       "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                       "options": {},
                       "targets": [{"refId": "A", "expr": expr, "datasource": {"type": "prometheus", "uid": "${datasource}"}}]})
        pid+=1; x+=8
        if x>=24: x=0; y+=8
    if x: y+=8
dash = {"title": "llmbatch", "uid": "llmbatch-overview", "tags": ["llmbatch"], "timezone": "utc",
        "schemaVersion": 39, "version": 1, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]},
        "annotations": {"list": []}, "editable": True, "panels": panels,
        "description": "llmbatch jobs, batches, provider calls and cost. Panels explained in docs/operations.md (Metrics)."}
json.dump(dash, open("deploy/grafana/llmbatch-dashboard.json","w"), indent=2)
print(len(panels))
