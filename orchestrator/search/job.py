"""One unit of a search's work on Ray Tune: bring a trial's lineages to a horizon rung.

A *job* is (trial, rung): the trial's settings planned at their first ``rung + 1`` horizons
(:func:`trials.lineage_plan.plan_lineages`), run one lineage after the other through the same
trainable as the grid (:func:`orchestrator.trainable.run_lineage_to_store`: stored state read
first, rows and ``runs`` rows to the store). A horizon-free trunk planned to a longer horizon
continues from its checkpoint at the previous rung; a WSD trunk continues to the next decay start
and forks the next cooldown; a cosine/linear lineage of the new horizon runs from scratch. The
job then reads the losses that answer each horizon so far (:func:`answer_losses`) and reports
them; the driver judges them.

:func:`mark_stopped` records a trial the driver stopped: every run of its full plan that is
short of what the full plan asks becomes ``stopped`` (rows kept; a run never started gets a
``stopped`` row of zero compute), so ``lrsweep run`` does not continue it
(:mod:`trials.work`) and ``final_losses`` says ``stopped`` at the horizons it never reached.
"""

from __future__ import annotations

import json
import math
from typing import Any

from trials.identity import TRUNK

__all__ = ["answer_losses", "job_trainable", "mark_stopped", "run_job"]


def _pick(losses: dict[str, float], weights: str) -> float | None:
    """The loss of the chosen weights variant (``best``: the lowest of those evaluated)."""
    if not losses:
        return None
    if weights == "best":
        finite = [v for v in losses.values() if math.isfinite(v)]
        return min(finite) if finite else math.inf
    return losses.get(weights)


def answer_losses(store: Any, sweep_id: str, answers: list[dict[str, Any]], n_settings: int, n_horizons: int,
                  weights: list[str]) -> list[list[float | None]]:
    """Per setting, the loss at each of its first ``n_horizons`` horizons (``None``: no eval
    there, e.g. the lineage diverged before it). ``answers``: ``{"setting": i, "lineage_id",
    "branch", "horizons": [steps], "index": [horizon indices]}``; ``weights[i]`` per setting."""
    import pyarrow.dataset as ds

    lids = sorted({a["lineage_id"] for a in answers})
    steps = sorted({h for a in answers for h in a["horizons"]})
    out: list[list[float | None]] = [[None] * n_horizons for _ in range(n_settings)]
    if not lids:
        return out
    flt = (ds.field("split") == "eval") & ds.field("lineage_id").isin(lids) & ds.field("step").isin(steps)
    table = store.read_table("curves", sweep_id, columns=["lineage_id", "branch", "step", "weights", "loss"], filter=flt)
    evals: dict[tuple[str, str, int], dict[str, float]] = {}
    for lid, branch, step, w, loss in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True):
        evals.setdefault((lid, branch, int(step)), {})[str(w)] = float(loss)
    for a in answers:
        for h, k in zip(a["horizons"], a["index"], strict=True):
            if k < n_horizons:
                out[a["setting"]][k] = _pick(evals.get((a["lineage_id"], a["branch"], h), {}), weights[a["setting"]])
    return out


def run_job(config: dict[str, Any], on_progress: Any = None) -> dict[str, Any]:
    """Run a job's lineages (reopening stopped ones) and read its losses; see the module docstring.

    ``on_progress``: called now and then with ``{"steps_done": n}``, the steps this job trained
    so far over all its lineages (the driver's live display turns them into tokens).
    """
    from orchestrator.store import ResultsStore
    from orchestrator.trainable import run_lineage_to_store

    statuses: dict[str, str] = {}
    steps = tokens = 0
    for lineage in config["lineages"]:
        lid = lineage["lineage_id"]

        def progress(p: dict[str, Any], before: int = steps) -> None:
            if on_progress is not None:
                on_progress({"steps_done": before + int(p["steps_done"])})

        summary = run_lineage_to_store(lineage, store_root=config["store"], sweep_id=config["sweep_id"],
                                       model_size=config["model_size"][lid], on_progress=progress,
                                       threads=config.get("threads", 1), reopen=True)
        statuses[lid] = summary["status"]
        steps += int(summary["steps_trained"])
        tokens += int(summary["tokens_trained"])
    store = ResultsStore(config["store"])
    losses = answer_losses(store, config["sweep_id"], config["answers"], config["n_settings"], config["rung"] + 1,
                           config["weights"])
    return {"done": True, "trial": config["trial"], "rung": config["rung"], "losses": json.dumps(losses),
            "statuses": json.dumps(statuses), "steps_trained": steps, "tokens_trained": tokens}


def job_trainable(config: dict[str, Any]) -> None:
    """The Ray Tune function trainable of a search: one job per Tune trial."""
    from ray import tune

    def on_progress(progress: dict[str, Any]) -> None:
        tune.report({"done": False, "trial": config["trial"], "rung": config["rung"], **progress})

    tune.report(run_job(config, on_progress=on_progress))


# ---------------------------------------------------------------------------------- stopping
def mark_stopped(store: Any, sweep_id: str, lineages: list[Any], sizes: dict[str, Any], *, trial: int,
                 horizon: int) -> int:
    """Mark the runs of ``lineages`` (a stopped trial's full plan) that fall short ``stopped``.

    ``sizes``: lineage id -> its :class:`~orchestrator.spec.ModelSize` (for rows never run).
    Returns the number of rows written.
    """
    import pyarrow.dataset as ds

    from orchestrator.trainable import run_row

    ids = [lin.lineage_id for lin in lineages]
    table = store.read_table("runs", sweep_id, filter=ds.field("lineage_id").isin(ids)) if store.check_version() else None
    have = {(r["lineage_id"], r["branch"]): r for r in (table.to_pylist() if table is not None else [])}
    why = f"stopped by the search at horizon rung {horizon} (trial {trial})"
    rows = []
    for lin in lineages:
        size = sizes[lin.lineage_id]
        tps = size.tokens_per_step(lin.batch_size)
        numbers = {"n_params": size.n_params, "tokens_per_step": tps, "flops_per_step": 6.0 * size.n_params * tps,
                   "wall_time_s": 0.0, "steps_trained": 0, "status": "stopped", "error": why}
        trunk = have.get((lin.lineage_id, TRUNK))
        if trunk is None:
            rows.append(run_row(lin, {"branch": TRUNK, "parent": None, "max_step": 0, **numbers}, model_size=size.label))
        elif trunk["status"] == "completed" and trunk["max_step"] < lin.trunk_end:
            rows.append({**{k: v for k, v in trunk.items() if k != "sweep_id"}, "status": "stopped", "error": why})
        for b in lin.branches:
            if (lin.lineage_id, b.name) not in have:
                rows.append(run_row(lin, {"branch": b.name, "parent": TRUNK, "fork_step": b.fork_step,
                                          "max_step": b.fork_step, **numbers}, model_size=size.label))
    if rows:
        store.write_runs(sweep_id, rows)
    return len(rows)
