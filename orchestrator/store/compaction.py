"""Compaction: merge one sweep's small fragments into ``compacted.parquet``, never exposing
duplicated rows, safe to crash at any point and to rerun.

Protocol (per ``<table>/sweep_id=<id>`` directory):

1. List the fragments ``F`` (one listing; remember each one's size and mtime).
2. Build the merged table: the rows of the current ``compacted.parquet`` that are still
   visible (those whose ``_fragment`` is not in ``F``) plus every row of ``F``, each tagged
   with ``_fragment = <its fragment file name>``. Write it to a temp name, rename it over
   ``compacted.parquet`` (one atomic step).
3. Delete each fragment of ``F`` that is unchanged since step 1.

Visibility rule, applied by every reader against *one* listing of the directory: a row of
``compacted.parquet`` is visible only if no fragment named by its ``_fragment`` is present;
fragment rows are always visible. So between steps 2 and 3 the merged copies are shadowed by
the fragments still present, and each delete in step 3 hands its rows over to the compacted
copy: at every instant each row is visible exactly once. A crash leaves either the old state
(plus an ignored temp file) or a compacted file whose copies are shadowed; rerunning
re-merges to the same multiset of rows, hence idempotent. A fragment rewritten after a
compaction (a resumed lineage) shadows its stale merged copy, so the newest write wins.

A reader racing step 3 may list a fragment that is deleted before it opens it: that reader
gets an I/O error and retries; it never sees a row twice or silently misses one. Run one
compaction per sweep at a time; a fragment rewritten *between* step 3's check and delete
(microseconds) would lose that rewrite, so compact when the sweep is not writing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from . import _layout
from .errors import StoreError
from .schema import FRAGMENT_COLUMN, TableSpec

if TYPE_CHECKING:
    from .store import ResultsStore

__all__ = ["compact_partition", "delete_fragments", "visible_filter"]


def visible_filter(snap: _layout.TableSnapshot) -> Any:
    """A ``pyarrow.dataset`` expression hiding compacted rows shadowed by live fragments
    in ``snap``, or ``None`` when nothing is shadowed."""
    live = snap.live_fragments()
    if not live:
        return None
    import pyarrow.dataset as ds

    by_sweep: dict[str, list[str]] = {}
    for sweep_id, name in live:
        by_sweep.setdefault(sweep_id, []).append(name)
    shadowed = None
    for sweep_id, names in by_sweep.items():
        term = (ds.field("sweep_id") == sweep_id) & ds.field(FRAGMENT_COLUMN).isin(names)
        shadowed = term if shadowed is None else shadowed | term
    return ds.field(FRAGMENT_COLUMN).is_null() | ~shadowed


def _merged_schema(spec: TableSpec) -> pa.Schema:
    return spec.file_schema.append(pa.field(FRAGMENT_COLUMN, pa.string()))


def _read_compacted(store: ResultsStore, entry: _layout.FileEntry, spec: TableSpec) -> pa.Table:
    import pyarrow.dataset as ds

    dataset = ds.dataset(
        entry.path, filesystem=store.fs, format="parquet", schema=_merged_schema(spec)
    )
    return dataset.to_table()


def _read_fragments(store: ResultsStore, part: _layout.PartitionFiles, spec: TableSpec) -> pa.Table:
    import pyarrow.dataset as ds

    paths = [f.path for f in part.fragments]
    dataset = ds.dataset(paths, filesystem=store.fs, format="parquet", schema=spec.file_schema)
    names: list[str] = []
    batches: list[pa.RecordBatch] = []
    directory = paths[0].rpartition("/")[0] + "/"
    # scan_batches() tags each batch with its fragment: the provenance of every merged row.
    for tagged in dataset.scanner(columns=spec.file_schema.names).scan_batches():
        path = tagged.fragment.path
        if not path.startswith(directory):
            raise StoreError(f"compaction of {directory}: scanner returned foreign file {path!r}")
        batches.append(tagged.record_batch)
        names.extend([path[len(directory) :]] * tagged.record_batch.num_rows)
    table = pa.Table.from_batches(batches, schema=spec.file_schema)
    return table.append_column(pa.field(FRAGMENT_COLUMN, pa.string()), pa.array(names, pa.string()))


def compact_partition(store: ResultsStore, spec: TableSpec, sweep_id: str) -> int:
    """Run the protocol above on one table of one sweep; returns the fragments merged."""
    store.check_version()
    part = store.snapshot(spec.name, sweep_id).partitions.get(sweep_id)
    if part is None:
        return 0
    for temp in part.temps:  # temps of a crashed compaction; one compactor at a time
        if temp.name.startswith(f".{_layout.COMPACTED_NAME}."):
            store.fs.delete_file(temp.path)
    if not part.fragments:
        return 0
    fragment_names = [f.name for f in part.fragments]
    pieces = []
    if part.compacted is not None:
        old = _read_compacted(store, part.compacted, spec)
        still_visible = pc.invert(
            pc.fill_null(
                pc.is_in(old.column(FRAGMENT_COLUMN), value_set=pa.array(fragment_names)), False
            )
        )
        pieces.append(old.filter(still_visible))
    pieces.append(_read_fragments(store, part, spec))
    merged = pa.concat_tables(pieces).sort_by([(k, "ascending") for k in spec.key])
    store.write_file(
        f"{store.partition_dir(spec.name, sweep_id)}/{_layout.COMPACTED_NAME}", merged, spec
    )
    for entry in part.fragments:
        now = store.fs.get_file_info(entry.path)
        if now.mtime_ns == entry.mtime_ns and now.size == entry.size:
            store.fs.delete_file(entry.path)
    return len(part.fragments)


def delete_fragments(store: ResultsStore, spec: TableSpec, sweep_id: str, doomed: Any) -> int:
    """Remove the rows of every fragment whose name ``doomed(name)`` selects, from one table of
    one sweep (live fragment files and their merged copies); returns files deleted/rewritten.

    The compacted file is rewritten *before* the fragments are deleted, so stale merged copies
    never resurface between the two steps, and a crash is finished by rerunning.
    """
    store.check_version()
    part = store.snapshot(spec.name, sweep_id).partitions.get(sweep_id)
    if part is None:
        return 0
    changed = 0
    if part.compacted is not None:
        old = _read_compacted(store, part.compacted, spec)
        names = old.column(FRAGMENT_COLUMN).to_pylist()
        keep = pa.array([not (n is not None and doomed(n)) for n in names], pa.bool_())
        kept = old.filter(keep)
        if kept.num_rows == 0:
            store.fs.delete_file(part.compacted.path)
            changed += 1
        elif kept.num_rows < old.num_rows:
            store.write_file(part.compacted.path, kept, spec)
            changed += 1
    for entry in part.fragments:
        if doomed(entry.name):
            store.fs.delete_file(entry.path)
            changed += 1
    return changed
