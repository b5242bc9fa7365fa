"""One side-by-side table from the figures ``make bench`` wrote (issue 13 item 5).

Each benchmark of the run writes its figures with ``--json`` into one directory; this reads
them back and prints, together: every stage next to its floor (ingest, and the items writer
alone under it, build + upload, fetch, finalize; items/s as the median of the rounds, and the
ratio of the medians), the memory of
each process at each job size, the tick's dispatch time at each number of due batches, and the
end-to-end comparison with LiteLLM. A figure whose benchmark did not run (or was skipped,
e.g. PostgreSQL unreachable) is left out, not guessed. Usage::

    .venv/bin/python benchmarks/bench_summary.py benchmarks/out
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any


def load(directory: Path, name: str) -> Any:
    path = directory / name
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def stage_rows(directory: Path) -> list[tuple[str, str, int, list[float], list[float]]]:
    """(stage, backend, items, floor seconds, llmbatch seconds) from every benchmark."""
    rows: list[tuple[str, str, int, list[float], list[float]]] = []
    ingest = load(directory, "ingest.json") or {}
    for r in ingest.get("ingest", []):
        rows.append(("ingest", r["backend"], r["items"], r["floor_s"], r["llmbatch_s"]))
        if r.get("write_alone_s"):  # the items writer alone: the most ingest could reach
            rows.append(("  write alone", r["backend"], r["items"], r["floor_s"],
                         r["write_alone_s"]))
    floors = (load(directory, "floors.json") or {}).get("stages", [])
    fetch = (load(directory, "fetch.json") or {}).get("fetch", [])
    for stage in ("build + upload", "fetch", "finalize"):
        source = fetch if stage == "fetch" else [r for r in floors if r["stage"] == stage]
        for r in source:
            rows.append((stage, r["backend"], r["items"], r["floor_s"], r["llmbatch_s"]))
    return rows


def rate(items: int, seconds: list[float]) -> str:
    return f"{items / statistics.median(seconds):,.0f}"


def stages_table(directory: Path) -> list[str]:
    lines = ["stage next to its floor (items/s, median of the rounds; ratio = floor median s /"
             " llmbatch median s)",
             f"  {'stage':<16}{'backend':<10}{'items':>9}{'floor':>13}{'llmbatch':>13}"
             f"{'ratio':>8}"]
    for stage, backend, items, floor_s, ours_s in stage_rows(directory):
        ratio = statistics.median(floor_s) / statistics.median(ours_s)
        lines.append(f"  {stage:<16}{backend:<10}{items:>9,}{rate(items, floor_s):>13}"
                     f"{rate(items, ours_s):>13}{ratio:>8.0%}")
    return lines


def memory_table(directory: Path) -> list[str]:
    lines = ["memory per process (MiB): `llmbatch submit` storing the job (peak RSS); the worker's"
             " process tree running it, with the separate beat where one runs (RSS and PSS"
             " summed over the processes, peak and idle)",
             f"  {'items':>9}  {'process':<44}{'RSS peak':>10}{'idle':>7}{'PSS peak':>10}"
             f"{'idle':>7}"]
    ingest = load(directory, "ingest.json") or {}
    rows: list[tuple[int, str, list[float | None]]] = []
    for r in ingest.get("ingest", []):
        rows.append((r["items"], f"submit ({r['backend']})",
                     [r["submit_rss_mib"], None, None, None]))
    for path in sorted(directory.glob("openai_path-*.json")):
        for r in json.loads(path.read_text(encoding="utf-8")).get("results", []):
            rows.append((r["items"], f"worker tree ({r['backend']})",
                         [r["rss_peak_mb"], r["rss_idle_mb"], r.get("pss_peak_mb"),
                          r.get("pss_idle_mb")]))
    for items, name, figures in sorted(rows, key=lambda r: (r[0], r[1])):
        cells = "".join(f"{'' if v is None else f'{v:.0f}':>{w}}"
                        for v, w in zip(figures, (10, 7, 10, 7), strict=True))
        lines.append(f"  {items:>9,}  {name:<44}{cells}")
    return lines


def dispatch_table(directory: Path) -> list[str]:
    lines = ["one tick with N batches due: seconds (dispatched / messages), goal",
             f"  {'backend':<10}{'N':>8}{'grouped':>28}{'goal':>8}"]
    for r in (load(directory, "dispatch.json") or {}).get("dispatch", []):
        seconds, dispatched, messages = r["grouped"]
        lines.append(f"  {r['backend']:<10}{r['due']:>8,}"
                     f"{f'{seconds:.2f} s ({dispatched:,} / {messages:,})':>28}"
                     f"{'< ' + str(r['goal_s']) + ' s':>8}")
    return lines


def compare_table(directory: Path) -> list[str]:
    data = load(directory, "compare.json")
    if not data:
        return []
    lines = [f"end to end, {data['items']:,} prompts on the same emulator (timing "
             f"{data['timing']}): wall s (CPU s)",
             f"  {'round':<6}{'LiteLLM SDK loop':>20}{'llmbatch embedded':>20}"
             f"{'llmbatch / LiteLLM':>20}"]
    for n, pair in enumerate(data["rounds"], 1):
        if len(pair) != 2:
            continue
        a, b = pair["litellm"], pair["llmbatch"]
        cells = [f"{side['wall_s']:.2f} ({side['cpu_s']:.1f})" for side in (a, b)]
        lines.append(f"  {n:<6}{cells[0]:>20}{cells[1]:>20}"
                     f"{b['wall_s'] / a['wall_s']:>19.2f}x")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0] if args else "benchmarks/out")
    load_avg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    sections = [stages_table(directory), memory_table(directory), dispatch_table(directory),
                compare_table(directory)]
    print(f"\n== make bench, side by side (figures from {directory}; load now {load_avg})")
    for section in sections:
        if len(section) > 2 or (section and "prompts" in section[0]):
            print("\n" + "\n".join(section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
