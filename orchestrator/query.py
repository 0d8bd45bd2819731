"""Read a results store: pandas loaders, the final-loss table, and SQL (DuckDB) queries.

Every loader is a query over the views of :mod:`orchestrator.store.sql` (one definition of what
a whole curve, a lineage row or a final loss is, for SQL and pandas alike). ``run_query`` is
what ``lrsweep query SQL`` calls; it imports neither pandas nor ``pyarrow.dataset`` on a local
store, so a query process starts fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .store import ResultsStore, StoreError
from .store.errors import QueryError
from .store.render import FORMATS, render
from .store.sandbox import connect as _confined_connect
from .store.sandbox import read_only_statement
from .store.sandbox import run as _confined_run

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

__all__ = [
    "connect",
    "final_losses",
    "load_curve_rows",
    "load_curves",
    "load_lineages",
    "load_runs",
    "load_settings",
    "load_sweeps",
    "open_store",
    "query_arrow",
    "query_df",
    "run_query",
]

StoreLike = ResultsStore | str

_ORDER = {
    "curves": ["sweep_id", "setting_id", "lineage_id", "branch", "split", "weights", "step"],
    "curve_rows": ["sweep_id", "lineage_id", "branch", "split", "weights", "step"],
    "lineages": ["sweep_id", "lineage_id", "branch", "setting_id"],
    "runs": ["sweep_id", "lineage_id", "branch"],
    "settings": ["sweep_id", "setting_id", "lineage_id", "branch"],
    "sweeps": ["sweep_id"],
    "final_losses": ["sweep_id", "setting_id", "lineage_id", "branch", "horizon", "weights"],
}


def open_store(store: StoreLike) -> ResultsStore:
    """``store`` itself, or a :class:`ResultsStore` at the path/URI ``store``."""
    return store if isinstance(store, ResultsStore) else ResultsStore(str(store))


def _require(store: StoreLike, sweep_id: str | None) -> ResultsStore:
    store = open_store(store)
    if not store.check_version():
        raise StoreError(f"results store {store.root!r} is empty: no sweep has written results yet")
    if sweep_id is not None:
        known = store.sweep_ids()
        if sweep_id not in known:
            raise StoreError(
                f"sweep_id {sweep_id!r} is not in results store {store.root!r}; sweeps there: "
                f"{', '.join(known) or '(none)'}"
            )
    return store


def _load(store: StoreLike, view: str, sweep_id: str | None, filters: dict[str, Any]) -> pd.DataFrame:
    store = _require(store, sweep_id)

    def read(con: duckdb.DuckDBPyConnection) -> pa.Table:
        columns = [row[0] for row in con.execute(f"DESCRIBE {view}").fetchall()]
        where, params = [], []
        if sweep_id is not None:
            where.append("sweep_id = ?")
            params.append(sweep_id)
        for column, value in filters.items():
            if column not in columns:
                raise StoreError(f"load_{view} filter {column!r} is not a {view} column; columns: {columns}")
            if isinstance(value, Iterable) and not isinstance(value, str | bytes):
                values = list(value)
                where.append(f'"{column}" IN ({", ".join("?" for _ in values)})')
                params.extend(values)
            else:
                where.append(f'"{column}" = ?')
                params.append(value)
        sql = f"SELECT * FROM {view}" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY " + ", ".join(f'"{c}"' for c in _ORDER[view])
        return con.sql(sql, params=params).to_arrow_table()

    # a confined connection, listed again if a racing compaction removes a file under it
    return _confined_run(store, read).to_pandas()


def load_curves(store: StoreLike, sweep_id: str | None = None, **filters: Any) -> pd.DataFrame:
    """Whole curves: per (setting, lineage, branch) its rows, a cooldown's led by the shared
    trunk's rows before its fork; sorted by (sweep, setting, lineage, branch, split, weights, step).

    Args:
        store: a :class:`ResultsStore` or its root.
        sweep_id: one sweep, or ``None`` for all.
        **filters: ``column=value`` (equality) or ``column=[v1, v2]`` (membership), e.g.
            ``split="eval", weights=["raw", "ema@0.05"]``.
    """
    return _load(store, "curves", sweep_id, filters)


def load_curve_rows(store: StoreLike, sweep_id: str | None = None, **filters: Any) -> pd.DataFrame:
    """Curve rows as trained and stored (a trunk's rows once), with :func:`load_curves`' filters."""
    return _load(store, "curve_rows", sweep_id, filters)


def load_lineages(store: StoreLike, sweep_id: str | None = None, **filters: Any) -> pd.DataFrame:
    """One row per (setting, lineage, branch) of each sweep's spec, with its run's status."""
    return _load(store, "lineages", sweep_id, filters)


def load_runs(store: StoreLike, sweep_id: str | None = None, **filters: Any) -> pd.DataFrame:
    """One row per (lineage, branch) trained: the trunk or a cooldown."""
    return _load(store, "runs", sweep_id, filters)


def load_settings(store: StoreLike, sweep_id: str | None = None, **filters: Any) -> pd.DataFrame:
    """One row per (setting, lineage, branch): where each setting is answered."""
    return _load(store, "settings", sweep_id, filters)


def load_sweeps(store: StoreLike) -> pd.DataFrame:
    """One row per sweep, sorted by sweep_id."""
    return _load(store, "sweeps", None, {})


def final_losses(store: StoreLike, sweep_id: str | None = None) -> pd.DataFrame:
    """The loss each setting reaches at each of its horizons, per weights variant.

    One row per (setting, horizon ``h``, weights): the eval loss at ``step == h`` on the branch
    that answers ``h`` (``status`` ``completed``), with the setting's columns. Where there is
    none, one row with ``loss`` NaN per weights variant its lineage ever evaluated (at least
    ``"raw"``) and the run's status (``diverged``, ``failed`` or ``pending``). The same rows as
    ``SELECT * FROM final_losses`` in :func:`connect`.
    """
    return _load(store, "final_losses", sweep_id, {})


def connect(store: StoreLike, *, union_by_name: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with views ``curves``, ``curve_rows``, ``lineages``, ``runs``,
    ``settings``, ``sweeps`` and ``final_losses``.

    The views see the files present when it was opened; connect again to see later writes.
    ``union_by_name=True`` tolerates hand-written fragments lacking nullable columns, slower
    on stores of many fragments (see ``orchestrator.store.sql``). The connection can read only
    the store's files and its configuration is locked (``orchestrator.store.sandbox``).
    """
    return _confined_connect(open_store(store), union_by_name=union_by_name)


def query_arrow(store: StoreLike, sql: str) -> pa.Table:
    """Run ``sql``, ONE read-only statement, against the store's views; a pyarrow Table.

    Raises:
        QueryError: bad SQL, or SQL the sandbox refuses (see ``orchestrator.store.sandbox``).
    """
    statement = read_only_statement(sql)

    def run(con: duckdb.DuckDBPyConnection) -> pa.Table:
        relation = con.sql(statement)
        return relation.to_arrow_table() if relation is not None else pa.table({})

    try:
        return _confined_run(open_store(store), run)
    except StoreError:
        raise
    except Exception as exc:  # duckdb.Error, and binder errors raised as other types
        message = " ".join(str(exc).split())
        raise QueryError(f"query failed: {message}") from None


def query_df(store: StoreLike, sql: str) -> pd.DataFrame:
    """Run ``sql``; the result as a pandas DataFrame."""
    return query_arrow(store, sql).to_pandas()


def run_query(store: StoreLike, sql: str, fmt: str = "table") -> str:
    """Run ``sql`` and render the result as text (``lrsweep query``).

    Args:
        store: a :class:`ResultsStore` or its root (path or URI).
        sql: DuckDB SQL over the views of :func:`connect`.
        fmt: ``"table"`` (aligned text), ``"csv"`` or ``"json"`` (an array of records).

    Raises:
        StoreError: bad ``fmt``, empty store, schema mismatch; ``QueryError`` for bad SQL.
    """
    if fmt not in FORMATS:
        raise StoreError(f"fmt must be one of {sorted(FORMATS)}, got {fmt!r}")
    return render(query_arrow(store, sql), fmt)
