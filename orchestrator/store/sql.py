"""DuckDB views over a results store.

Stored tables: ``curve_rows`` (curves as trained: a trunk once), ``runs``, ``settings``,
``sweeps``. Derived views: ``curves`` (whole curves per setting: trunk prefix + cooldown),
``lineages`` (settings with the status of their runs) and ``final_losses``.

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

__all__ = ["CURVES_SQL", "FINAL_LOSSES_SQL", "LINEAGES_SQL", "VIEW_NAMES", "connect", "create_view"]

_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.float64(): "DOUBLE",
    pa.list_(pa.int64()): "BIGINT[]",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}

# Physical tables are exposed under these names; ``curves`` is the whole-curve view below.
VIEW_NAMES = {"curves": "curve_rows", "runs": "runs", "settings": "settings", "sweeps": "sweeps"}

_STATUS_OF_BRANCH = """CASE WHEN r.status IS NULL THEN 'pending'
            WHEN r.status = 'completed' AND r.max_step < list_max(s.horizons) THEN 'pending'
            ELSE r.status END"""

# One row per (setting, lineage, branch) of the current spec: the setting's columns with the
# status, compute and throughput (trials/throughput.py; NULL before it was recorded, MFU NULL
# on CPU) of the physical run that answers it ('pending' until it has run that far).
LINEAGES_SQL = f"""
CREATE VIEW lineages AS
SELECT s.sweep_id, s.lineage_id, s.branch,
       CASE WHEN s.branch = 'trunk' THEN NULL ELSE 'trunk' END AS parent, s.fork_step, s.setting_id,
       s.family, s.workload, s.model_size, s.n_params, s.optimizer, s.optimizer_params, s.schedule,
       s.schedule_params, s.peak_lr, s.warmup, s.batch_size, s.seed, s.tokens_per_step, s.horizons,
       r.max_step, {_STATUS_OF_BRANCH} AS status, r.error, r.wall_time_s, r.steps_trained,
       r.tokens_trained, r.flops_trained, r.replayed_steps, r.finished_at,
       r.tokens_per_s, r.step_time_s, r.mfu, r.train_time_s, r.device, r.workers, r.precision
FROM settings s
LEFT JOIN runs r ON r.sweep_id = s.sweep_id AND r.lineage_id = s.lineage_id AND r.branch = s.branch
"""

# Whole curves: per (setting, lineage, branch) the rows of that branch, and for a cooldown the
# shared trunk's rows before its fork (train updates < S, evals at steps <= S), so a WSD curve
# reads trunk prefix + cooldown although the trunk is stored once. A trunk's own curve stops
# at the setting's longest horizon.
CURVES_SQL = """
CREATE VIEW curves AS
SELECT s.sweep_id, s.setting_id, s.lineage_id, s.branch, c.step, c.tokens, c.flops, c.lr, c.split,
       c.weights, c.loss, s.family, s.schedule, s.optimizer, s.peak_lr, s.seed, s.model_size
FROM settings s
JOIN curve_rows c ON c.sweep_id = s.sweep_id AND c.lineage_id = s.lineage_id
WHERE (c.branch = s.branch AND (s.branch <> 'trunk'
          OR c.step < list_max(s.horizons) OR (c.split = 'eval' AND c.step = list_max(s.horizons))))
   OR (s.branch <> 'trunk' AND c.branch = 'trunk'
          AND (c.step < s.fork_step OR (c.split = 'eval' AND c.step = s.fork_step)))
"""

# One row per (setting, horizon h it asks, weights). Where the answering branch has eval rows
# at step h: one row per weights variant evaluated there, status 'completed' (the run reached
# h healthy). Where it has none: one row with loss NULL per weights variant the lineage ever
# evaluated (at least "raw"), with the run's status ('diverged', 'failed', 'stopped' or 'pending').
FINAL_LOSSES_SQL = """
CREATE VIEW final_losses AS
WITH st AS MATERIALIZED (
    SELECT * FROM settings
),
hz AS MATERIALIZED (
    SELECT sweep_id, setting_id, lineage_id, branch, UNNEST(horizons) AS horizon FROM st
),
ev AS MATERIALIZED (
    SELECT sweep_id, lineage_id, branch, step, weights, loss, flops FROM curve_rows WHERE split = 'eval'
),
at_h AS MATERIALIZED (
    SELECT hz.sweep_id, hz.setting_id, hz.lineage_id, hz.branch, hz.horizon, ev.weights, ev.loss, ev.flops
    FROM hz JOIN ev
      ON ev.sweep_id = hz.sweep_id AND ev.lineage_id = hz.lineage_id
     AND ev.branch = hz.branch AND ev.step = hz.horizon
),
lineage_weights AS (
    SELECT DISTINCT sweep_id, lineage_id, weights FROM ev
    UNION
    SELECT DISTINCT sweep_id, lineage_id, 'raw' AS weights FROM st
),
missing AS (
    SELECT hz.sweep_id, hz.setting_id, hz.lineage_id, hz.branch, hz.horizon, w.weights,
           CAST(NULL AS DOUBLE) AS loss, CAST(NULL AS DOUBLE) AS flops
    FROM hz
    ANTI JOIN at_h a
      ON a.sweep_id = hz.sweep_id AND a.setting_id = hz.setting_id AND a.lineage_id = hz.lineage_id
     AND a.branch = hz.branch AND a.horizon = hz.horizon
    JOIN lineage_weights w ON w.sweep_id = hz.sweep_id AND w.lineage_id = hz.lineage_id
),
points AS (SELECT * FROM at_h UNION ALL SELECT * FROM missing)
SELECT p.sweep_id, p.setting_id, p.lineage_id, p.branch, p.horizon,
       p.horizon * s.tokens_per_step AS tokens, p.weights, p.loss, p.flops,
       CASE WHEN p.loss IS NOT NULL THEN 'completed'
            WHEN r.status IN ('diverged', 'failed', 'stopped') THEN r.status
            ELSE 'pending' END AS status,
       s.family, s.workload, s.model_size, s.n_params, s.optimizer, s.optimizer_params, s.schedule,
       s.schedule_params, s.peak_lr, s.warmup, s.batch_size, s.seed, s.tokens_per_step,
       CASE WHEN s.branch = 'trunk' THEN NULL ELSE 'trunk' END AS parent, s.fork_step
FROM points p
JOIN st s ON s.sweep_id = p.sweep_id AND s.setting_id = p.setting_id
         AND s.lineage_id = p.lineage_id AND s.branch = p.branch
LEFT JOIN runs r ON r.sweep_id = p.sweep_id AND r.lineage_id = p.lineage_id AND r.branch = p.branch
ORDER BY p.sweep_id, p.setting_id, p.lineage_id, p.branch, p.horizon, p.weights
"""

VIEWS_SQL = (LINEAGES_SQL, CURVES_SQL, FINAL_LOSSES_SQL)


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
        # footer, ~50 ms per 1,000 files per reference to the view. Merged parts (a few
        # per sweep, with the extra _fragment column) are unioned by name.
        fragments = [f.path for p in snap.partitions.values() for f in p.fragments]
        compacted = [c.path for p in snap.partitions.values() for c in p.parts]
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
    name: str | None = None,
) -> None:
    """Create the view ``name`` (default ``spec.name``) on ``con``: the table's visible rows
    (all sweeps, or one)."""
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
    con.execute(f"CREATE VIEW {name or spec.name} AS SELECT {', '.join(select)} FROM {source} f{where}")


def connect(store: ResultsStore, *, union_by_name: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views of this module's docstring over ``store``
    (empty typed views for tables with no files yet).

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
        create_view(con, store, spec, union_by_name=union_by_name, name=VIEW_NAMES[spec.name])
    for view in VIEWS_SQL:
        con.execute(view)
    return con
