"""Grid → lineages: the fewest training trajectories that answer a sweep (DESIGN.md, "lineage").

A *setting* is one grid point minus the horizon: model size × batch × warmup × optimizer and its
hyperparameters × peak LR × schedule and its parameters (none for schedule-free optimizers) ×
seed. Each setting becomes lineages by its schedule's family:

- ``horizon-free`` (constant, polynomial, inverse_sqrt) and ``schedule-free`` (SF optimizers):
  ONE lineage run to the longest horizon, evaluated at every horizon: ``max T`` steps.
- ``wsd``: ONE lineage = a constant-LR trunk to the latest decay start plus a cooldown branch
  per horizon forked at its decay start ``S_T = schedule.decay_start(T)``:
  ``max S_T + sum (T - S_T)`` steps (ALGORITHMS.md §1).
- ``per-horizon`` (cosine, linear): one lineage per horizon: ``sum T`` steps.

Averagers never multiply lineages: they ride along every lineage. The *naive* cost trains every
setting × horizon from scratch (``sum T`` per setting). Compute is ``6 N D`` with ``N`` the
non-embedding parameter count (:func:`orchestrator.spec.gpt_param_count`) and ``D`` the training
tokens; evaluation is not counted.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass, field
from typing import Any

from orchestrator.spec import AveragerPoint, ModelSize, SweepSpec, spec_hash
from trials.lineage_spec import AveragerSpec, LineageSpec, canonical_hash
from trials.schedules import Schedule

__all__ = ["Branch", "LineageCompute", "Plan", "Setting", "eval_points", "expand_settings", "plan"]

FAMILIES = ("horizon-free", "schedule-free", "wsd", "per-horizon")


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One grid point minus the horizon, with the horizons (in steps) it is asked at."""

    workload: str
    workload_params: dict[str, Any]
    size: ModelSize
    optimizer: str
    optimizer_params: dict[str, Any]
    peak_lr: float
    schedule: Schedule | None
    warmup: int
    batch_size: int
    seed: int
    horizons: tuple[int, ...]  # ascending steps

    @property
    def schedule_name(self) -> str | None:
        return None if self.schedule is None else self.schedule.name

    @property
    def schedule_params(self) -> dict[str, Any]:
        """The schedule's full parameters (class defaults filled in), minus the warmup."""
        if self.schedule is None:
            return {}
        return {k: v for k, v in self.schedule.params().items() if k != "warmup"}

    @property
    def family(self) -> str:
        if self.schedule is None:
            return "schedule-free"
        if self.schedule.horizon_free:
            return "horizon-free"
        if self.schedule.decay_start(self.horizons[-1]) is not None:
            return "wsd"
        return "per-horizon"

    @property
    def tokens_per_step(self) -> int:
        return self.size.tokens_per_step(self.batch_size)

    def identity(self) -> dict[str, Any]:
        """What ``setting_id`` hashes: everything that defines the training rule, no horizon."""
        return {
            "workload": self.workload, "workload_params": self.workload_params,
            "optimizer": self.optimizer, "optimizer_params": self.optimizer_params,
            "peak_lr": self.peak_lr, "schedule": self.schedule_name, "schedule_params": self.schedule_params,
            "warmup": self.warmup, "batch_size": self.batch_size, "seed": self.seed,
        }


@dataclass(frozen=True, kw_only=True)
class Branch:
    """A stretch of a lineage: ``main``, the WSD ``trunk``, or cooldown ``h=<T>``."""

    name: str
    fork_step: int | None  # the trunk step it forks from (None for main/trunk)
    steps: int  # updates it trains
    horizons: tuple[int, ...]  # horizons it answers

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "fork_step": self.fork_step, "steps": self.steps, "horizons": list(self.horizons)}


@dataclass(frozen=True, kw_only=True)
class LineageCompute:
    """What one lineage costs, planned and naive (each of its horizons from scratch)."""

    lineage_id: str
    family: str
    size: str
    n_params: int
    tokens_per_step: int
    branches: tuple[Branch, ...]
    naive_steps: int

    @property
    def steps(self) -> int:
        return sum(b.steps for b in self.branches)

    @property
    def tokens(self) -> int:
        return self.steps * self.tokens_per_step

    @property
    def flops(self) -> float:
        return 6.0 * self.n_params * self.tokens

    @property
    def naive_tokens(self) -> int:
        return self.naive_steps * self.tokens_per_step

    @property
    def naive_flops(self) -> float:
        return 6.0 * self.n_params * self.naive_tokens


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The lineages of a sweep (in a stable order) and their compute, planned vs naive."""

    spec: SweepSpec
    lineages: list[LineageSpec]
    compute: list[LineageCompute] = field(default_factory=list)  # aligned with ``lineages``

    @property
    def spec_hash(self) -> str:
        return spec_hash(self.spec)

    def compute_of(self, lineage_id: str) -> LineageCompute:
        return next(c for c in self.compute if c.lineage_id == lineage_id)

    @property
    def planned_steps(self) -> int:
        return sum(c.steps for c in self.compute)

    @property
    def planned_tokens(self) -> int:
        return sum(c.tokens for c in self.compute)

    @property
    def planned_flops(self) -> float:
        return sum(c.flops for c in self.compute)

    @property
    def naive_steps(self) -> int:
        """Every setting x horizon trained from scratch to that horizon."""
        return sum(c.naive_steps for c in self.compute)

    @property
    def naive_tokens(self) -> int:
        return sum(c.naive_tokens for c in self.compute)

    @property
    def naive_flops(self) -> float:
        return sum(c.naive_flops for c in self.compute)

    @property
    def saving(self) -> float:
        """``1 - planned/naive`` FLOPs (equal to the token saving when there is one model size)."""
        return 1.0 - self.planned_flops / self.naive_flops if self.naive_flops else 0.0

    def to_dict(self) -> dict[str, Any]:
        rows = []
        for spec, c in zip(self.lineages, self.compute, strict=True):
            rows.append({
                "lineage_id": spec.lineage_id, "setting_id": spec.setting_id, "family": c.family,
                "workload": spec.workload, "size": c.size, "n_params": c.n_params,
                "schedule": spec.schedule, "schedule_params": spec.schedule_params,
                "optimizer": spec.optimizer, "optimizer_params": spec.optimizer_params,
                "peak_lr": spec.peak_lr, "warmup": spec.warmup, "batch_size": spec.batch_size,
                "seed": spec.seed, "horizons": list(spec.horizons), "eval_steps": list(spec.eval_steps),
                "averagers": sorted({a.label for a in spec.averagers}),
                "branches": [b.to_dict() for b in c.branches],
                "steps": c.steps, "tokens_per_step": c.tokens_per_step, "tokens": c.tokens, "flops": c.flops,
                "naive_steps": c.naive_steps, "naive_tokens": c.naive_tokens, "naive_flops": c.naive_flops,
                "spec": spec.to_dict(),
            })
        return {
            "sweep": self.spec.name, "spec_hash": self.spec_hash, "horizon_unit": self.spec.horizons.unit,
            "lineages": rows,
            "planned_steps": self.planned_steps, "planned_tokens": self.planned_tokens,
            "planned_flops": self.planned_flops, "naive_steps": self.naive_steps,
            "naive_tokens": self.naive_tokens, "naive_flops": self.naive_flops, "saving": self.saving,
        }

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as JSON text (what the store keeps as ``plan_json``)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)


# ---------------------------------------------------------------------------------- expansion
def expand_settings(spec: SweepSpec) -> list[Setting]:
    """Every setting of the grid, in file order (sizes, batch, warmup, optimizers, schedules, seeds)."""
    out: list[Setting] = []
    extra = {} if spec.eval.batches is None else {"eval_batches": spec.eval.batches}
    for size in spec.workload.model_sizes():
        workload_params = {**size.params, **extra}
        for batch in spec.batch_size:
            horizons = tuple(sorted(spec.horizons.to_steps(size.n_params, size.tokens_per_step(batch))))
            for warmup in spec.warmup:
                for opt in spec.optimizers:
                    schedules: list[Schedule | None] = [None]
                    if not opt.schedule_free:
                        wanted = opt.schedules
                        schedules = [s for entry in spec.schedules if wanted is None or entry.name in wanted
                                     for s in entry.settings(warmup)]
                    for lr, hyper in opt.settings():
                        for schedule in schedules:
                            for seed in spec.seeds:
                                out.append(Setting(
                                    workload=spec.workload.name, workload_params=workload_params, size=size,
                                    optimizer=opt.name, optimizer_params=hyper, peak_lr=lr, schedule=schedule,
                                    warmup=warmup, batch_size=batch, seed=seed, horizons=horizons,
                                ))
    return out


def eval_points(longest: int, horizons: tuple[int, ...], *, every: int, log_points: int) -> tuple[int, ...]:
    """Sorted union of multiples of ``every``, ``log_points`` log-spaced steps in ``[1, longest]``
    (rounded, duplicates dropped) and every horizon ``<= longest``."""
    points = {h for h in horizons if h <= longest}
    if every > 0:
        points.update(range(every, longest + 1, every))
    if log_points == 1:
        points.add(longest)
    elif log_points > 1:
        points.update(min(longest, max(1, round(longest ** (i / (log_points - 1))))) for i in range(log_points))
    return tuple(sorted(points))


def _branches(setting: Setting, horizons: tuple[int, ...]) -> tuple[Branch, ...]:
    if setting.family != "wsd":
        return (Branch(name="main", fork_step=None, steps=horizons[-1], horizons=horizons),)
    schedule = typing.cast(Schedule, setting.schedule)
    starts = {h: typing.cast(int, schedule.decay_start(h)) for h in horizons}
    trunk = Branch(name="trunk", fork_step=None, steps=max(starts.values()), horizons=())
    forks = sorted(
        (Branch(name=f"h={h}", fork_step=s, steps=h - s, horizons=(h,)) for h, s in starts.items()),
        key=lambda b: (b.fork_step, b.horizons),
    )
    return (trunk, *forks)


def _averagers(points: list[AveragerPoint], horizons: tuple[int, ...]) -> tuple[AveragerSpec, ...]:
    out: list[AveragerSpec] = []
    for p in points:
        if p.start_fraction is None:
            out.append(AveragerSpec(kind=p.kind, params=dict(p.params), label=p.label))
            continue
        for h in horizons:  # a window defined per horizon: one instance per horizon, read at it
            start = round(p.start_fraction * h)
            out.append(AveragerSpec(kind=p.kind, params={**p.params, "start": start}, label=p.label, eval_at=h))
    return tuple(out)


_NOT_IDENTITY = ("lineage_id", "setting_id", "checkpoint_every", "device")


def _lineage(spec: SweepSpec, setting: Setting, horizons: tuple[int, ...], points: list[AveragerPoint]) -> LineageSpec:
    longest = horizons[-1]
    fields: dict[str, Any] = {
        "workload": setting.workload, "workload_params": setting.workload_params,
        "optimizer": setting.optimizer, "optimizer_params": setting.optimizer_params,
        "peak_lr": setting.peak_lr, "schedule": setting.schedule_name, "schedule_params": setting.schedule_params,
        "warmup": setting.warmup, "batch_size": setting.batch_size, "seed": setting.seed,
        "horizons": horizons,
        "eval_steps": eval_points(longest, setting.horizons, every=spec.eval.every, log_points=spec.eval.log_points),
        "averagers": _averagers(points, horizons),
        "checkpoint_every": spec.resources.checkpoint_every, "log_every": spec.eval.log_every,
        "divergence_factor": spec.divergence_factor, "device": "cuda" if spec.resources.gpu > 0 else "cpu",
    }
    draft = LineageSpec(lineage_id="", setting_id="", **fields)
    identity = {k: v for k, v in draft.to_dict().items() if k not in _NOT_IDENTITY}
    return LineageSpec(lineage_id=canonical_hash(identity), setting_id=canonical_hash(setting.identity()), **fields)


def plan(spec: SweepSpec) -> Plan:
    """The lineages answering ``spec`` and their compute, planned vs naive."""
    points = spec.averager_points()
    lineages: list[LineageSpec] = []
    compute: list[LineageCompute] = []
    for setting in expand_settings(spec):
        groups = [(h,) for h in setting.horizons] if setting.family == "per-horizon" else [setting.horizons]
        for horizons in groups:
            lineage = _lineage(spec, setting, horizons, points)
            lineages.append(lineage)
            compute.append(LineageCompute(
                lineage_id=lineage.lineage_id, family=setting.family, size=setting.size.label,
                n_params=setting.size.n_params, tokens_per_step=setting.tokens_per_step,
                branches=_branches(setting, horizons), naive_steps=sum(horizons),
            ))
    ids = [lin.lineage_id for lin in lineages]
    if len(set(ids)) != len(ids):  # SweepSpec rejects repeated settings, so this is a bug here
        raise RuntimeError("two planned lineages share a lineage_id")
    return Plan(spec=spec, lineages=lineages, compute=compute)
