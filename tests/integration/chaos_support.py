"""What the chaos test needs besides the shared integration support: a three-provider config
with short leases and timeouts, the emulator's fault plan, a killer that SIGKILLs and restarts
worker processes, a 429 burster, and the figures and checks read back from the database and
the emulator afterwards."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import select

from llmbatch.bootstrap import Runtime
from llmbatch.db.item_view import ITEMS_WITH_RESULTS, settled
from llmbatch.db.tables import events, items, provider_batches
from llmbatch.emulator.server import EmulatorServer
from llmbatch.emulator.settings import EmulatorSettings, load_profile

from .support import API_KEY, Proc, Processes, signal_group

# provider -> (model, path prefix of its emulator, custom_id prefix of its jobs)
PROVIDERS: dict[str, tuple[str, str, str]] = {
    "openai": ("gpt-4o-mini", "/openai/v1", "oa"),
    "anthropic": ("claude-haiku-4-5", "/anthropic", "an"),
    "gemini": ("gemini-2.5-flash", "/gemini", "ge"),
}
ANTHROPIC_VERSION = "2023-06-01"
FINAL_ITEM_STATUSES = frozenset({"succeeded", "failed", "expired", "cancelled"})
FINAL_BATCH_STATUSES = frozenset({"fetched", "failed", "cancelled"})

# Emulator timing: a normal batch ends ~2-2.5 s after create; a stuck one at its deadline
# (12 s: longer than a normal batch takes even on a busy machine, short enough not to hold the
# run up; each stuck or expired batch costs its items another round).
DEADLINE_S = 12.0
TIMING = {"validate_s": 0.3, "run_base_s": 1.2, "run_per_item_s": 0.04, "finalize_s": 0.3,
          "cancel_s": 0.2, "completion_window_s": DEADLINE_S}

# llmbatch knobs (the config below): small batches, short leases, quick retries.
MAX_REQUESTS = 15
LEASE_S = 5.0
ITEM_MAX_ATTEMPTS = 4
CALL_MAX_ATTEMPTS = 10


def emulator_settings(seed: int) -> EmulatorSettings:
    """Fast batches whose deadline (OpenAI/Anthropic completion window, Gemini's 48 h expiry)
    is ``DEADLINE_S``, so a stuck batch expires inside the test."""
    base = load_profile("fast", timing=TIMING)
    return base.model_copy(update={
        "gemini": base.gemini.model_copy(update={"expire_after_s": DEADLINE_S}),
        "seed": seed,
    })


def write_chaos_config(path: Path, *, database_url: str, broker_url: str,
                       emulator_url: str) -> Path:
    """All three providers on the emulator, batches of at most ``MAX_REQUESTS``, a 5 s lease
    (so a killed worker's batch is repaired within the test), quick task retries."""
    providers: dict[str, Any] = {}
    for name, (model, prefix, _) in PROVIDERS.items():
        providers[name] = {
            "base_url": emulator_url + prefix, "api_key": API_KEY,
            "timeout_s": 10, "connect_timeout_s": 3,
            "limits": {"max_requests": MAX_REQUESTS},
            "stuck_grace_s": 0,
            "models": [{"name": model}],
        }
    providers["anthropic"]["options"] = {"api_version": ANTHROPIC_VERSION}
    prior = {"median_s": 1.5, "sigma": 0.6}
    config = {
        "database": {"url": database_url},
        "broker": {"url": broker_url, "polling_interval_s": 0.1},
        "worker": {"tick_interval_s": 0.5, "lease_s": LEASE_S},
        "polling": {"strategy": "adaptive", "min_s": 0.2, "max_s": 2.0,
                    "priors": {name: {**prior, "counts_live": name != "anthropic"}
                               for name in PROVIDERS}},
        "retry": {"max_attempts": CALL_MAX_ATTEMPTS, "base_delay_s": 0.2, "max_delay_s": 1.0,
                  "item_max_attempts": ITEM_MAX_ATTEMPTS},
        "providers": providers,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def job_prefix(provider: str, n: int) -> str:
    return f"{PROVIDERS[provider][2]}{n:02d}"


def write_job_file(path: Path, prefix: str, count: int) -> Path:
    """``count`` chat requests with custom_ids ``{prefix}-{i:05d}`` (Anthropic's emulator tags
    a batch with ``custom_id_prefix`` = the part before the last ``-``)."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            body = {"messages": [{"role": "user",
                                  "content": f"Tell me about {prefix} item {i}."}],
                    "max_tokens": 16}
            out.write(json.dumps({"custom_id": f"{prefix}-{i:05d}", "body": body}) + "\n")
    return path


# ---- the fault plan ----------------------------------------------------------------------------

# Anthropic batches are targeted by the custom_id prefix of their first request, i.e. the job.
EXPIRED_JOB = job_prefix("anthropic", 2)
STUCK_JOB = job_prefix("anthropic", 3)
PERMANENT_ERRORS_JOB = job_prefix("anthropic", 1)


def fault_rules() -> list[dict[str, Any]]:
    """Batch faults first (the first firing rule of each kind wins), then call faults (the
    first firing error rule wins)."""
    return [
        # Permanent per-item errors: final ``failed`` items, so some jobs end with failures.
        {"kind": "item_errors", "provider": "anthropic",
         "match": {"custom_id_prefix": PERMANENT_ERRORS_JOB}, "times": 1, "rate": 0.25,
         "status_code": 400},
        {"kind": "item_errors", "provider": "openai", "times": 1, "rate": 0.25,
         "status_code": 400, "shape": "mixed"},
        {"kind": "item_errors", "provider": "gemini", "times": 1, "rate": 0.25,
         "status_code": 400},
        # 5% transient per-item errors everywhere: re-batched while attempts remain.
        {"kind": "item_errors", "rate": 0.05, "status_code": 500, "shape": "mixed"},
        # One batch per provider expires half done (partial results, the rest re-batched).
        {"kind": "expire", "provider": "anthropic", "match": {"custom_id_prefix": EXPIRED_JOB},
         "times": 1, "at_fraction": 0.5},
        {"kind": "expire", "provider": "openai", "times": 1, "at_fraction": 0.5},
        # (Gemini's expiry rule comes once its stuck batch exists: ``LATER_RULES``.)
        # Stuck batches: progress halts, the batch stays in progress until its deadline
        # (DEADLINE_S) and then expires with what was done.
        {"kind": "stuck", "provider": "anthropic", "match": {"custom_id_prefix": STUCK_JOB},
         "times": 1, "at_fraction": 0.4},
        {"kind": "stuck", "provider": "gemini", "times": 1, "at_fraction": 0.4},
        # 5xx on ~20% of all calls of every provider (0.10 + 0.90 * 0.112 = 0.20).
        {"kind": "http", "operation": "*", "status": 500, "probability": 0.10},
        {"kind": "http", "operation": "*", "status": 503, "probability": 0.112},
    ]


# Installed once the Gemini stuck rule has fired, so that they hit another batch (an expiry
# drawn for the stuck batch too would end it early and the stuck path would go untested).
LATER_RULES = [{"kind": "expire", "provider": "gemini", "times": 1, "at_fraction": 0.5}]


def burst_rule(provider: str, times: int) -> dict[str, Any]:
    """The next ``times`` calls to ``provider`` that no 5xx rule hit get 429 + Retry-After."""
    return {"kind": "http", "provider": provider, "operation": "*", "status": 429,
            "retry_after_s": 0.5, "times": times, "message": "Rate limit (chaos burst)"}


# ---- processes -------------------------------------------------------------------------------

@dataclass
class Fleet:
    """Worker processes that can be killed (whole process group, SIGKILL) and restarted."""

    processes: Processes
    config_path: Path
    size: int
    concurrency: int = 2
    workers: dict[str, Proc] = field(default_factory=dict)
    restarts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def args(self) -> list[str]:
        return ["worker", "--config", str(self.config_path), "--pool", "prefork",
                "--concurrency", str(self.concurrency)]

    def start_all(self) -> None:
        for n in range(1, self.size + 1):
            self._start(f"worker{n}")

    def _start(self, name: str) -> None:
        self.workers[name] = self.processes.start(name, *self.args())

    def kill_and_restart(self, name: str) -> None:
        """SIGKILL the worker's whole group (parent and pool children, no warm shutdown),
        reap it, forget it, and start the same command again."""
        with self.lock:
            proc = self.workers[name]
            signal_group(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(timeout=10)
            # Reaped: drop it so that teardown never signals a pid that may be reused.
            self.processes.procs.remove(proc)
            self.restarts[name] += 1
            self._start(name)

    def check_alive(self) -> None:
        """Restart (and count) a worker that died on its own; a crash loop still shows in
        the figures and the logs."""
        with self.lock:
            for name, proc in list(self.workers.items()):
                if not proc.alive():
                    self.processes.procs.remove(proc)
                    self.restarts[f"{name}:exited({proc.popen.returncode})"] += 1
                    self._start(name)


# Aimed kills: a provider create held back this long at the emulator, and the worker sending
# it killed meanwhile. The create still happens (the emulator finishes the call after the
# client is gone) before the dead worker's lease can run out (every LEASE_S / 3 renewed, so
# it lasts at least 2/3 of LEASE_S after the kill), so the next attempt must find the copy
# by its tag and adopt it rather than send the batch again.
AIM_DELAY_S = 2.0
AIM_PROVIDERS = ("openai", "gemini")  # the ones whose batches carry our tag (adoptable)
AIM_WAIT_S = 8.0  # how long an aimed kill waits for a create to hold back
AIM_MISSES = 6  # after this many waits in vain (creates have become rare), kill at random
# Aim until this many held creates did land at the provider after their sender was killed (a
# held create can still fail: a 5xx or 429 rule drawn for the same call).
AIM_LANDED = 3
TAG_KEYS = {"openai": "llmbatch_batch_id=", "gemini": "displayName="}
assert AIM_DELAY_S < LEASE_S * 2 / 3


def aim_rule(provider: str, n: int) -> dict[str, Any]:
    """The next create at ``provider`` is held back ~``AIM_DELAY_S``; the delay's last
    digits (``n`` ms) tell this rule apart in the emulator's rule list."""
    return {"kind": "delay", "provider": provider, "operation": "batches.create", "times": 1,
            "delay_s": round(AIM_DELAY_S + n / 1000, 3)}


class Killer(threading.Thread):
    """Every 2-5 s, SIGKILL a worker and restart it; at most ``max_kills`` times and for at
    most ``window_s``. The first kills, up to ``max_aimed``, are aimed INSIDE a submission (one
    after the other, each waiting for its create rather than 2-5 s):
    it waits for a create that the emulator holds back (``aim_rule``) and kills the worker
    whose task sent it (the lease owner of the batch being submitted: ``host:pid:token``).
    Once ``AIM_MISSES`` aims found no create in time, and after ``max_aimed``, kills hit a
    random worker."""

    def __init__(self, fleet: Fleet, *, seed: int, max_kills: int, window_s: float,
                 emulator: EmulatorServer | None = None, rt: Runtime | None = None,
                 max_aimed: int = 0) -> None:
        super().__init__(name="chaos-killer", daemon=True)
        self.fleet, self.max_kills, self.window_s = fleet, max_kills, window_s
        self.emulator, self.rt, self.max_aimed = emulator, rt, max_aimed
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.kills: list[tuple[float, str]] = []
        self.aimed: list[tuple[float, str, str]] = []  # (elapsed, worker, batch id)
        self.aims_missed = 0
        # Batches created at the provider whose sender was killed before recording them.
        self.landed: list[str] = []
        self._pending_aim: float | None = None  # delay_s of an installed, unfired aim rule
        self.started_at = time.monotonic()
        self.error: BaseException | None = None

    def run(self) -> None:
        order: list[str] = []
        try:
            while len(self.kills) < self.max_kills:
                # Aimed first, while creates are frequent (every job's first round). An aim
                # waits for a create of its own and for the held create to land (~5-10 s):
                # no pause on top of that, or a run that is over in half a minute sees too
                # few kills.
                aiming = (len(self.landed) < AIM_LANDED and len(self.aimed) < self.max_aimed
                          and self.aims_missed < AIM_MISSES)
                if self.stop_event.wait(0.0 if aiming else self.rng.uniform(2.0, 5.0)):
                    return
                elapsed = time.monotonic() - self.started_at
                if elapsed > self.window_s:
                    return
                if aiming and self._aimed_kill():
                    continue
                if not order:  # every worker once per round, in a random order
                    order = sorted(self.fleet.workers)
                    self.rng.shuffle(order)
                name = order.pop()
                self.fleet.kill_and_restart(name)
                self.kills.append((round(elapsed, 1), name))
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def _rule_fired(self, delay_s: float) -> bool:
        assert self.emulator is not None
        return any(r["kind"] == "delay" and r["delay_s"] == delay_s and r["fired"]
                   for r in self.emulator.runtime.faults.describe())

    def _aimed_kill(self) -> bool:
        """Hold a create back, kill the worker sending it; False if none came in time."""
        if self.emulator is None or self.rt is None:
            return False
        provider = self.rng.choice(AIM_PROVIDERS)
        if self._pending_aim is None:  # one aim rule at a time: the first delay rule wins
            rule = aim_rule(provider, len(self.aimed) + self.aims_missed + 1)
            self.emulator.set_faults([rule], mode="append")
            self._pending_aim = rule["delay_s"]
        delay_s = self._pending_aim
        deadline = time.monotonic() + AIM_WAIT_S
        while not self._rule_fired(delay_s):
            if time.monotonic() > deadline or self.stop_event.is_set():
                self.aims_missed += 1
                return False
            time.sleep(0.02)
        self._pending_aim = None
        # The held create's batch is SUBMITTING, leased to the task that sent it.
        with self.rt.engine.connect() as conn:
            rows = conn.execute(
                select(provider_batches.c.id, provider_batches.c.provider,
                       provider_batches.c.lease_owner)
                .where(provider_batches.c.status == "submitting",
                       provider_batches.c.provider.in_(AIM_PROVIDERS))).all()
        victims: dict[str, list[tuple[str, str]]] = {}
        for batch_id, batch_provider, owner in rows:
            name = self._worker_of(owner)
            if name is not None:
                victims.setdefault(name, []).append((batch_provider, batch_id))
        elapsed = round(time.monotonic() - self.started_at, 1)
        for name, batches in victims.items():
            self.fleet.kill_and_restart(name)
            self.kills.append((elapsed, name))
            self.aimed.append((elapsed, name, batches[0][1]))
        if not victims:
            self.aims_missed += 1
            return False
        # Still unrecorded now that their senders are dead (nobody else touches them before
        # the lease runs out): those the provider creates must be adopted.
        killed = {batch_id: provider for batches in victims.values()
                  for provider, batch_id in batches}
        with self.rt.engine.connect() as conn:
            unrecorded = {row.id for row in conn.execute(
                select(provider_batches.c.id).where(
                    provider_batches.c.id.in_(list(killed)),
                    provider_batches.c.provider_batch_id.is_(None)))}
        self._note_landed([(killed[b], b) for b in sorted(unrecorded)])
        return True

    def _note_landed(self, batches: list[tuple[str, str]]) -> None:
        """Which of the killed senders' batches the provider created anyway (the held create
        finishes after its client is gone): each must be adopted, not sent again."""
        assert self.emulator is not None
        if not batches:
            return
        deadline = time.monotonic() + AIM_DELAY_S + 2.0
        while time.monotonic() < deadline and not self.stop_event.is_set():
            tags = self.emulator.runtime.stats.snapshot()["creates_by_tag"]
            landed = [batch_id for provider, batch_id in batches
                      if tags.get(provider, {}).get(TAG_KEYS[provider] + batch_id)]
            if landed:
                self.landed += landed
                return
            time.sleep(0.1)

    def _worker_of(self, lease_owner: str | None) -> str | None:
        """The fleet worker whose process group holds the lease owner's pid."""
        try:
            pid = int((lease_owner or "").rsplit(":", 2)[1])
            group = os.getpgid(pid)
        except (IndexError, ValueError, ProcessLookupError):
            return None
        with self.fleet.lock:
            return next((name for name, proc in self.fleet.workers.items()
                         if proc.popen.pid == group), None)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)


class Burster(threading.Thread):
    """Every 4-8 s, a burst of 429s (with Retry-After) on one provider, unless the last one
    is still being served; and ``LATER_RULES`` once the Gemini stuck rule has fired."""

    def __init__(self, emulator: EmulatorServer, *, seed: int, window_s: float) -> None:
        super().__init__(name="chaos-burster", daemon=True)
        self.emulator, self.window_s = emulator, window_s
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.bursts: list[tuple[float, str, int]] = []
        self.started_at = time.monotonic()

    def _stuck_fired(self) -> bool:
        return any(r["kind"] == "stuck" and r["provider"] == "gemini" and r["fired"]
                   for r in self.emulator.runtime.faults.describe())

    def _burst_running(self) -> bool:
        return any(r["kind"] == "http" and r["status"] == 429 and r["remaining"]
                   for r in self.emulator.runtime.faults.describe())

    def run(self) -> None:
        staged = False
        next_burst = time.monotonic() + self.rng.uniform(4.0, 8.0)
        while not self.stop_event.wait(0.1):
            if not staged and self._stuck_fired():
                self.emulator.set_faults(LATER_RULES, mode="append")
                staged = True
            if time.monotonic() < next_burst:
                continue
            next_burst = time.monotonic() + self.rng.uniform(4.0, 8.0)
            elapsed = time.monotonic() - self.started_at
            if elapsed > self.window_s:
                if staged:
                    return
                continue
            if self._burst_running():
                continue  # bursts must not pile up while few calls are made to consume them
            provider = self.rng.choice(sorted(PROVIDERS))
            times = self.rng.randint(4, 10)
            self.emulator.set_faults([burst_rule(provider, times)], mode="append")
            self.bursts.append((round(elapsed, 1), provider, times))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


# ---- reading back --------------------------------------------------------------------------

def item_rows(rt: Runtime, job_ids: list[str]) -> list[Any]:
    with rt.engine.connect() as conn:
        return list(conn.execute(
            select(items.c.job_id, items.c.seq, items.c.custom_id, settled.status,
                   items.c.attempts, items.c.batch_id, settled.error, settled.response,
                   settled.output_text)
            .select_from(ITEMS_WITH_RESULTS)
            .where(items.c.job_id.in_(job_ids)).order_by(items.c.job_id, items.c.seq)))


def batch_rows(rt: Runtime, job_ids: list[str]) -> list[Any]:
    with rt.engine.connect() as conn:
        return list(conn.execute(
            select(provider_batches).where(provider_batches.c.job_id.in_(job_ids))
            .order_by(provider_batches.c.created_at)))


def event_rows(rt: Runtime, job_ids: list[str]) -> list[Any]:
    with rt.engine.connect() as conn:
        return list(conn.execute(
            select(events).where(events.c.job_id.in_(job_ids)).order_by(events.c.id)))


def timeline(rt: Runtime, job_id: str) -> str:
    """The job's events and batches, for a failure message."""
    lines = [f"job {job_id}:"]
    for e in event_rows(rt, [job_id]):
        lines.append(f"  {e.at:%H:%M:%S.%f} {e.type:<26} {e.batch_id or '':<30} "
                     f"{e.from_status or ''}->{e.to_status or ''} {json.dumps(e.data)[:200]}")
    for b in batch_rows(rt, [job_id]):
        lines.append(f"  batch {b.id} {b.status} attempt={b.attempt} items={b.item_count} "
                     f"provider={b.provider_batch_id} pstatus={b.provider_status} "
                     f"submit_attempts={b.submit_attempts} lease={b.lease_owner}@{b.lease_until} "
                     f"next={b.next_poll_at} error={(b.error or '')[:120]}")
    return "\n".join(lines)


def anthropic_batches(emulator_url: str) -> list[dict[str, Any]]:
    """Every batch the Anthropic emulator holds (call with faults cleared)."""
    out: list[dict[str, Any]] = []
    after: str | None = None
    headers = {"x-api-key": API_KEY, "anthropic-version": ANTHROPIC_VERSION}
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if after:
            params["after_id"] = after
        response = httpx.get(f"{emulator_url}/anthropic/v1/messages/batches", params=params,
                             headers=headers, timeout=30)
        response.raise_for_status()
        page = response.json()
        out += page["data"]
        if not page["has_more"]:
            return out
        after = page["last_id"]


def anthropic_custom_ids(emulator_url: str, batch_id: str) -> list[str]:
    headers = {"x-api-key": API_KEY, "anthropic-version": ANTHROPIC_VERSION}
    response = httpx.get(f"{emulator_url}/anthropic/v1/messages/batches/{batch_id}/results",
                         headers=headers, timeout=30)
    response.raise_for_status()
    return [json.loads(line)["custom_id"] for line in response.text.splitlines() if line]


@contextmanager
def stopping(*threads: Killer | Burster) -> Iterator[None]:
    try:
        yield
    finally:
        for thread in threads:
            thread.stop()
