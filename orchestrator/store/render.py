"""Render a query result (a pyarrow Table) as text: an aligned table, CSV, or JSON.

Pure Python over ``Table.to_pylist()`` so the ``lrsweep query`` path never imports pandas.
CSV: floats as ``repr`` (round-trips exactly, ``nan``/``inf`` included), nulls as empty
fields, lists and structs as JSON, timestamps in ISO 8601. JSON: an array of records, strict
JSON (non-finite floats become ``null``).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
from collections.abc import Callable
from typing import Any

import pyarrow as pa

__all__ = ["FORMATS", "render"]


def _plain(value: Any) -> Any:
    """A JSON-able version of one value."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):  # DuckDB SUM(BIGINT) is HUGEINT -> decimal128
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple | dict):
        return json.dumps(_plain(value))
    plain = _plain(value)
    return str(plain)


def _to_csv(table: pa.Table) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.column_names)
    names = table.column_names
    for row in table.to_pylist():
        writer.writerow([_csv_cell(row[n]) for n in names])
    return buf.getvalue()


def _to_json(table: pa.Table) -> str:
    rows = [json.dumps({k: _plain(v) for k, v in row.items()}) for row in table.to_pylist()]
    return "[\n" + ",\n".join(rows) + "\n]\n" if rows else "[]\n"


def _table_cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple | dict):
        return json.dumps(_plain(value))
    return str(_plain(value))


def _to_table(table: pa.Table) -> str:
    names = table.column_names
    cells = [[_table_cell(row[n]) for n in names] for row in table.to_pylist()]
    numeric = [
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
        for t in table.schema.types
    ]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(names), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    out.append(f"({len(cells)} row{'s' if len(cells) != 1 else ''})")
    return "\n".join(out) + "\n"


FORMATS: dict[str, Callable[[pa.Table], str]] = {
    "table": _to_table,
    "csv": _to_csv,
    "json": _to_json,
}


def render(table: pa.Table, fmt: str) -> str:
    """Render ``table`` in ``fmt`` (a key of :data:`FORMATS`)."""
    return FORMATS[fmt](table)
