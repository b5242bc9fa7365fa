"""LiteLLM's SDK loop over a JSONL file of chat requests: what a user writes to fan out.

Run by ``compare_litellm.py`` with the interpreter of LiteLLM's own virtual environment (it
imports nothing from llmbatch). Each line's body goes to ``litellm.acompletion`` against
``--api-base`` (the emulator's OpenAI URL) with at most ``--concurrency`` calls in flight
(asyncio + a semaphore); each answer is written to ``--out`` as one JSON line, so this side
keeps its results too, as llmbatch's does. Prints one JSON object: import, loop and CPU
seconds, answers and failures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

# Never fetch LiteLLM's model price map from the internet (nothing here may leave the machine).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")


async def run(args: argparse.Namespace) -> dict[str, object]:
    t0 = time.perf_counter()
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    import_s = time.perf_counter() - t0
    sem = asyncio.Semaphore(args.concurrency)
    failures: list[str] = []
    answered = 0

    with open(args.prompts, encoding="utf-8") as src, open(args.out, "w",
                                                            encoding="utf-8") as out:
        lines = [json.loads(line) for line in src if line.strip()]

        async def one(line: dict[str, object]) -> None:
            nonlocal answered
            body = dict(line["body"])  # type: ignore[call-overload]
            body.pop("model", None)
            async with sem:
                try:
                    response = await litellm.acompletion(
                        model=f"openai/{args.model}", api_base=args.api_base,
                        api_key=args.api_key, num_retries=0, **body)
                except Exception as exc:  # counted and reported, the loop goes on
                    failures.append(f"{line['custom_id']}: {type(exc).__name__}: {exc}"[:300])
                    return
            out.write(json.dumps({"custom_id": line["custom_id"],
                                  "response": response.model_dump()}) + "\n")
            answered += 1

        t1 = time.perf_counter()
        await asyncio.gather(*(one(line) for line in lines))
        loop_s = time.perf_counter() - t1
    return {"import_s": import_s, "loop_s": loop_s, "answered": answered,
            "failed": len(failures), "first_failures": failures[:3],
            "cpu_s": time.process_time(), "litellm": _version()}


def _version() -> str:
    from importlib.metadata import version

    return version("litellm")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--api-key", default="bench-key")
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--concurrency", type=int, default=64)
    result = asyncio.run(run(parser.parse_args()))
    print(json.dumps(result))
    return 0 if not result["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
