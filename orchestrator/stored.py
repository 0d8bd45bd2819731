"""What a results store already holds of a sweep's lineages, as :mod:`trials.work` needs it.

Read on the driver (``lrsweep plan``/``run`` plan against the store) and in each trial (which
re-reads its own lineage at start, so a retried trial sees what its previous attempt wrote).
For a few named lineages (a trial's) every read is scoped to their own fragment folders and
the merged parts, so a trial's start-up does not grow with the sweep (``docs/store-scaling.md``).
Sources: the ``runs`` table (finished branches, the trunk's status and frontier), the eval rows
of ``curves`` (which (step, weights) evaluations exist per branch) and the lineage's checkpoint
folder (kept trunk checkpoints, in-flight branch checkpoints), which lives in the store itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.store import ResultsStore
from trials.checkpoint import CheckpointStore
from trials.identity import TRUNK
from trials.work import StoredLineage

__all__ = ["CHECKPOINTS", "checkpoint_folder", "checkpoints_of", "stored_lineages"]


SCOPED_MAX = 16  # up to this many lineages are read folder by folder, not by a scan of the sweep
CHECKPOINTS = "_checkpoints"  # beside the store's tables, on the same filesystem (readers skip it)


def checkpoint_folder(store: ResultsStore, *parts: str) -> str:
    """``<store>/_checkpoints/<parts...>``: on the store's own filesystem, local or ``s3://``, so a
    trial retried on another node finds the checkpoints its first attempt kept."""
    return "/".join([store.base.rstrip("/"), CHECKPOINTS, *parts])


def checkpoints_of(store: ResultsStore, sweep_id: str, lineage_id: str) -> CheckpointStore:
    return CheckpointStore(checkpoint_folder(store, sweep_id, lineage_id), lineage_id, filesystem=store.fs)


def stored_lineages(store: ResultsStore, sweep_id: str,
                    lineage_ids: Iterable[str] | None = None) -> dict[str, StoredLineage]:
    """Per lineage (all stored ones, or ``lineage_ids``), what the store and checkpoints hold."""
    import pyarrow.dataset as ds

    wanted = None if lineage_ids is None else set(lineage_ids)
    runs: dict[str, dict[str, tuple[str, int]]] = {}
    evals: dict[str, dict[str, set[tuple[int, str]]]] = {}
    if store.check_version():
        # A few lineages (a trial's): each read from its own folder; many: one scan of the sweep.
        scopes: list[str | None] = sorted(wanted) if wanted is not None and len(wanted) <= SCOPED_MAX else [None]
        only = None if wanted is None or scopes != [None] else ds.field("lineage_id").isin(sorted(wanted))
        for scope in scopes:
            table = store.read_table("runs", sweep_id, columns=["lineage_id", "branch", "status", "max_step"],
                                     filter=only, lineage_id=scope)
            for row in table.to_pylist():
                runs.setdefault(row["lineage_id"], {})[row["branch"]] = (row["status"], int(row["max_step"]))
            flt = ds.field("split") == "eval"
            if only is not None:
                flt = flt & only
            table = store.read_table("curves", sweep_id, columns=["lineage_id", "branch", "step", "weights"],
                                     filter=flt, lineage_id=scope)
            cols = [table.column(c).to_pylist() for c in ("lineage_id", "branch", "step", "weights")]
            for lid, branch, step, weights in zip(*cols, strict=True):
                evals.setdefault(lid, {}).setdefault(branch, set()).add((int(step), str(weights)))
    ids = set(runs) | set(evals)
    if wanted is None:  # every lineage with checkpoints, too
        import pyarrow.fs as pafs

        infos = store.fs.get_file_info(pafs.FileSelector(checkpoint_folder(store, sweep_id), allow_not_found=True))
        ids |= {i.base_name for i in infos if i.type == pafs.FileType.Directory and not i.base_name.startswith("_")}
    if wanted is not None:
        ids = (ids & wanted) | wanted
    out: dict[str, StoredLineage] = {}
    for lid in sorted(ids):
        ck = checkpoints_of(store, sweep_id, lid)
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
