"""Grid → lineages: the fewest training trajectories that answer a sweep (docs/design.md §4).

A *setting* is one grid point minus the horizon (model size × batch × warmup × optimizer and its
hyperparameters × peak LR × schedule and its parameters × seed). :func:`plan` expands the grid
and hands the settings to :func:`trials.lineage_plan.plan_lineages`, the one place the
trunk/branch layout is decided: every distinct trunk is trained once — ``constant`` and all WSD
variants at one LR share it, each cooldown is a branch forked at its decay start, horizon-free
settings are evaluated on their trunk at every horizon, cosine/linear run once per horizon.

``planned_steps`` is the whole plan's cost (the minimum: each distinct trunk to its longest
horizon or latest fork, plus each distinct cooldown); the *naive* cost trains every setting ×
horizon from scratch. Planned against a results store, the plan also says what is already
there (``stored_steps``) and what ``lrsweep run`` trains now (``run_steps``, replays included),
and which stored results the spec no longer asks for (:attr:`Plan.orphans`).

Compute is ``6 N D`` with ``N`` the non-embedding parameter count
(:func:`orchestrator.spec.gpt_param_count`) and ``D`` the training tokens; evaluation is not
counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from orchestrator.corpus_provenance import corpus_hash, workload_source
from orchestrator.spec import ModelSize, SweepSpec, spec_hash
from trials.identity import TRUNK
from trials.lineage_plan import Answer, AveragerPoint, PlanConfig, TrialSetting, plan_lineages
from trials.lineage_spec import LineageSpec
from trials.work import StoredLineage, Work, plan_work, wanted_evals

__all__ = ["LineageCompute", "Plan", "Setting", "expand_settings", "plan", "setting_family"]


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One grid point minus the horizon, with its model size (for the compute accounting)."""

    trial: TrialSetting
    size: ModelSize

    @property
    def tokens_per_step(self) -> int:
        return self.size.tokens_per_step(self.trial.batch_size)


def setting_family(setting: TrialSetting) -> str:
    """The schedule name, or the optimizer name for a schedule-free optimizer."""
    return setting.schedule if setting.schedule is not None else setting.optimizer


@dataclass(frozen=True, kw_only=True)
class LineageCompute:
    """What one lineage costs: planned, naive (its answers from scratch), stored and to run."""

    lineage_id: str
    families: tuple[str, ...]
    size: str
    n_params: int
    tokens_per_step: int
    planned_steps: int
    naive_steps: int
    stored_steps: int = 0
    run_steps: int = 0
    replay_steps: int = 0

    @property
    def family(self) -> str:
        return "+".join(self.families)

    def tokens(self, steps: int) -> int:
        return steps * self.tokens_per_step

    def flops(self, steps: int) -> float:
        return 6.0 * self.n_params * steps * self.tokens_per_step


@dataclass(kw_only=True)
class Plan:
    """The lineages of a sweep (stable order), where each setting is answered, and the compute."""

    spec: SweepSpec
    lineages: list[LineageSpec]
    answers: list[Answer]
    sizes: dict[str, ModelSize]  # setting_id -> its model size
    compute: list[LineageCompute] = field(default_factory=list)  # aligned with ``lineages``
    work: dict[str, Work] = field(default_factory=dict)  # lineage_id -> what `run` does now
    orphans: dict[str, str] = field(default_factory=dict)  # stored lineage -> why the spec disowns it

    @property
    def spec_hash(self) -> str:
        return spec_hash(self.spec)

    def compute_of(self, lineage_id: str) -> LineageCompute:
        return next(c for c in self.compute if c.lineage_id == lineage_id)

    def _sum(self, attr: str) -> int:
        return sum(getattr(c, attr) for c in self.compute)

    def _tokens(self, attr: str) -> int:
        return sum(c.tokens(getattr(c, attr)) for c in self.compute)

    def _flops(self, attr: str) -> float:
        return sum(c.flops(getattr(c, attr)) for c in self.compute)

    planned_steps = property(lambda self: self._sum("planned_steps"))
    planned_tokens = property(lambda self: self._tokens("planned_steps"))
    planned_flops = property(lambda self: self._flops("planned_steps"))
    naive_steps = property(lambda self: self._sum("naive_steps"))
    naive_tokens = property(lambda self: self._tokens("naive_steps"))
    naive_flops = property(lambda self: self._flops("naive_steps"))
    stored_steps = property(lambda self: self._sum("stored_steps"))
    run_steps = property(lambda self: self._sum("run_steps"))
    run_tokens = property(lambda self: self._tokens("run_steps"))
    replay_steps = property(lambda self: self._sum("replay_steps"))

    @property
    def saving(self) -> float:
        """``1 - planned/naive`` FLOPs (equal to the token saving when there is one model size)."""
        return 1.0 - self.planned_flops / self.naive_flops if self.naive_flops else 0.0

    def todo(self) -> list[LineageSpec]:
        """The lineages ``lrsweep run`` has work for."""
        return [lin for lin in self.lineages if not self.work[lin.lineage_id].empty]

    def to_dict(self) -> dict[str, Any]:
        by_lineage: dict[str, list[Answer]] = {}
        for a in self.answers:
            by_lineage.setdefault(a.lineage_id, []).append(a)
        rows = []
        for spec, c in zip(self.lineages, self.compute, strict=True):
            mine = by_lineage[spec.lineage_id]
            rows.append({
                "lineage_id": spec.lineage_id, "setting_id": mine[0].setting.setting_id,
                "setting_ids": sorted({a.setting.setting_id for a in mine}), "family": c.family,
                "workload": spec.workload, "size": c.size, "n_params": c.n_params,
                "schedule": None if spec.rule == "schedule_free" else spec.rule, "schedule_params": spec.rule_params,
                "optimizer": spec.optimizer, "optimizer_params": spec.optimizer_params,
                "peak_lr": spec.peak_lr, "warmup": spec.warmup, "batch_size": spec.batch_size,
                "seed": spec.seed, "horizons": list(spec.horizons), "eval_steps": list(spec.eval_steps),
                "averagers": sorted({a.label for a in spec.averagers}),
                "branches": [{"name": TRUNK, "fork_step": None, "steps": spec.trunk_end,
                              "horizons": list(spec.trunk_horizons)}]
                + [{"name": b.name, "fork_step": b.fork_step, "steps": b.steps, "horizons": [b.end]}
                   for b in spec.branches],
                "steps": c.planned_steps, "tokens_per_step": c.tokens_per_step, "tokens": c.tokens(c.planned_steps),
                "flops": c.flops(c.planned_steps), "naive_steps": c.naive_steps,
                "naive_tokens": c.tokens(c.naive_steps), "naive_flops": c.flops(c.naive_steps),
                "stored_steps": c.stored_steps, "run_steps": c.run_steps, "replay_steps": c.replay_steps,
                "spec": spec.to_dict(),
            })
        return {
            "sweep": self.spec.name, "spec_hash": self.spec_hash, "corpus_hash": corpus_hash(self.spec),
            "workload_source": workload_source(self.spec),
            "horizon_unit": self.spec.horizons.unit,
            "lineages": rows,
            "planned_steps": self.planned_steps, "planned_tokens": self.planned_tokens,
            "planned_flops": self.planned_flops, "naive_steps": self.naive_steps,
            "naive_tokens": self.naive_tokens, "naive_flops": self.naive_flops, "saving": self.saving,
            "stored_steps": self.stored_steps, "run_steps": self.run_steps, "run_tokens": self.run_tokens,
            "replay_steps": self.replay_steps, "orphans": dict(sorted(self.orphans.items())),
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
                    schedules: list[Any] = [None]
                    if not opt.schedule_free:
                        wanted = opt.schedules
                        schedules = [s for entry in spec.schedules if wanted is None or entry.name in wanted
                                     for s in entry.settings(warmup)]
                    for lr, hyper in opt.settings():
                        for schedule in schedules:
                            params = {} if schedule is None else {
                                k: v for k, v in schedule.params().items() if k != "warmup"}
                            for seed in spec.seeds:
                                out.append(Setting(size=size, trial=TrialSetting(
                                    workload=spec.workload.name, workload_params=workload_params,
                                    optimizer=opt.name, optimizer_params=hyper, schedule_free=opt.schedule_free,
                                    schedule=None if schedule is None else schedule.name, schedule_params=params,
                                    peak_lr=lr, warmup=warmup, batch_size=batch, seed=seed, horizons=horizons,
                                )))
    return out


def plan_config(spec: SweepSpec) -> PlanConfig:
    points = tuple(AveragerPoint(kind=p.kind, params=dict(p.params), label=p.label, start_fraction=p.start_fraction)
                   for p in spec.averager_points())
    return PlanConfig(
        points_per_decade=spec.eval.points_per_decade, eval_every=spec.eval.every, averagers=points,
        checkpoint_grid=spec.resources.checkpoint_grid, checkpoint_every=spec.resources.checkpoint_every,
        log_every=spec.eval.log_every, divergence_factor=spec.divergence_factor,
        device="cuda" if spec.resources.gpu > 0 else "cpu", precision=spec.runtime.precision,
        compile=spec.runtime.compile, workers=spec.resources.workers,
    )


def _orphaned(spec: LineageSpec, stored: StoredLineage) -> str | None:
    """Why the stored results of a planned lineage are more than ``spec`` asks, if they are."""
    names = {TRUNK, *(b.name for b in spec.branches)}
    extra = sorted((set(stored.branch_status) | set(stored.evals)) - names)
    if extra:
        return f"stored branch {extra[0]!r} is no longer planned"
    if stored.frontier > spec.trunk_end:
        return f"the trunk is stored to step {stored.frontier}, the spec asks for {spec.trunk_end}"
    labels = {w for where in names for e in (spec.eval_steps if where == TRUNK else spec.branch(where).eval_steps)
              for w, _ in wanted_evals(spec, where, e)}
    stored_labels = {w for evals in stored.evals.values() for _, w in evals}
    gone = sorted(stored_labels - labels)
    if gone:
        return f"stored weights {gone[0]!r} are no longer asked for"
    return None


def plan(spec: SweepSpec, *, stored: dict[str, StoredLineage] | None = None) -> Plan:
    """The lineages answering ``spec`` and their compute; against ``stored`` (what a results
    store holds, :func:`orchestrator.stored.stored_lineages`) if given."""
    settings = expand_settings(spec)
    lineages, answers = plan_lineages([s.trial for s in settings], plan_config(spec))
    sizes = {s.trial.setting_id: s.size for s in settings}
    stored = stored or {}
    result = Plan(spec=spec, lineages=lineages, answers=answers, sizes=sizes)
    naive: dict[str, int] = {}
    families: dict[str, set[str]] = {}
    size_of: dict[str, ModelSize] = {}
    for a in answers:
        naive[a.lineage_id] = naive.get(a.lineage_id, 0) + sum(a.horizons)
        families.setdefault(a.lineage_id, set()).add(setting_family(a.setting))
        size_of.setdefault(a.lineage_id, sizes[a.setting.setting_id])
    planned_ids = {lin.lineage_id for lin in lineages}
    for lid, st in stored.items():
        if lid not in planned_ids and (st.evals or st.branch_status or st.trunk_status or st.checkpoints):
            result.orphans[lid] = "the lineage is no longer planned"
    for lineage in lineages:
        st = stored.get(lineage.lineage_id, StoredLineage())
        why = _orphaned(lineage, st) if lineage.lineage_id in stored else None
        if why is not None:
            result.orphans[lineage.lineage_id] = why
            st = StoredLineage()  # --force deletes it and trains it again
        work = plan_work(lineage, st)
        result.work[lineage.lineage_id] = work
        stored_steps = min(st.frontier, lineage.trunk_end) + sum(
            b.steps for b in lineage.branches if st.branch_status.get(b.name) in ("completed", "diverged"))
        size = size_of[lineage.lineage_id]
        result.compute.append(LineageCompute(
            lineage_id=lineage.lineage_id, families=tuple(sorted(families[lineage.lineage_id])), size=size.label,
            n_params=size.n_params, tokens_per_step=size.tokens_per_step(lineage.batch_size),
            planned_steps=lineage.planned_steps, naive_steps=naive[lineage.lineage_id], stored_steps=stored_steps,
            run_steps=work.run_steps, replay_steps=work.replay_steps,
        ))
    return result


def settings_rows(the_plan: Plan) -> list[dict[str, Any]]:
    """The ``settings`` table of a plan: one row per (setting, lineage, branch)."""
    rows = []
    for a in the_plan.answers:
        s, size = a.setting, the_plan.sizes[a.setting.setting_id]
        rows.append({
            "setting_id": s.setting_id, "lineage_id": a.lineage_id, "branch": a.branch, "fork_step": a.fork_step,
            "horizons": list(a.horizons), "family": setting_family(s), "workload": s.workload,
            "model_size": size.label, "n_params": size.n_params, "optimizer": s.optimizer,
            "optimizer_params": json.dumps(s.optimizer_params, sort_keys=True), "schedule": s.schedule,
            "schedule_params": json.dumps(s.schedule_params, sort_keys=True), "peak_lr": float(s.peak_lr),
            "warmup": s.warmup, "batch_size": s.batch_size, "seed": s.seed,
            "tokens_per_step": size.tokens_per_step(s.batch_size),
        })
    return rows
