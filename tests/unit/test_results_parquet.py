"""``results --format parquet``: the table's types, exact costs, row groups, and the line a
user gets without pyarrow (the CLI side is in tests/service/test_cli_reads.py)."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from llmbatch.cli import parquet
from llmbatch.cli.results import FIELDS
from llmbatch.domain.models import Usage
from llmbatch.domain.states import ItemStatus
from llmbatch.errors import InputError
from llmbatch.service_layer.read_models.values import ResultRecord

pq = pytest.importorskip("pyarrow.parquet")  # in .[dev]; the extra is llmbatch[parquet]


def record(i: int, cost: Decimal | None) -> ResultRecord:
    return ResultRecord(
        custom_id=f"r-{i}", status=ItemStatus.SUCCEEDED, output_text=f"answer {i}",
        finish_reason="stop", response={"choices": [{"i": i}], "big": 2**70},
        usage=Usage(input_tokens=i, output_tokens=2 * i), cost_usd=cost, error=None,
        provider="openai", model="m", attempts=1)


def test_costs_are_exact_to_the_picodollar_and_rows_span_row_groups(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parquet, "ROW_GROUP", 4)
    costs = [Decimal("0.000000000001"), Decimal("123456.789012345678"), None,
             Decimal("0"), Decimal("1E-12"), Decimal("0.5"), Decimal("7"), None, Decimal("2")]
    out = tmp_path / "r.parquet"

    count = parquet.write_parquet((record(i, c) for i, c in enumerate(costs)), out,
                                  parquet.DEFAULT_FIELDS, FIELDS)

    table = pq.read_table(out)
    assert count == len(costs) == table.num_rows
    assert pq.ParquetFile(out).metadata.num_row_groups == 3
    assert table.column("cost_usd").to_pylist() == costs
    assert table.column("custom_id").to_pylist() == [f"r-{i}" for i in range(len(costs))]
    assert table.column("output_tokens").to_pylist() == [2 * i for i in range(len(costs))]
    assert json.loads(table.column("response")[0].as_py()) == {"choices": [{"i": 0}],
                                                                "big": 2**70}
    assert table.column("error").to_pylist() == [None] * len(costs)


def test_no_record_is_an_empty_table_with_the_columns(tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"

    assert parquet.write_parquet(iter(()), out, ("custom_id", "cost_usd"), FIELDS) == 0

    table = pq.read_table(out)
    assert (table.num_rows, table.column_names) == (0, ["custom_id", "cost_usd"])


def test_an_unwritable_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot write"):
        parquet.write_parquet(iter(()), tmp_path / "no" / "such" / "r.parquet",
                              ("custom_id",), FIELDS)


def test_without_pyarrow_the_error_says_which_extra_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)

    with pytest.raises(InputError, match=r"pip install 'llmbatch\[parquet\]'"):
        parquet.require_pyarrow()
