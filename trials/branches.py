"""How one lineage splits into branches: a ``main`` run, or a WSD trunk with cooldown forks.

ALGORITHMS.md §1: a WSD cooldown for horizon ``T`` starts at ``S_T = decay_start(T)``; before
``S_T`` the schedule is the same constant trunk for every horizon. So the trunk runs to the
latest decay start and branch ``h=T`` runs the cooldown from ``S_T`` to ``T``.
"""

from __future__ import annotations

from dataclasses import dataclass

from trials.lineage_spec import LineageSpec
from trials.schedules import WSD, Schedule

__all__ = ["BranchPlan", "plan_branches"]


@dataclass(frozen=True, kw_only=True)
class BranchPlan:
    name: str  # "main", "trunk" or "h=<T>"
    parent: str | None
    start: int  # first update index
    end: int  # updates done at the end
    schedule_horizon: int | None  # the horizon the schedule is evaluated with
    horizons: tuple[int, ...]  # horizons this branch answers (its eval at step == T)
    eval_steps: tuple[int, ...]  # eval points, all in [start, end]

    @property
    def steps(self) -> int:
        return self.end - self.start


def plan_branches(spec: LineageSpec, schedule: Schedule | None) -> tuple[BranchPlan, list[BranchPlan]]:
    """The trunk (or main) branch and the forked branches, forks sorted by fork step."""
    horizons = tuple(sorted(spec.horizons))
    longest = horizons[-1]
    if not isinstance(schedule, WSD):
        main = BranchPlan(
            name="main", parent=None, start=0, end=longest, schedule_horizon=longest,
            horizons=horizons, eval_steps=tuple(e for e in spec.eval_steps if e <= longest),
        )
        return main, []
    starts = {h: schedule.decay_start(h) for h in horizons}
    trunk_end = max(starts.values())
    trunk = BranchPlan(
        name="trunk", parent=None, start=0, end=trunk_end, schedule_horizon=longest,
        horizons=(), eval_steps=tuple(e for e in spec.eval_steps if e <= trunk_end),
    )
    forks = []
    for h in horizons:
        s = starts[h]
        evals = tuple(e for e in spec.eval_steps if s < e <= h) or (h,)
        forks.append(BranchPlan(
            name=f"h={h}", parent="trunk", start=s, end=h, schedule_horizon=h,
            horizons=(h,), eval_steps=evals,
        ))
    forks.sort(key=lambda b: (b.start, b.end))
    return trunk, forks
