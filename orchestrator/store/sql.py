"""DuckDB views over a results store: ``curves``, ``lineages``, ``sweeps``, ``final_losses``.

Local stores are read by DuckDB directly (``read_parquet`` over the listed files: the fast
path). Other filesystems are registered as ``pyarrow.dataset`` datasets. Either way the views
are built from *one* listing taken by :func:`connect` (see ``compaction.py`` for why): a
connection is a snapshot; connect again to see files written later.

Fragments are read without ``union_by_name`` by default: every fragment of a store of this
``SCHEMA_VERSION`` has the same file schema, and binding ``union_by_name`` over 1,000 files
costs ~50 ms *per reference* to a view (``final_losses`` references its inputs several
times), which tripled the fragmented-store query time in ``benchmarks/query_latency.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from .errors import StoreError
from .schema import FRAGMENT_COLUMN, TABLES, TableSpec

if TYPE_CHECKING:
    from .store import ResultsStore

__all__ = ["FINAL_LOSSES_SQL", "connect", "create_view"]

_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.float64(): "DOUBLE",
    pa.list_(pa.int64()): "BIGINT[]",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}

# One row per (lineage, branch, horizon h in the branch's horizons, weights). Where the branch
# has eval rows at step h: one row per weights variant evaluated there. Where it has none
# (diverged or failed before h): one row with loss NULL per weights variant the lineage ever
# evaluated, and at least "raw", so a diverged setting stays visible at every horizon.
FINAL_LOSSES_SQL = """
CREATE VIEW final_losses AS
WITH lin AS MATERIALIZED (
    SELECT * FROM lineages
),
ev AS MATERIALIZED (
    SELECT sweep_id, lineage_id, branch, step, weights, loss, flops FROM curves WHERE split = 'eval'
),
hz AS MATERIALIZED (
    SELECT sweep_id, lineage_id, branch, UNNEST(horizons) AS horizon FROM lin
),
at_h AS MATERIALIZED (
    SELECT hz.sweep_id, hz.lineage_id, hz.branch, hz.horizon, ev.weights, ev.loss, ev.flops
    FROM hz JOIN ev
      ON ev.sweep_id = hz.sweep_id AND ev.lineage_id = hz.lineage_id
     AND ev.branch = hz.branch AND ev.step = hz.horizon
),
lineage_weights AS (
    SELECT DISTINCT sweep_id, lineage_id, weights FROM ev
    UNION
    SELECT DISTINCT sweep_id, lineage_id, 'raw' AS weights FROM lin
),
missing AS (
    SELECT hz.sweep_id, hz.lineage_id, hz.branch, hz.horizon, w.weights,
           CAST(NULL AS DOUBLE) AS loss, CAST(NULL AS DOUBLE) AS flops
    FROM hz
    ANTI JOIN at_h a
      ON a.sweep_id = hz.sweep_id AND a.lineage_id = hz.lineage_id
     AND a.branch = hz.branch AND a.horizon = hz.horizon
    JOIN lineage_weights w ON w.sweep_id = hz.sweep_id AND w.lineage_id = hz.lineage_id
),
points AS (SELECT * FROM at_h UNION ALL SELECT * FROM missing)
SELECT p.sweep_id, p.lineage_id, p.branch, p.horizon,
       p.horizon * l.tokens_per_step AS tokens, p.weights, p.loss, p.flops, l.status,
       l.setting_id, l.family, l.workload, l.model_size, l.n_params, l.optimizer,
       l.optimizer_params, l.schedule, l.schedule_params, l.peak_lr, l.warmup, l.batch_size,
       l.seed, l.tokens_per_step, l.parent, l.fork_step
FROM points p
JOIN lin l ON l.sweep_id = p.sweep_id AND l.lineage_id = p.lineage_id AND l.branch = p.branch
ORDER BY p.sweep_id, p.lineage_id, p.branch, p.horizon, p.weights
"""


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _read_parquet(paths: list[str], union_by_name: bool) -> str:
    files = ", ".join(_sql_str(p) for p in paths)
    return (
        f"SELECT * FROM read_parquet([{files}], hive_partitioning = true, "
        f"union_by_name = {str(union_by_name).lower()}, hive_types = {{'sweep_id': VARCHAR}})"
    )


def _source(
    con: duckdb.DuckDBPyConnection,
    store: ResultsStore,
    spec: TableSpec,
    union_by_name: bool,
    sweep_id: str | None,
) -> tuple[str, bool]:
    """Register the table's files; returns (relation name, whether compacted rows can be shadowed)."""
    snap = store.snapshot(spec.name, sweep_id)
    name = f"_{spec.name}_files"
    if not snap.paths():
        # Typed and empty. Plain SQL, not con.register(): registering makes duckdb import pandas.
        columns = ", ".join(
            f'CAST(NULL AS {_DUCK_TYPES[f.type]}) AS "{f.name}"' for f in spec.schema
        )
        con.execute(f"CREATE VIEW {name} AS SELECT {columns} WHERE false")
        return name, False
    if store.is_local:
        # Fragments all carry this schema version's exact file schema (the version check
        # guards that), so they are read without union_by_name: binding it reads every
        # footer, ~50 ms per 1,000 files per reference to the view. Compacted files (one
        # per sweep, with the extra _fragment column) are unioned by name.
        fragments = [f.path for p in snap.partitions.values() for f in p.fragments]
        compacted = [p.compacted.path for p in snap.partitions.values() if p.compacted]
        parts = []
        if fragments:
            parts.append(_read_parquet(fragments, union_by_name))
        if compacted:
            parts.append(_read_parquet(compacted, True))
        con.execute(f"CREATE VIEW {name} AS " + " UNION ALL BY NAME ".join(parts))
    else:
        import pyarrow.dataset as ds

        partitioning = ds.partitioning(pa.schema([spec.schema.field("sweep_id")]), flavor="hive")
        dataset = ds.dataset(
            snap.paths(),
            filesystem=store.fs,
            format="parquet",
            partitioning=partitioning,
            partition_base_dir=snap.base_dir,
            schema=spec.read_schema,
        )
        con.register(name, dataset)
    live = snap.live_fragments()
    if live:
        values = ", ".join(f"({_sql_str(sid)}, {_sql_str(frag)})" for sid, frag in live)
        con.execute(f"CREATE VIEW _{spec.name}_live (sweep_id, name) AS VALUES {values}")
    return name, bool(live)


def create_view(
    con: duckdb.DuckDBPyConnection,
    store: ResultsStore,
    spec: TableSpec,
    *,
    union_by_name: bool = False,
    sweep_id: str | None = None,
) -> None:
    """Create the view ``spec.name`` on ``con``: the table's visible rows (all sweeps, or one)."""
    source, shadowed = _source(con, store, spec, union_by_name, sweep_id)
    try:
        available = {row[0] for row in con.execute(f"DESCRIBE {source}").fetchall()}
    except duckdb.Error as exc:
        message = " ".join(str(exc).split())
        raise StoreError(
            f"cannot read {spec.name} from results store {store.root!r}: {message}"
        ) from None
    select = []
    for field in spec.schema:
        if field.name in available:
            select.append(f'"{field.name}"')
        elif field.nullable:
            select.append(f'CAST(NULL AS {_DUCK_TYPES[field.type]}) AS "{field.name}"')
        else:
            raise StoreError(
                f"{spec.name}.{field.name} is required, but the files in results store "
                f"{store.root!r} lack it"
            )
    where = ""
    if shadowed:
        where = (
            f" WHERE f.{FRAGMENT_COLUMN} IS NULL OR NOT EXISTS (SELECT 1 FROM _{spec.name}_live s "
            f"WHERE s.sweep_id = f.sweep_id AND s.name = f.{FRAGMENT_COLUMN})"
        )
    con.execute(f"CREATE VIEW {spec.name} AS SELECT {', '.join(select)} FROM {source} f{where}")


def connect(store: ResultsStore, *, union_by_name: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with views ``curves``, ``lineages``, ``sweeps`` and
    ``final_losses`` over ``store`` (empty typed views for tables with no files yet).

    Args:
        store: the results store.
        union_by_name: also union fragment files by column name, tolerating fragments that
            lack nullable columns (hand-written files); costs ~50 ms per 1,000 fragments per
            reference to a view. Off: such a file fails the query with DuckDB's
            "schema mismatch" error.

    Raises:
        StoreError: the store is empty, or has another schema version or missing columns.
    """
    if not store.check_version():
        raise StoreError(f"results store {store.root!r} is empty: no sweep has written results yet")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ comes back as timestamp[us, tz=UTC]
    for spec in TABLES.values():
        create_view(con, store, spec, union_by_name=union_by_name)
    con.execute(FINAL_LOSSES_SQL)
    return con
