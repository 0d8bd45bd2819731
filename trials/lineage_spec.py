"""The unit of execution handed from the planner to a trial: one :class:`LineageSpec`.

A lineage is one *trunk* (a training trajectory, :mod:`trials.identity`) and the WSD cooldown
*branches* forked from it. The planner builds it once (:mod:`trials.lineage_plan`) and it
carries everything a trial needs; nothing downstream recomputes the branch layout.

Steps count optimizer updates. A curve's ``step`` for a train row is the update index ``t``
(loss measured before that update, ``lr`` the one it used); for an eval row it is the number of
updates done. So eval at ``step == T`` is the end of a ``T``-step horizon. A branch forked at
``S`` trains updates ``S .. T-1`` from the trunk's state after ``S`` updates.

Plain values only, so a spec pickles, travels to Ray workers and round-trips through JSON/TOML.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from trials.identity import TRUNK, canonical_hash

__all__ = ["AveragerSpec", "BranchSpec", "LineageSpec", "canonical_hash"]


@dataclass(frozen=True, kw_only=True)
class AveragerSpec:
    """One weight averager riding along a lineage.

    Attributes:
        kind: registry name in :mod:`trials.averaging` (``ema``, ``swa``, ``lawa``, ``poly``).
        params: its parameters (e.g. ``{"half_life": 0.05}``: a float < 1 is a fraction of the
            steps so far, an int >= 1 a number of steps).
        label: the ``weights`` value its evaluations carry (e.g. ``"ema@0.05"``).
        eval_at: if set, this is the instance of a per-horizon window (a tail/SWA window defined
            as a fraction of the horizon) for horizon ``eval_at``: evaluated only at that step.
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    eval_at: int | None = None

    @property
    def key(self) -> str:
        """Unique within a lineage: the label, plus ``#<eval_at>`` for a per-horizon instance."""
        return self.label if self.eval_at is None else f"{self.label}#{self.eval_at}"


@dataclass(frozen=True, kw_only=True)
class BranchSpec:
    """A WSD cooldown forked from the (constant-LR) trunk: updates ``fork_step .. end - 1``.

    Attributes:
        name: ``h=<T>/<shape>@<S>`` (:func:`trials.identity.branch_name`), unique per lineage.
        branch_id: :func:`trials.identity.branch_id`.
        fork_step: ``S``, the trunk step it forks at (the WSD decay start for ``end``).
        end: ``T``, the horizon it answers.
        shape: cooldown shape (``linear``, ``cosine``, ``1-sqrt``).
        final_fraction: the LR multiplier reached at ``T``.
        eval_steps: its eval points, all in ``(S, T]``, always including ``T``.
        averagers: keys of the lineage's averagers that ride along this branch.
    """

    name: str
    branch_id: str
    fork_step: int
    end: int
    shape: str
    final_fraction: float
    eval_steps: tuple[int, ...]
    averagers: tuple[str, ...]

    @property
    def steps(self) -> int:
        return self.end - self.fork_step

    def multiplier(self, step: int) -> float:
        """The cooldown's LR multiplier for the update at ``step`` (docs/equations.md §5.5)."""
        from trials.schedules import COOLDOWN_SHAPES

        q = min(1.0, (step - self.fork_step) / (self.end - self.fork_step))
        f = self.final_fraction
        return f + (1.0 - f) * COOLDOWN_SHAPES[self.shape](q)  # type: ignore[operator]


@dataclass(frozen=True, kw_only=True)
class LineageSpec:
    """One trunk and its branches: everything a trial needs.

    Attributes:
        lineage_id: the trunk id (:func:`trials.identity.trunk_id`).
        rule, rule_params: the trunk's LR rule (:func:`trials.identity.trunk_rule`).
        trunk_end: updates the trunk runs (its longest horizon, or its latest fork).
        trunk_horizons: horizons answered by the trunk itself (constant, polynomial,
            inverse-sqrt, schedule-free, or the one horizon of a cosine/linear trunk).
        eval_steps: the trunk's eval points, in ``[1, trunk_end]``.
        branches: the cooldown branches, sorted by (fork step, end, name).
        averagers: every averager instance of the lineage (trunk-wide; branches name theirs).
        checkpoint_steps: trunk steps whose checkpoints are kept after the run (every fork,
            a sparse geometric grid and the end), so later extensions replay little.
        schedule_free: whether the optimizer is schedule-free (its ``x`` is evaluated too).
        precision, compile: how the arithmetic runs (:mod:`trials.runtime`); part of the id.
        workers: data-parallel workers sharing each global batch (:mod:`trials.data_parallel`);
            part of the id too (N workers sum gradients in another order than one).
    """

    lineage_id: str
    workload: str
    workload_params: dict[str, Any]
    optimizer: str
    optimizer_params: dict[str, Any]
    peak_lr: float
    warmup: int
    batch_size: int
    seed: int
    rule: str
    rule_params: dict[str, Any]
    trunk_end: int
    trunk_horizons: tuple[int, ...]
    eval_steps: tuple[int, ...]
    branches: tuple[BranchSpec, ...] = ()
    averagers: tuple[AveragerSpec, ...] = ()
    checkpoint_steps: tuple[int, ...] = ()
    schedule_free: bool = False
    checkpoint_every: int = 0  # also checkpoint every n trunk/branch steps (kept only until the next)
    log_every: int = 1  # train rows every n updates
    divergence_factor: float = 5.0  # smoothed loss above factor x its running mean = diverged
    device: str = "cpu"
    precision: str = "fp32"
    compile: bool = False
    workers: int = 1

    @property
    def horizons(self) -> tuple[int, ...]:
        """Every horizon the lineage answers, on the trunk or on a branch."""
        return tuple(sorted(set(self.trunk_horizons) | {b.end for b in self.branches}))

    @property
    def planned_steps(self) -> int:
        """The lineage's whole cost: the trunk plus every cooldown."""
        return self.trunk_end + sum(b.steps for b in self.branches)

    def branch(self, name: str) -> BranchSpec:
        for b in self.branches:
            if b.name == name:
                return b
        raise KeyError(f"lineage {self.lineage_id} has no branch {name!r}; branches: "
                       f"{[TRUNK, *(b.name for b in self.branches)]}")

    def averager(self, key: str) -> AveragerSpec:
        for a in self.averagers:
            if a.key == key:
                return a
        raise KeyError(f"lineage {self.lineage_id} has no averager {key!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineageSpec:
        data = dict(data)
        data["averagers"] = tuple(AveragerSpec(**a) for a in data.get("averagers", ()))
        data["branches"] = tuple(
            BranchSpec(**{**b, "eval_steps": tuple(b["eval_steps"]), "averagers": tuple(b["averagers"])})
            for b in data.get("branches", ())
        )
        for key in ("trunk_horizons", "eval_steps", "checkpoint_steps"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)
