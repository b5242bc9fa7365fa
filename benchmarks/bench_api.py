"""The REST API under load: memory while a 200 MB JSONL is uploaded, and the results download
rate of a 50,000-item job.

    python benchmarks/bench_api.py                      # 200 MB upload, 50,000 results
    python benchmarks/bench_api.py --upload-mb 20 --result-items 5000

Starts ``llmbatch api`` as its own process on an embedded SQLite database and broker (no
worker: nothing is sent anywhere), then

* uploads a generated JSONL of ``--upload-mb`` MB as multipart (httpx streams it from disk)
  while sampling the API process's resident memory every 20 ms (psutil): the peak covers the
  upload and the ingest that follows it (validation, items inserted in chunks);
* stores a ``--result-items`` job through the API, marks every item succeeded with an answer in
  the database (what a fetch would have written), and downloads ``GET /v1/jobs/{id}/results``
  plain and gzipped, reporting items/s.

Floors (issue 10): peak RSS under 150 MB during the upload; at least 50,000 results/s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from sqlalchemy import update

from llmbatch.bootstrap import build_runtime
from llmbatch.config import load_config
from llmbatch.db.migrate import upgrade
from llmbatch.db.tables import items
from llmbatch.service_layer.api_keys import create_key

MODEL = "gpt-4o-mini"
RSS_FLOOR_MB = 150
RATE_FLOOR = 50_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_jsonl(path: Path, *, target_bytes: int | None = None, count: int | None = None,
                prefix: str = "r") -> int:
    filler = "lorem ipsum dolor sit amet " * 70  # ~1.9 KB of text per line
    written = lines = 0
    with path.open("w", encoding="utf-8") as out:
        while (target_bytes is not None and written < target_bytes) or \
                (count is not None and lines < count):
            body = {"messages": [{"role": "user", "content": f"{lines}: {filler}"
                                  if target_bytes else f"question {lines}"}],
                    "max_tokens": 20}
            line = json.dumps({"custom_id": f"{prefix}-{lines}", "body": body}) + "\n"
            out.write(line)
            written += len(line)
            lines += 1
    return lines


class RssSampler(threading.Thread):
    """Peak resident memory of a process and its children, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop_flag = threading.Event()

    def sample(self) -> int:
        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.peak = max(self.peak, self.sample())
            time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upload-mb", type=int, default=200)
    parser.add_argument("--result-items", type=int, default=50_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="llmbatch-bench-api-") as tmp:
        work = Path(tmp)
        config_path = work / "llm_config.yaml"
        config_path.write_text(yaml.safe_dump({
            "database": {"url": f"sqlite:///{work / 'llmbatch.db'}"},
            "broker": {"url": f"sqla+sqlite:///{work / 'broker.db'}"},
            "providers": {"openai": {"base_url": "http://127.0.0.1:9/v1", "api_key": "x",
                                     "models": [{"name": MODEL}]}},
        }), encoding="utf-8")
        rt = build_runtime(load_config(config_path, env={}))
        upgrade(rt.engine)
        _, key = create_key(rt, tenant="bench")
        port = free_port()
        api = subprocess.Popen([sys.executable, "-m", "llmbatch", "api", "--port", str(port),
                                "--config", str(config_path)], cwd=work,
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                                timeout=600)
            for _ in range(300):
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            upload(http, api.pid, work, args.upload_mb)
            download(http, rt, work, args.result_items, api.pid)
            http.close()
        finally:
            api.terminate()
            api.wait(timeout=15)
            rt.engine.dispose()
    return 0


def upload(http: httpx.Client, pid: int, work: Path, megabytes: int) -> None:
    path = work / "big.jsonl"
    lines = write_jsonl(path, target_bytes=megabytes * 1_000_000)
    size_mb = path.stat().st_size / 1e6
    sampler = RssSampler(pid)
    baseline = sampler.sample() / 1e6
    sampler.start()
    started = time.perf_counter()
    with path.open("rb") as handle:
        answer = http.post("/v1/jobs", files={"file": ("big.jsonl", handle)},
                           data={"provider": "openai", "model": MODEL})
    elapsed = time.perf_counter() - started
    sampler.stop_flag.set()
    sampler.join()
    assert answer.status_code == 201, answer.text
    peak = sampler.peak / 1e6
    verdict = "ok" if peak < RSS_FLOOR_MB else "OVER"
    print(f"upload: {size_mb:.0f} MB, {lines} lines stored in {elapsed:.1f} s "
          f"({size_mb / elapsed:.1f} MB/s, upload + ingest)")
    print(f"  API peak RSS {peak:.0f} MB (idle before: {baseline:.0f} MB); "
          f"goal < {RSS_FLOOR_MB} MB: {verdict}")
    path.unlink()


def download(http: httpx.Client, rt: Any, work: Path, count: int, pid: int) -> None:
    path = work / "results.jsonl"
    write_jsonl(path, count=count)
    with path.open("rb") as handle:
        job = http.post("/v1/jobs", files={"file": ("results.jsonl", handle)},
                        data={"provider": "openai", "model": MODEL}).json()
    answer = {"id": "chatcmpl-x", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": "An answer of a few words."}, "finish_reason": "stop"}]}
    with rt.engine.begin() as conn:  # what fetching the provider's results would have stored
        conn.execute(update(items).where(items.c.job_id == job["id"]).values(
            status="succeeded", output_text="An answer of a few words.", finish_reason="stop",
            response=answer, input_tokens=12, output_tokens=6, attempts=1))
    for label, headers in (("plain", {"Accept-Encoding": "identity"}),
                           ("gzip", {"Accept-Encoding": "gzip"})):
        api_cpu = psutil.Process(pid).cpu_times()
        started = time.perf_counter()
        received = wire = 0
        with http.stream("GET", f"/v1/jobs/{job['id']}/results", headers=headers) as stream:
            for data in stream.iter_bytes():  # decoded (gunzipped); lines end in \n
                received += data.count(b"\n")
            wire = stream.num_bytes_downloaded
        elapsed = time.perf_counter() - started
        after = psutil.Process(pid).cpu_times()
        cpu = (after.user + after.system) - (api_cpu.user + api_cpu.system)
        rate = received / elapsed
        verdict = "ok" if rate >= RATE_FLOOR else "UNDER"
        print(f"results ({label}): {received} items in {elapsed:.2f} s = {rate:,.0f} items/s, "
              f"{wire / 1e6:.2f} MB on the wire; goal >= {RATE_FLOOR:,}/s: {verdict}")
        # On a shared machine the wall rate says how busy it was; the API's own CPU time
        # says what one core of it serves.
        print(f"  API CPU {cpu:.2f} s = {received / max(cpu, 1e-9):,.0f} items per CPU-second "
              f"(load average {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count()} cores)")
    assert received == count


if __name__ == "__main__":
    sys.exit(main())
