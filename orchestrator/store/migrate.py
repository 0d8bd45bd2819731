"""``lrsweep migrate``: carry a schema-version-1 store into this version, losing no row.

Version 1 identified a lineage by its setting *and horizons* and stored one lineage per setting:
``constant`` and each WSD setting at one LR trained (and stored) the same trunk separately,
and a cosine/linear setting stored one lineage per horizon. Version 2 (:mod:`trials.identity`)
stores a trunk once under its trunk id, cooldowns as named branches of it
(``h=<T>/<shape>@<S>``), and says in ``settings`` which branch answers which setting.

Per sweep, from the version-1 plan (``sweeps.plan_json`` holds every lineage's full spec):

- each v1 lineage maps to its v2 trunk id; its ``main`` or ``trunk`` branch to ``trunk``, its
  ``h=<T>`` branches to the WSD branch names;
- curve rows are renamed accordingly; rows two v1 lineages both stored (a shared trunk trained
  twice) are kept once — they are the same computation; if their losses differ the first kept
  is the longer run's and the count of disagreeing rows is reported;
- ``runs`` rows merge the v1 rows of each (trunk, branch): the furthest ``max_step`` and the
  summed wall time; ``settings`` rows come from the v1 rows that answer horizons.

The new store is written beside the old one and swapped in by two renames; the version-1 store
is kept as ``<root>.v1-backup-<time>`` (delete it once satisfied). Local stores only. v1 kept no
checkpoints of finished lineages, so extending a migrated sweep replays its trunks from step 0
(``lrsweep plan`` shows the cost); eval points of v1's ``log_points`` grid stay as extra rows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from . import _layout
from .errors import StoreError
from .schema import FRAGMENT_COLUMN, SCHEMA_VERSION

__all__ = ["migrate_store"]


def _visible_rows(root: Path, table: str, sweep_id: str) -> list[dict[str, Any]]:
    """The visible rows of one v1 table partition (fragments shadow their compacted copies)."""
    import pyarrow.fs as pafs

    snap = _layout.list_table(pafs.LocalFileSystem(), str(root), table, sweep_id)
    part = snap.partitions.get(sweep_id)
    if part is None:
        return []
    live = {f.name for f in part.fragments}
    rows: list[dict[str, Any]] = []
    for merged in part.parts:  # v1: at most one compacted.parquet
        for row in pq.read_table(merged.path).to_pylist():
            if row.get(FRAGMENT_COLUMN) not in live:
                row.pop(FRAGMENT_COLUMN, None)
                rows.append(row)
    for f in part.fragments:
        rows.extend(pq.read_table(f.path).to_pylist())
    for row in rows:
        row.pop("sweep_id", None)
    return rows


def _v1_mapping(spec: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, int | None]]:
    """v1 lineage spec -> (v2 trunk id, {v1 branch: v2 branch}, {v1 branch: v2 fork step})."""
    from trials.identity import branch_name, trunk_id, trunk_rule
    from trials.schedules import build_schedule

    schedule, params, horizons = spec["schedule"], spec.get("schedule_params") or {}, list(spec["horizons"])
    full = {}
    if schedule is not None:
        built = build_schedule(schedule, warmup=int(spec["warmup"]), **params)
        full = {k: v for k, v in built.params().items() if k != "warmup"}
    rule, rule_params = trunk_rule(schedule, full, horizons[0] if schedule in ("cosine", "linear") else None)
    lid = trunk_id(workload=spec["workload"], workload_params=spec["workload_params"], optimizer=spec["optimizer"],
                   optimizer_params=spec["optimizer_params"], peak_lr=spec["peak_lr"], warmup=spec["warmup"],
                   batch_size=spec["batch_size"], seed=spec["seed"], rule=rule, rule_params=rule_params)
    names: dict[str, str] = {"main": "trunk", "trunk": "trunk"}
    forks: dict[str, int | None] = {"main": None, "trunk": None}
    if schedule == "wsd":
        for h in horizons:
            s = built.decay_start(h)
            names[f"h={h}"] = branch_name(fork_step=s, end=h, shape=full["cooldown_shape"],
                                          final_fraction=full["final_fraction"])
            forks[f"h={h}"] = s
    return lid, names, forks


def _merge_runs(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    rows = sorted(rows, key=lambda r: (-int(r["max_step"]), str(r["status"])))
    out = dict(rows[0])
    out["wall_time_s"] = float(sum(float(r["wall_time_s"]) for r in rows))
    return out


def _migrate_sweep(root: Path, sweep_id: str, new: Any) -> dict[str, int]:
    from trials.identity import TRUNK

    sweep_rows = _visible_rows(root, "sweeps", sweep_id)
    if not sweep_rows:
        raise StoreError(f"sweep {sweep_id!r} in {root} has no sweeps row: cannot read its plan")
    sweep = sweep_rows[0]
    plan = json.loads(sweep["plan_json"])
    specs = {row["lineage_id"]: row["spec"] for row in plan["lineages"]}
    mapping = {lid: _v1_mapping(spec) for lid, spec in specs.items()}
    lineages = _visible_rows(root, "lineages", sweep_id)
    curves = _visible_rows(root, "curves", sweep_id)
    # longer v1 runs first, so a trunk trained twice keeps the rows of its longer run
    length = {r["lineage_id"]: 0 for r in lineages}
    for r in lineages:
        length[r["lineage_id"]] = max(length[r["lineage_id"]], int(r["max_step"]))
    curves.sort(key=lambda r: (-length.get(r["lineage_id"], 0), r["lineage_id"]))
    kept: dict[tuple, dict[str, Any]] = {}
    conflicts = 0
    for row in curves:
        if row["lineage_id"] not in mapping:
            raise StoreError(f"sweep {sweep_id!r}: curve rows of lineage {row['lineage_id']!r} not in its plan")
        lid, names, _ = mapping[row["lineage_id"]]
        row = {**row, "lineage_id": lid, "branch": names[row["branch"]]}
        key = (lid, row["branch"], row["step"], row["split"], row["weights"])
        if key in kept:
            conflicts += kept[key]["loss"] != row["loss"]
            continue
        kept[key] = row
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    settings: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in lineages:
        lid, names, forks = mapping[r["lineage_id"]]
        spec = specs[r["lineage_id"]]
        branch = names[r["branch"]]
        run = {k: r[k] for k in ("workload", "model_size", "n_params", "optimizer", "optimizer_params", "peak_lr",
                                 "warmup", "batch_size", "seed", "tokens_per_step", "max_step", "status", "error",
                                 "wall_time_s", "steps_trained", "tokens_trained", "flops_trained", "finished_at")}
        rule_params = {}
        if spec["schedule"] in ("polynomial", "inverse_sqrt", "cosine", "linear"):
            rule_params = dict(spec["schedule_params"])
            if spec["schedule"] in ("cosine", "linear"):
                rule_params["horizon"] = int(spec["horizons"][0])
        rule = {None: "schedule_free", "wsd": "constant"}.get(spec["schedule"], spec["schedule"])
        params = spec.get("schedule_params") or {}
        run.update(lineage_id=lid, branch=branch, parent=None if branch == TRUNK else TRUNK,
                   fork_step=forks[r["branch"]], rule=rule, rule_params=json.dumps(rule_params, sort_keys=True),
                   cooldown_shape=None if branch == TRUNK else params.get("cooldown_shape", "1-sqrt"),
                   final_fraction=None if branch == TRUNK else float(params.get("final_fraction", 0.0)),
                   replayed_steps=0)
        runs.setdefault((lid, branch), []).append(run)
        if r["horizons"]:
            key = (r["setting_id"], lid, branch)
            row = settings.setdefault(key, {
                "setting_id": r["setting_id"], "lineage_id": lid, "branch": branch, "fork_step": forks[r["branch"]],
                "horizons": [], "family": r["family"], "workload": r["workload"], "model_size": r["model_size"],
                "n_params": r["n_params"], "optimizer": r["optimizer"], "optimizer_params": r["optimizer_params"],
                "schedule": r["schedule"], "schedule_params": r["schedule_params"], "peak_lr": r["peak_lr"],
                "warmup": r["warmup"], "batch_size": r["batch_size"], "seed": r["seed"],
                "tokens_per_step": r["tokens_per_step"]})
            row["horizons"] = sorted(set(row["horizons"]) | {int(h) for h in r["horizons"]})
    if kept:
        _write_curves(new, sweep_id, kept.values())
    if runs:
        new.write_runs(sweep_id, [_merge_runs(rows) for rows in runs.values()])
    if settings:
        new.write_settings(sweep_id, list(settings.values()))
    plan["migrated_from_schema_version"] = 1
    new.write_sweep(sweep_id, name=sweep["name"], spec_text=sweep["spec_text"], spec_hash=sweep["spec_hash"],
                    plan_json=plan, code_version=f"{sweep['code_version']} (migrated to schema {SCHEMA_VERSION})")
    new.compact(sweep_id)
    return {"curve_rows": len(curves), "kept": len(kept), "shared": len(curves) - len(kept),
            "conflicts": int(conflicts), "runs": len(runs), "settings": len(settings)}


def _write_curves(new: Any, sweep_id: str, rows: Iterable[dict[str, Any]]) -> None:
    by_branch: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        by_branch.setdefault((row["lineage_id"], row["branch"]), []).append(row)
    for (lid, branch), mine in by_branch.items():
        new.write_curves(sweep_id, lid, branch, "v1", mine)


def migrate_store(root: str) -> str:
    """Migrate the version-1 store at ``root`` in place (the old one kept as a backup); returns
    a one-paragraph report. Raises :class:`StoreError` for anything but a local v1 store."""
    from .store import ResultsStore

    if "://" in root and not root.startswith("file://"):
        raise StoreError(f"store {root!r}: only local stores can be migrated; copy it locally, migrate, copy back")
    path = Path(root[len("file://"):] if root.startswith("file://") else root).expanduser().resolve()
    marker = path / _layout.MARKER_NAME
    if not marker.is_file():
        raise StoreError(f"store {str(path)!r} has no {_layout.MARKER_NAME}: not an lrsweep results store")
    version = json.loads(marker.read_text()).get("schema_version")
    if version == SCHEMA_VERSION:
        return f"store {path} already has schema version {SCHEMA_VERSION}: nothing to migrate"
    if version != 1:
        raise StoreError(f"store {str(path)!r} has schema version {version!r}; this lrsweep migrates version 1 only")
    import pyarrow.fs as pafs

    sweep_ids = sorted(_layout.list_table(pafs.LocalFileSystem(), str(path), "sweeps", None).partitions)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    staging = path.with_name(f".{path.name}.v2-{stamp}")
    backup = path.with_name(f"{path.name}.v1-backup-{stamp}")
    shutil.rmtree(staging, ignore_errors=True)
    new = ResultsStore(str(staging))
    counts = {sid: _migrate_sweep(path, sid, new) for sid in sweep_ids}
    os.replace(path, backup)
    os.replace(staging, path)
    parts = [f"{sid}: {c['curve_rows']} curve rows -> {c['kept']} ({c['shared']} were a shared trunk stored twice"
             + (f", {c['conflicts']} of them disagreeing" if c["conflicts"] else "") + f"), {c['runs']} runs, "
             f"{c['settings']} settings rows" for sid, c in counts.items()]
    return (f"migrated {path} to schema version {SCHEMA_VERSION}: " + "; ".join(parts or ["no sweeps"])
            + f". The version-1 store is kept at {backup}.")

