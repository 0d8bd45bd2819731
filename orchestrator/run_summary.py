"""The closing summary ``lrsweep run`` prints: the grid's and the search's counts, steps, tokens and
times on separate lines, then the search's best setting(s).

    sweep search-anytime: store ./lrsweep-results (2m05s in all)
    grid: 2 lineages planned, 0 already done, 2 completed (4000 steps, 32k tokens, 9.8 s)
    search: 24 trials (14 complete, 10 stopped); 31 jobs (20100 steps, 161k tokens this run, 1m52s); study ...
    best: trial 17 (lr=0.123, gamma=0.45) objective 0.0123

Without a search, one line as before:
``sweep NAME: 3 lineages planned, 0 already done, 3 completed (3000 steps); store S (12.3 s)``.

With ``[search] per`` one ``best`` line per study names each family's (optimizer's) tuned
optimum and its budget.
"""

from __future__ import annotations

from typing import Any

from analysis.units import sig3
from orchestrator.progress import _count, format_duration

__all__ = ["summary_lines"]


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 60 else format_duration(s)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={sig3(v)}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _trials(counts: dict[str, int]) -> str:
    n = sum(counts.values())
    parts = ", ".join(f"{v} {'stopped' if k == 'pruned' else k}" for k, v in sorted(counts.items()))
    return f"{n} trials ({parts})" if n else "no trials"


def summary_lines(outcome: Any) -> list[str]:
    """The lines of the module docstring for a :class:`orchestrator.execution.SweepOutcome`."""
    counts: dict[str, int] = {}
    for key, status in outcome.statuses.items():
        if ":" not in key:
            counts[status] = counts.get(status, 0) + 1
    ran = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing new to run"
    grid = f"{outcome.planned} lineages planned, {outcome.skipped} already done, {ran} ({outcome.run_steps} steps"
    search = outcome.search
    if search is None:  # the line scripts have matched since the first release
        return [f"sweep {outcome.sweep_id}: {grid}); store {outcome.store} ({_seconds(outcome.wall_time_s)})"]
    grid += f", {_count(outcome.grid_tokens)} tokens"
    lines = [f"sweep {outcome.sweep_id}: store {outcome.store} ({_seconds(outcome.wall_time_s)} in all)",
             f"grid: {grid}, {_seconds(outcome.grid_time_s)})",
             f"search: {_trials(search.trials)}; {search.jobs_run} jobs ({search.steps_trained} steps, "
             f"{_count(search.tokens_trained)} tokens this run, {_seconds(search.wall_time_s)}); study {search.study_path}"]
    for group, study in search.studies.items():
        name = f"best {group}" if group else "best"
        budget = ""
        if len(search.studies) > 1 or study["warm_starts"]:
            warm = f" + {study['warm_starts']} warm starts" if study["warm_starts"] else ""
            budget = f" [budget {study['budget']} trials{warm}, {_count(study['tokens'])} tokens]"
        best = study["best"]
        if best is not None:
            lines.append(f"{name}: trial {best['number']} ({_params(best['params'])}) objective {best['value']:.6g}{budget}")
        elif study.get("pareto"):
            lines.append(f"{name}: Pareto front of {study['pareto']} trials{budget}")
    return lines
