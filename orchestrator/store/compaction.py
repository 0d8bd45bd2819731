"""Compaction: merge a sweep's small fragments into a few merged *parts*, incrementally (the
cost is what was written since the last compaction), streaming (bounded memory), never
exposing duplicated rows, safe to crash at any point and to rerun.

A partition folder ``<table>/sweep_id=<id>`` holds fragments (one folder per lineage) and
merged parts ``_compacted/<gen>-<lo>.parquet``: part ``gen`` holds copies of fragments, each
row tagged ``_fragment = <the fragment's name>``, and *replaces* every part of a generation in
``[lo, gen)`` (their rows are in it). A store written before parts has one
``compacted.parquet``: part (0, 0).

Protocol (one compaction per sweep at a time):

1. List the partition once: the fragments ``F`` to merge (each one's size and mtime), the
   parts in force. Delete temps and replaced parts a crashed compaction left.
2. Choose the parts to fold in: the youngest parts from the oldest one holding a row of a
   name in ``F`` (a restarted lineage rewrote a merged fragment: its stale copy must go), and
   further young parts while they are no larger than what is being written (sizes fall
   geometrically from old to young, so a row is rewritten O(log n) times and the parts stay
   few). Adding one lineage to a big compacted sweep folds in nothing: cost = that lineage.
3. Stream into a new part ``(gen = newest + 1, lo = oldest folded generation)``: the folded
   parts' rows whose ``_fragment`` is not in ``F``, then every row of ``F``. Temp name, then
   one atomic rename.
4. Delete the folded (now replaced) parts, then each fragment of ``F`` unchanged since step 1.

Visibility rule, applied by every reader against *one* listing: a replaced part is not read;
a row of a part is visible only if no fragment named by its ``_fragment`` is present;
fragment rows are always visible. So right after step 3 the new part's copies of ``F`` are
shadowed by ``F`` itself and the folded parts are replaced by it; each delete of step 4 hands
rows over without a gap or a double. A crash leaves the old state plus an ignored temp, or a
new part with shadowed copies and replaced parts that the rerun deletes; rerunning re-merges
to the same multiset of rows, hence idempotent. A fragment rewritten after a compaction (a
resumed lineage) shadows its stale merged copy, so the newest write wins.

A reader racing step 4 may list a file that is deleted before it opens it: it gets an I/O
error and retries; it never sees a row twice or silently misses one. A fragment rewritten
*between* step 4's check and delete (microseconds) would lose that rewrite, so compact only
lineages no trial is writing (``lineages=``, or the whole sweep when it is not running).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import _layout
from .errors import StoreError
from .schema import FRAGMENT_COLUMN, TableSpec

if TYPE_CHECKING:
    from .store import ResultsStore

__all__ = ["ROW_GROUP_ROWS", "compact_partition", "delete_fragments", "visible_filter"]

ROW_GROUP_ROWS = 65_536  # rows held in memory, and per row group of a merged part
GROWTH = 1.0  # fold in a younger part while its size <= GROWTH x the bytes being written


def visible_filter(snap: _layout.TableSnapshot) -> Any:
    """A ``pyarrow.dataset`` expression hiding merged rows shadowed by live fragments
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


def _open(store: ResultsStore, entry: _layout.FileEntry) -> pq.ParquetFile:
    return pq.ParquetFile(store.fs.open_input_file(entry.path))


def _names_in(store: ResultsStore, entry: _layout.FileEntry, lo: str, hi: str | None,
              keep: Callable[[str], bool]) -> set[str]:
    """The ``_fragment`` names ``n`` with ``lo <= n < hi`` (``hi=None``: no upper bound) held by
    the part ``entry`` for which ``keep(n)``. Reads the footer, then only the ``_fragment``
    column of the row groups whose min/max statistics overlap the range."""
    pf = _open(store, entry)
    meta = pf.metadata
    names = pf.schema_arrow.names
    if FRAGMENT_COLUMN not in names:
        return set()
    col = names.index(FRAGMENT_COLUMN)
    found: set[str] = set()
    for rg in range(meta.num_row_groups):
        stats = meta.row_group(rg).column(col).statistics
        if stats is not None and stats.has_min_max:
            if str(stats.max) < lo or (hi is not None and str(stats.min) >= hi):
                continue
        values = pf.read_row_group(rg, columns=[FRAGMENT_COLUMN]).column(0)
        found.update(n for n in pc.unique(values).to_pylist() if n is not None and n >= lo
                     and (hi is None or n < hi) and keep(n))
    return found


def _holds_any(store: ResultsStore, entry: _layout.FileEntry, names: list[str]) -> bool:
    """Whether the part holds a row of any of the sorted ``names``."""
    wanted = set(names)
    return bool(_names_in(store, entry, names[0], names[-1] + "\U0010ffff", wanted.__contains__))


def _part_rows(store: ResultsStore, entry: _layout.FileEntry, spec: TableSpec,
               drop: set[str]) -> Iterator[pa.Table]:
    """A part's rows minus those of the fragments ``drop``, one row group at a time."""
    pf = _open(store, entry)
    schema = _merged_schema(spec)
    drop_array = pa.array(sorted(drop), pa.string())
    for rg in range(pf.metadata.num_row_groups):
        table = pf.read_row_group(rg)
        if FRAGMENT_COLUMN not in table.column_names:
            raise StoreError(f"merged part {entry.path!r} has no {FRAGMENT_COLUMN} column")
        table = table.select(schema.names)
        if drop:
            doomed = pc.fill_null(pc.is_in(table.column(FRAGMENT_COLUMN), value_set=drop_array), False)
            table = table.filter(pc.invert(doomed))
        if table.num_rows:
            yield table


def _fragment_rows(store: ResultsStore, fragments: list[_layout.FileEntry],
                   spec: TableSpec) -> Iterator[pa.Table]:
    """Each fragment's rows, tagged with its name, one fragment at a time."""
    for entry in fragments:
        table = pq.read_table(entry.path, filesystem=store.fs, schema=spec.file_schema)
        table = table.select(spec.file_schema.names)
        yield table.append_column(pa.field(FRAGMENT_COLUMN, pa.string()),
                                  pa.array([entry.name] * table.num_rows, pa.string()))


def _rebatched(tables: Iterable[pa.Table], rows: int = ROW_GROUP_ROWS) -> Iterator[pa.Table]:
    """Regroup small tables into tables of about ``rows`` rows (one row group each)."""
    held: list[pa.Table] = []
    count = 0
    for table in tables:
        held.append(table)
        count += table.num_rows
        if count >= rows:
            yield pa.concat_tables(held).combine_chunks()
            held, count = [], 0
    if held:
        yield pa.concat_tables(held).combine_chunks()


def _clean_crash_leftovers(store: ResultsStore, part: _layout.PartitionFiles) -> None:
    for temp in part.temps:  # temps of a crashed compaction; one compactor at a time
        if temp.path.rpartition("/")[0].endswith(f"/{_layout.COMPACTED_DIR}") or temp.name.startswith(
            f".{_layout.COMPACTED_NAME}."
        ):
            store.fs.delete_file(temp.path)
    for old in part.superseded:  # replaced by a younger part already in force
        store.fs.delete_file(old.path)


def compact_partition(store: ResultsStore, spec: TableSpec, sweep_id: str,
                      lineages: Iterable[str] | None = None) -> int:
    """Run the protocol above on one table of one sweep (only ``lineages``' fragments, if
    given); returns the fragments merged."""
    store.check_version()
    part = store.snapshot(spec.name, sweep_id).partitions.get(sweep_id)
    if part is None:
        return 0
    _clean_crash_leftovers(store, part)
    fragments = part.fragments
    if lineages is not None:
        tokens = {_layout.key_token(lid, "lineage_id") + "__" for lid in lineages}
        fragments = [f for f in fragments if f.name[: f.name.index("__") + 2] in tokens]
    if not fragments:
        return 0
    names = sorted(f.name for f in fragments)
    parts = list(part.parts)  # oldest first
    start = len(parts)
    for i, old in enumerate(parts):  # the oldest part holding a stale copy of a name in F
        if _holds_any(store, old, names):
            start = i
            break
    written = sum(f.size or 0 for f in fragments) + sum(p.size or 0 for p in parts[start:])
    while start > 0 and (parts[start - 1].size or 0) <= GROWTH * written:
        start -= 1
        written += parts[start].size or 0
    folded = parts[start:]
    gen = max((p.gen for p in parts), default=0) + 1
    lo = folded[0].gen if folded else gen
    drop = set(names)

    def rows() -> Iterator[pa.Table]:
        for old in folded:
            yield from _part_rows(store, old, spec, drop)
        yield from _fragment_rows(store, sorted(fragments, key=lambda f: f.name), spec)

    path = f"{store.partition_dir(spec.name, sweep_id)}/{_layout.COMPACTED_DIR}/{_layout.part_name(gen, lo)}"
    store.write_batches(path, spec, _merged_schema(spec), _rebatched(rows()))
    for old in folded:
        store.fs.delete_file(old.path)
    for entry in fragments:
        now = store.fs.get_file_info(entry.path)
        if now.mtime_ns == entry.mtime_ns and now.size == entry.size:
            store.fs.delete_file(entry.path)
    _remove_empty_folders(store, fragments)
    return len(fragments)


def _remove_empty_folders(store: ResultsStore, fragments: list[_layout.FileEntry]) -> None:
    """Drop the lineage folders the merge emptied (local stores; object stores have none)."""
    if not store.is_local:
        return
    import os

    for folder in sorted({f.path.rpartition("/")[0] for f in fragments}):
        if folder.rpartition("/")[2].startswith(_layout.PARTITION_PREFIX):
            continue  # a flat fragment's folder is the partition itself
        try:
            os.rmdir(folder)  # only if empty
        except OSError:
            pass


def delete_fragments(store: ResultsStore, spec: TableSpec, sweep_id: str, lineage_id: str,
                     prefix: str, doomed: Callable[[str], bool]) -> int:
    """Remove the rows of every fragment of lineage ``lineage_id`` whose name (starting with
    ``prefix``) ``doomed(name)`` selects, from one table of one sweep: live fragment files and
    their merged copies. Returns files deleted/rewritten. Reads only the lineage's folder and
    the parts' footers, plus the row groups whose statistics can hold such a name.

    A part holding doomed rows is rewritten *before* the fragments are deleted, so stale merged
    copies never resurface between the two steps, and a crash is finished by rerunning.
    """
    store.check_version()
    for attempt in range(1, _layout.READ_ATTEMPTS + 1):
        try:
            return _delete_once(store, spec, sweep_id, lineage_id, prefix, doomed)
        except FileNotFoundError:  # a compaction of finished lineages replaced a part: list again
            if attempt == _layout.READ_ATTEMPTS:
                raise
            time.sleep(_layout.RETRY_PAUSE_S * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _delete_once(store: ResultsStore, spec: TableSpec, sweep_id: str, lineage_id: str,
                 prefix: str, doomed: Callable[[str], bool]) -> int:
    part = store.lineage_snapshot(spec.name, sweep_id, lineage_id).partitions.get(sweep_id)
    if part is None:
        return 0
    changed = 0
    for old in part.parts:
        hit = _names_in(store, old, prefix, prefix + "\U0010ffff", doomed)
        if not hit:
            continue
        # Rewritten in place, even if emptied: the part still replaces the generations it did.
        store.write_batches(old.path, spec, _merged_schema(spec), _rebatched(_part_rows(store, old, spec, hit)))
        changed += 1
    for entry in part.fragments:
        if entry.name.startswith(prefix) and doomed(entry.name):
            store.fs.delete_file(entry.path)
            changed += 1
    return changed
