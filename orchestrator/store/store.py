"""``ResultsStore``: the Parquet dataset every sweep writes its curves, runs and settings to."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from . import _layout, compaction
from ._coerce import Rows, to_arrow
from .errors import StoreError
from .location import check_not_foreign, resolve_root
from .schema import CURVES, RUNS, SCHEMA_VERSION, SETTINGS, SWEEPS, TABLES, TableSpec

__all__ = ["ResultsStore"]

logger = logging.getLogger(__name__)


class ResultsStore:
    """A results store rooted at a local path or a pyarrow filesystem URI.

    Every write is one Parquet fragment written to a temp name and renamed into place, keyed so
    that rewriting the same key replaces the fragment instead of duplicating its rows.

    Args:
        root: a local directory, or a URI (``file://``, ``s3://``, ``gs://``, ...) that
            ``pyarrow.fs.FileSystem.from_uri`` understands.
        filesystem: optional pyarrow filesystem; ``root`` is then a path inside it.
    """

    def __init__(self, root: str, *, filesystem: pafs.FileSystem | None = None) -> None:
        self.root = root
        self.fs, self.base = resolve_root(str(root), filesystem)
        self._marker_checked = False
        # write into an existing non-empty folder that is not a store (``--init-store-in-nonempty-dir``)
        self.init_in_nonempty_dir = False

    def __repr__(self) -> str:
        return f"ResultsStore({self.root!r})"

    @property
    def is_local(self) -> bool:
        """Whether DuckDB can read the files by path (the fast path)."""
        return isinstance(self.fs, pafs.LocalFileSystem)

    # ---- layout -------------------------------------------------------------------------
    def partition_dir(self, table: str, sweep_id: str) -> str:
        return f"{self.base}/{table}/{_layout.PARTITION_PREFIX}{_layout.check_sweep_id(sweep_id)}"

    def snapshot(self, table: str, sweep_id: str | None = None) -> _layout.TableSnapshot:
        """One listing of ``table``'s readable files (all sweeps, or one)."""
        if sweep_id is not None:
            _layout.check_sweep_id(sweep_id)
        return _layout.list_table(self.fs, self.base, table, sweep_id)

    def lineage_snapshot(self, table: str, sweep_id: str, lineage_id: str) -> _layout.TableSnapshot:
        """What one lineage's trial may read of ``table``: its folder and the merged parts."""
        return _layout.list_lineage(self.fs, self.base, table, _layout.check_sweep_id(sweep_id), lineage_id)

    def has_sweep(self, sweep_id: str) -> bool:
        """Whether the sweep's row is stored (one file stat, whatever the store holds)."""
        return self.fs.get_file_info(f"{self.partition_dir('sweeps', sweep_id)}/{_layout.SWEEP_NAME}").is_file

    def sweep_ids(self) -> list[str]:
        """Every sweep with at least one file in any table, sorted."""
        ids: set[str] = set()
        for table in TABLES:
            snap = self.snapshot(table)
            ids.update(sid for sid, part in snap.partitions.items() if part.files)
        return sorted(ids)

    # ---- schema version -----------------------------------------------------------------
    def _marker_path(self) -> str:
        return f"{self.base}/{_layout.MARKER_NAME}"

    def _read_marker(self) -> int | None:
        try:
            with self.fs.open_input_stream(self._marker_path()) as f:
                data = json.loads(f.read().decode())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"results store {self.root!r}: unreadable {_layout.MARKER_NAME}: {exc}"
            ) from None
        return int(data.get("schema_version", -1))

    def _check_version(self, version: int | None) -> None:
        if version is not None and version != SCHEMA_VERSION:
            raise StoreError(
                f"results store {self.root!r} has schema version {version}, but this lrsweep "
                f"reads schema version {SCHEMA_VERSION}"
                + (f"; migrate it with `lrsweep migrate --store {self.root}`" if version == 1
                   else "; use a matching lrsweep")
            )

    def check_version(self) -> bool:
        """Raise :class:`StoreError` unless the store's schema version is ``SCHEMA_VERSION``.

        Returns whether the store holds anything (a marker or any data file). A store without
        the marker (written by hand) is judged by one data file's Parquet metadata.
        """
        if self._marker_checked:
            return True
        version = self._read_marker()
        if version is None:
            for table in TABLES:
                paths = self.snapshot(table).paths()
                if paths:
                    meta = pq.read_schema(paths[0], filesystem=self.fs).metadata or {}
                    raw = meta.get(b"lrsweep.schema_version")
                    self._check_version(int(raw) if raw is not None else -1)
                    return True
            return False
        self._check_version(version)
        self._marker_checked = True
        return True

    def check_not_foreign(self) -> None:
        """Refuse to make a store of an existing, non-empty folder that holds none
        (:func:`~orchestrator.store.location.check_not_foreign`), unless ``init_in_nonempty_dir``."""
        check_not_foreign(self.fs, self.base, self.root, allow=self.init_in_nonempty_dir)

    def _ensure_writable(self) -> None:
        if self._marker_checked:
            return
        try:
            version = self._read_marker()  # an existing store: one read, no listing
        except StoreError:
            self.check_not_foreign()  # a file where the folder should be says so
            raise
        if version is None:
            self.check_not_foreign()
            self.fs.create_dir(self.base, recursive=True)
            blob = json.dumps({"schema_version": SCHEMA_VERSION, "format": "lrsweep-results"})
            path = self._marker_path()
            tmp = _layout.temp_path(path)
            with self.fs.open_output_stream(tmp) as f:
                f.write(blob.encode())
            self._rename(tmp, path)
        else:
            self._check_version(version)
        self._marker_checked = True

    # ---- atomic writes ------------------------------------------------------------------
    def _rename(self, src: str, dst: str) -> None:
        # Local: rename(2), atomic and replacing. Object stores: the put itself is atomic.
        self.fs.move(src, dst)

    def write_file(self, path: str, table: pa.Table, spec: TableSpec) -> str:
        """Write ``table`` (without the ``sweep_id`` partition column) to ``path`` atomically."""
        self._ensure_writable()
        if "sweep_id" in table.column_names:
            table = table.drop_columns(["sweep_id"])
        table = table.replace_schema_metadata(spec.metadata())
        self.fs.create_dir(path.rpartition("/")[0], recursive=True)
        tmp = _layout.temp_path(path)
        try:
            pq.write_table(table, tmp, filesystem=self.fs, compression="zstd")
            self._rename(tmp, path)
        except BaseException:
            try:
                self.fs.delete_file(tmp)
            except OSError:
                pass
            raise
        return path

    def write_batches(self, path: str, spec: TableSpec, schema: pa.Schema, batches: Any) -> int:
        """Stream ``batches`` (tables of ``schema``) into one Parquet file at ``path`` atomically,
        one batch (one row group) in memory at a time; returns the rows written."""
        self._ensure_writable()
        schema = schema.with_metadata(spec.metadata())
        self.fs.create_dir(path.rpartition("/")[0], recursive=True)
        tmp = _layout.temp_path(path)
        rows = 0
        try:
            with self.fs.open_output_stream(tmp) as sink, pq.ParquetWriter(
                sink, schema, compression="zstd"
            ) as writer:
                for batch in batches:
                    writer.write_table(batch.cast(schema), row_group_size=max(1, batch.num_rows))
                    rows += batch.num_rows
            self._rename(tmp, path)
        except BaseException:
            try:
                self.fs.delete_file(tmp)
            except OSError:
                pass
            raise
        return rows

    def write_curves(
        self, sweep_id: str, lineage_id: str, branch: str, segment: str, rows: Rows
    ) -> str:
        """Write one curve segment of one (lineage, branch); returns the fragment path.

        The fragment is ``curves/sweep_id=<id>/<lineage>/<branch>__<segment>.parquet`` (named
        ``<lineage>__<branch>__<segment>.parquet``): writing the same key again replaces it.
        """
        name = _layout.fragment_name(
            (lineage_id, "lineage_id"), (branch, "branch"), (segment, "segment")
        )
        table = self._coerce(CURVES, rows, sweep_id)
        for column, expected in (("lineage_id", lineage_id), ("branch", branch)):
            bad = set(table.column(column).unique().to_pylist()) - {expected}
            if bad:
                raise StoreError(
                    f"curves.{column} must be {expected!r} in this fragment, got {sorted(bad)}"
                )
        return self.write_file(self._fragment_path("curves", sweep_id, name), table, CURVES)

    def _fragment_path(self, table: str, sweep_id: str, name: str) -> str:
        return f"{self.partition_dir(table, sweep_id)}/{_layout.fragment_relpath(name)}"

    def write_runs(self, sweep_id: str, rows: Rows) -> list[str]:
        """Write run rows, one fragment per (lineage_id, branch), replacing earlier ones."""
        table = self._coerce(RUNS, rows, sweep_id)
        keys = table.select(["lineage_id", "branch"]).to_pylist()
        seen: set[tuple[str, str]] = set()
        for key in keys:
            pair = (key["lineage_id"], key["branch"])
            if pair in seen:
                raise StoreError(f"runs rows must be unique per (lineage_id, branch), got {pair} twice")
            seen.add(pair)
        paths = []
        for i, (lineage_id, branch) in enumerate(k.values() for k in keys):
            name = _layout.fragment_name((lineage_id, "lineage_id"), (branch, "branch"))
            path = self._fragment_path("runs", sweep_id, name)
            paths.append(self.write_file(path, table.slice(i, 1), RUNS))
        return paths

    def write_settings(self, sweep_id: str, rows: Rows) -> str:
        """Replace the sweep's settings table (what its current spec asks) in one atomic write."""
        path = f"{self.partition_dir('settings', sweep_id)}/{_layout.SETTINGS_NAME}"
        return self.write_file(path, self._coerce(SETTINGS, rows, sweep_id), SETTINGS)

    def write_sweep(
        self,
        sweep_id: str,
        *,
        name: str,
        spec_text: str,
        plan_json: str | dict[str, Any] | list[Any],
        code_version: str,
        spec_hash: str | None = None,
    ) -> str:
        """Write (or update) the sweep's row; ``created_at`` survives updates."""
        path = f"{self.partition_dir('sweeps', sweep_id)}/{_layout.SWEEP_NAME}"
        now = dt.datetime.now(dt.timezone.utc)
        created_at = now
        if self.fs.get_file_info(path).type == pafs.FileType.File:
            created_at = pq.read_table(path, filesystem=self.fs, columns=["created_at"])[0][
                0
            ].as_py()
        row = {
            "name": name,
            "spec_text": spec_text,
            "spec_hash": spec_hash or hashlib.sha256(spec_text.encode()).hexdigest(),
            "plan_json": plan_json,
            "created_at": created_at,
            "updated_at": now,
            "code_version": code_version,
            "schema_version": SCHEMA_VERSION,
        }
        return self.write_file(path, self._coerce(SWEEPS, [row], sweep_id), SWEEPS)

    def _coerce(self, spec: TableSpec, rows: Rows, sweep_id: str) -> pa.Table:
        _layout.check_sweep_id(sweep_id)
        n_rows = rows.num_rows if isinstance(rows, pa.Table) else len(rows)
        if n_rows == 0:
            raise StoreError(f"{spec.name} rows must not be empty (delete_lineage removes data)")
        return to_arrow(spec, rows, sweep_id)

    # ---- reads --------------------------------------------------------------------------
    def read_table(
        self,
        table: str,
        sweep_id: str | None = None,
        *,
        columns: list[str] | None = None,
        filter: Any = None,
        lineage_id: str | None = None,
    ) -> pa.Table:
        """Read a table's visible rows (compacted rows shadowed by live fragments excluded).

        An empty store or sweep gives an empty table; the query layer turns that into errors.
        ``filter`` is a ``pyarrow.dataset`` expression. ``lineage_id`` (with ``sweep_id``): that
        lineage's rows, from its folder and the merged parts alone (a trial's read: flat cost).
        """
        import pyarrow.dataset as ds  # ~0.3 s import: only readers that need it pay

        spec = TABLES[table]
        self.check_version()
        names = list(columns or spec.schema.names)
        unknown = sorted(set(names) - set(spec.schema.names))
        if unknown:
            raise StoreError(f"{table} has no column(s) {unknown}; columns: {spec.schema.names}")
        partitioning = ds.partitioning(pa.schema([spec.schema.field("sweep_id")]), flavor="hive")
        if lineage_id is not None:
            if sweep_id is None:
                raise StoreError("read_table: lineage_id needs sweep_id")
            mine = ds.field("lineage_id") == lineage_id  # the parts hold other lineages too
            filter = mine if filter is None else filter & mine
        for attempt in range(1, _layout.READ_ATTEMPTS + 1):
            if lineage_id is not None and sweep_id is not None:
                snap = self.lineage_snapshot(table, sweep_id, lineage_id)
            else:
                snap = self.snapshot(table, sweep_id)
            paths = snap.paths()
            if not paths:
                return spec.schema.empty_table().select(names)
            expr = compaction.visible_filter(snap)
            if filter is not None:
                expr = filter if expr is None else expr & filter
            try:
                dataset = ds.dataset(
                    paths,
                    filesystem=self.fs,
                    format="parquet",
                    partitioning=partitioning,
                    partition_base_dir=snap.base_dir,
                    schema=spec.read_schema,
                )
                out = dataset.to_table(columns=names, filter=expr)
                break
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
                if _layout.should_retry(self.fs, snap.entries(), exc, attempt):
                    continue  # a compaction deleted or replaced a listed file: list again
                raise StoreError(
                    f"cannot read {table} from results store {self.root!r}: {exc}"
                ) from None
        for name in names:
            if not spec.schema.field(name).nullable and out.column(name).null_count:
                raise StoreError(
                    f"{table}.{name} is required, but the store has files without it or with "
                    f"nulls in it (results store {self.root!r})"
                )
        return out

    def delete_lineage(self, sweep_id: str, lineage_id: str) -> int:
        """Remove every curve and run row of one lineage (``--force`` reruns).

        Returns the number of files deleted or rewritten.
        """
        prefix = _layout.key_token(lineage_id, "lineage_id") + "__"
        return sum(
            compaction.delete_fragments(self, spec, sweep_id, lineage_id, prefix,
                                        lambda name: name.startswith(prefix))
            for spec in (CURVES, RUNS)
        )

    def truncate_curve(self, sweep_id: str, lineage_id: str, branch: str, from_step: int) -> int:
        """Delete the curve segments of one (lineage, branch) that start at ``from_step`` or
        later: the rows a crash left beyond the last checkpoint, before they are rewritten.
        Replay segments (evaluations added below the frontier) are kept."""
        prefix = _layout.fragment_name((lineage_id, "lineage_id"), (branch, "branch"))[: -len(".parquet")] + "__"

        def doomed(name: str) -> bool:
            if not name.startswith(prefix) or not name.endswith(".parquet"):
                return False
            start = _layout.segment_start(name[len(prefix):-len(".parquet")])
            return start is not None and start >= from_step

        return compaction.delete_fragments(self, CURVES, sweep_id, lineage_id, prefix, doomed)

    def compact(
        self, sweep_id: str, tables: tuple[str, ...] = ("curves", "runs"),
        *, lineages: Any = None,
    ) -> dict[str, int]:
        """Merge each table's fragments of one sweep into a new merged part (incremental: the
        cost is what was written since the last compaction; see ``compaction.py``).

        ``lineages``: merge only these lineages' fragments (ones no trial is writing). Safe
        against concurrent readers and crashes, idempotent; returns fragments merged per table.
        """
        out = {}
        for table in tables:
            spec = TABLES[table]
            if not spec.compactable:
                raise StoreError(
                    f"table {table!r} is not compactable; compactable: curves, runs"
                )
            out[table] = compaction.compact_partition(self, spec, sweep_id, lineages=lineages)
        return out
