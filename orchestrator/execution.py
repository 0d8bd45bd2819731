"""Running a planned sweep on Ray Tune: one trial per lineage with work, resumable, nothing lost.

``run_sweep`` is the library call behind ``lrsweep run``:
1. plan the spec against the store: what each lineage already has (rows, finished branches,
   kept checkpoints) and what it still needs (:mod:`trials.work`);
2. refuse (unless ``force``) when the store holds results the edited spec no longer asks for
   (a removed lineage, branch or averager); with ``force`` delete those lineages (rows and
   checkpoints), which are then trained again;
3. record the spec, its plan and its settings table, then run every lineage with work as one
   Ray Tune trial (actor reuse on, per-trial resources from the spec, failed trials retried —
   each attempt re-reads the store and continues from the last checkpoint);
4. record lineages that failed every retry as ``failed``;
5. with a ``[search]`` section, run the search (:mod:`orchestrator.search`) on the same Ray;
6. compact the sweep's fragments (also finishing a compaction a crash interrupted).

Extending a finished sweep (a longer or an in-between horizon, another cooldown, LR, seed or
averager) trains only what is missing: trunks continue from their latest checkpoint and forks
inside a trained trunk replay from the nearest kept checkpoint.
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
from orchestrator import signals
from orchestrator.bundles import make_bundles
from orchestrator.corpus_provenance import check_corpus_unchanged
from orchestrator.local_gpus import check_local_cpus, check_local_gpus
from orchestrator.progress import SweepProgress
from orchestrator.store_location import DEFAULT_STORE, default_store, resolve_store  # noqa: F401 (this module's API)
from orchestrator.stored import checkpoint_folder, checkpoints_of, stored_lineages
from trials.errors import ConfigError
from trials.lineage_spec import LineageSpec

__all__ = ["StaleResultsError", "SweepOutcome", "plan_against_store", "resolve_store", "run_sweep", "share_plugin_path"]

log = logging.getLogger(__name__)


@dataclass
class SweepOutcome:
    sweep_id: str
    store: str
    planned: int
    skipped: int
    ran: int
    run_steps: int = 0
    statuses: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0
    train_time_s: float = 0.0
    grid_time_s: float = 0.0  # the grid's phase (planning, Tune, failures), without the search
    grid_tokens: int = 0  # tokens the grid's trials trained this run
    search: Any = None  # orchestrator.search.runner.SearchOutcome, for a sweep with [search]

    @property
    def failed(self) -> list[str]:
        return [k for k, v in self.statuses.items() if v == "failed"]


class StaleResultsError(ConfigError):
    """The edited spec no longer asks for results that are in the store."""


def plan_against_store(spec: Any, store_root: str) -> Any:
    """:func:`orchestrator.planner.plan` of ``spec`` against what ``store_root`` holds."""
    from orchestrator.planner import plan
    from orchestrator.store import ResultsStore

    store = ResultsStore(store_root)
    if "://" not in store_root and not Path(store_root).exists():
        return plan(spec)
    check_corpus_unchanged(spec, store)
    the_plan = plan(spec, stored=stored_lineages(store, spec.name))
    if getattr(spec, "search", None) is not None and the_plan.orphans:  # a search's lineages are its own
        from orchestrator.search.runner import searched_lineage_ids

        searched = searched_lineage_ids(spec, store_root)
        the_plan.orphans = {k: v for k, v in the_plan.orphans.items() if k not in searched}
    return the_plan


def _delete_orphans(store: Any, sweep_id: str, orphans: dict[str, str], force: bool) -> None:
    if not orphans:
        return
    if not force:
        lid, why = sorted(orphans.items())[0]
        raise StaleResultsError(
            "spec", f"{len(orphans)} stored lineages (e.g. {lid}: {why})",
            "compatible with the stored sweep: this edit removes results that are already stored "
            "(rerun with --force to delete those lineages and train them again, or give the sweep a new name)",
        )
    for lineage_id in orphans:
        store.delete_lineage(sweep_id, lineage_id)
        checkpoints_of(store, sweep_id, lineage_id).clear()


def run_sweep(
    spec_path: str | os.PathLike[str], *, store: str | None = None, address: str | None = None,
    force: bool = False, progress: bool = True, max_concurrent: int | None = None,
    init_store_in_nonempty_dir: bool = False,
) -> SweepOutcome:
    """Plan and run a sweep file; rerunning it resumes or extends it. See the module docstring.

    A store path that is an existing non-empty folder holding no store is refused before anything
    is written (``ResultsStore.check_not_foreign``) unless ``init_store_in_nonempty_dir``."""
    from orchestrator.planner import settings_rows
    from orchestrator.spec import load_spec, spec_hash
    from orchestrator.store import ResultsStore

    began = time.perf_counter()
    spec_path = Path(spec_path)
    spec = load_spec(spec_path)
    check_local_gpus(spec, address)  # before anything is written or Ray starts
    check_local_cpus(spec, address)
    store_root = resolve_store(spec, spec_path, store)  # Ray workers run in other directories
    results = ResultsStore(store_root)
    results.init_in_nonempty_dir = init_store_in_nonempty_dir
    results.check_not_foreign()
    sweep_id = spec.name
    if spec.search is not None:  # a changed search is refused before anything is written
        from orchestrator.search.study import check_studies
        from orchestrator.search.warm import check_warm_start

        check_studies(spec, store_root)
        check_warm_start(spec, store_root)
    the_plan = plan_against_store(spec, store_root)
    if the_plan.orphans:
        _delete_orphans(results, sweep_id, the_plan.orphans, force)
        the_plan = plan_against_store(spec, store_root)
    results.write_sweep(
        sweep_id, name=spec.name, spec_text=spec_path.read_text(), spec_hash=spec_hash(spec),
        plan_json=the_plan.to_json(), code_version=_code_version(),
    )
    grid_rows = settings_rows(the_plan)
    results.write_settings(sweep_id, _with_searched(spec, store_root, grid_rows))
    _merge_flat_fragments(results, sweep_id)
    todo = the_plan.todo()
    outcome = SweepOutcome(sweep_id=sweep_id, store=store_root, planned=len(the_plan.lineages),
                           skipped=len(the_plan.lineages) - len(todo), ran=len(todo), run_steps=the_plan.run_steps)
    if todo:
        statuses, train_time, outcome.grid_tokens = _run_on_tune(
            todo, plan=the_plan, spec=spec, store_root=store_root, sweep_id=sweep_id, address=address,
            show_progress=progress, max_concurrent=max_concurrent,
        )
        outcome.statuses.update(statuses)
        outcome.train_time_s = train_time
        failed = [lin for lin in todo if statuses.get(lin.lineage_id) == "failed"]
        if failed:
            _record_failures(results, sweep_id, the_plan, failed, statuses)
    outcome.grid_time_s = time.perf_counter() - began
    if spec.search is not None:  # after the grid: the search may read the grid's answers
        from orchestrator.search.runner import run_search

        outcome.search = run_search(spec, store_root=store_root, grid_rows=grid_rows, address=address,
                                    max_concurrent=max_concurrent, progress=progress)
    # One file per table instead of one per segment keeps scans and `lrsweep query` fast
    # (docs/platform.md §4: per-file overhead dominates full scans). Runs even with nothing to do,
    # so a rerun finishes a compaction a crash interrupted; crash-safe and idempotent.
    results.compact(sweep_id)
    outcome.wall_time_s = time.perf_counter() - began
    return outcome


def _merge_flat_fragments(results: Any, sweep_id: str) -> None:
    """Merge fragments an older lrsweep wrote flat in the partition folder (before per-lineage
    folders) before any trial starts: trials read only their own folder and the merged parts."""
    for table in ("curves", "runs"):
        part = results.snapshot(table, sweep_id).partitions.get(sweep_id)
        top = results.partition_dir(table, sweep_id)
        if part is not None and any(f.path.rpartition("/")[0] == top for f in part.fragments):
            results.compact(sweep_id, (table,))


def _with_searched(spec: Any, store_root: str, grid_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The grid's settings rows plus a stored search's (the table is rewritten whole)."""
    if spec.search is None:
        return grid_rows
    from orchestrator.search.runner import merged_settings_rows, searched_settings_rows
    from orchestrator.search.study import open_studies, study_path

    if not study_path(store_root, spec.name).exists():
        return grid_rows
    return merged_settings_rows(grid_rows, searched_settings_rows(spec, open_studies(spec, store_root)))


def _record_failures(results: Any, sweep_id: str, the_plan: Any,
                     failed: list[LineageSpec], statuses: dict[str, str]) -> None:
    from orchestrator.trainable import failed_rows

    stored = stored_lineages(results, sweep_id, [lin.lineage_id for lin in failed])
    for lineage in failed:
        c = the_plan.compute_of(lineage.lineage_id)
        rows = failed_rows(lineage, statuses.get(f"{lineage.lineage_id}:error", "trial failed"),
                           stored[lineage.lineage_id], model_size=c.size, n_params=c.n_params,
                           tokens_per_step=c.tokens_per_step)
        if rows:
            results.write_runs(sweep_id, rows)


def _code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"lrsweep {version('lrsweep')}"
    except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
        return "lrsweep (uninstalled)"


def _run_on_tune(
    todo: list[LineageSpec], *, plan: Any, spec: Any, store_root: str, sweep_id: str, address: str | None,
    show_progress: bool, max_concurrent: int | None,
) -> tuple[dict[str, str], float, int]:
    from ray import tune
    from ray.tune import Callback

    from orchestrator.ray_local import init_ray
    from orchestrator.trainable import tune_trainable

    share_plugin_path(spec, address)
    init_ray(address)
    signals.reinstall()  # ray.init replaced the SIGTERM handler
    resources = spec.resources
    cpu = float(resources.cpu)
    gpu = float(resources.gpu)
    threads = max(1, int(cpu))
    from orchestrator.store import ResultsStore

    results = ResultsStore(store_root)
    tune_storage = checkpoint_folder(results, "_tune")
    results.fs.create_dir(tune_storage, recursive=True)
    slots = max_concurrent or resources.concurrency or _slots(cpu * int(resources.workers), gpu * int(resources.workers))
    bundles = make_bundles(todo, plan, slots, gpu=gpu, workers=int(resources.workers))
    param_space = {
        "bundle": tune.grid_search([[lin.to_dict() for lin in bundle] for bundle in bundles]),
        "store": store_root, "sweep_id": sweep_id, "threads": threads,
        "model_size": {lin.lineage_id: plan.compute_of(lin.lineage_id).size for lin in todo},
    }
    tps = {lin.lineage_id: plan.compute_of(lin.lineage_id).tokens_per_step for lin in todo}
    display = SweepProgress([(lin.lineage_id, plan.work[lin.lineage_id].run_steps * tps[lin.lineage_id],
                              f"{plan.compute_of(lin.lineage_id).family} lr={lin.peak_lr:g} seed={lin.seed}")
                             for lin in todo], enabled=show_progress)
    statuses: dict[str, str] = {}
    train_time = [0.0, 0.0]  # seconds, tokens

    from orchestrator.live_compaction import LiveCompactor

    compactor = LiveCompactor(results, sweep_id)
    flops = {lin.lineage_id: plan.compute_of(lin.lineage_id).flops(1) for lin in todo}  # per update (6 N D)
    callback = _make_progress_callback(Callback, display, statuses, train_time, tps, flops, compactor)

    # one bundle per trial holding every data-parallel worker: the workers are processes the
    # trial starts on its own node (trials/data_parallel.py), so they share the trial's bundle
    workers = int(resources.workers)
    trainable = tune.with_resources(tune_trainable, {"cpu": cpu * workers, "gpu": gpu * workers})
    concurrency = max_concurrent or resources.concurrency
    log.debug("%d lineages in %d trials", len(todo), len(bundles))
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=concurrency,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=f"{sweep_id}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}",
            storage_path=tune_storage, storage_filesystem=results.fs,
            failure_config=tune.FailureConfig(max_failures=int(resources.retries)),
            callbacks=[callback], verbose=0, log_to_file=False,
        ),
    )
    # Tune's result grid looks for the JSON/CSV logs we turned off; its warning is noise here.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    try:
        with display:
            tuner.fit()
    finally:
        signals.take_back()
    signals.raise_if_interrupted()  # Tune stopped on a signal: nothing runs after it
    for lin in todo:  # anything Tune never reported done (e.g. interrupted) is left for a rerun
        statuses.setdefault(lin.lineage_id, "incomplete")
    return statuses, train_time[0], int(train_time[1])


def share_plugin_path(spec: Any, address: str | None) -> None:
    """A workload plugin named ``package.module:Object`` from a folder on this process's path
    (not an installed distribution) must import in the embedded Ray's workers too: its folder
    goes on ``PYTHONPATH``, which every Ray process started from here inherits. A cluster's
    nodes need the plugin installed (``clusters/README.md``)."""
    if (address or os.environ.get("RAY_ADDRESS")) not in (None, "", "local"):
        return
    from trials.workloads import WORKLOADS
    from trials.workloads.plugin_loader import import_root

    root = import_root(spec.workload.name) if spec.workload.name not in WORKLOADS else None
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if root is not None and root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *(p for p in paths if p)])


def _slots(cpu: float, gpu: float) -> int:
    """How many trials of this size the Ray cluster runs at once."""
    import ray

    have = ray.cluster_resources()
    fit = [have.get("CPU", 1.0) / cpu] + ([have.get("GPU", 0.0) / gpu] if gpu > 0 else [])
    return max(1, int(min(fit)))


def _bundle_ids(trial: Any) -> list[str]:
    config = trial.config
    return [lin["lineage_id"] for lin in config.get("bundle") or [config["lineage"]]]


def _trial_name(trial: Any) -> str:
    return f"lineage_{trial.trial_id}"


_LIVE: dict[int, tuple[SweepProgress, dict[str, str], list[float], dict[str, int], dict[str, float], Any]] = {}


def _make_progress_callback(base: type, display: SweepProgress, statuses: dict[str, str],
                            train_time: list[float], tps: dict[str, int], flops: dict[str, float] | None = None,
                            compactor: Any = None) -> Any:
    """A Tune callback feeding the live display (and the compaction of finished lineages,
    ``orchestrator/live_compaction.py``). Tune pickles its run config, so the callback holds
    only a token; the display and shared dicts stay in this process (``_LIVE``)."""
    token = id(display)
    _LIVE[token] = (display, statuses, train_time, tps, flops or {}, compactor)
    cls = type("SweepProgressCallback", (_ProgressMixin, base), {})
    return cls(token)


class _ProgressMixin:
    def __init__(self, token: int) -> None:
        self.token = token

    def _live(self) -> Any:
        return _LIVE.get(self.token)

    def setup(self, **info):  # noqa: ANN003 - Tune has installed its SIGINT handler by now
        signals.hand_to_tune()

    def on_trial_start(self, iteration, trials, trial, **info):  # noqa: ANN001
        live = self._live()
        if live:
            ids = _bundle_ids(trial)
            live[0].update(next((i for i in ids if i not in live[1]), ids[0]), state="running")

    def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001
        live = self._live()
        if not live:
            return
        display, statuses, train_time, tps, flops, compactor = live
        lid = result.get("lineage_id") or _bundle_ids(trial)[0]
        if result.get("lineage_done"):
            statuses[lid] = result["status"]
            train_time[0] += float(result.get("train_time_s", 0.0))
            train_time[1] += float(result.get("tokens_trained", 0))
            display.update(lid, state=result["status"])
            if compactor is not None:
                compactor.finished(lid)
            ids = _bundle_ids(trial)
            later = ids[ids.index(lid) + 1:] if lid in ids else []
            if later:
                display.update(later[0], state="running")
        elif "steps_done" in result:
            rate, peak = result.get("steps_per_s"), result.get("peak_flops")
            display.update(lid, tokens=int(result["steps_done"]) * tps[lid], branch=result.get("branch"),
                           step=result.get("step"), end=result.get("end"), loss=result.get("loss"),
                           tokens_per_s=None if rate is None else rate * tps[lid],
                           mfu=None if rate is None or not peak or lid not in flops else rate * flops[lid] / peak)

    def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001
        live = self._live()
        if not live:
            return
        display, statuses = live[0], live[1]
        for lid in _bundle_ids(trial):  # a bundle's lineages that never reported an end
            if lid in statuses:
                continue
            statuses[lid] = "failed"
            statuses[f"{lid}:error"] = str(getattr(trial, "error_msg", None) or "trial failed")
            display.update(lid, state="failed")
