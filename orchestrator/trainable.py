"""What runs inside one Ray Tune trial: one lineage, its curves to the store, its rows at the end.

Kept free of driver state so it pickles to any worker. Curves go to the Parquet store in
keyed segments (never into Tune's logs); Tune only sees a small progress dict per segment.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["lineage_rows", "run_lineage_to_store", "tune_trainable"]


def family_of(spec: Any) -> str:
    return spec.schedule if spec.schedule is not None else spec.optimizer


def lineage_rows(sweep_id: str, spec: Any, result: Any) -> list[dict[str, Any]]:
    """One `lineages` row per branch of a finished lineage."""
    now = datetime.now(timezone.utc)
    rows = []
    for b in result.branches:
        rows.append({
            "sweep_id": sweep_id, "lineage_id": spec.lineage_id, "branch": b.branch, "parent": b.parent,
            "fork_step": b.fork_step if b.parent is not None else None, "setting_id": spec.setting_id,
            "family": family_of(spec), "workload": spec.workload,
            "model_size": str(spec.workload_params.get("size", "custom")), "n_params": int(result.n_params),
            "optimizer": spec.optimizer, "optimizer_params": json.dumps(spec.optimizer_params, sort_keys=True),
            "schedule": spec.schedule, "schedule_params": json.dumps(spec.schedule_params, sort_keys=True),
            "peak_lr": float(spec.peak_lr), "warmup": int(spec.warmup), "batch_size": int(spec.batch_size),
            "seed": int(spec.seed), "tokens_per_step": int(result.tokens_per_step),
            "horizons": [int(h) for h in b.horizons], "max_step": int(b.max_step), "status": b.status,
            "error": b.error, "wall_time_s": float(b.wall_time_s), "steps_trained": int(b.steps_trained),
            "tokens_trained": int(b.steps_trained * result.tokens_per_step),
            "flops_trained": float(b.steps_trained * result.flops_per_step), "finished_at": now,
        })
    return rows


def failed_rows(sweep_id: str, spec: Any, error: str) -> list[dict[str, Any]]:
    """`lineages` rows for a lineage that failed every retry (no result object exists)."""
    from trials.branches import plan_branches
    from trials.lineage import BranchResult, LineageResult
    from trials.schedules import build_schedule

    schedule = build_schedule(spec.schedule, warmup=spec.warmup, **spec.schedule_params) if spec.schedule else None
    trunk, forks = plan_branches(spec, schedule)
    result = LineageResult(lineage_id=spec.lineage_id, status="failed", branches=[
        BranchResult(branch=p.name, parent=p.parent, fork_step=p.start, horizons=p.horizons, max_step=p.end,
                     status="failed", steps_trained=0, wall_time_s=0.0, error=error[-2000:])
        for p in [trunk, *forks]
    ])
    return lineage_rows(sweep_id, spec, result)


def run_lineage_to_store(
    spec_dict: dict[str, Any], *, store_root: str, sweep_id: str, checkpoint_root: str,
    threads: int = 1, on_segment: Any = None,
) -> dict[str, Any]:
    """Run one lineage (resuming from its checkpoint), write curves and `lineages` rows."""
    import torch

    from orchestrator.store import ResultsStore
    from trials.checkpoint import FileCheckpointer
    from trials.lineage import run_lineage
    from trials.lineage_spec import LineageSpec

    torch.set_num_threads(max(1, threads))
    spec = LineageSpec.from_dict(spec_dict)
    store = ResultsStore(store_root)
    ckpt_dir = Path(checkpoint_root) / sweep_id / spec.lineage_id
    checkpointer = FileCheckpointer(ckpt_dir)
    began = time.perf_counter()

    def report(segment: Any) -> None:
        if segment.rows:
            store.write_curves(sweep_id, segment.lineage_id, segment.branch, segment.key, segment.rows)
        if on_segment is not None:
            on_segment({"branch": segment.branch, "step": segment.end})

    result = run_lineage(spec, report=report, checkpointer=checkpointer)
    if result.resumed_from is not None:  # an operator's trail (and the tests' evidence) of resumes
        _log_event(Path(checkpoint_root) / sweep_id, {"event": "resumed", "lineage_id": spec.lineage_id,
                                                     "step": result.resumed_from, "pid": os.getpid()})
    store.write_lineage(sweep_id, lineage_rows(sweep_id, spec, result))
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # the lineages rows now mark it done
    return {"status": result.status, "steps_trained": result.steps_trained,
            "tokens_trained": result.steps_trained * result.tokens_per_step,
            "train_time_s": time.perf_counter() - began, "resumed_from": result.resumed_from,
            "pid": os.getpid()}


def _log_event(directory: Path, event: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "events.jsonl", "a") as handle:
        handle.write(json.dumps({**event, "at": datetime.now(timezone.utc).isoformat()}) + "\n")


def tune_trainable(config: dict[str, Any]) -> None:
    """The Ray Tune function trainable: one lineage per trial."""
    from ray import tune

    def on_segment(progress: dict[str, Any]) -> None:
        tune.report({"done": False, **progress})

    summary = run_lineage_to_store(
        config["lineage"], store_root=config["store"], sweep_id=config["sweep_id"],
        checkpoint_root=config["checkpoint_root"], threads=config.get("threads", 1), on_segment=on_segment,
    )
    tune.report({"done": True, **summary})
