"""The results store: every sweep's curves, runs, settings and spec as hive-partitioned Parquet."""

from __future__ import annotations

from .errors import QueryError, StoreError
from .schema import (
    CURVES,
    DONE_STATUSES,
    RUNS,
    SCHEMA_VERSION,
    SETTINGS,
    SPLITS,
    STATUSES,
    SWEEPS,
    TABLES,
    TableSpec,
)
from .store import ResultsStore

__all__ = [
    "CURVES",
    "DONE_STATUSES",
    "RUNS",
    "SETTINGS",
    "SCHEMA_VERSION",
    "SPLITS",
    "STATUSES",
    "SWEEPS",
    "TABLES",
    "QueryError",
    "ResultsStore",
    "StoreError",
    "TableSpec",
]
