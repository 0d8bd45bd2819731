"""Read a results store: pandas loaders, the final-loss table, and SQL (DuckDB) queries.

``run_query`` is what ``lrsweep query SQL`` calls; it imports neither pandas nor
``pyarrow.dataset`` on a local store, so a query process starts fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .store import CURVES, LINEAGES, ResultsStore, StoreError
from .store.errors import QueryError
from .store.render import FORMATS, render
from .store.sandbox import connect as _confined_connect
from .store.sandbox import read_only_statement
from .store.sandbox import run as _confined_run

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

__all__ = [
    "FINAL_LOSSES_SCHEMA",
    "connect",
    "final_losses",
    "load_curves",
    "load_lineages",
    "load_sweeps",
    "open_store",
    "query_arrow",
    "query_df",
    "run_query",
]

StoreLike = ResultsStore | str

_SETTING_COLUMNS = [
    "status", "setting_id", "family", "workload", "model_size", "n_params", "optimizer",
    "optimizer_params", "schedule", "schedule_params", "peak_lr", "warmup", "batch_size",
    "seed", "tokens_per_step", "parent", "fork_step",
]  # fmt: skip

# The columns of ``final_losses`` (pandas) and of the SQL view of the same name.
FINAL_LOSSES_SCHEMA = pa.schema(
    [
        CURVES.schema.field("sweep_id"),
        CURVES.schema.field("lineage_id"),
        CURVES.schema.field("branch"),
        pa.field("horizon", pa.int64()),  # steps
        pa.field("tokens", pa.int64()),  # horizon * tokens_per_step
        CURVES.schema.field("weights"),
        pa.field("loss", pa.float64()),  # eval loss at step == horizon; null if never reached
        pa.field("flops", pa.float64()),
        *(LINEAGES.schema.field(name).with_nullable(True) for name in _SETTING_COLUMNS),
    ]
)
_FINAL_ORDER = ["sweep_id", "lineage_id", "branch", "horizon", "weights"]


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


def _frame(table: pa.Table, order: list[str]) -> pd.DataFrame:
    return table.sort_by([(c, "ascending") for c in order]).to_pandas()


def load_curves(store: StoreLike, sweep_id: str | None = None, **filters: Any) -> pd.DataFrame:
    """Curve rows, sorted by (sweep_id, lineage_id, branch, split, weights, step).

    Args:
        store: a :class:`ResultsStore` or its root.
        sweep_id: one sweep, or ``None`` for all.
        **filters: ``column=value`` (equality) or ``column=[v1, v2]`` (membership), e.g.
            ``split="eval", weights=["raw", "ema@0.05"]``.
    """
    import pyarrow.dataset as ds

    store = _require(store, sweep_id)
    expr = None
    for column, value in filters.items():
        if column not in CURVES.schema.names:
            raise StoreError(
                f"load_curves filter {column!r} is not a curves column; columns: {CURVES.schema.names}"
            )
        if isinstance(value, Iterable) and not isinstance(value, str | bytes):
            term = ds.field(column).isin(list(value))
        else:
            term = ds.field(column) == value
        expr = term if expr is None else expr & term
    table = store.read_table("curves", sweep_id, filter=expr)
    return _frame(table, ["sweep_id", "lineage_id", "branch", "split", "weights", "step"])


def load_lineages(store: StoreLike, sweep_id: str | None = None) -> pd.DataFrame:
    """Lineage rows (one per lineage and branch), sorted by (sweep_id, lineage_id, branch)."""
    store = _require(store, sweep_id)
    return _frame(store.read_table("lineages", sweep_id), ["sweep_id", "lineage_id", "branch"])


def load_sweeps(store: StoreLike) -> pd.DataFrame:
    """One row per sweep, sorted by sweep_id."""
    store = _require(store, None)
    return _frame(store.read_table("sweeps"), ["sweep_id"])


def final_losses(store: StoreLike, sweep_id: str | None = None) -> pd.DataFrame:
    """The loss each branch reaches at each of its horizons, per weights variant.

    One row per (lineage, branch, horizon ``h`` in the branch's ``horizons``, weights): the
    eval loss at ``step == h`` on that branch, with the lineage's setting columns and status.
    A branch with no eval row at ``h`` (diverged or failed first) gets one row with ``loss``
    NaN per weights variant its lineage ever evaluated (at least ``"raw"``). Agrees exactly
    with ``SELECT * FROM final_losses`` in :func:`connect`.
    """
    import numpy as np
    import pandas as pd

    key = ["sweep_id", "lineage_id", "branch"]
    lin = load_lineages(store, sweep_id)
    ev = load_curves(store, sweep_id, split="eval")
    ev = ev[[*key, "step", "weights", "loss", "flops"]].rename(columns={"step": "horizon"})
    hz = lin[[*key, "horizons"]].explode("horizons").dropna(subset=["horizons"])
    hz = hz.rename(columns={"horizons": "horizon"}).astype({"horizon": "int64"})
    at_h = hz.merge(ev, on=[*key, "horizon"], how="inner")
    answered = at_h[[*key, "horizon"]].drop_duplicates()
    unanswered = hz.merge(answered, on=[*key, "horizon"], how="left", indicator=True)
    unanswered = unanswered[unanswered["_merge"] == "left_only"].drop(columns="_merge")
    lineage_weights = pd.concat(
        [
            ev[["sweep_id", "lineage_id", "weights"]],
            lin[["sweep_id", "lineage_id"]].assign(weights="raw"),
        ]
    ).drop_duplicates()
    missing = unanswered.merge(lineage_weights, on=["sweep_id", "lineage_id"]).assign(
        loss=np.nan, flops=np.nan
    )
    points = pd.concat([at_h, missing], ignore_index=True)
    out = points.merge(lin[[*key, *_SETTING_COLUMNS]], on=key)
    out["tokens"] = out["horizon"] * out["tokens_per_step"]
    table = pa.Table.from_pandas(
        out[FINAL_LOSSES_SCHEMA.names], schema=FINAL_LOSSES_SCHEMA, preserve_index=False
    )
    return _frame(table, _FINAL_ORDER)


def connect(store: StoreLike, *, union_by_name: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with views ``curves``, ``lineages``, ``sweeps``, ``final_losses``.

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
        sql: DuckDB SQL over ``curves``, ``lineages``, ``sweeps``, ``final_losses``.
        fmt: ``"table"`` (aligned text), ``"csv"`` or ``"json"`` (an array of records).

    Raises:
        StoreError: bad ``fmt``, empty store, schema mismatch; ``QueryError`` for bad SQL.
    """
    if fmt not in FORMATS:
        raise StoreError(f"fmt must be one of {sorted(FORMATS)}, got {fmt!r}")
    return render(query_arrow(store, sql), fmt)
