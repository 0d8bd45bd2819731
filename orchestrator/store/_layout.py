"""Where things live in a results store, and a consistent listing of its files.

Layout::

    <root>/_lrsweep.json                                   {"schema_version": 2}
    <root>/curves/sweep_id=<id>/<lineage>/<branch>__<segment>.parquet   fragments
    <root>/runs/sweep_id=<id>/<lineage>/<branch>.parquet                fragments
    <root>/<table>/sweep_id=<id>/_compacted/<gen>-<lo>.parquet   merged parts (see compaction.py)
    <root>/settings/sweep_id=<id>/settings.parquet         the spec's settings (rewritten each run)
    <root>/sweeps/sweep_id=<id>/sweep.parquet

Fragments live in one folder per lineage, so a trial lists and opens only its own lineage's
files (plus the few merged parts), however many lineages the sweep holds
(``docs/store-scaling.md``). A fragment's *name* — what a merged row's ``_fragment`` records
and what shadows it — is the flat ``<lineage>__<branch>__<segment>.parquet`` whatever folder
the file sits in; stores written before the per-lineage folders have such flat files directly
in the partition folder, and a single ``compacted.parquet`` there (read as part 0, 0), and are
read alike.

A curve segment key is ``<start:010d>-<end:010d>`` (the rows between two checkpoints) or
``r<start>-<end>-<hash>`` (evaluations a replay added below the trunk's frontier).
    <root>/<table>/sweep_id=<id>/.<name>.<random>.tmp      in-flight writes, never read

Key parts are encoded by :func:`key_token`, which keeps ``[A-Za-z0-9.-]`` and writes any other
byte as ``+XX``: a token never contains ``_`` (so ``__`` separates parts unambiguously) nor
``=`` (DuckDB's hive parser would read ``h=1000`` in a file name as a partition) nor ``/``.
Readers take only ``*.parquet`` names not starting with ``.`` or ``_``: DuckDB's ``*`` glob
does match dot-files, so temporary names must also not end in ``.parquet``.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs

from orchestrator.sweep_name import SWEEP_NAME_RULE, is_sweep_name
from trials.errors import short_repr

from .errors import StoreError

if TYPE_CHECKING:
    from .store import ResultsStore

__all__ = [
    "COMPACTED_DIR",
    "COMPACTED_NAME",
    "MARKER_NAME",
    "SETTINGS_NAME",
    "SWEEP_NAME",
    "FileEntry",
    "ListingRecorder",
    "PartitionFiles",
    "READ_ATTEMPTS",
    "TableSnapshot",
    "changed",
    "check_sweep_id",
    "should_retry",
    "fragment_name",
    "fragment_relpath",
    "list_lineage",
    "part_name",
    "key_token",
    "list_table",
    "segment_start",
    "temp_path",
]

MARKER_NAME = "_lrsweep.json"
COMPACTED_NAME = "compacted.parquet"  # the single merged file of stores before merged parts
COMPACTED_DIR = "_compacted"  # merged parts; a lineage token never starts with "_"
_PART = re.compile(r"([0-9]{10})-([0-9]{10})\.parquet")
SWEEP_NAME = "sweep.parquet"
SETTINGS_NAME = "settings.parquet"
PARTITION_PREFIX = "sweep_id="

_KEEP = re.compile(r"[A-Za-z0-9.-]")


def check_sweep_id(sweep_id: str) -> str:
    """A sweep id becomes a directory name: the sweep-name rule of the spec, exactly."""
    if not is_sweep_name(sweep_id):
        raise StoreError(f"sweep_id must be {SWEEP_NAME_RULE}, got {short_repr(sweep_id)}")
    return sweep_id


def key_token(part: str, what: str) -> str:
    """Encode one fragment-key part into a file-name-safe token (reversible, no ``_``/``=``)."""
    if not isinstance(part, str) or not part:
        raise StoreError(f"{what} must be a non-empty string, got {part!r}")
    out = []
    for i, ch in enumerate(part):
        if _KEEP.fullmatch(ch) and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"+{b:02X}" for b in ch.encode())
    return "".join(out)


def fragment_name(*parts: tuple[str, str]) -> str:
    """``fragment_name(("lin", "lineage_id"), ("main", "branch"))`` -> ``lin__main.parquet``."""
    return "__".join(key_token(value, what) for value, what in parts) + ".parquet"


def fragment_relpath(name: str) -> str:
    """Where the fragment named ``<lineage>__<rest>.parquet`` lives, relative to its partition
    folder: ``<lineage>/<rest>.parquet`` (the lineage's own folder)."""
    lineage, sep, rest = name.partition("__")
    if not sep or not rest:
        raise StoreError(f"fragment name {name!r} has no lineage part")
    return f"{lineage}/{rest}"


def part_name(gen: int, lo: int) -> str:
    """A merged part: generation ``gen``, replacing every part of a generation in ``[lo, gen)``."""
    return f"{gen:010d}-{lo:010d}.parquet"


def segment_start(token: str) -> int | None:
    """The start step of an encoded curve segment key (``None`` for a replay segment)."""
    if not re.fullmatch(r"[0-9]{10}-[0-9]{10}", token):
        return None
    return int(token[:10])


def temp_path(final_path: str) -> str:
    """A sibling temp name readers skip: leading ``.``, suffix ``.tmp`` (not ``.parquet``)."""
    directory, _, name = final_path.rpartition("/")
    return f"{directory}/.{name}.{uuid.uuid4().hex[:12]}.tmp"


@dataclass(frozen=True)
class FileEntry:
    """One listed file. ``name``: a fragment's flat name (its identity); for a merged part,
    its file name, with its generation ``gen`` and the oldest generation ``lo`` it replaces."""

    path: str
    name: str
    mtime_ns: int | None
    size: int | None
    gen: int = -1
    lo: int = -1


@dataclass
class PartitionFiles:
    """The readable files of one ``<table>/sweep_id=<id>`` directory at one instant."""

    sweep_id: str
    fragments: list[FileEntry] = field(default_factory=list)
    parts: list[FileEntry] = field(default_factory=list)  # merged parts still in force, oldest first
    superseded: list[FileEntry] = field(default_factory=list)  # parts a younger part replaced
    temps: list[FileEntry] = field(default_factory=list)

    @property
    def files(self) -> list[FileEntry]:
        return self.fragments + self.parts

    def settle(self) -> None:
        """Sort, and set aside the parts a present younger part replaces: part ``(g, lo)``
        replaces every part of a generation in ``[lo, g)`` (compaction.py)."""
        self.fragments.sort(key=lambda f: f.name)
        every = sorted(self.parts + self.superseded, key=lambda p: p.gen)
        dead = {p.path for p in every for q in every if q.lo <= p.gen < q.gen}
        self.parts = [p for p in every if p.path not in dead]
        self.superseded = [p for p in every if p.path in dead]


@dataclass
class TableSnapshot:
    """One listing of a table. Readers resolve compacted rows against *this* listing (never a
    second one), so a reader racing a compaction sees each row once or gets an I/O error."""

    table: str
    base_dir: str
    partitions: dict[str, PartitionFiles]

    def paths(self) -> list[str]:
        return [f.path for p in self.partitions.values() for f in p.files]

    def entries(self) -> list[FileEntry]:
        return [f for p in self.partitions.values() for f in p.files]

    def live_fragments(self) -> list[tuple[str, str]]:
        """(sweep_id, fragment name) pairs whose rows in ``compacted.parquet`` are shadowed:
        the fragments present next to a compacted file."""
        return [
            (p.sweep_id, f.name)
            for p in self.partitions.values()
            if p.parts
            for f in p.fragments
        ]


# Reads tried per call when files a reader listed vanish under it (a racing compaction).
READ_ATTEMPTS = 8  # with the doubling pause: ~6 s of racing compactions before a reader gives up
RETRY_PAUSE_S = 0.05  # before the first retry; doubles after each


def changed(fs: pafs.FileSystem, entries: list[FileEntry]) -> bool:
    """Whether any listed file has vanished or been replaced since it was listed: a reader
    that failed on such a listing retries on a fresh one; any other failure is real."""
    if not entries:
        return False
    infos = fs.get_file_info([e.path for e in entries])
    return any(
        not info.is_file or info.size != e.size or info.mtime_ns != e.mtime_ns
        for info, e in zip(infos, entries, strict=True)
    )


class ListingRecorder:
    """A store that remembers every listing it takes, handed to code that builds readers from
    listings (``sql.create_view``/``sql.connect``): afterwards ``entries()`` are exactly the
    files those readers read, to allow (the query sandbox) and to watch (:func:`changed`)."""

    def __init__(self, store: ResultsStore) -> None:
        self._store = store
        self.snapshots: list[TableSnapshot] = []

    def snapshot(self, table: str, sweep_id: str | None = None) -> TableSnapshot:
        snap = self._store.snapshot(table, sweep_id)
        self.snapshots.append(snap)
        return snap

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def entries(self) -> list[FileEntry]:
        return [f for snap in self.snapshots for f in snap.entries()]


def should_retry(
    fs: pafs.FileSystem,
    entries: list[FileEntry],
    error: BaseException,
    attempt: int,
    *,
    missing: tuple[type[BaseException], ...] = (FileNotFoundError,),
    attempts: int = READ_ATTEMPTS,
) -> bool:
    """Whether a reader whose ``attempt``-th read of ``entries`` failed with ``error`` should
    list again and retry; if so, first wait a little for the compaction to finish deleting.

    Yes (up to ``attempts`` reads in all) when a listed file has vanished or been replaced, or
    when ``error`` says a file is missing: a fragment deleted and rewritten within one tick of
    the file-system clock looks unchanged to :func:`changed`.
    """
    if attempt >= attempts or not (isinstance(error, missing) or changed(fs, entries)):
        return False
    time.sleep(RETRY_PAUSE_S * 2 ** (attempt - 1))
    return True


def _entry(partitions: dict[str, PartitionFiles], sid: str, rel: str, info: pafs.FileInfo) -> None:
    """File ``rel`` (relative to partition ``sid``'s folder) into its place in the listing."""
    part = partitions.setdefault(sid, PartitionFiles(sid))
    folder, _, name = rel.rpartition("/")
    if name.startswith("."):
        if name.endswith(".tmp"):
            part.temps.append(FileEntry(info.path, name, info.mtime_ns, info.size))
        return
    if name.startswith("_") or not name.endswith(".parquet"):
        return
    if folder == COMPACTED_DIR:
        m = _PART.fullmatch(name)
        if m:
            part.parts.append(FileEntry(info.path, name, info.mtime_ns, info.size, int(m[1]), int(m[2])))
    elif not folder and name == COMPACTED_NAME:
        part.parts.append(FileEntry(info.path, name, info.mtime_ns, info.size, 0, 0))
    elif not folder:  # a flat fragment of a store written before per-lineage folders
        part.fragments.append(FileEntry(info.path, name, info.mtime_ns, info.size))
    elif "/" not in folder and not folder.startswith(("_", ".")):
        part.fragments.append(FileEntry(info.path, f"{folder}__{name}", info.mtime_ns, info.size))


def list_table(
    fs: pafs.FileSystem, base_dir: str, table: str, sweep_id: str | None
) -> TableSnapshot:
    """List ``<base_dir>/<table>`` (one partition if ``sweep_id``) in a single pass."""
    table_dir = f"{base_dir}/{table}"
    where = f"{table_dir}/{PARTITION_PREFIX}{sweep_id}" if sweep_id else table_dir
    infos = fs.get_file_info(pafs.FileSelector(where, recursive=True, allow_not_found=True))
    partitions: dict[str, PartitionFiles] = {}
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(table_dir) + 1 :]
        top, sep, inside = rel.partition("/")
        if not sep or not top.startswith(PARTITION_PREFIX) or inside.count("/") > 1:
            continue
        _entry(partitions, top[len(PARTITION_PREFIX) :], inside, info)
    for part in partitions.values():
        part.settle()
    partitions = {sid: p for sid, p in sorted(partitions.items()) if p.files or p.temps or p.superseded}
    return TableSnapshot(table, table_dir, partitions)


def list_lineage(
    fs: pafs.FileSystem, base_dir: str, table: str, sweep_id: str, lineage_id: str
) -> TableSnapshot:
    """What a trial needs of ``table``: its lineage's fragments and the merged parts — never
    another lineage's folder. Flat fragments of an older store are not seen: the driver merges
    them before any trial starts (``orchestrator/execution.py``)."""
    table_dir = f"{base_dir}/{table}"
    pdir = f"{table_dir}/{PARTITION_PREFIX}{sweep_id}"
    token = key_token(lineage_id, "lineage_id")
    partitions: dict[str, PartitionFiles] = {}
    for folder in (token, COMPACTED_DIR):
        selector = pafs.FileSelector(f"{pdir}/{folder}", allow_not_found=True)
        for info in fs.get_file_info(selector):
            if info.type == pafs.FileType.File:
                _entry(partitions, sweep_id, info.path[len(pdir) + 1 :], info)
    legacy = fs.get_file_info(f"{pdir}/{COMPACTED_NAME}")
    if legacy.type == pafs.FileType.File:
        _entry(partitions, sweep_id, COMPACTED_NAME, legacy)
    for part in partitions.values():
        part.settle()
    return TableSnapshot(table, table_dir, {k: p for k, p in partitions.items() if p.files})
