"""Settings → lineages: the one place the trunk/branch layout is computed (docs/design.md §4).

Every setting (one grid point minus the horizon) is answered at each of its horizons by a
trunk (:mod:`trials.identity`) or by a cooldown branch of one:

- horizon-free settings (``constant``, ``polynomial``, ``inverse_sqrt``, schedule-free
  optimizers) by their trunk, evaluated at every horizon;
- ``wsd`` at horizon ``T`` by the branch forked from the *constant* trunk at its decay start
  ``S_T``: ``constant`` and every WSD variant with the same trunk key share one trunk;
- ``cosine`` and ``linear`` at ``T`` by a trunk of their own (its rule includes ``T``).

Settings that share a trunk are merged into one :class:`~trials.lineage_spec.LineageSpec`, so a
plan's cost is the minimum: each distinct trunk once (to its longest horizon or latest fork)
plus each distinct cooldown once. Eval points come from a horizon-independent grid (plus the
horizons), so adding a horizon later only adds points and never moves one.

Pure Python (no torch): the planner, ``python -m trials`` and the tests share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trials.identity import (
    TRUNK,
    branch_id,
    branch_name,
    canonical_hash,
    runtime_key,
    trunk_id,
    trunk_rule,
)
from trials.lineage_spec import AveragerSpec, BranchSpec, LineageSpec

__all__ = [
    "Answer",
    "AveragerPoint",
    "PlanConfig",
    "TrialSetting",
    "checkpoint_grid",
    "eval_grid",
    "plan_lineages",
]


@dataclass(frozen=True, kw_only=True)
class TrialSetting:
    """One grid point minus the horizon, with the horizons (in steps) it is asked at."""

    workload: str
    workload_params: dict[str, Any]
    optimizer: str
    optimizer_params: dict[str, Any]
    schedule_free: bool
    schedule: str | None  # None for schedule-free optimizers
    schedule_params: dict[str, Any]  # full parameters (defaults filled in), no warmup
    peak_lr: float
    warmup: int
    batch_size: int
    seed: int
    horizons: tuple[int, ...]  # ascending steps

    @property
    def setting_id(self) -> str:
        """Hash of everything that defines the training rule, without the horizon."""
        return canonical_hash({
            "workload": self.workload, "workload_params": self.workload_params,
            "optimizer": self.optimizer, "optimizer_params": self.optimizer_params,
            "peak_lr": self.peak_lr, "schedule": self.schedule, "schedule_params": self.schedule_params,
            "warmup": self.warmup, "batch_size": self.batch_size, "seed": self.seed,
        })

    def trunk_key(self, horizon: int | None = None) -> dict[str, Any]:
        rule, rule_params = trunk_rule(self.schedule, self.schedule_params, horizon)
        return {"workload": self.workload, "workload_params": self.workload_params,
                "optimizer": self.optimizer, "optimizer_params": self.optimizer_params,
                "peak_lr": self.peak_lr, "warmup": self.warmup, "batch_size": self.batch_size,
                "seed": self.seed, "rule": rule, "rule_params": rule_params}


@dataclass(frozen=True, kw_only=True)
class AveragerPoint:
    """One averager of the sweep; ``start_fraction`` makes it a per-horizon SWA window."""

    kind: str
    params: dict[str, Any]
    label: str
    start_fraction: float | None = None


@dataclass(frozen=True, kw_only=True)
class PlanConfig:
    """How lineages are evaluated, averaged, checkpointed and run (the spec's ``eval``,
    ``resources`` and ``runtime``); precision, compile and workers enter every trunk id."""

    points_per_decade: int = 4
    eval_every: int = 0
    averagers: tuple[AveragerPoint, ...] = ()
    checkpoint_grid: float = 2.0  # keep trunk checkpoints at round(r^k); 0: only forks and the end
    checkpoint_every: int = 0
    log_every: int = 1
    divergence_factor: float = 5.0
    device: str = "cpu"
    precision: str = "fp32"
    compile: bool = False
    workers: int = 1

    def runtime(self) -> dict[str, Any]:
        return runtime_key(precision=self.precision, compile=self.compile, workers=self.workers)


@dataclass(frozen=True, kw_only=True)
class Answer:
    """Where a setting's curve lives for some of its horizons: a lineage and a branch of it."""

    setting: TrialSetting
    lineage_id: str
    branch: str  # "trunk" or a branch name
    fork_step: int | None
    horizons: tuple[int, ...]


def eval_grid(up_to: int, *, points_per_decade: int, every: int = 0) -> list[int]:
    """The horizon-independent eval steps in ``[1, up_to]``: ``round(10^(k/n))`` for ``k >= 0``
    (``n`` points per decade, duplicates dropped) plus the multiples of ``every``."""
    points: set[int] = set()
    if points_per_decade > 0:
        k = 0
        while True:
            step = round(10 ** (k / points_per_decade))
            if step > up_to:
                break
            points.add(step)
            k += 1
    if every > 0:
        points.update(range(every, up_to + 1, every))
    return sorted(points)


MIN_GRID_CHECKPOINT = 32  # replaying fewer steps than this costs less than keeping a checkpoint


def checkpoint_grid(up_to: int, ratio: float) -> list[int]:
    """Trunk steps ``round(ratio^k) >= 32`` below ``up_to``: a sparse geometric grid, so a fork
    added later replays at most a fraction ``1 - 1/ratio`` of its fork step."""
    if ratio <= 1:
        return []
    out: set[int] = set()
    k = 1
    while True:
        step = round(ratio**k)
        if step >= up_to:
            break
        if step >= MIN_GRID_CHECKPOINT:
            out.add(step)
        k += 1
    return sorted(out)


@dataclass
class _Draft:
    key: dict[str, Any]
    schedule_free: bool
    trunk_horizons: set[int] = field(default_factory=set)
    forks: dict[str, tuple[int, int, str, float]] = field(default_factory=dict)  # name -> (S, T, shape, f)


def _answers_of(setting: TrialSetting) -> list[tuple[dict[str, Any], str | None, tuple[int, int, str, float] | None, tuple[int, ...]]]:
    """(trunk key, branch name or None, fork, horizons) for each place the setting is answered."""
    if setting.schedule == "wsd":
        from trials.schedules import build_schedule

        schedule = build_schedule("wsd", warmup=setting.warmup, **setting.schedule_params)
        key = setting.trunk_key()
        shape = str(setting.schedule_params.get("cooldown_shape", "1-sqrt"))
        final = float(setting.schedule_params.get("final_fraction", 0.0))
        out = []
        for h in setting.horizons:
            s = schedule.decay_start(h)
            name = branch_name(fork_step=s, end=h, shape=shape, final_fraction=final)
            out.append((key, name, (s, h, shape, final), (h,)))
        return out
    if setting.schedule in ("cosine", "linear"):
        return [(setting.trunk_key(h), None, None, (h,)) for h in setting.horizons]
    return [(setting.trunk_key(), None, None, tuple(setting.horizons))]


def _instances(points: Sequence[AveragerPoint], horizons: Iterable[int]) -> tuple[AveragerSpec, ...]:
    out: list[AveragerSpec] = []
    horizons = sorted(set(horizons))
    for p in points:
        if p.start_fraction is None:
            out.append(AveragerSpec(kind=p.kind, params=dict(p.params), label=p.label))
            continue
        for h in horizons:  # a window defined per horizon: one instance per horizon, read at it
            out.append(AveragerSpec(kind=p.kind, params={**p.params, "start": round(p.start_fraction * h)},
                                    label=p.label, eval_at=h))
    return tuple(out)


def _lineage(lid: str, draft: _Draft, config: PlanConfig) -> LineageSpec:
    key = draft.key
    forks = sorted(draft.forks.items(), key=lambda kv: (kv[1][0], kv[1][1], kv[0]))
    trunk_end = max([*draft.trunk_horizons, *(s for _, (s, _t, _sh, _f) in forks)])
    horizons = draft.trunk_horizons | {t for _, (_s, t, _sh, _f) in forks}
    averagers = _instances(config.averagers, horizons)
    free = tuple(a.key for a in averagers if a.eval_at is None)
    grid = eval_grid(max(horizons), points_per_decade=config.points_per_decade, every=config.eval_every)
    branches = []
    for name, (s, t, shape, final) in forks:
        evals = sorted({e for e in grid if s < e <= t} | {t})
        mine = free + tuple(a.key for a in averagers if a.eval_at == t)
        branches.append(BranchSpec(
            name=name, branch_id=branch_id(lid, fork_step=s, end=t, shape=shape, final_fraction=final),
            fork_step=s, end=t, shape=shape, final_fraction=final, eval_steps=tuple(evals), averagers=mine,
        ))
    trunk_evals = sorted({e for e in grid if e <= trunk_end} | draft.trunk_horizons)
    keep = set(checkpoint_grid(trunk_end, config.checkpoint_grid)) | {s for _, (s, *_rest) in forks} | {trunk_end}
    return LineageSpec(
        lineage_id=lid, workload=key["workload"], workload_params=key["workload_params"],
        optimizer=key["optimizer"], optimizer_params=key["optimizer_params"], peak_lr=key["peak_lr"],
        warmup=key["warmup"], batch_size=key["batch_size"], seed=key["seed"], rule=key["rule"],
        rule_params=key["rule_params"], trunk_end=trunk_end,
        trunk_horizons=tuple(sorted(draft.trunk_horizons)), eval_steps=tuple(trunk_evals),
        branches=tuple(branches), averagers=averagers,
        checkpoint_steps=tuple(sorted(s for s in keep if s > 0)), schedule_free=draft.schedule_free,
        checkpoint_every=config.checkpoint_every, log_every=config.log_every,
        divergence_factor=config.divergence_factor, device=config.device,
        precision=config.precision, compile=config.compile, workers=config.workers,
    )


def plan_lineages(settings: Sequence[TrialSetting], config: PlanConfig) -> tuple[list[LineageSpec], list[Answer]]:
    """The lineages answering ``settings`` (each distinct trunk once, in first-use order) and,
    per setting, where each of its horizons is answered."""
    drafts: dict[str, _Draft] = {}
    answers: list[Answer] = []
    for setting in settings:
        for key, name, fork, horizons in _answers_of(setting):
            lid = trunk_id(**key, runtime=config.runtime())
            draft = drafts.setdefault(lid, _Draft(key=key, schedule_free=setting.schedule_free))
            if name is None:
                draft.trunk_horizons.update(horizons)
                answers.append(Answer(setting=setting, lineage_id=lid, branch=TRUNK, fork_step=None,
                                      horizons=horizons))
            else:
                assert fork is not None
                draft.forks[name] = fork
                answers.append(Answer(setting=setting, lineage_id=lid, branch=name, fork_step=fork[0],
                                      horizons=horizons))
    lineages = [_lineage(lid, draft, config) for lid, draft in drafts.items()]
    return lineages, answers

