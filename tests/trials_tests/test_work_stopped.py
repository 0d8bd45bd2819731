"""A lineage a search stopped ends at its frontier: not continued, its stopped branches not run;
reopened (the search needs it further), it continues like any unfinished lineage."""

from __future__ import annotations

from orchestrator.trainable import _reopened
from trials.identity import TRUNK
from trials.lineage_plan import PlanConfig, TrialSetting, plan_lineages
from trials.work import StoredLineage, plan_work


def _lineage(schedule: str, params: dict):
    s = TrialSetting(workload="linreg", workload_params={"dim": 10}, optimizer="sgd", optimizer_params={},
                     schedule_free=False, schedule=schedule, schedule_params=params, peak_lr=0.1, warmup=0,
                     batch_size=4, seed=0, horizons=(100, 300))
    (lineage,), _ = plan_lineages([s], PlanConfig(checkpoint_grid=0))
    return lineage


def _stored_at_100(spec, status: str, **kw) -> StoredLineage:
    evals = {TRUNK: frozenset((e, "raw") for e in spec.eval_steps if e <= 100)}
    return StoredLineage(checkpoints={100: frozenset()}, rows_frontier=100, trunk_status=status, evals=evals, **kw)


def test_a_stopped_horizon_free_trunk_is_not_continued() -> None:
    spec = _lineage("polynomial", {"gamma": 0.5, "t0": 10.0})
    assert spec.trunk_end == 300
    completed = plan_work(spec, _stored_at_100(spec, "completed"))
    assert [(p.start, p.end) for p in completed.passes] == [(100, 300)]  # a completed row continues
    stopped = plan_work(spec, _stored_at_100(spec, "stopped"))
    assert stopped.empty and stopped.run_steps == 0
    reopened = plan_work(spec, _reopened(_stored_at_100(spec, "stopped")))
    assert [(p.start, p.end) for p in reopened.passes] == [(100, 300)]


def test_stopped_wsd_branches_are_not_run_and_reopened_ones_are() -> None:
    spec = _lineage("wsd", {"cooldown_fraction": 0.2, "cooldown_shape": "1-sqrt", "final_fraction": 0.0})
    first, second = spec.branches  # forks at 80 and 240
    assert (first.fork_step, second.fork_step) == (80, 240)
    done = {first.name: frozenset((e, "raw") for e in first.eval_steps),
            TRUNK: frozenset((e, "raw") for e in spec.eval_steps if e <= 80)}
    stored = StoredLineage(checkpoints={80: frozenset()}, rows_frontier=80, trunk_status="stopped",
                           evals=done, branch_status={first.name: "completed", second.name: "stopped"})
    assert plan_work(spec, stored).empty
    work = plan_work(spec, _reopened(stored))
    assert [t.name for t in work.branch_tasks] == [second.name]
    assert [(p.start, p.end) for p in work.passes] == [(80, 240)]
