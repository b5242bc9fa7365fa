"""``llmbatch results --format parquet -o FILE``: the results as one typed Parquet table.

pyarrow is an optional extra (``pip install 'llmbatch[parquet]'``): a large dependency that only
this output needs, so it is imported here, on use, and its absence is one clear line (exit 2).

Columns keep their types: token counts and attempts are ``int64``, ``cost_usd`` an exact
``decimal128(38, 12)`` (costs are whole picodollars, so nothing is rounded), text columns
``string``; the nested values (``response``, ``usage``, ``error``, ``history``) are JSON text,
because their shape differs by provider and a struct column would need one schema for all.
Rows are written in groups of ``ROW_GROUP`` records, so a large job never sits in memory whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from llmbatch.errors import InputError
from llmbatch.service_layer.read_models.values import ResultRecord

__all__ = ["DEFAULT_FIELDS", "ROW_GROUP", "require_pyarrow", "write_parquet"]

ROW_GROUP = 10_000
DEFAULT_FIELDS = ("custom_id", "status", "output_text", "finish_reason", "input_tokens",
                  "output_tokens", "cached_tokens", "reasoning_tokens", "cost_usd",
                  "error_message", "provider", "model", "attempts", "response", "error")
_INTEGERS = frozenset({"input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens",
                       "attempts"})
_JSON = frozenset({"response", "usage", "error", "history"})


def require_pyarrow() -> None:
    """Refuse early (before any database work) when pyarrow is missing."""
    _pyarrow()


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise InputError("parquet output needs pyarrow, which is not installed: "
                         "pip install 'llmbatch[parquet]' (or use --format jsonl or csv)",
                         field="--format") from None
    return pyarrow, pyarrow.parquet


def _column_type(pa: Any, name: str) -> Any:
    if name in _INTEGERS:
        return pa.int64()
    if name == "cost_usd":
        return pa.decimal128(38, 12)
    return pa.string()


def _value(name: str, value: Any) -> Any:
    if name in _JSON:
        return None if value is None else json.dumps(value, ensure_ascii=False)
    return value


def write_parquet(records: Iterable[ResultRecord], path: Path, fields: tuple[str, ...],
                  getters: dict[str, Callable[[ResultRecord], Any]]) -> int:
    """Write ``records`` to ``path`` with the columns ``fields``; the number written."""
    pa, pq = _pyarrow()
    schema = pa.schema([pa.field(name, _column_type(pa, name)) for name in fields])
    count = 0
    try:
        writer = pq.ParquetWriter(str(path), schema)
    except OSError as exc:
        raise InputError(f"cannot write: {exc}", file=str(path)) from exc
    with writer:
        columns: dict[str, list[Any]] = {name: [] for name in fields}
        for record in records:
            for name in fields:
                columns[name].append(_value(name, getters[name](record)))
            count += 1
            if count % ROW_GROUP == 0:
                writer.write_table(pa.table(columns, schema=schema))
                columns = {name: [] for name in fields}
        if count % ROW_GROUP or count == 0:
            writer.write_table(pa.table(columns, schema=schema))
    return count
