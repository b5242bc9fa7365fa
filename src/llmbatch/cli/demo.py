"""``llmbatch demo``: the whole path on one machine with nothing installed.

Starts the emulator in this process, writes a config pointing every provider at it (SQLite
database, SQLite broker), starts an embedded worker, submits a job of prompts per provider and
the README's example file (``examples/prompts.jsonl`` in the package, the same lines as the
README's "Input" section: a test keeps them equal) unchanged to every provider, shows
progress, prints a few outputs and one summary line per job, and stops everything.
"""

from __future__ import annotations

import itertools
import json
import random
import shutil
import tempfile
import time
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from llmbatch.bootstrap import Runtime, build_runtime
from llmbatch.cli.costs import usd
from llmbatch.cli.embedded import EmbeddedWorker, stop_wake
from llmbatch.config import load_config
from llmbatch.db.migrate import upgrade
from llmbatch.domain.states import ItemStatus, JobStatus
from llmbatch.emulator.server import EmulatorServer
from llmbatch.emulator.settings import load_profile
from llmbatch.service_layer.jobs import create_job
from llmbatch.service_layer.read_models import JobSummary, job_detail, job_results, job_summary

__all__ = ["DEMO_PROVIDERS", "example_prompts", "run_demo", "write_config"]

# provider -> (model, path prefix of its emulator)
DEMO_PROVIDERS: dict[str, tuple[str, str]] = {
    "openai": ("gpt-4o-mini", "/openai/v1"),
    "anthropic": ("claude-haiku-4-5", "/anthropic"),
    "gemini": ("gemini-2.5-flash", "/gemini"),
}
# As in llm_config.example.yaml: Anthropic's newest API version refuses `temperature` in
# batches, and the README's example file (run here unchanged) sets one.
DEMO_OPTIONS: dict[str, dict[str, Any]] = {"anthropic": {"api_version": "2023-06-01"}}
DEMO_KEY = "demo-key"
TOPICS = ["photosynthesis", "the Roman road network", "TCP congestion control", "sourdough",
          "plate tectonics", "the B-tree", "jazz harmony", "vaccines", "tides", "compilers",
          "the printing press", "black holes", "coral reefs", "double-entry bookkeeping"]


def write_config(workdir: Path, emulator_url: str) -> Path:
    """The demo's configuration: every provider on the emulator at ``emulator_url``."""
    config: dict[str, Any] = {
        "database": {"url": f"sqlite:///{workdir / 'llmbatch.db'}"},
        "broker": {"url": f"sqla+sqlite:///{workdir / 'broker.db'}",
                   "polling_interval_s": 0.1},
        "worker": {"tick_interval_s": 0.5, "lease_s": 30},
        "polling": {"strategy": "adaptive", "min_s": 0.3, "max_s": 2.0},
        "providers": {
            name: {"base_url": emulator_url + prefix, "api_key": DEMO_KEY,
                   "models": [_model_entry(model)],
                   **({"options": DEMO_OPTIONS[name]} if name in DEMO_OPTIONS else {})}
            for name, (model, prefix) in DEMO_PROVIDERS.items()
        },
    }
    path = workdir / "llm_config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _model_entry(model: str) -> dict[str, Any]:
    """The demo's models are in the genai-prices catalogue: no prices in config."""
    return {"name": model}


def example_prompts() -> str:
    """The README's example file, as shipped in the package."""
    return resources.files("llmbatch").joinpath("examples", "prompts.jsonl").read_text(
        encoding="utf-8")


def _write_prompts(path: Path, count: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            topic = rng.choice(TOPICS)
            body = {"messages": [
                {"role": "system", "content": "You explain things in two sentences."},
                {"role": "user", "content": f"Explain {topic} to a curious twelve-year-old."}],
                "max_tokens": 120}
            out.write(json.dumps({"custom_id": f"demo-{i:03d}", "body": body}) + "\n")


def run_demo(console: Console, *, items: int = 24, keep: Path | None = None,
             timeout_s: float = 300.0) -> int:
    """Run the demo; 0 when every provider's job succeeded."""
    workdir = keep or Path(tempfile.mkdtemp(prefix="llmbatch-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        with EmulatorServer(load_profile("fast")) as emulator:
            console.print(f"[bold]emulator[/bold] {emulator.url}  (providers: "
                          f"{', '.join(DEMO_PROVIDERS)})")
            config_path = write_config(workdir, emulator.url)
            rt = build_runtime(load_config(config_path))
            from llmbatch.worker.app import CeleryPublisher, make_celery

            rt.publisher = CeleryPublisher(make_celery(rt.config))
            upgrade(rt.engine)
            job_ids: dict[str, str] = {}
            example = workdir / "prompts.jsonl"
            example.write_text(example_prompts(), encoding="utf-8")
            for n, (name, (model, _)) in enumerate(DEMO_PROVIDERS.items()):
                prompts = workdir / f"prompts-{name}.jsonl"
                _write_prompts(prompts, items, seed=n)
                job_ids[name], _ = create_job(rt, prompts, provider=name, model=model,
                                              name=f"demo-{name}")
                console.print(f"submitted {items} prompts to {name}: job {job_ids[name]}")
            for name, (model, _) in DEMO_PROVIDERS.items():
                label = f"{name} (README example)"
                job_ids[label], _ = create_job(
                    rt, example, provider=name, model=model, name=f"readme-{name}",
                    warn=lambda line: console.print(f"  [dim]{escape(line)}[/dim]",
                                                    highlight=False))
                console.print(f"submitted the README's example file to {name}: job "
                              f"{job_ids[label]}", highlight=False)
            with EmbeddedWorker(config_path, log_file=workdir / "worker.log",
                                wake=stop_wake(rt.publisher)):
                jobs = _watch(rt, job_ids, console, timeout_s)
            _show_outputs(rt, job_ids, console)
            details = [job_detail(rt, j.id) for j in jobs.values()]
            cost = sum((d.cost_usd or Decimal(0) for d in details), Decimal(0))
            sync = sum((d.sync_cost_usd or Decimal(0) for d in details), Decimal(0))
            console.print(f"batch cost of the demo: {usd(cost)} (synchronous: {usd(sync)}, "
                          f"saving {usd(sync - cost)})", highlight=False)
            for name, job in jobs.items():
                done = job.counts.get(ItemStatus.SUCCEEDED, 0)
                console.print(f"{name} {job.id} {job.status} {done}/{job.item_count} succeeded",
                              highlight=False)
            config = f"{keep if keep is not None else 'DIR'}/llm_config.yaml"
            console.print(("the REST API on this data: " if keep is not None else
                           "the REST API on the demo's data: llmbatch demo --keep DIR, then ")
                          + f"llmbatch keys create --tenant default -c {config}; "
                          f"llmbatch api -c {config} (docs/api.md)",
                          highlight=False, soft_wrap=True, markup=False)
            ok = all(j.status is JobStatus.SUCCEEDED for j in jobs.values())
            return 0 if ok else 1
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _watch(rt: Runtime, job_ids: dict[str, str], console: Console,
           timeout_s: float) -> dict[str, JobSummary]:
    deadline = time.monotonic() + timeout_s
    columns = (TextColumn("[bold]{task.description:<25}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[state]}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        bars = {name: bar.add_task(name, total=1, state="pending") for name in job_ids}
        while True:
            jobs = {name: job_summary(rt, job_id) for name, job_id in job_ids.items()}
            for name, job in jobs.items():
                bar.update(bars[name], total=job.item_count, completed=job.finished_items,
                           state=str(job.status))
            if all(j.ended for j in jobs.values()) or time.monotonic() > deadline:
                return jobs
            time.sleep(0.3)


def _show_outputs(rt: Runtime, job_ids: dict[str, str], console: Console) -> None:
    for name, job_id in job_ids.items():
        for record in itertools.islice(job_results(rt, job_id), 2):
            text = (record.output_text or json.dumps(record.error))[:100]
            console.print(f"  [dim]{name}[/dim] {record.custom_id}: {text}", highlight=False)
