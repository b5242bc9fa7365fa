"""The scheduler tick as a thread of the worker (``llmbatch worker --beat`` with a threads or
solo pool: the embedded worker that ``submit --wait`` and ``demo`` start).

Celery's own ``worker --beat`` runs the beat as a child process. That child is a second
Python interpreter with its own copy of every module the worker imported (~55-60 MiB of pages
of its own, measured with USS), to send one small message every ``worker.tick_interval_s``.
In a pool that runs tasks in threads, a thread does the same job for a few hundred kilobytes:
Celery's ``EmbeddedService(thread=True)``, started and stopped with the worker by a bootstep,
so it still is one ticker per worker process and ends with it (warm shutdown stops it, a
killed worker takes it along).

A forking pool (prefork) keeps Celery's beat process: a thread running while the pool forks
new children could hand them a lock it held at that moment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery, bootsteps

__all__ = ["THREADED_POOLS", "add_beat_thread"]

THREADED_POOLS = frozenset({"threads", "solo"})


def add_beat_thread(app: Celery, schedule: Path) -> None:
    """Make ``app``'s workers run the beat in a thread, keeping its bookkeeping in
    ``schedule`` (what ``--schedule`` is to Celery's beat)."""

    class BeatThread(bootsteps.StartStopStep):  # type: ignore[misc]
        """Starts after the pool (as Celery's Beat step does) and stops with the worker."""

        label = "llmbatch beat thread"
        requires = ("celery.worker.components:Pool",)

        def create(self, w: Any) -> Any:
            from celery.beat import EmbeddedService

            return EmbeddedService(w.app, thread=True, schedule_filename=str(schedule))

    app.steps["worker"].add(BeatThread)
