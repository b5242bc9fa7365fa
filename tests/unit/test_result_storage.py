"""Storing a chunk of results when the database refuses some of them: the refused ones are
isolated by bisection and fail their item; every other result is written."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy.exc import DataError, OperationalError, StatementError

from llmbatch.db.item_queries import is_refused_value
from llmbatch.domain.models import ItemResult
from llmbatch.domain.states import ItemStatus
from llmbatch.domain.storable import StorableResult
from llmbatch.service_layer.result_storage import store_isolating, unstorable_summary


class RefusingStore:
    """Writes a chunk all or nothing, like one transaction, refusing chunks holding a bad key."""

    def __init__(self, bad: set[str], error: BaseException | None = None) -> None:
        self.bad = bad
        self.error = error or DataError("UPDATE items ...", {}, Exception("value too long"))
        self.written: list[ItemResult] = []
        self.transactions = 0

    def write(self, part: Sequence[StorableResult]) -> int:
        self.transactions += 1
        if any(s.result.provider_key in self.bad and s.result.status is ItemStatus.SUCCEEDED
               for s in part):
            raise self.error
        self.written.extend(s.result for s in part)
        return len(part)


def chunk(n: int) -> list[StorableResult]:
    return [StorableResult(ItemResult(provider_key=f"k-{i}", status=ItemStatus.SUCCEEDED,
                                      output_text=f"answer {i}", line=i + 1)) for i in range(n)]


def test_a_chunk_the_database_accepts_is_written_in_one_transaction() -> None:
    store = RefusingStore(bad=set())
    assert store_isolating(chunk(100), store.write) == 100
    assert store.transactions == 1


def test_refused_results_fail_their_item_and_every_other_result_is_written() -> None:
    store = RefusingStore(bad={"k-3", "k-70"})

    assert store_isolating(chunk(100), store.write) == 100

    by_key = {r.provider_key: r for r in store.written}
    assert len(by_key) == 100
    assert all(by_key[f"k-{i}"].status is ItemStatus.SUCCEEDED for i in range(100)
               if i not in (3, 70))
    for key, line in (("k-3", 4), ("k-70", 71)):
        failed = by_key[key]
        assert failed.status is ItemStatus.FAILED and failed.error is not None
        assert failed.error.code == "result_unstorable" and not failed.error.retryable
        assert failed.error.message == (
            f"result line {line}: the database refused it: value too long")
        assert failed.output_text is None
    assert store.transactions < 40  # bisection, not one transaction per row


def test_an_error_that_is_not_a_refused_value_is_raised_not_isolated() -> None:
    store = RefusingStore(bad={"k-1"}, error=OperationalError("x", {}, Exception("db down")))
    with pytest.raises(OperationalError):
        store_isolating(chunk(4), store.write)
    assert store.written == []


@pytest.mark.parametrize(("error", "refused"), [
    (DataError("s", {}, Exception("integer out of range")), True),
    (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), True),
    (OverflowError("Python int too large to convert to SQLite INTEGER"), True),
    (StatementError("bind", "s", {}, TypeError("not JSON serializable")), True),
    (OperationalError("s", {}, Exception("database is locked")), False),
    (StatementError("bind", "s", {}, RuntimeError("bug")), False),
    (ValueError("a bug of ours"), False),
])
def test_what_counts_as_a_value_the_database_refused(error: BaseException,
                                                     refused: bool) -> None:
    assert is_refused_value(error) is refused


def test_the_batch_summary_counts_every_problem_and_spells_out_the_first_few() -> None:
    problems = [f"result line {i}: bad" for i in range(1, 9)]
    summary = unstorable_summary(problems)
    assert summary.startswith("8 result(s) could not be stored as they came")
    assert "result line 5: bad" in summary and "result line 6" not in summary
    assert summary.endswith("and 3 more")
