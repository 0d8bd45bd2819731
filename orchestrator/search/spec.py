"""The ``[search]`` section of a sweep file: pydantic models and their checks against the grid.

A sweep with ``[search]`` still runs its grid (every list, as without it); the search then asks
``n_trials`` more settings from an Optuna sampler. Any numeric axis of the grid may be given a
range in ``[search.space]``, keyed by its dotted path::

    [search]
    n_trials = 24
    sampler = "tpe"          # tpe | random | cmaes | gp | nsga2
    seed = 0
    objective = "mean"       # final | mean | regret | pareto
    [search.space]
    lr = { low = 1e-3, high = 1e-1, log = true }
    "schedules.polynomial.gamma" = { low = 0.0, high = 1.0 }

Keys: ``lr`` (every optimizer) or ``optimizers.<name>.lr``; ``optimizers.<name>.<hyper>``;
``warmup`` and ``batch_size`` (``int = true``); ``schedules.<name>.<param>``;
``averagers.<kind>.<param>`` (the searched averager replaces that kind's entry). Axes left as
lists stay grid axes for the grid part; in the search each distinct grid point of them is one
choice of a categorical ``grid_point`` (one study, not one study per point), except ``seeds``:
every searched setting trains every seed and the objective averages them.

``per = "family"`` (or ``"optimizer"``) splits the grid points into one study per schedule family
(optimizer), each with ``n_trials`` (:mod:`orchestrator.search.study`); ``warm_start = "<sweep>"``
asks that sweep's best ``warm_start_k`` settings first (:mod:`orchestrator.search.warm`).

Every mistake is one :class:`~orchestrator.spec.SpecError` line naming the field (``check``
runs inside the sweep's validator). This module imports neither ray nor optuna.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from orchestrator.spec import SweepSpec

__all__ = ["OBJECTIVES", "PER", "SAMPLERS", "STOPPING", "AxisRef", "Range", "SearchSpec", "resolve_axis"]

# name -> what it optimises; the driver maps these to code (orchestrator.search.objective)
OBJECTIVES: dict[str, str] = {
    "final": "the loss at one horizon (`horizon`, default the longest)",
    "mean": "the mean loss over the horizons",
    "regret": "the worst regret over the horizons against the envelope of what the search has seen",
    "pareto": "the losses at every horizon (multi-objective: the Pareto front)",
}
# name -> whether it optimises several objectives at once (cmaes does not)
SAMPLERS: dict[str, bool] = {"tpe": True, "random": True, "cmaes": False, "gp": True, "nsga2": True}
STOPPING: dict[str, str] = {
    "halving": "successive halving over horizon rungs (a lineage is judged only where its losses are final)",
    "none": "every searched setting trains to its last horizon",
}
# name -> what one study covers; absent: one study over every grid point
PER: dict[str, str] = {
    "family": "one study per schedule family (the optimizer for a schedule-free one), each with n_trials",
    "optimizer": "one study per optimizer, each with n_trials",
}
INT_AXES = ("warmup", "batch_size")


def _bad(field: str, value: Any, expected: str) -> PydanticCustomError:
    """The sweep spec's error shape (``orchestrator.spec.describe_error`` renders it)."""
    return PydanticCustomError("spec", "{field} must be {expected}, got {got}",
                               {"field": field, "expected": expected, "got": repr(value)})


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class Range(_Model):
    """A search range: ``{ low = ..., high = ..., log = false, int = false }``."""

    low: Annotated[float, Field(allow_inf_nan=False)]
    high: Annotated[float, Field(allow_inf_nan=False)]
    log: bool = False
    integer: bool = Field(False, alias="int")

    @model_validator(mode="after")
    def _valid(self) -> Range:
        lo, hi = self.low, self.high
        if lo == hi:
            raise _bad("", {"low": lo, "high": hi}, "a non-empty range (low < high)")
        if lo > hi:
            raise _bad("", {"low": lo, "high": hi}, "a range with low < high (these are inverted)")
        if self.log and lo <= 0:
            raise _bad("low", lo, "> 0 for a log range")
        if self.integer and not (float(lo).is_integer() and float(hi).is_integer()):
            raise _bad("", {"low": lo, "high": hi}, "integer bounds for an int range")
        return self

    def text(self) -> str:
        return f"[{_number(self.low)}, {_number(self.high)}]" + (" log" if self.log else "") + (" int" if self.integer else "")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AxisRef:
    """What a ``[search.space]`` key names.

    Attributes:
        key: the key as written (``"schedules.polynomial.gamma"``).
        target: ``lr``, ``optimizer``, ``schedule``, ``averager``, ``warmup`` or ``batch_size``.
        name: the optimizer or schedule name, or averager kind (``None``: every optimizer for ``lr``).
        param: the parameter (``"gamma"``), ``None`` for the top-level axes and ``lr``.
        integer: whether the axis takes integers only.
    """

    key: str
    target: str
    name: str | None = None
    param: str | None = None
    integer: bool = False


def _numeric(annotation: Any) -> tuple[bool, bool]:
    """(numeric, integer) of a dataclass field annotation (``float``, ``int``, ``float | None``)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if all(a in (int, float) for a in args):
        return True, all(a is int for a in args)
    return False, False


def numeric_axes(sweep: SweepSpec) -> list[str]:
    """Every key ``[search.space]`` accepts for this sweep (for "expected one of" messages)."""
    from trials.catalog import OPTIMIZERS
    from trials.schedules import SCHEDULES

    keys = ["lr", *INT_AXES]
    for o in sweep.optimizers:
        keys.append(f"optimizers.{o.name}.lr")
        given = o.params.axes()
        keys += [f"optimizers.{o.name}.{p.name}" for p in OPTIMIZERS[o.name].settable
                 if p.kind in ("float", "int") and all(_is_number(v) for v in given.get(p.name, []))]
    hints: dict[str, Any] = {}
    for entry in sweep.schedules:
        hints = typing.get_type_hints(SCHEDULES[entry.name])
        keys += [f"schedules.{entry.name}.{f.name}" for f in dataclasses.fields(SCHEDULES[entry.name])
                 if f.name != "warmup" and _numeric(hints[f.name])[0]]
    for entry in sweep.averagers:
        keys += [f"averagers.{entry.kind}.{k}" for k in type(entry).model_fields if k != "kind"]
    return sorted(set(keys))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def resolve_axis(sweep: SweepSpec, key: str) -> AxisRef:
    """The axis a ``[search.space]`` key names, or a one-line error naming the key."""
    from trials.catalog import OPTIMIZERS
    from trials.schedules import SCHEDULES

    where = f"search.space.{key}"
    parts = key.split(".")
    axes = numeric_axes(sweep)
    near = [a for a in axes if a.startswith(".".join(parts[:2]) + ".")]  # the same optimizer/schedule/averager's
    not_axis = f"a numeric axis of this sweep, one of {near or axes}"
    if key == "lr":
        return AxisRef(key=key, target="lr")
    if key in INT_AXES:
        return AxisRef(key=key, target=key, integer=True)
    if len(parts) == 3 and parts[0] == "optimizers":
        _, name, param = parts
        entries = [o for o in sweep.optimizers if o.name == name]
        if not entries:
            raise _bad(where, key, f"an axis of one of the sweep's optimizers {sorted({o.name for o in sweep.optimizers})}")
        if param == "lr":
            return AxisRef(key=key, target="lr", name=name)
        listed = [v for o in entries for v in o.params.axes().get(param, [])]
        card = OPTIMIZERS[name]
        numeric = sorted(p.name for p in card.settable if p.kind in ("float", "int"))
        if listed and not all(_is_number(v) for v in listed):
            raise _bad(where, listed, "a numeric hyperparameter (its grid values are not numbers)")
        if param not in numeric:
            raise _bad(where, key, f"a numeric hyperparameter of {name!r}: one of {numeric}")
        found = card.param(param)
        integer = found is not None and found.kind == "int"
        return AxisRef(key=key, target="optimizer", name=name, param=param, integer=integer)
    if len(parts) == 3 and parts[0] == "schedules":
        _, name, param = parts
        if name not in {s.name for s in sweep.schedules}:
            raise _bad(where, key, f"a parameter of one of the sweep's schedules {sorted({s.name for s in sweep.schedules})}")
        cls = SCHEDULES[name]
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)} - {"warmup"}
        numeric, integer = _numeric(hints[param]) if param in fields else (False, False)
        if not numeric:
            raise _bad(where, key, not_axis)
        return AxisRef(key=key, target="schedule", name=name, param=param, integer=integer)
    if len(parts) == 3 and parts[0] == "averagers":
        _, kind, param = parts
        entries = [a for a in sweep.averagers if a.kind == kind]
        if not entries:
            raise _bad(where, key, f"a parameter of one of the sweep's averagers {sorted({a.kind for a in sweep.averagers})}")
        if len(entries) > 1:
            raise _bad(where, key, f"the axis of a single [[averagers]] entry of kind {kind!r} (the sweep has {len(entries)})")
        entry = entries[0]
        if param not in type(entry).model_fields or param == "kind":
            raise _bad(where, key, not_axis)
        for other, axis in entry:
            if other not in ("kind", param) and axis is not None and len(axis) > 1:
                raise _bad(f"averagers.{other}", axis, f"one value when {key} is searched")
        integer = param in ("start", "every", "k")
        return AxisRef(key=key, target="averager", name=kind, param=param, integer=integer)
    raise _bad(where, key, not_axis)


class SearchSpec(_Model):
    """``[search]``: what to search, how, and what to optimise (module docstring)."""

    n_trials: Annotated[int, Field(gt=0)] = 20
    sampler: str = "tpe"
    seed: Annotated[int, Field(ge=0)] = 0
    concurrency: Annotated[int, Field(gt=0)] = 1
    objective: str = "mean"
    horizon: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None  # objective "final": one of the horizons
    weights: str = "best"  # "best" (lowest over the weights variants evaluated), a label, or a searched averager kind
    stopping: str = "halving"
    eta: Annotated[int, Field(ge=2)] = 3  # successive halving keeps the best 1/eta at each rung
    per: str | None = None  # "family" | "optimizer": one study per group, n_trials each (equal budgets)
    warm_start: str | None = None  # another sweep of the same store: its best settings are asked first
    warm_start_k: Annotated[int, Field(gt=0)] = 4
    space: dict[str, Range]

    @field_validator("space")
    @classmethod
    def _space(cls, value: dict[str, Range]) -> dict[str, Range]:
        if not value:
            raise _bad("", value, "a table of at least one range, e.g. lr = { low = 1e-3, high = 1e-1, log = true }")
        return value

    @field_validator("sampler", "objective", "stopping", "per")
    @classmethod
    def _choice(cls, value: str | None, info: ValidationInfo) -> str | None:
        choices = {"sampler": SAMPLERS, "objective": OBJECTIVES, "stopping": STOPPING, "per": PER}[info.field_name]
        if value is None and info.field_name == "per":
            return value
        if value not in choices:
            raise _bad("", value, f"one of {sorted(choices)}")
        return value

    @model_validator(mode="after")
    def _own(self) -> SearchSpec:
        if self.objective == "pareto" and not SAMPLERS[self.sampler]:
            multi = sorted(k for k, v in SAMPLERS.items() if v)
            raise _bad("sampler", self.sampler, f"a multi-objective sampler for objective 'pareto', one of {multi}")
        if self.horizon is not None and self.objective != "final":
            raise _bad("horizon", self.horizon, f"absent: only objective 'final' reads one horizon (objective is {self.objective!r})")
        if "warm_start_k" in self.model_fields_set and self.warm_start is None:
            raise _bad("warm_start_k", self.warm_start_k, "absent: it is read only with warm_start = \"<another sweep>\"")
        return self

    # -- checks against the grid (called from SweepSpec's validator) -----------------------
    def check(self, sweep: SweepSpec) -> None:
        """Raise a one-line error naming the field if this section does not fit ``sweep``."""
        refs = [resolve_axis(sweep, key) for key in self.space]
        for ref in refs:
            rng = self.space[ref.key]
            where = f"search.space.{ref.key}"
            if ref.integer and not rng.integer:
                raise _bad(f"{where}.int", False, f"true: {ref.key} takes integers")
            _check_bounds(sweep, ref, rng, where)
        lrs = [r for r in refs if r.target == "lr"]
        if any(r.name is None for r in lrs) and len(lrs) > 1:
            raise _bad("search.space", sorted(r.key for r in lrs), "either lr (every optimizer) or optimizers.<name>.lr, not both")
        horizons = sweep.horizons.values
        if self.objective == "pareto" and len(horizons) < 2:
            raise _bad("search.objective", "pareto", "a single-objective choice: the sweep has one horizon")
        if self.horizon is not None and self.horizon not in horizons:
            raise _bad("search.horizon", self.horizon, f"one of the sweep's horizons.{sweep.horizons.unit} {horizons}")
        self._check_weights(sweep, refs)
        if self.warm_start is not None and self.warm_start == sweep.name:
            raise _bad("search.warm_start", self.warm_start, "the name of another sweep in the same store (this is this sweep)")

    def _check_weights(self, sweep: SweepSpec, refs: list[AxisRef]) -> None:
        if self.weights == "best":
            return
        labels = {"raw"} | {p.label for p in sweep.averager_points()}
        if any(o.schedule_free for o in sweep.optimizers):
            labels.add("x")
        searched = {r.name for r in refs if r.target == "averager"}
        fixed = {p.label for p in sweep.averager_points() if p.kind in searched}
        allowed = sorted((labels - fixed) | searched | {"best"})
        if self.weights not in allowed:
            raise _bad("search.weights", self.weights, f"one of {allowed}")


def _check_bounds(sweep: SweepSpec, ref: AxisRef, rng: Range, where: str) -> None:
    """Both ends of the range must be values the axis accepts."""
    from trials.errors import ConfigError
    from trials.schedules import build_schedule

    for end, value in (("low", rng.low), ("high", rng.high)):
        v: Any = int(value) if rng.integer else value
        if ref.target == "lr" and not v > 0:
            raise _bad(f"{where}.{end}", value, "> 0 (a peak learning rate)")
        if ref.target == "warmup" and v < 0:
            raise _bad(f"{where}.{end}", value, ">= 0 (warmup steps)")
        if ref.target == "batch_size" and v < 1:
            raise _bad(f"{where}.{end}", value, ">= 1 (a batch size)")
        if ref.target == "schedule":
            try:
                build_schedule(str(ref.name), warmup=0, **{str(ref.param): v})
            except ConfigError as exc:
                raise _bad(f"{where}.{end}", value, exc.expected or "a value the schedule accepts") from None
        if ref.target == "averager":
            _check_averager(ref, v, f"{where}.{end}")
        if ref.target == "optimizer":
            from trials.catalog import OPTIMIZERS

            param = OPTIMIZERS[str(ref.name)].param(str(ref.param))
            if param is not None and not param.accepts(v):
                raise _bad(f"{where}.{end}", value, param.expected())
    if ref.target == "averager" and ref.param == "half_life" and rng.low < 1 <= rng.high:
        raise _bad(where, rng.text(), "a range below 1 (a fraction of the steps so far) or from 1 up (steps), not both")
    if ref.target == "warmup":
        shortest = min(min(sweep.horizons.to_steps(s.n_params, s.tokens_per_step(b)))
                       for s in sweep.workload.model_sizes() for b in sweep.batch_size)
        if rng.high >= shortest:
            raise _bad(f"{where}.high", rng.high, f"shorter than the shortest horizon ({shortest} steps)")


def _check_averager(ref: AxisRef, value: Any, where: str) -> None:
    if ref.param == "half_life" and not value > 0:
        raise _bad(where, value, "> 0")
    if ref.param == "start_fraction" and not 0 < value < 1:
        raise _bad(where, value, "a number in (0, 1)")
    if ref.param in ("start", "q") and value < 0:
        raise _bad(where, value, ">= 0")
    if ref.param in ("every", "k") and value < 1:
        raise _bad(where, value, ">= 1")
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(where, value, "a finite number")
