"""Where a running lineage puts its rows: the results store on a cluster, memory or a folder here.

A lineage reports its curve in keyed *segments* (:class:`Sink.segment`): a segment of a branch
(``"trunk"`` or a cooldown branch) between two checkpoints has the key
``<start:010d>-<end:010d>`` and holds train rows of updates ``start <= t < end`` and eval rows
at ``start < e <= end``; rows a replay adds below the trunk's frontier go in a segment keyed
``r<start>-<end>-<hash>`` (the hash names exactly which evaluations it holds). Keys are a pure
function of what they hold, so a lineage rerun after a crash rewrites the same keys and a store
keyed on them overwrites instead of duplicating; :meth:`Sink.truncate` first drops the rows a
crash left beyond the last checkpoint. Finished branches (and the trunk) are reported with
:meth:`Sink.finished`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

from trials.checkpoint import _atomic_write, branch_token
from trials.curve import CURVE_COLUMNS
from trials.identity import TRUNK
from trials.work import StoredLineage

__all__ = ["DirectorySink", "MemorySink", "Sink", "segment_start"]


def segment_start(key: str) -> int | None:
    """The start step of a regular segment key, ``None`` for a replay segment."""
    if key.startswith("r"):
        return None
    return int(key.split("-", 1)[0])


class Sink(Protocol):
    def segment(self, branch: str, key: str, rows: list[dict[str, Any]]) -> None: ...

    def truncate(self, branch: str, from_step: int) -> None: ...

    def finished(self, result: dict[str, Any]) -> None: ...

    def stored_train_losses(self, branch: str, start: int, end: int) -> dict[int, float] | None: ...


class MemorySink:
    """Keeps everything in memory (``python -m trials`` without a checkpoint folder, tests)."""

    def __init__(self) -> None:
        self.segments: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.results: dict[str, dict[str, Any]] = {}

    def segment(self, branch: str, key: str, rows: list[dict[str, Any]]) -> None:
        self.segments[(branch, key)] = list(rows)

    def truncate(self, branch: str, from_step: int) -> None:
        for b, key in list(self.segments):
            start = segment_start(key)
            if b == branch and start is not None and start >= from_step:
                del self.segments[(b, key)]

    def finished(self, result: dict[str, Any]) -> None:
        self.results[result["branch"]] = dict(result)

    def stored_train_losses(self, branch: str, start: int, end: int) -> dict[int, float] | None:
        return {r["step"]: r["loss"] for r in self.rows() if r["branch"] == branch and r["split"] == "train"
                and start <= r["step"] < end}

    def rows(self) -> list[dict[str, Any]]:
        return [row for key in sorted(self.segments) for row in self.segments[key]]

    def stored(self, checkpoints: Any = None) -> StoredLineage:
        """What this sink (and ``checkpoints``, a CheckpointStore) holds, for :func:`plan_work`."""
        evals: dict[str, set[tuple[int, str]]] = {}
        for row in self.rows():
            if row["split"] == "eval":
                evals.setdefault(row["branch"], set()).add((int(row["step"]), str(row["weights"])))
        trunk = self.results.get(TRUNK)
        return StoredLineage(
            checkpoints=checkpoints.trunk_checkpoints() if checkpoints is not None else {},
            rows_frontier=int(trunk["max_step"]) if trunk else 0,
            trunk_status=trunk["status"] if trunk else None,
            evals={b: frozenset(v) for b, v in evals.items()},
            branch_status={b: r["status"] for b, r in self.results.items() if b != TRUNK},
            inflight=checkpoints.inflight() if checkpoints is not None else {},
        )


class DirectorySink(MemorySink):
    """A :class:`MemorySink` persisted in a folder (one Parquet file per segment, one JSON per
    finished branch), so ``lrsweep trial --checkpoint-dir`` resumes with every row kept."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        super().__init__()
        self.directory = Path(directory)
        import pyarrow.parquet as pq

        for path in sorted((self.directory / "rows").glob("*.parquet")):
            token, _, key = path.stem.rpartition("__")
            rows = pq.read_table(path).to_pylist()
            if rows:
                self.segments[(rows[0]["branch"], key)] = rows
        for path in sorted((self.directory / "results").glob("*.json")):
            result = json.loads(path.read_text())
            self.results[result["branch"]] = result

    def _path(self, branch: str, key: str) -> Path:
        return self.directory / "rows" / f"{branch_token(branch)}__{key}.parquet"

    def segment(self, branch: str, key: str, rows: list[dict[str, Any]]) -> None:
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        super().segment(branch, key, rows)
        if not rows:
            return
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist([{c: r[c] for c in CURVE_COLUMNS} for r in rows]), buffer)
        _atomic_write(self._path(branch, key), buffer.getvalue())

    def truncate(self, branch: str, from_step: int) -> None:
        doomed = [k for b, k in self.segments if b == branch and (segment_start(k) or -1) >= from_step]
        super().truncate(branch, from_step)
        for key in doomed:
            self._path(branch, key).unlink(missing_ok=True)

    def finished(self, result: dict[str, Any]) -> None:
        super().finished(result)
        _atomic_write(self.directory / "results" / f"{branch_token(result['branch'])}.json",
                      json.dumps(result, default=list).encode())
