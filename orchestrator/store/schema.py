"""The one schema of the results store, with its version number.

Four tables, each hive-partitioned by ``sweep_id`` (the partition value lives in the directory
name ``sweep_id=<id>``, not inside the Parquet files):

- ``curves``: long format, one row per (lineage, branch, step, split, weights) as trained:
  a trunk's rows are stored once, whatever number of settings share the trunk.
- ``runs``: one row per (lineage, branch) trained: the trunk or a cooldown, status, compute.
- ``settings``: one row per (setting, lineage, branch): which setting each stored branch
  answers, at which horizons, with the setting flattened into columns.
- ``sweeps``: one row per sweep: the spec as submitted, its hash, the plan, timestamps.

The query views (:mod:`orchestrator.store.sql`) join them into whole curves per setting.
Bump :data:`SCHEMA_VERSION` on any incompatible change; readers refuse other versions
(version 1 stores are migrated by ``lrsweep migrate``, :mod:`orchestrator.store.migrate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

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
    "TableSpec",
]

SCHEMA_VERSION = 2

SPLITS = ("train", "eval")
STATUSES = ("completed", "diverged", "failed", "stopped")  # stopped: by a search, at a horizon rung
# A lineage whose every branch row has one of these is finished: a resume skips it.
DONE_STATUSES = ("completed", "diverged")

# Column holding, in a compacted file, the name of the fragment each row was merged from
# (null in fragment files). See ``store/compaction.py``.
FRAGMENT_COLUMN = "_fragment"

_UTC_US = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True, kw_only=True)
class TableSpec:
    """One table of the store.

    Attributes:
        name: table name, also its directory under the store root.
        schema: the full logical schema, ``sweep_id`` first.
        key: columns that identify a row within a sweep.
        compactable: whether ``ResultsStore.compact`` merges its fragments.
        allowed: columns restricted to a fixed set of values.
        json_columns: string columns holding JSON; dicts/lists given for them are serialized.
    """

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    compactable: bool
    allowed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    json_columns: tuple[str, ...] = ()

    @property
    def file_schema(self) -> pa.Schema:
        """Schema of the Parquet files: the logical schema without the partition column."""
        return self.schema.remove(self.schema.get_field_index("sweep_id"))

    @property
    def read_schema(self) -> pa.Schema:
        """Schema used to scan files (fragments and compacted files alike), partition last."""
        schema = self.file_schema
        if self.compactable:
            schema = schema.append(pa.field(FRAGMENT_COLUMN, pa.string()))
        return schema.append(self.schema.field("sweep_id"))

    @property
    def required(self) -> tuple[str, ...]:
        """Columns that must be present and non-null."""
        return tuple(f.name for f in self.schema if not f.nullable)

    def metadata(self) -> dict[bytes, bytes]:
        """Key-value metadata written into every Parquet file of this table."""
        return {
            b"lrsweep.schema_version": str(SCHEMA_VERSION).encode(),
            b"lrsweep.table": self.name.encode(),
        }


def _f(name: str, type_: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


CURVES = TableSpec(
    name="curves",
    schema=pa.schema(
        [
            _f("sweep_id", pa.string()),
            _f("lineage_id", pa.string()),
            _f("branch", pa.string()),
            _f("step", pa.int64()),
            _f("tokens", pa.int64()),
            _f("flops", pa.float64(), nullable=True),
            _f("lr", pa.float64(), nullable=True),
            _f("split", pa.string()),
            _f("weights", pa.string()),  # "raw", "x", "ema@0.05", ...; train rows use "raw"
            _f("loss", pa.float64()),
        ]
    ),
    key=("lineage_id", "branch", "step", "split", "weights"),
    compactable=True,
    allowed={"split": SPLITS},
)

# One row per physical run: a lineage's trunk (branch "trunk") or one of its cooldown branches.
# Trunk rows are shared by every setting that uses the trunk; ``settings`` says which.
RUNS = TableSpec(
    name="runs",
    schema=pa.schema(
        [
            _f("sweep_id", pa.string()),
            _f("lineage_id", pa.string()),  # the trunk id
            _f("branch", pa.string()),  # "trunk" | "h=<T>/<shape>@<S>[/f=<f>]"
            _f("parent", pa.string(), nullable=True),  # "trunk" for cooldown branches
            _f("fork_step", pa.int64(), nullable=True),
            _f("rule", pa.string()),  # the trunk's LR rule: constant, polynomial, cosine, ...
            _f("rule_params", pa.string()),  # JSON
            _f("cooldown_shape", pa.string(), nullable=True),
            _f("final_fraction", pa.float64(), nullable=True),
            _f("workload", pa.string()),
            _f("model_size", pa.string()),
            _f("n_params", pa.int64()),
            _f("optimizer", pa.string()),
            _f("optimizer_params", pa.string()),  # JSON
            _f("peak_lr", pa.float64()),
            _f("warmup", pa.int64()),
            _f("batch_size", pa.int64()),
            _f("seed", pa.int64()),
            _f("tokens_per_step", pa.int64()),
            _f("max_step", pa.int64()),  # rows reach this step (the trunk's frontier)
            _f("status", pa.string()),
            _f("error", pa.string(), nullable=True),
            _f("wall_time_s", pa.float64()),
            _f("steps_trained", pa.int64()),
            _f("tokens_trained", pa.int64()),
            _f("flops_trained", pa.float64()),
            _f("replayed_steps", pa.int64()),  # updates recomputed to reach stored states
            _f("finished_at", _UTC_US),
            # Throughput (trials/throughput.py). Added within schema 2 as nullable columns:
            # stores written before them read these as NULL.
            _f("train_time_s", pa.float64(), nullable=True),  # wall time of the timed updates only
            _f("step_time_s", pa.float64(), nullable=True),  # train_time_s / updates timed
            _f("tokens_per_s", pa.float64(), nullable=True),  # global tokens per step / step time
            _f("mfu", pa.float64(), nullable=True),  # model FLOPs utilisation; NULL on CPU / unknown GPUs
            _f("device", pa.string(), nullable=True),  # "cpu" or the CUDA device's name
            _f("workers", pa.int64(), nullable=True),  # data-parallel workers
            _f("precision", pa.string(), nullable=True),  # fp32 | tf32 | bf16
        ]
    ),
    key=("lineage_id", "branch"),
    compactable=True,
    allowed={"status": STATUSES},
    json_columns=("rule_params", "optimizer_params"),
)

# One row per (setting, lineage, branch): where a setting's curve lives and which of its
# horizons that branch answers. Rewritten from the spec on every run (one file per sweep).
SETTINGS = TableSpec(
    name="settings",
    schema=pa.schema(
        [
            _f("sweep_id", pa.string()),
            _f("setting_id", pa.string()),  # hash of the setting without horizon
            _f("lineage_id", pa.string()),
            _f("branch", pa.string()),
            _f("fork_step", pa.int64(), nullable=True),
            _f("horizons", pa.list_(pa.int64())),  # steps this branch answers for this setting
            _f("family", pa.string()),  # schedule name, or optimizer name for schedule-free
            _f("workload", pa.string()),
            _f("model_size", pa.string()),
            _f("n_params", pa.int64()),
            _f("optimizer", pa.string()),
            _f("optimizer_params", pa.string()),  # JSON
            _f("schedule", pa.string(), nullable=True),  # None for schedule-free
            _f("schedule_params", pa.string()),  # JSON
            _f("peak_lr", pa.float64()),
            _f("warmup", pa.int64()),
            _f("batch_size", pa.int64()),
            _f("seed", pa.int64()),
            _f("tokens_per_step", pa.int64()),
        ]
    ),
    key=("setting_id", "lineage_id", "branch"),
    compactable=False,
    json_columns=("optimizer_params", "schedule_params"),
)

SWEEPS = TableSpec(
    name="sweeps",
    schema=pa.schema(
        [
            _f("sweep_id", pa.string()),
            _f("name", pa.string()),
            _f("spec_text", pa.string()),  # the sweep file as submitted
            _f("spec_hash", pa.string()),
            _f("plan_json", pa.string()),
            _f("created_at", _UTC_US),
            _f("updated_at", _UTC_US),
            _f("code_version", pa.string()),
            _f("schema_version", pa.int32()),
        ]
    ),
    key=(),
    compactable=False,
    json_columns=("plan_json",),
)

TABLES: dict[str, TableSpec] = {spec.name: spec for spec in (CURVES, RUNS, SETTINGS, SWEEPS)}
