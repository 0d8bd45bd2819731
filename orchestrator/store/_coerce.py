"""Turn user rows (a pyarrow Table, a list of dicts, or a pandas DataFrame) into a table of
exactly one :class:`~orchestrator.store.schema.TableSpec`'s schema, or raise ``StoreError``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .errors import StoreError
from .schema import TableSpec

__all__ = ["Rows", "to_arrow"]

# A pyarrow Table, a sequence of dicts, or a pandas DataFrame (not named in the annotation so
# that the store never imports pandas).
Rows = Any


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _utc(value: Any) -> Any:
    # Naive datetimes are taken as UTC, never as the machine's local time.
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def _from_dicts(spec: TableSpec, rows: Sequence[Mapping[str, Any]]) -> dict[str, pa.Array]:
    names = set(spec.schema.names)
    for i, row in enumerate(rows):
        unknown = sorted(set(row) - names)
        if unknown:
            raise StoreError(
                f"{spec.name} row {i}: unknown column(s) {unknown}; expected a subset of {spec.schema.names}"
            )
    present = set().union(*(row.keys() for row in rows)) if rows else set()
    columns: dict[str, pa.Array] = {}
    for f in spec.schema:
        if f.name not in present:
            continue
        values = [row.get(f.name) for row in rows]
        if f.name in spec.json_columns:
            values = [_json_value(v) for v in values]
        if pa.types.is_timestamp(f.type):
            values = [_utc(v) for v in values]
        try:
            columns[f.name] = pa.array(values, type=f.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:
            raise StoreError(
                f"{spec.name}.{f.name} must hold {f.type} values, got {values[:3]!r}...: {exc}"
            ) from None
    return columns


def _from_table(spec: TableSpec, table: pa.Table) -> dict[str, pa.Array]:
    unknown = sorted(set(table.column_names) - set(spec.schema.names))
    if unknown:
        raise StoreError(
            f"{spec.name}: unknown column(s) {unknown}; expected a subset of {spec.schema.names}"
        )
    columns: dict[str, pa.Array] = {}
    for f in spec.schema:
        if f.name not in table.column_names:
            continue
        col = table.column(f.name).combine_chunks()
        if pa.types.is_dictionary(col.type):  # pandas category columns
            col = col.dictionary_decode()
        if f.name in spec.json_columns and not pa.types.is_string(col.type):
            col = pa.array([_json_value(v) for v in col.to_pylist()], type=pa.string())
        try:
            col = pc.cast(col, f.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            if not pa.types.is_timestamp(f.type):
                raise StoreError(
                    f"{spec.name}.{f.name} must be castable to {f.type}, got {col.type}: {exc}"
                ) from None
            col = pc.cast(col, f.type, safe=False)  # ns -> us truncation
        columns[f.name] = col
    return columns


def to_arrow(spec: TableSpec, rows: Rows, sweep_id: str) -> pa.Table:
    """Return ``rows`` as a table with exactly ``spec.schema``.

    A missing ``sweep_id`` column is filled with ``sweep_id``; a present one must equal it.
    Missing nullable columns become nulls; missing or null required columns, unknown columns,
    uncastable values and values outside ``spec.allowed`` raise :class:`StoreError`.
    """
    if isinstance(rows, pa.Table):
        columns = _from_table(spec, rows)
    elif hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        columns = _from_table(spec, pa.Table.from_pandas(rows, preserve_index=False))
    elif isinstance(rows, Sequence) and not isinstance(rows, str | bytes):
        columns = _from_dicts(spec, rows)
    else:
        raise StoreError(
            f"{spec.name} rows must be a pyarrow Table, a list of dicts or a pandas DataFrame, "
            f"got {type(rows).__name__}"
        )
    n_rows = len(next(iter(columns.values()))) if columns else len(rows)
    if "sweep_id" not in columns:
        columns["sweep_id"] = pa.array([sweep_id] * n_rows, type=pa.string())
    arrays = []
    for f in spec.schema:
        col = columns.get(f.name)
        if col is None:
            if not f.nullable:
                raise StoreError(f"{spec.name}.{f.name} is required, but the rows lack it")
            col = pa.nulls(n_rows, type=f.type)
        elif not f.nullable and col.null_count:
            raise StoreError(
                f"{spec.name}.{f.name} is required, but {col.null_count} row(s) are null"
            )
        arrays.append(col)
    table = pa.Table.from_arrays(arrays, schema=spec.schema)
    bad_sweep = set(table.column("sweep_id").unique().to_pylist()) - {sweep_id}
    if bad_sweep:
        raise StoreError(f"{spec.name}.sweep_id must be {sweep_id!r}, got {sorted(bad_sweep)}")
    for name, allowed in spec.allowed.items():
        bad = set(table.column(name).unique().to_pylist()) - set(allowed)
        if bad:
            raise StoreError(
                f"{spec.name}.{name} must be one of {list(allowed)}, got {sorted(bad)}"
            )
    return table
