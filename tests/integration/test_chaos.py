"""Chaos: thirty jobs on all three providers while the emulator misbehaves and workers die.

PostgreSQL, a Redis broker, three ``llmbatch worker --pool prefork --concurrency 2`` and one
beat, against an emulator that answers ~20% of all calls with 5xx, throws 429 bursts with
Retry-After, fails 5% of the requests inside batches (plus a share of permanent failures in
three batches), expires one batch per provider half done and leaves two batches stuck until
their deadline. Meanwhile a killer SIGKILLs a worker's whole process group every 2-5 s and
starts it again. The first kills (up to ``MAX_AIMED_KILLS``) are aimed inside a submission:
the emulator holds one OpenAI or Gemini create back ``AIM_DELAY_S`` and the worker whose task
sent it is killed meanwhile, so the batch exists at the provider but not in our records; the
next attempt must adopt it (``adopted`` > 0), never send it again.

The wait ends when every job is terminal, or fails when nothing has moved for ``STALL_S`` (or
at the generous ``CAP_S``): no fixed wall-clock budget that a busy machine would miss.

Nobody steps in. Afterwards every job must be terminal, every input line must have exactly
one final result (and an error if it did not succeed), and the emulator must show no batch
billed twice: OpenAI and Gemini batches carry our batch id (metadata / displayName), so each
id was created at most once and every created batch is one we recorded; Anthropic batches
carry no tag, so any batch at the emulator that llmbatch did not record is listed and must be
explained by a submission a kill interrupted (the documented residual risk of the in-memory
submit journal).

What the emulator cannot make llmbatch do within a test: the tick's own deadline repair
(``scheduler._cancel_overdue``) fires ``stuck_grace_s`` after the provider class's
``deadline_s`` (24 h / 48 h on the wall clock), which config cannot shorten. The stuck batches
here instead end the way they do at the real providers: expired at the deadline, with partial
results, the rest re-batched.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmbatch.domain.states import JobStatus, is_terminal
from llmbatch.emulator.server import EmulatorServer

from .chaos_support import (
    DEADLINE_S,
    FINAL_BATCH_STATUSES,
    FINAL_ITEM_STATUSES,
    ITEM_MAX_ATTEMPTS,
    PROVIDERS,
    Burster,
    Fleet,
    Killer,
    anthropic_batches,
    anthropic_custom_ids,
    batch_rows,
    emulator_settings,
    event_rows,
    fault_rules,
    item_rows,
    job_prefix,
    stopping,
    timeline,
    write_chaos_config,
    write_job_file,
)
from .support import (
    REDIS_DBS,
    Cluster,
    PostgresServer,
    Processes,
    RedisDb,
    emulator_stats,
    reserved_redis_db,
    running_cluster,
    wait_while_progressing,
)

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(600)]

SEED = int(os.environ.get("LLMBATCH_CHAOS_SEED", "20240611"))
JOBS_PER_PROVIDER = 10
MIN_ITEMS, MAX_ITEMS = 8, 36
WORKERS = 3
KILL_WINDOW_S = 90.0
MAX_KILLS = 40
MAX_AIMED_KILLS = 10  # kills aimed inside a submission (between create and record)
# The wait ends when everything is terminal, or when nothing moved for STALL_S (longer than
# a stuck batch sits at the provider before its deadline), or at CAP_S, a generous bound for
# a run that keeps moving (a quiet machine needs about two minutes, a busy one more).
STALL_S = 5 * DEADLINE_S
CAP_S = 480.0
TAG = "llmbatch_batch_id"


@pytest.fixture(scope="module")
def chaos_redis() -> Iterator[RedisDb]:
    """A Redis database of our own: the session cluster's workers must not take our
    messages (they run another config), reserved like the session fixture does."""
    with reserved_redis_db(reversed(REDIS_DBS),
                           none_free="no free Redis database for the chaos cluster") as db:
        yield db


@pytest.fixture(scope="module")
def chaos_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator_settings(SEED)) as server:
        yield server


@pytest.fixture(scope="module")
def chaos_cluster(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer,
                  chaos_redis: RedisDb,
                  chaos_emulator: EmulatorServer) -> Iterator[tuple[Cluster, Fleet]]:
    """Three prefork workers (restartable) and a beat on a database of our own."""
    workdir = tmp_path_factory.mktemp("chaos-cluster")
    name, pg_url = postgres.create_database("chaos")
    fleets: list[Fleet] = []

    def start_fleet(processes: Processes) -> None:
        fleets.append(Fleet(processes, config_path, WORKERS))
        fleets[0].start_all()

    try:
        config_path = write_chaos_config(workdir / "llm_config.yaml", database_url=pg_url,
                                         broker_url=chaos_redis.url,
                                         emulator_url=chaos_emulator.url)
        with running_cluster(workdir, config_path, chaos_redis, chaos_emulator.url,
                             start_fleet) as cluster:
            yield cluster, fleets[0]
    finally:
        postgres.drop_database(name)


def create_jobs(cluster: Cluster, tmp_path: Path) -> dict[str, tuple[str, str, int]]:
    """Ten jobs per provider, 8-36 items each, interleaved; job id -> (provider, prefix, n)."""
    from llmbatch.service_layer.jobs import create_job

    rng = random.Random(SEED)
    jobs: dict[str, tuple[str, str, int]] = {}
    for n in range(JOBS_PER_PROVIDER):
        for provider, (model, _, _) in PROVIDERS.items():
            prefix = job_prefix(provider, n)
            count = rng.randint(MIN_ITEMS, MAX_ITEMS)
            path = write_job_file(tmp_path / f"{prefix}.jsonl", prefix, count)
            job_id, created = create_job(cluster.rt, path, provider=provider, model=model,
                                         name=prefix)
            assert created
            jobs[job_id] = (provider, prefix, count)
    return jobs


def keep_up(cluster: Cluster, fleet: Fleet) -> Callable[[], None]:
    """Fail if the beat died; restart (and count) a worker that died on its own."""
    def check() -> None:
        beat = next(p for p in cluster.processes.procs if p.name == "beat")
        if not beat.alive():
            pytest.fail(f"beat exited with {beat.popen.returncode}:\n{beat.tail()}",
                        pytrace=False)
        fleet.check_alive()
    return check


def test_jobs_survive_provider_faults_and_killed_workers(
        chaos_cluster: tuple[Cluster, Fleet], chaos_emulator: EmulatorServer,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cluster, fleet = chaos_cluster
    emulator = chaos_emulator
    emulator.reset(faults=True, stats=True)
    emulator.set_faults(fault_rules(), mode="replace")
    emulator.runtime.faults.reseed(SEED)  # the probability draws follow the seed too

    started = time.monotonic()
    jobs_in = create_jobs(cluster, tmp_path)
    job_ids = list(jobs_in)
    killer = Killer(fleet, seed=SEED, max_kills=MAX_KILLS, window_s=KILL_WINDOW_S,
                    emulator=emulator, rt=cluster.rt, max_aimed=MAX_AIMED_KILLS)
    burster = Burster(emulator, seed=SEED + 1, window_s=KILL_WINDOW_S)
    with stopping(killer, burster):
        killer.start()
        burster.start()
        jobs, stopped = wait_while_progressing(cluster.rt, job_ids, stall_s=STALL_S,
                                               cap_s=CAP_S, alive=keep_up(cluster, fleet))
    elapsed = time.monotonic() - started
    stats = emulator_stats(cluster.emulator_url)
    fired = emulator.runtime.faults.describe()
    emulator.clear_faults()  # the read-back calls below must not be faulted

    problems: list[str] = []
    bad_jobs: set[str] = set()
    rt = cluster.rt

    # -- every job terminal ------------------------------------------------------------------
    for job in jobs.values():
        if not is_terminal(job.status):
            problems.append(f"job {job.id} ({jobs_in[job.id][1]}) not terminal: {job.status} "
                            f"{ {str(k): v for k, v in job.counts.items()} }")
            bad_jobs.add(job.id)
        elif job.status not in (JobStatus.SUCCEEDED, JobStatus.COMPLETED_WITH_FAILURES):
            problems.append(f"job {job.id} ({jobs_in[job.id][1]}) ended {job.status}: "
                            f"{job.error}")
            bad_jobs.add(job.id)

    # -- every item exactly one final result ----------------------------------------------------
    rows = item_rows(rt, job_ids)
    by_job: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_job[row.job_id].append(row)
    lost = 0
    item_status = Counter[str]()
    for job_id, (_, prefix, count) in jobs_in.items():
        mine = by_job[job_id]
        expected = [f"{prefix}-{i:05d}" for i in range(count)]
        if [r.custom_id for r in mine] != expected or [r.seq for r in mine] != list(range(count)):
            problems.append(f"job {job_id} ({prefix}): {len(mine)} item rows for {count} lines "
                            "or not one row per line in order")
            bad_jobs.add(job_id)
        job_counts = {str(k): v for k, v in jobs[job_id].counts.items()}
        row_counts = Counter(r.status for r in mine)
        if sum(job_counts.values()) != count or dict(row_counts) != job_counts:
            problems.append(f"job {job_id} ({prefix}): counts {job_counts} vs rows "
                            f"{dict(row_counts)} vs {count} lines")
            bad_jobs.add(job_id)
        for r in mine:
            item_status[r.status] += 1
            where = f"job {job_id} ({prefix}) item {r.custom_id}"
            if r.status not in FINAL_ITEM_STATUSES:
                lost += 1
                problems.append(f"{where}: not final ({r.status}, attempts {r.attempts}, "
                                f"batch {r.batch_id})")
                bad_jobs.add(job_id)
                continue
            if r.status == "succeeded":
                if r.response is None or r.output_text is None or r.error is not None:
                    problems.append(f"{where}: succeeded without a response or with an error")
                    bad_jobs.add(job_id)
            elif not r.error:
                problems.append(f"{where}: {r.status} without an error")
                bad_jobs.add(job_id)
            elif r.error.get("retryable") and r.attempts < ITEM_MAX_ATTEMPTS:
                problems.append(f"{where}: {r.status} with a retryable error after only "
                                f"{r.attempts}/{ITEM_MAX_ATTEMPTS} attempts: {r.error}")
                bad_jobs.add(job_id)
            if not 1 <= r.attempts <= ITEM_MAX_ATTEMPTS:
                problems.append(f"{where}: {r.attempts} attempts "
                                f"(allowed 1..{ITEM_MAX_ATTEMPTS})")
                bad_jobs.add(job_id)

    # -- batches: all settled; no duplicate billed batch ---------------------------------------
    batches = batch_rows(rt, job_ids)
    evs = event_rows(rt, job_ids)
    for b in batches:
        if is_terminal(jobs[b.job_id].status) and b.status not in FINAL_BATCH_STATUSES:
            problems.append(f"batch {b.id} of terminal job {b.job_id} is {b.status}")
            bad_jobs.add(b.job_id)
    # One transition, one event: a redelivered or replayed task must not write it again.
    once = Counter((e.batch_id or e.job_id,
                    "batch.sent" if e.type in ("batch.submitted", "batch.adopted") else e.type)
                   for e in evs if e.type in ("batch.submitted", "batch.adopted", "batch.ended",
                                              "batch.fetched", "job.completed"))
    for (entity, kind), n in once.items():
        if n > 1:
            problems.append(f"{entity}: {n} {kind} events")
    completed = {e.job_id for e in evs if e.type == "job.completed"}
    for job_id in job_ids:
        if is_terminal(jobs[job_id].status) and job_id not in completed:
            problems.append(f"job {job_id}: terminal without a job.completed event")
    recorded: dict[str, set[str]] = defaultdict(set)  # provider -> our batch ids sent
    provider_ids: dict[str, set[str]] = defaultdict(set)  # provider -> provider batch ids
    for b in batches:
        if b.provider_batch_id:
            recorded[b.provider].add(b.id)
            provider_ids[b.provider].add(b.provider_batch_id)
    duplicates = 0
    tag_keys = {"openai": f"{TAG}=", "gemini": "displayName="}
    for provider, key in tag_keys.items():
        tags = Counter({k.removeprefix(key): n
                        for k, n in stats["creates_by_tag"].get(provider, {}).items()
                        if k.startswith(key)})
        created = int(stats["batches_created"].get(provider, 0))
        for tag, n in tags.items():
            if n > 1:
                duplicates += n - 1
                problems.append(f"{provider}: batch {tag} created {n} times at the provider")
        unrecorded = set(tags) - recorded[provider]
        if unrecorded:
            problems.append(f"{provider}: created at the provider but never recorded: "
                            f"{sorted(unrecorded)}")
        if set(recorded[provider]) - set(tags):
            problems.append(f"{provider}: recorded but not created under our tag: "
                            f"{sorted(set(recorded[provider]) - set(tags))}")
        if created != sum(tags.values()):
            problems.append(f"{provider}: {created} batches created, {sum(tags.values())} "
                            "carry our tag")
    # Anthropic: no tag. Which batches at the emulator did llmbatch not record?
    interrupted = Counter(
        (b.job_id, b.item_count) for b in batches
        if b.provider == "anthropic"
        and any(e.batch_id == b.id and e.type == "batch.submit_interrupted" for e in evs))
    orphans = [a for a in anthropic_batches(cluster.emulator_url)
               if a["id"] not in provider_ids["anthropic"]]
    orphan_notes = []
    prefix_to_job = {prefix: job_id for job_id, (_, prefix, _) in jobs_in.items()}
    for orphan in orphans:
        duplicates += 1
        try:
            keys = anthropic_custom_ids(cluster.emulator_url, orphan["id"])
        except Exception as exc:  # e.g. still running
            keys = []
            orphan_notes.append(f"{orphan['id']}: results unreadable ({exc})")
        job_id = prefix_to_job.get(keys[0].rsplit("-", 1)[0]) if keys else None
        explained = job_id is not None and interrupted[(job_id, len(keys))] > 0
        if explained:
            interrupted[(job_id, len(keys))] -= 1
        orphan_notes.append(f"{orphan['id']}: {len(keys)} requests of job {job_id} "
                            f"({keys[0] if keys else '?'}..), "
                            + ("a submission interrupted by a kill (the in-memory submit "
                               "journal died with the worker)" if explained
                               else "NOT explained by an interrupted submission"))
        if not explained:
            problems.append(f"anthropic: unrecorded batch {orphan['id']} not explained by an "
                            "interrupted submission")
    anthropic_created = int(stats["batches_created"].get("anthropic", 0))

    # -- figures ---------------------------------------------------------------------------------
    statuses = Counter(str(j.status) for j in jobs.values())
    ev_types = Counter(e.type for e in evs)
    ended = Counter(e.data.get("provider_status")
                    for e in evs if e.type == "batch.ended")
    call_faults = {p: sum(ops.values()) for p, ops in stats["faults_injected"].items()}
    calls = {p: sum(ops.values()) for p, ops in stats["calls"].items()}
    rule_fired = Counter[str]()
    for rule in fired:
        label = (f"http{rule['status']}" if rule["kind"] == "http" else rule["kind"])
        rule_fired[label] += rule["fired"]
    figures = {
        "seed": SEED,
        "jobs": len(jobs_in), "job_statuses": dict(statuses),
        "items": sum(n for _, _, n in jobs_in.values()), "item_statuses": dict(item_status),
        "batches": len(batches), "rounds": max((b.attempt for b in batches), default=0),
        "batches_created": stats["batches_created"],
        "anthropic_created_vs_recorded": [anthropic_created, len(provider_ids["anthropic"])],
        "worker_kills": len(killer.kills), "worker_restarts": dict(fleet.restarts),
        "kills_inside_submissions": len(killer.aimed), "aims_missed": killer.aims_missed,
        "created_but_unrecorded_at_kill": len(killer.landed),
        "calls": calls, "call_faults_injected": call_faults,
        "faults_fired_by_rule": dict(rule_fired),
        "bursts_429": len(burster.bursts),
        "provider_end_states": dict(ended),
        "submit_interrupted": dict(Counter(
            b.provider for b in batches for e in evs
            if e.batch_id == b.id and e.type == "batch.submit_interrupted")),
        "adopted": ev_types["batch.adopted"], "submit_retries": ev_types["batch.submit_retry"],
        # Batches that ran until the emulator's deadline (the stuck ones) and how they ended.
        "stuck_batches": [
            [b.provider, round((b.ended_at - b.submitted_at).total_seconds(), 1),
             b.provider_status, b.request_counts]
            for b in batches if b.ended_at and b.submitted_at
            and (b.ended_at - b.submitted_at).total_seconds() > DEADLINE_S - 3],
        "duplicates": duplicates, "lost_items": lost,
        "seconds": round(elapsed, 1),
    }
    report = [f"chaos figures: {json.dumps(figures)}"]
    report += [f"  anthropic unrecorded batch {note}" for note in orphan_notes]
    if os.environ.get("LLMBATCH_CHAOS_FIGURES"):
        with open(os.environ["LLMBATCH_CHAOS_FIGURES"], "a", encoding="utf-8") as out:
            out.write(json.dumps({**figures, "problems": problems[:50],
                                  "orphans": orphan_notes, "kills": killer.kills}) + "\n")
    with capsys.disabled():
        print("\n" + "\n".join(report))

    if killer.error is not None:
        problems.append(f"the killer failed: {killer.error!r}")
    exits = [k for k in fleet.restarts if ":exited" in k]
    if exits:
        problems.append(f"workers exited on their own: {exits}")
    assert len(killer.kills) >= 5, f"only {len(killer.kills)} kills: the run was too short"
    # Every scripted batch fault happened (the targeted ones are deterministic).
    assert rule_fired["expire"] == 3 and rule_fired["stuck"] == 2, dict(rule_fired)
    if stopped is not None:
        problems.insert(0, f"jobs not all terminal: {stopped}")
    if problems:
        details = "\n".join(timeline(rt, job_id) for job_id in sorted(bad_jobs)[:4])
        pytest.fail("\n".join([*report, f"{len(problems)} problems:", *problems[:40], details]),
                    pytrace=False)
    # Kills landed between "the provider created it" and "we recorded it", and the guard
    # against sending such a batch twice (adopt the copy found by its tag) was exercised.
    assert killer.landed, (f"no aimed kill left a batch created but unrecorded "
                           f"({len(killer.aimed)} aimed, {killer.aims_missed} missed)")
    adopted = {e.batch_id for e in evs if e.type == "batch.adopted"}
    assert set(killer.landed) <= adopted, (
        f"created at the provider, sender killed, yet not adopted: "
        f"{sorted(set(killer.landed) - adopted)}")
    assert figures["adopted"] > 0
