"""What a results store already holds of a sweep's lineages, as :mod:`trials.work` needs it.

Read on the driver (``lrsweep plan``/``run`` plan against the store) and in each trial (which
re-reads its own lineage at start, so a retried trial sees what its previous attempt wrote).
Sources: the ``runs`` table (finished branches, the trunk's status and frontier), the eval rows
of ``curves`` (which (step, weights) evaluations exist per branch) and the lineage's checkpoint
folder (kept trunk checkpoints, in-flight branch checkpoints).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from orchestrator.store import ResultsStore
from trials.checkpoint import CheckpointStore
from trials.identity import TRUNK
from trials.work import StoredLineage

__all__ = ["checkpoint_root_for", "checkpoints_of", "stored_lineages"]


def checkpoint_root_for(store_root: str) -> str:
    """Checkpoints live beside the results for local stores, in a local cache for remote ones."""
    if "://" in store_root and not store_root.startswith("file://"):
        base = Path(os.environ.get("LRSWEEP_CACHE", Path.home() / ".cache" / "lrsweep")) / "checkpoints"
        return str(base)
    root = store_root[len("file://"):] if store_root.startswith("file://") else store_root
    return str(Path(root) / "_checkpoints")


def checkpoints_of(checkpoint_root: str, sweep_id: str, lineage_id: str) -> CheckpointStore:
    return CheckpointStore(Path(checkpoint_root) / sweep_id / lineage_id, lineage_id)


def stored_lineages(store: ResultsStore, sweep_id: str, checkpoint_root: str,
                    lineage_ids: Iterable[str] | None = None) -> dict[str, StoredLineage]:
    """Per lineage (all stored ones, or ``lineage_ids``), what the store and checkpoints hold."""
    import pyarrow.dataset as ds

    wanted = None if lineage_ids is None else set(lineage_ids)
    runs: dict[str, dict[str, tuple[str, int]]] = {}
    evals: dict[str, dict[str, set[tuple[int, str]]]] = {}
    if store.check_version() and sweep_id in store.sweep_ids():
        only = None if wanted is None else ds.field("lineage_id").isin(sorted(wanted))
        table = store.read_table("runs", sweep_id, columns=["lineage_id", "branch", "status", "max_step"],
                                 filter=only)
        for row in table.to_pylist():
            runs.setdefault(row["lineage_id"], {})[row["branch"]] = (row["status"], int(row["max_step"]))
        flt = ds.field("split") == "eval"
        if only is not None:
            flt = flt & only
        table = store.read_table("curves", sweep_id, columns=["lineage_id", "branch", "step", "weights"], filter=flt)
        cols = [table.column(c).to_pylist() for c in ("lineage_id", "branch", "step", "weights")]
        for lid, branch, step, weights in zip(*cols, strict=True):
            evals.setdefault(lid, {}).setdefault(branch, set()).add((int(step), str(weights)))
    ids = set(runs) | set(evals)
    folder = Path(checkpoint_root) / sweep_id
    if folder.is_dir():
        ids |= {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("_")}
    if wanted is not None:
        ids = (ids & wanted) | wanted
    out: dict[str, StoredLineage] = {}
    for lid in sorted(ids):
        ck = checkpoints_of(checkpoint_root, sweep_id, lid)
        mine = runs.get(lid, {})
        trunk = mine.get(TRUNK)
        out[lid] = StoredLineage(
            checkpoints=ck.trunk_checkpoints(), inflight=ck.inflight(),
            rows_frontier=trunk[1] if trunk else 0,  # a failed row keeps the frontier it had
            trunk_status=trunk[0] if trunk else None,
            evals={b: frozenset(v) for b, v in evals.get(lid, {}).items()},
            branch_status={b: st for b, (st, _) in mine.items() if b != TRUNK},
        )
    return out
