"""A fetch's chunks written with a pause each: the next chunk is read while the last one is
paused, every chunk is finished before the next starts, and a chunk the database refuses,
when it starts or when it finishes, is written again piecewise."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy.exc import DataError, OperationalError

from llmbatch.domain.models import ItemResult
from llmbatch.domain.states import ItemStatus
from llmbatch.domain.storable import StorableResult
from llmbatch.pausable import Pausable, run_through
from llmbatch.service_layer.chunk_writes import ChunkWrites

REFUSED = DataError("COPY item_results ...", {}, Exception("unsupported Unicode escape"))


def chunk(*keys: str) -> list[StorableResult]:
    return [StorableResult(ItemResult(provider_key=k, status=ItemStatus.SUCCEEDED, line=n))
            for n, k in enumerate(keys, start=1)]


class PausingStore:
    """One transaction per chunk, pausing once like the PostgreSQL ``COPY``: it logs what
    happens in order, refuses chunks holding a key of ``bad`` at the stage ``refuse_at``
    (``start`` or ``finish``), and keeps what it committed."""

    def __init__(self, bad: frozenset[str] = frozenset(), refuse_at: str = "finish",
                 pauses: int = 1) -> None:
        self.bad, self.refuse_at, self.pauses = bad, refuse_at, pauses
        self.log: list[str] = []
        self.committed: list[str] = []

    def steps(self, part: Sequence[StorableResult]) -> Pausable[int]:
        keys = [s.result.provider_key for s in part]
        name = "+".join(keys)
        refused = any(s.result.provider_key in self.bad
                      and s.result.status is ItemStatus.SUCCEEDED for s in part)
        self.log.append(f"start {name}")
        if refused and self.refuse_at == "start":
            raise REFUSED
        for _ in range(self.pauses):
            yield
        if refused:
            raise REFUSED
        self.log.append(f"commit {name}")
        self.committed.extend(
            k if s.result.status is ItemStatus.SUCCEEDED else f"{k}:failed"
            for k, s in zip(keys, part, strict=True))
        return len(part)


def test_each_chunk_stays_paused_until_the_next_one_and_is_finished_before_it_starts() -> None:
    store = PausingStore()
    writes = ChunkWrites(store.steps)

    writes.write(chunk("a", "b"))
    assert store.log == ["start a+b"]  # paused: the caller reads on meanwhile
    writes.write(chunk("c"))
    assert store.log == ["start a+b", "commit a+b", "start c"]
    writes.finish()
    writes.finish()  # nothing left paused: nothing happens

    assert store.log == ["start a+b", "commit a+b", "start c", "commit c"]
    assert store.committed == ["a", "b", "c"]


def test_a_store_that_does_not_pause_finishes_each_chunk_at_once() -> None:
    store = PausingStore(pauses=0)
    writes = ChunkWrites(store.steps)
    writes.write(chunk("a"))
    assert store.log == ["start a", "commit a"]


@pytest.mark.parametrize("refuse_at", ["start", "finish"])
def test_a_refused_chunk_is_written_again_piecewise_and_only_the_refused_result_fails(
        refuse_at: str) -> None:
    store = PausingStore(bad=frozenset({"c"}), refuse_at=refuse_at)
    writes = ChunkWrites(store.steps)

    writes.write(chunk("a", "b", "c", "d"))
    writes.finish()

    assert sorted(store.committed) == ["a", "b", "c:failed", "d"]


def test_a_database_failure_is_raised_and_leaves_nothing_paused() -> None:
    def failing(part: Sequence[StorableResult]) -> Pausable[int]:
        yield
        raise OperationalError("COPY item_results", {}, Exception("server closed the "
                                                                 "connection"))

    writes = ChunkWrites(failing)
    writes.write(chunk("a"))
    with pytest.raises(OperationalError):
        writes.finish()
    writes.finish()  # the failed chunk is gone, not paused again


def test_a_step_pausing_twice_is_a_bug_reported_not_a_chunk_left_open() -> None:
    store = PausingStore(pauses=2)
    writes = ChunkWrites(store.steps)
    writes.write(chunk("a"))
    with pytest.raises(RuntimeError, match="paused a second time"):
        writes.finish()
    assert store.committed == []


def test_run_through_carries_on_at_every_pause() -> None:
    assert run_through(PausingStore(pauses=3).steps(chunk("a", "b"))) == 2
