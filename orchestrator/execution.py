"""Running a planned sweep on Ray Tune: one trial per lineage, resumable, nothing lost.

``run_sweep`` is the library call behind ``lrsweep run``:
1. plan the spec; refuse (unless ``force``) when the store holds results of lineages the new
   plan no longer contains — an edit that invalidates old results;
2. skip every lineage whose ``lineages`` rows are already in the store (completed or diverged);
3. run the rest as Ray Tune trials (actor reuse on, per-trial resources from the spec, failed
   trials retried from their own checkpoint), curves streaming to the Parquet store;
4. record lineages that failed every retry as ``failed``;
5. compact the sweep's fragments (no trial is writing any more).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orchestrator.ray_local  # noqa: F401  (pins Ray to loopback before ray is imported)
from orchestrator.progress import SweepProgress
from trials.branches import plan_branches
from trials.errors import ConfigError
from trials.lineage_spec import LineageSpec
from trials.schedules import build_schedule

__all__ = ["SweepOutcome", "run_sweep", "checkpoint_root_for", "planned_steps"]

log = logging.getLogger(__name__)


@dataclass
class SweepOutcome:
    sweep_id: str
    store: str
    planned: int
    skipped: int
    ran: int
    statuses: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0
    train_time_s: float = 0.0

    @property
    def failed(self) -> list[str]:
        return [k for k, v in self.statuses.items() if v == "failed"]


def planned_steps(spec: LineageSpec) -> int:
    schedule = build_schedule(spec.schedule, warmup=spec.warmup, **spec.schedule_params) if spec.schedule else None
    trunk, forks = plan_branches(spec, schedule)
    return trunk.steps + sum(f.steps for f in forks)


def checkpoint_root_for(store_root: str) -> str:
    """Checkpoints live beside the results for local stores, in a local cache for remote ones."""
    if "://" in store_root and not store_root.startswith("file://"):
        base = Path(os.environ.get("LRSWEEP_CACHE", Path.home() / ".cache" / "lrsweep")) / "checkpoints"
        return str(base)
    root = store_root[len("file://"):] if store_root.startswith("file://") else store_root
    return str(Path(root) / "_checkpoints")


class StaleResultsError(ConfigError):
    """The edited spec no longer contains lineages that have results in the store."""


def _check_invalidated(store: Any, sweep_id: str, lineage_ids: set[str], force: bool) -> list[str]:
    rows = store.read_table("lineages", sweep_id, columns=["lineage_id"])
    stored = set(rows.column("lineage_id").to_pylist()) if rows.num_rows else set()
    orphans = sorted(stored - lineage_ids)
    if orphans and not force:
        raise StaleResultsError(
            "spec", f"{len(orphans)} lineages with stored results (e.g. {orphans[0]})",
            "compatible with the stored sweep: this edit changes or removes lineages that already have "
            "results (rerun with --force to delete them, or give the sweep a new name)",
        )
    for lineage_id in orphans:
        store.delete_lineage(sweep_id, lineage_id)
    return orphans


def run_sweep(
    spec_path: str | os.PathLike[str], *, store: str | None = None, address: str | None = None,
    force: bool = False, progress: bool = True, max_concurrent: int | None = None,
) -> SweepOutcome:
    """Plan and run a sweep file; rerunning it resumes. See the module docstring."""
    from orchestrator.planner import plan as make_plan
    from orchestrator.spec import load_spec, spec_hash
    from orchestrator.store import ResultsStore

    began = time.perf_counter()
    spec_path = Path(spec_path)
    spec = load_spec(spec_path)
    the_plan = make_plan(spec)
    store_root = _absolute(str(store or spec.store))  # Ray workers run in other directories
    results = ResultsStore(store_root)
    sweep_id = spec.name
    lineages = list(the_plan.lineages)
    ids = {l.lineage_id for l in lineages}
    _check_invalidated(results, sweep_id, ids, force)
    results.write_sweep(
        sweep_id, name=spec.name, spec_text=spec_path.read_text(), spec_hash=spec_hash(spec),
        plan_json=the_plan.to_json(), code_version=_code_version(),
    )
    done = results.completed_lineages(sweep_id)
    todo = [l for l in lineages if l.lineage_id not in done]
    outcome = SweepOutcome(sweep_id=sweep_id, store=store_root, planned=len(lineages),
                           skipped=len(lineages) - len(todo), ran=len(todo))
    if todo:
        statuses, train_time = _run_on_tune(
            todo, plan=the_plan, spec=spec, store_root=store_root, sweep_id=sweep_id, address=address,
            show_progress=progress, max_concurrent=max_concurrent,
        )
        outcome.statuses.update(statuses)
        outcome.train_time_s = train_time
        for lineage in todo:
            if statuses.get(lineage.lineage_id) == "failed":
                from orchestrator.trainable import failed_rows

                results.write_lineage(sweep_id, failed_rows(sweep_id, lineage, statuses.get(f"{lineage.lineage_id}:error", "")))
    if todo:
        # one file per table instead of one per segment: scans and `lrsweep query` stay fast
        # (PLATFORM-NOTES: per-file overhead dominates full scans); crash-safe and idempotent.
        results.compact(sweep_id)
    outcome.wall_time_s = time.perf_counter() - began
    return outcome


def _absolute(root: str) -> str:
    if "://" in root:
        return root
    return str(Path(root).expanduser().resolve())


def _code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"lrsweep {version('lrsweep')}"
    except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
        return "lrsweep (uninstalled)"


def _run_on_tune(
    todo: list[LineageSpec], *, plan: Any, spec: Any, store_root: str, sweep_id: str, address: str | None,
    show_progress: bool, max_concurrent: int | None,
) -> tuple[dict[str, str], float]:
    from ray import tune
    from ray.tune import Callback

    from orchestrator.ray_local import init_ray
    from orchestrator.trainable import tune_trainable

    init_ray(address)
    resources = spec.resources
    cpu = float(resources.cpu)
    gpu = float(resources.gpu)
    threads = max(1, int(cpu))
    checkpoint_root = checkpoint_root_for(store_root)
    Path(checkpoint_root).mkdir(parents=True, exist_ok=True)
    param_space = {
        "lineage": tune.grid_search([l.to_dict() for l in todo]),
        "store": store_root, "sweep_id": sweep_id, "checkpoint_root": checkpoint_root, "threads": threads,
    }
    tps = {l.lineage_id: plan.compute_of(l.lineage_id).tokens_per_step for l in todo}
    display = SweepProgress([(l, planned_steps(l) * tps[l.lineage_id]) for l in todo], enabled=show_progress)
    statuses: dict[str, str] = {}
    train_time = [0.0]

    callback = _make_progress_callback(Callback, display, statuses, train_time, tps)

    trainable = tune.with_resources(tune_trainable, {"cpu": cpu, "gpu": gpu})
    concurrency = max_concurrent or resources.concurrency
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=concurrency,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=f"{sweep_id}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}",
            storage_path=str(Path(checkpoint_root) / "_tune"),
            failure_config=tune.FailureConfig(max_failures=int(resources.retries)),
            callbacks=[callback], verbose=0, log_to_file=False,
        ),
    )
    # Tune's result grid looks for the JSON/CSV logs we turned off; its warning is noise here.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    with display:
        tuner.fit()
    for l in todo:  # anything Tune never reported done (e.g. interrupted) is left for a rerun
        statuses.setdefault(l.lineage_id, "incomplete")
    return statuses, train_time[0]


def _trial_name(trial: Any) -> str:
    return f"lineage_{trial.trial_id}"


_LIVE: dict[int, tuple[SweepProgress, dict[str, str], list[float], dict[str, int]]] = {}


def _make_progress_callback(base: type, display: SweepProgress, statuses: dict[str, str],
                            train_time: list[float], tps: dict[str, int]) -> Any:
    """A Tune callback feeding the live display. Tune pickles its run config, so the callback
    holds only a token; the display and shared dicts stay in this process (``_LIVE``)."""
    token = id(display)
    _LIVE[token] = (display, statuses, train_time, tps)
    cls = type("SweepProgressCallback", (_ProgressMixin, base), {})
    return cls(token)


class _ProgressMixin:
    def __init__(self, token: int) -> None:
        self.token = token

    def _live(self) -> Any:
        return _LIVE.get(self.token)

    def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
        live = self._live()
        if live:
            live[0].update(trial.config["lineage"]["lineage_id"], state="running")

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        live = self._live()
        if not live:
            return
        display, statuses, train_time, tps = live
        lid = trial.config["lineage"]["lineage_id"]
        if result.get("done"):
            statuses[lid] = result["status"]
            train_time[0] += float(result.get("train_time_s", 0.0))
            display.update(lid, state=result["status"])
        else:
            display.update(lid, tokens=int(result.get("step", 0)) * tps[lid])

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        live = self._live()
        if not live:
            return
        display, statuses = live[0], live[1]
        lid = trial.config["lineage"]["lineage_id"]
        statuses[lid] = "failed"
        statuses[f"{lid}:error"] = str(getattr(trial, "error_msg", None) or "trial failed")
        display.update(lid, state="failed")
