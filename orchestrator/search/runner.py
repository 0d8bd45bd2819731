"""``run_search``: a sweep's ``[search]`` on Ray Tune, after its grid (``lrsweep run``).

One ``tune.Tuner`` runs each study (one, or one per family/optimizer with ``[search] per``,
one after the other, each with the same ``n_trials``):
:class:`~orchestrator.search.searcher.StudySearcher` is its search algorithm (jobs on demand, waves, rung judgments), :func:`~orchestrator.search.job.job_trainable`
its trainable (actor reuse on, resources and retries from the spec as for the grid). The study,
the curves and the ``runs`` rows are in the store, the Tune experiment folder is scratch: a
rerun builds a new Tuner and the searcher resumes the study; a study already finished is not
run again. A warm start (:mod:`orchestrator.search.warm`) is enqueued when a study is created.
The live display (:mod:`orchestrator.search.progress`) covers every study of the run.

Searched settings join the sweep's ``settings`` table beside the grid's (rewritten whenever a
wave is asked), so ``lrsweep query``, ``final_losses`` and reports see them like grid settings.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orchestrator.ray_local  # noqa: F401  (pins Ray to loopback before ray is imported)
from orchestrator import signals

__all__ = ["SearchOutcome", "run_search", "searched_lineage_ids", "searched_settings_rows"]

log = logging.getLogger(__name__)


@dataclass
class SearchOutcome:
    """What a ``run_search`` call did, and where the study stands."""

    study_path: str
    trials: dict[str, int] = field(default_factory=dict)  # state -> count (whole study)
    jobs_run: int = 0
    steps_trained: int = 0
    tokens_trained: int = 0
    best: dict[str, Any] | None = None  # number, params, values of the best complete trial (single objective)
    pareto: int = 0  # trials on the Pareto front (objective "pareto")
    wall_time_s: float = 0.0
    # per study (group "" without `per`): budget, trials (state -> count), best (as `best`), warm starts
    studies: dict[str, dict[str, Any]] = field(default_factory=dict)


def _searched_trials(sweep: Any, study: Any) -> list[Any]:
    from orchestrator.search.searcher import INTERRUPTED

    return [t for t in study.get_trials(deepcopy=False) if t.params and not t.user_attrs.get(INTERRUPTED)]


def _full_plans(sweep: Any, studies: dict[str, Any]) -> list[tuple[Any, Any, Any]]:
    """(trial, settings, (lineages, answers)) of every searched trial's full plan, every study."""
    from orchestrator.search.space import SearchSpace
    from trials.lineage_plan import plan_lineages

    out = []
    for group, study in studies.items():
        space = SearchSpace(sweep, group or None)
        for t in _searched_trials(sweep, study):
            try:
                ts = space.settings(t.params)
            except KeyError:  # a trial whose params no longer fit (never: the search hash guards it)
                continue
            out.append((t, ts, plan_lineages(ts.up_to(space.n_horizons - 1), ts.config)))
    return out


def searched_settings_rows(sweep: Any, studies: dict[str, Any]) -> list[dict[str, Any]]:
    """``settings`` rows of every searched trial (its full plan: every objective horizon)."""
    from orchestrator.planner import settings_rows

    rows = []
    for _, ts, (_, answers) in _full_plans(sweep, studies):
        sizes = {s.trial.setting_id: s.size for s in ts.settings}
        rows += settings_rows(SimpleNamespace(answers=answers, sizes=sizes))  # type: ignore[arg-type]
    return rows


def searched_lineage_ids(sweep: Any, store_root: str) -> set[str]:
    """Every lineage the stored study's trials plan (the grid planner must not disown them)."""
    from orchestrator.search.study import open_studies, study_path

    if not study_path(store_root, sweep.name).exists():
        return set()
    studies = open_studies(sweep, store_root)
    return {lin.lineage_id for _, _, (lineages, _) in _full_plans(sweep, studies) for lin in lineages}


def merged_settings_rows(grid_rows: list[dict[str, Any]], searched: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Grid rows, then searched rows not already there (same setting, lineage and branch)."""
    seen = {(r["setting_id"], r["lineage_id"], r["branch"]) for r in grid_rows}
    out = list(grid_rows)
    for r in searched:
        key = (r["setting_id"], r["lineage_id"], r["branch"])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def run_search(sweep: Any, *, store_root: str, grid_rows: list[dict[str, Any]], address: str | None = None,
               max_concurrent: int | None = None, progress: bool = True) -> SearchOutcome:
    """Run (or continue) the sweep's search; see the module docstring.

    Args:
        sweep: the validated sweep (with ``search``).
        store_root: absolute store path or URI.
        grid_rows: the grid's ``settings`` rows (merged with the searched ones).
        address: Ray cluster address (default: embedded local Ray).
        max_concurrent: overrides ``search.concurrency`` (the wave size) for Tune's slots only.
        progress: show the live table / progress lines (``False``: ``--quiet``).
    """
    from ray import tune

    from orchestrator.ray_local import init_ray
    from orchestrator.search.job import job_trainable, mark_stopped
    from orchestrator.search.progress import SearchProgress, study_counts
    from orchestrator.search.searcher import StudySearcher
    from orchestrator.search.space import SearchSpace
    from orchestrator.search.study import _storage, open_studies, study_path
    from orchestrator.search.warm import warm_start
    from orchestrator.store import ResultsStore
    from orchestrator.stored import checkpoint_folder

    began = time.perf_counter()
    sweep_id = sweep.name
    results = ResultsStore(store_root)
    path = study_path(store_root, sweep_id)
    storage = _storage(path)
    studies = open_studies(sweep, store_root, storage=storage)
    warm_start(sweep, studies, store_root)
    tune_storage = checkpoint_folder(results, "_tune")
    results.fs.create_dir(tune_storage, recursive=True)
    resources = sweep.resources

    def write_settings() -> None:
        results.write_settings(sweep_id, merged_settings_rows(grid_rows, searched_settings_rows(sweep, studies)))

    def on_stop(active: Any, lineages: list[Any], rung: int) -> None:
        sizes = {}
        for lin in lineages:
            sizes[lin.lineage_id] = active.ts.settings[0].size
        mark_stopped(results, sweep_id, lineages, sizes, trial=active.number, horizon=rung)

    def on_failed(active: Any) -> None:
        _record_failure(results, sweep_id, active)

    job_base = {"store": store_root, "sweep_id": sweep_id, "threads": max(1, int(resources.cpu))}
    searchers = {group: StudySearcher(sweep=sweep, study=study, storage=storage, job_base=job_base, on_stop=on_stop,
                                      on_failed=on_failed, on_wave=write_settings,
                                      space=SearchSpace(sweep, group or None), label=group)
                 for group, study in studies.items()}
    display = SearchProgress({g: s.budget for g, s in searchers.items()}, enabled=progress)
    write_settings()
    with display:
        for group, searcher in searchers.items():
            display.study(group, study_counts(searcher))
        for group, searcher in searchers.items():
            if searcher.finished():
                continue
            searcher.progress = display
            from orchestrator.execution import share_plugin_path

            share_plugin_path(sweep, address)
            init_ray(address)
            signals.reinstall()  # ray.init replaced the SIGTERM handler
            w = int(resources.workers)  # data-parallel workers share the trial's bundle (orchestrator/execution.py)
            trainable = tune.with_resources(job_trainable, {"cpu": float(resources.cpu) * w,
                                                            "gpu": float(resources.gpu) * w})
            tag = f"-{group}" if group else ""
            tuner = tune.Tuner(
                trainable, param_space={},
                tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1, reuse_actors=True,
                                            max_concurrent_trials=max_concurrent or sweep.search.concurrency,
                                            trial_name_creator=_job_name, trial_dirname_creator=_job_name),
                run_config=tune.RunConfig(
                    name=f"{sweep_id}{tag}-search-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}",
                    storage_path=tune_storage, storage_filesystem=results.fs,
                    failure_config=tune.FailureConfig(max_failures=int(resources.retries)),
                    callbacks=[signals.tune_callback()], verbose=0, log_to_file=False),
            )
            logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
            try:
                tuner.fit()
            finally:
                signals.take_back()
            signals.raise_if_interrupted()  # stopped on a signal: no further study runs
            searcher.progress = None
            display.study(group, study_counts(searcher))
            write_settings()
    out = _outcome(sweep, studies, path, searchers)
    out.wall_time_s = time.perf_counter() - began
    return out


def _job_name(trial: Any) -> str:
    return f"search_{trial.trial_id}"


def _record_failure(results: Any, sweep_id: str, active: Any) -> None:
    """``failed`` rows for the lineages of a trial whose job failed every retry."""
    from orchestrator.stored import stored_lineages
    from orchestrator.trainable import failed_rows
    from trials.lineage_plan import plan_lineages

    lineages, _ = plan_lineages(active.ts.up_to(active.rung + 1), active.ts.config)
    stored = stored_lineages(results, sweep_id, [lin.lineage_id for lin in lineages])
    size = active.ts.settings[0].size
    rows = []
    for lin in lineages:
        rows += failed_rows(lin, f"search trial {active.number}: its job failed every retry", stored[lin.lineage_id],
                            model_size=size.label, n_params=size.n_params,
                            tokens_per_step=size.tokens_per_step(lin.batch_size))
    if rows:
        results.write_runs(sweep_id, rows)


def _outcome(sweep: Any, studies: dict[str, Any], path: Path, searchers: dict[str, Any]) -> SearchOutcome:
    from optuna.trial import TrialState

    from orchestrator.search.frames import best_trial
    from orchestrator.search.searcher import WARM

    out = SearchOutcome(study_path=str(path))
    for group, study in studies.items():
        searcher = searchers[group]
        trials = _searched_trials(sweep, study)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
            out.trials[t.state.name.lower()] = out.trials.get(t.state.name.lower(), 0) + 1
        out.jobs_run += searcher.jobs_run
        out.steps_trained += searcher.trained_steps
        out.tokens_trained += searcher.trained_tokens
        mine: dict[str, Any] = {"budget": sweep.search.n_trials, "trials": counts, "best": None,
                                "warm_starts": sum(1 for t in trials if WARM in t.user_attrs),
                                "tokens": sum(int(t.user_attrs.get("lrsweep.tokens", 0)) for t in trials)}
        found = best_trial(study, sweep.search.objective)
        if found is not None:  # regret: against the envelope of everything the search saw
            best, value = found
            mine["best"] = {"number": best.number, "params": dict(best.params), "value": value,
                            "setting_ids": list(best.user_attrs.get("lrsweep.setting_ids", []))}
        elif any(t.state == TrialState.COMPLETE for t in trials) and len(study.directions) > 1:
            mine["pareto"] = len(study.best_trials)
        out.studies[group] = mine
    if len(studies) == 1:
        (only,) = out.studies.values()
        out.best, out.pareto = only["best"], only.get("pareto", 0)
    return out
