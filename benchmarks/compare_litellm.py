"""End to end, side by side: LiteLLM's SDK loop and ``llmbatch submit --wait`` (embedded) on
the same prompts and the same emulator (issue 13).

    python benchmarks/compare_litellm.py                      # 10,000 prompts, one pair
    python benchmarks/compare_litellm.py --items 2000 --rounds 3 --json out.json

Each round runs both sides, alternating which goes first, each on a fresh ``llmbatch
emulator`` process started from the same profile:

* **LiteLLM**: ``litellm_loop.py`` in LiteLLM's own virtual environment
  (``benchmarks/.venv-litellm``, created with ``pip install litellm`` on first use):
  ``litellm.acompletion`` per prompt, at most ``--concurrency`` in flight, against the
  emulator's synchronous ``POST /v1/chat/completions``; every answer written to a JSONL file.
* **llmbatch**: ``llmbatch submit FILE --provider openai --model ... --wait`` in a fresh
  directory with an embedded configuration (SQLite database, SQLite broker, the worker that
  ``--wait`` starts) that names only the provider: every other setting is the default a user
  gets. The job must end with every item succeeded and its response stored.

Both are timed from the outside, process start to exit (imports and start-up included, as a
user waits for them), with the CPU seconds of the process tree (reaped children) and of the
emulator. The emulator's simulated waits are the same kind on both sides and zero by default
(``--sync-latency``, ``--batch-timing``): a synchronous call answers at once and a batch goes
through validating, in progress and finalizing without a simulated pause, so each side is
measured on its own software plus the emulator's work for it (the same checks and the same
synthesized answer per request). For llmbatch the job's timeline (``events``) is printed too:
where its wall time went.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from sqlalchemy import create_engine, func, select

from llmbatch.db.item_view import ITEMS_WITH_RESULTS, settled
from llmbatch.db.tables import events, items, jobs

HERE = Path(__file__).resolve().parent
LITELLM_VENV = HERE / ".venv-litellm"
LITELLM_REQUIREMENT = "litellm>=1.50,<2"
MODEL = "gpt-4o-mini"
API_KEY = "bench-key"
TOPICS = ["photosynthesis", "the Roman road network", "TCP congestion control", "sourdough",
          "plate tectonics", "the B-tree", "jazz harmony", "vaccines", "tides", "compilers"]


def write_prompts(path: Path, count: int) -> None:
    """The chat requests of ``bench_openai_path.py`` (two messages, 120 output tokens)."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            body = {"messages": [
                {"role": "system", "content": "You explain things in two sentences."},
                {"role": "user", "content": f"Explain {TOPICS[i % len(TOPICS)]} to a curious "
                                            f"twelve-year-old (variant {i})."}],
                "max_tokens": 120, "temperature": 0.2}
            out.write(json.dumps({"custom_id": f"cmp-{i:06d}", "body": body}) + "\n")


def litellm_python() -> Path:
    """LiteLLM's interpreter, after creating its virtual environment if it is missing."""
    python = LITELLM_VENV / "bin" / "python"
    probe = [str(python), "-c", "import litellm"]
    if python.exists() and subprocess.run(probe, capture_output=True,
                                          env=_litellm_env()).returncode == 0:
        return python
    print(f"creating {LITELLM_VENV} ({LITELLM_REQUIREMENT}) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", LITELLM_REQUIREMENT],
                   check=True)
    return python


def _litellm_env() -> dict[str, str]:
    # Its price map from the package, never from the internet; no telemetry.
    return {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Emulator:
    """``llmbatch emulator`` as its own process (its own session, stopped with its group)."""

    def __init__(self, workdir: Path, timing: dict[str, float]) -> None:
        profile = workdir / "emulator.yaml"
        profile.write_text(yaml.safe_dump({"timing": timing}), encoding="utf-8")
        port = free_port()
        self.log = workdir / "emulator.log"
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "llmbatch", "emulator", "--port", str(port),
                 "--profile", str(profile)], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"the emulator exited:\n{self.log.read_text()[-2000:]}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/_emulator/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.1)
        self.process = psutil.Process(self.popen.pid)

    @property
    def openai_url(self) -> str:
        return f"{self.url}/openai/v1"

    def cpu_s(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)


@dataclass
class Side:
    """One side's run: wall time from process start to exit, CPU seconds."""

    name: str
    wall_s: float
    cpu_s: float  # the process and the children it reaped
    emulator_cpu_s: float
    detail: dict[str, Any] = field(default_factory=dict)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_litellm(python: Path, emulator: Emulator, prompts: Path, workdir: Path,
                items_n: int, concurrency: int) -> Side:
    out = workdir / "litellm-results.jsonl"
    cmd = [str(python), str(HERE / "litellm_loop.py"), "--prompts", str(prompts), "--out",
           str(out), "--api-base", emulator.openai_url, "--api-key", API_KEY, "--model", MODEL,
           "--concurrency", str(concurrency)]
    cpu0, emu0 = children_cpu(), emulator.cpu_s()
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=_litellm_env())
    wall = time.perf_counter() - t0
    cpu, emu = children_cpu() - cpu0, emulator.cpu_s() - emu0
    if done.returncode != 0:
        raise RuntimeError(f"the LiteLLM loop failed ({done.returncode}):\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    stored = sum(1 for _ in out.open(encoding="utf-8"))
    if report["answered"] != items_n or stored != items_n:
        raise RuntimeError(f"LiteLLM answered {report['answered']}/{items_n}, {stored} stored")
    return Side("LiteLLM SDK loop", wall, cpu, emu, report)


def llmbatch_config(workdir: Path, emulator: Emulator) -> Path:
    """The embedded defaults with the provider on the emulator: nothing tuned."""
    config = {
        "database": {"url": f"sqlite:///{workdir / 'llmbatch.db'}"},
        "broker": {"url": f"sqla+sqlite:///{workdir / 'broker.db'}"},
        "providers": {"openai": {"base_url": emulator.openai_url, "api_key": API_KEY,
                                 "models": [{"name": MODEL}]}},
    }
    path = workdir / "llm_config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_llmbatch(emulator: Emulator, prompts: Path, workdir: Path, items_n: int) -> Side:
    config = llmbatch_config(workdir, emulator)
    cmd = [sys.executable, "-m", "llmbatch", "submit", str(prompts), "--provider", "openai",
           "--model", MODEL, "--wait", "--config", str(config)]
    env = {k: v for k, v in os.environ.items()
           if k not in ("LLMBATCH_DATABASE_URL", "LLMBATCH_BROKER_URL", "LLMBATCH_CONFIG")}
    cpu0, emu0 = children_cpu(), emulator.cpu_s()
    started = datetime.now(UTC).replace(tzinfo=None)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, env=env)
    wall = time.perf_counter() - t0
    cpu, emu = children_cpu() - cpu0, emulator.cpu_s() - emu0
    if done.returncode != 0:
        raise RuntimeError(f"llmbatch submit --wait failed ({done.returncode}):\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    engine = create_engine(f"sqlite:///{workdir / 'llmbatch.db'}")
    try:
        with engine.connect() as conn:
            job_id, status = conn.execute(select(jobs.c.id, jobs.c.status)).one()
            stored = conn.execute(select(func.count()).select_from(ITEMS_WITH_RESULTS).where(
                items.c.job_id == job_id, settled.status == "succeeded",
                settled.response.is_not(None))).scalar_one()
            timeline = [(row.type, row.at) for row in conn.execute(
                select(events.c.type, events.c.at).where(events.c.job_id == job_id)
                .order_by(events.c.id))]
    finally:
        engine.dispose()
    if status != "succeeded" or stored != items_n:
        raise RuntimeError(f"job {job_id} {status}, {stored}/{items_n} responses stored")
    return Side("llmbatch submit --wait (embedded)", wall, cpu, emu,
                {"job": job_id, "timeline": steps(timeline, started)})


def steps(timeline: list[tuple[str, datetime]], started: datetime) -> list[tuple[str, float]]:
    """Each event type's first stamp, in seconds after the command started (its clock and
    the worker's are the same machine's)."""
    seen: dict[str, float] = {}
    for kind, at in timeline:
        when = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
        seen.setdefault(kind, (when.replace(tzinfo=None) - started).total_seconds())
    return sorted(seen.items(), key=lambda kv: kv[1])


def parse_timing(text: str) -> dict[str, float]:
    names = {"validate": "validate_s", "run": "run_base_s", "finalize": "finalize_s"}
    timing = {"validate_s": 0.0, "run_base_s": 0.0, "run_per_item_s": 0.0, "finalize_s": 0.0}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        timing[names[key.strip()]] = float(value)
    return timing


def uptime() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1, help="pairs, alternating the order")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="LiteLLM calls in flight (asyncio semaphore)")
    parser.add_argument("--sync-latency", type=float, default=0.0,
                        help="the emulator's timing.sync_latency_s (seconds per sync call)")
    parser.add_argument("--batch-timing", default="validate=0,run=0,finalize=0",
                        help="the emulator's batch stages, seconds")
    parser.add_argument("--sides", default="litellm,llmbatch",
                        help="which to run (one side alone: before/after a change)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    python = litellm_python() if "litellm" in sides else Path(sys.executable)
    timing = {**parse_timing(args.batch_timing), "sync_latency_s": args.sync_latency}
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="llmbatch-compare-"))
    workdir.mkdir(parents=True, exist_ok=True)
    prompts = workdir / "prompts.jsonl"
    write_prompts(prompts, args.items)
    print(f"{args.items:,} prompts; emulator timing {timing}; LiteLLM concurrency "
          f"{args.concurrency}; {uptime()}", flush=True)
    rounds: list[dict[str, Side]] = []
    try:
        for n in range(args.rounds):
            order = sides if n % 2 == 0 else sides[::-1]
            pair: dict[str, Side] = {}
            for side in order:
                here = workdir / f"round{n}-{side}"
                here.mkdir(parents=True, exist_ok=True)
                emulator = Emulator(here, timing)
                try:
                    pair[side] = (run_litellm(python, emulator, prompts, here, args.items,
                                              args.concurrency) if side == "litellm" else
                                  run_llmbatch(emulator, prompts, here, args.items))
                finally:
                    emulator.stop()
                s = pair[side]
                print(f"round {n + 1} {s.name}: {s.wall_s:.2f} s wall, {s.cpu_s:.2f} CPU s, "
                      f"emulator {s.emulator_cpu_s:.2f} CPU s ({uptime()})", flush=True)
            rounds.append(pair)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report(rounds, args.items))
    if args.json:
        args.json.write_text(json.dumps({
            "items": args.items, "timing": timing, "concurrency": args.concurrency,
            "load": os.getloadavg(), "rounds": [{k: asdict(v) for k, v in pair.items()}
                                                for pair in rounds],
            "ratio": [p["llmbatch"].wall_s / p["litellm"].wall_s for p in rounds
                      if len(p) == 2],
        }, indent=2, default=str), encoding="utf-8")
    return 0


def report(rounds: list[dict[str, Side]], items_n: int) -> str:
    lines = [f"\n== end to end, {items_n:,} prompts: wall s (CPU s; emulator CPU s)",
             f"{'round':<6} {'LiteLLM SDK loop':>26} {'llmbatch embedded':>26} "
             f"{'llmbatch / LiteLLM':>19}"]
    for n, pair in enumerate(rounds, 1):
        a, b = pair.get("litellm"), pair.get("llmbatch")
        ratio = f"{b.wall_s / a.wall_s:.2f}x" if a and b else "-"
        lines.append(f"{n:<6} {fmt(a):>26} {fmt(b):>26} {ratio:>19}")
    ratios = [p["llmbatch"].wall_s / p["litellm"].wall_s for p in rounds if len(p) == 2]
    if len(ratios) > 1:
        lines.append(f"median ratio {statistics.median(ratios):.2f}x")
    if "llmbatch" in rounds[-1]:
        last = rounds[-1]["llmbatch"]
        lines.append("llmbatch timeline (last round; s after the command started):")
        lines += [f"  {t:7.2f}  {kind}" for kind, t in last.detail["timeline"]]
        lines.append(f"  {last.wall_s:7.2f}  (command exited)")
    if "litellm" in rounds[-1]:
        info = rounds[-1]["litellm"].detail
        lines.append(f"LiteLLM {info.get('litellm')}: import {info['import_s']:.2f} s, loop "
                     f"{info['loop_s']:.2f} s (last round)")
    return "\n".join(lines)


def fmt(side: Side | None) -> str:
    if side is None:
        return "-"
    return f"{side.wall_s:.2f} ({side.cpu_s:.1f}; {side.emulator_cpu_s:.1f})"


if __name__ == "__main__":
    sys.exit(main())
