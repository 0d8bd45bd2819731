"""The search space of a sweep: grid points of the axes that stay lists × the ranged axes.

:class:`SearchSpace` turns a validated sweep with ``[search]`` into what the sampler sees and
back into settings:

- the grid's settings (:func:`orchestrator.planner.expand_settings`) with the ranged values and
  the seed left out group into *grid points*; more than one becomes the categorical parameter
  ``grid_point`` (its choices are readable labels made of what differs between them);
- each ranged axis is a float or int parameter named by its ``[search.space]`` key, suggested
  only for grid points it applies to (``schedules.polynomial.gamma`` only with ``polynomial``);
- :meth:`SearchSpace.settings` makes the settings of one trial (one per seed) and the
  :class:`~trials.lineage_plan.PlanConfig` its lineages are planned with (a searched averager
  replaces that kind's entry).

Horizons are counted by index (the k-th horizon of the sweep, shortest first): with
``horizons.tokens`` and a searched batch size the steps differ between trials, the index not.
No optuna import: :meth:`SearchSpace.suggest` only calls the trial's ``suggest_*`` methods.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.planner import Setting, expand_settings, plan_config, setting_family
from orchestrator.search.spec import AxisRef, Range, resolve_axis
from trials.lineage_plan import AveragerPoint, PlanConfig, TrialSetting

__all__ = ["GRID_POINT", "GridPoint", "SearchSpace", "TrialSettings"]

GRID_POINT = "grid_point"  # the categorical parameter choosing among the grid points


@dataclass(frozen=True, kw_only=True)
class GridPoint:
    """One point of the grid axes that are not searched (all seeds)."""

    label: str
    settings: tuple[Setting, ...]  # one per seed, ranged values still the grid's

    @property
    def first(self) -> TrialSetting:
        return self.settings[0].trial


@dataclass(frozen=True, kw_only=True)
class TrialSettings:
    """What one trial trains: its settings (one per seed), plan config and objective horizons.

    ``horizons[i]`` are the steps of setting ``i``'s objective horizons, shortest first (the
    same count for every setting; the k-th is the sweep's k-th horizon).
    """

    settings: tuple[Setting, ...]
    config: PlanConfig
    horizons: tuple[tuple[int, ...], ...]

    def up_to(self, rung: int) -> list[TrialSetting]:
        """The settings asked only at their first ``rung + 1`` objective horizons."""
        return [dataclasses.replace(s.trial, horizons=h[: rung + 1]) for s, h in zip(self.settings, self.horizons, strict=True)]


class SearchSpace:
    """The sampler's view of a sweep with ``[search]`` (module docstring)."""

    def __init__(self, sweep: Any, group: str | None = None) -> None:
        if sweep.search is None:
            raise ValueError(f"sweep {sweep.name!r} has no [search] section")
        self.sweep = sweep
        self.search = sweep.search
        self.refs: list[AxisRef] = [resolve_axis(sweep, key) for key in self.search.space]
        self.ranges: dict[str, Range] = dict(self.search.space)
        self.grid_points = self._grid_points()
        self.group = group
        if group is not None:  # one study of `[search] per`: only its family's/optimizer's points
            self.grid_points = [p for p in self.grid_points if self.group_of(p) == group]
            if not self.grid_points:
                raise KeyError(f"no grid point of group {group!r} in this sweep's search space")
        self.n_horizons = self._n_horizons()

    # -- studies of `[search] per` ----------------------------------------------------------
    def group_of(self, point: GridPoint) -> str:
        """The study a grid point belongs to: its family or optimizer, ``""`` for one shared study."""
        if self.search.per == "family":
            return setting_family(point.first)
        if self.search.per == "optimizer":
            return point.first.optimizer
        return ""

    def groups(self) -> list[str]:
        """The studies of this search, in grid order (``[""]``: one study over every grid point)."""
        return list(dict.fromkeys(self.group_of(p) for p in self.grid_points))

    # -- grid points ----------------------------------------------------------------------
    def _blank(self, s: TrialSetting) -> dict[str, Any]:
        """The setting without its ranged values, its seed and its horizons (a grid point's key)."""
        opt = dict(s.optimizer_params)
        sched = dict(s.schedule_params)
        key: dict[str, Any] = {"workload_params": s.workload_params, "optimizer": s.optimizer, "schedule": s.schedule,
                               "peak_lr": s.peak_lr, "warmup": s.warmup, "batch_size": s.batch_size}
        for ref in self.refs:
            if ref.target == "lr" and ref.name in (None, s.optimizer):
                key["peak_lr"] = None
            elif ref.target == "optimizer" and ref.name == s.optimizer:
                opt.pop(str(ref.param), None)
            elif ref.target == "schedule" and ref.name == s.schedule:
                sched.pop(str(ref.param), None)
            elif ref.target in ("warmup", "batch_size"):
                key[ref.target] = None
        key["optimizer_params"], key["schedule_params"] = opt, sched
        return key

    def _grid_points(self) -> list[GridPoint]:
        groups: dict[str, list[Setting]] = {}
        keys: dict[str, dict[str, Any]] = {}
        for setting in expand_settings(self.sweep):
            key = self._blank(setting.trial)
            blob = json.dumps(key, sort_keys=True, default=str)
            members = groups.setdefault(blob, [])
            if all(m.trial.seed != setting.trial.seed for m in members):  # a ranged value's other grid values
                members.append(setting)
            keys[blob] = key
        described = [_describe(keys[b], groups[b][0]) for b in groups]
        varying = [k for k in described[0] if len({json.dumps(d[k], sort_keys=True) for d in described}) > 1]
        points = []
        for blob, desc in zip(groups, described, strict=True):
            label = ", ".join(f"{k}={desc[k]}" for k in varying) or "grid"
            points.append(GridPoint(label=label, settings=tuple(groups[blob])))
        return points

    def _n_horizons(self) -> int:
        values = self.sweep.horizons.values
        if self.search.objective == "final":
            target = self.search.horizon if self.search.horizon is not None else max(values)
            return sorted(values).index(target) + 1
        return len(values)

    def grid_point(self, label: str | None) -> GridPoint:
        if label is None:
            return self.grid_points[0]
        for p in self.grid_points:
            if p.label == label:
                return p
        raise KeyError(f"grid point {label!r} is not in this sweep's search space")

    def applies(self, ref: AxisRef, point: GridPoint) -> bool:
        s = point.first
        if ref.target == "lr":
            return ref.name in (None, s.optimizer)
        if ref.target == "optimizer":
            return ref.name == s.optimizer
        if ref.target == "schedule":
            return ref.name == s.schedule
        return True  # warmup, batch size, averagers

    # -- the sampler's side ---------------------------------------------------------------
    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask ``trial`` (an ``optuna.Trial``) for one point: define-by-run, conditional axes."""
        params: dict[str, Any] = {}
        label = None
        if len(self.grid_points) > 1:
            label = trial.suggest_categorical(GRID_POINT, [p.label for p in self.grid_points])
            params[GRID_POINT] = label
        point = self.grid_point(label)
        for ref in self.refs:
            if not self.applies(ref, point):
                continue
            r = self.ranges[ref.key]
            if r.integer:
                params[ref.key] = trial.suggest_int(ref.key, int(r.low), int(r.high), log=r.log)
            else:
                params[ref.key] = trial.suggest_float(ref.key, r.low, r.high, log=r.log)
        return params

    # -- back to settings -----------------------------------------------------------------
    def settings(self, params: Mapping[str, Any]) -> TrialSettings:
        """The settings (one per seed) and plan config of the trial with these ``params``."""
        point = self.grid_point(params.get(GRID_POINT))
        averagers = list(plan_config(self.sweep).averagers)
        out: list[Setting] = []
        horizons: list[tuple[int, ...]] = []
        for setting in point.settings:
            s = setting.trial
            changes: dict[str, Any] = {}
            opt, sched = dict(s.optimizer_params), dict(s.schedule_params)
            for ref in self.refs:
                if ref.key not in params:
                    continue
                value = params[ref.key]
                if ref.target == "lr":
                    changes["peak_lr"] = float(value)
                elif ref.target == "optimizer":
                    opt[str(ref.param)] = value
                elif ref.target == "schedule":
                    sched[str(ref.param)] = value
                elif ref.target in ("warmup", "batch_size"):
                    changes[ref.target] = int(value)
            batch = changes.get("batch_size", s.batch_size)
            steps = self.sweep.horizons.to_steps(setting.size.n_params, setting.size.tokens_per_step(batch))
            h = tuple(sorted(steps))[: self.n_horizons]
            trial = dataclasses.replace(s, optimizer_params=opt, schedule_params=sched, horizons=h, **changes)
            out.append(Setting(trial=trial, size=setting.size))
            horizons.append(h)
        for ref in self.refs:
            if ref.target == "averager" and ref.key in params:
                averagers = _replace_averager(self.sweep, averagers, ref, params[ref.key])
        config = dataclasses.replace(plan_config(self.sweep), averagers=tuple(averagers))
        return TrialSettings(settings=tuple(out), config=config, horizons=tuple(horizons))

    def searched_averager_label(self, params: Mapping[str, Any], kind: str) -> str | None:
        """The weights label of the searched averager of ``kind`` in this trial, if any."""
        for a in self.settings(params).config.averagers:
            if a.kind == kind and any(r.target == "averager" and r.name == kind for r in self.refs):
                return a.label
        return None


def _describe(key: dict[str, Any], setting: Setting) -> dict[str, Any]:
    s = setting.trial
    sched = "" if s.schedule is None else s.schedule + "".join(f" {k}={v}" for k, v in sorted(key["schedule_params"].items()))
    opt = s.optimizer + "".join(f" {k}={v}" for k, v in sorted(key["optimizer_params"].items()))
    return {"size": setting.size.label, "batch": key["batch_size"], "warmup": key["warmup"], "optimizer": opt,
            "lr": key["peak_lr"], "schedule": sched or None}


def _replace_averager(sweep: Any, points: Sequence[AveragerPoint], ref: AxisRef, value: Any) -> list[AveragerPoint]:
    """The averagers with the entry of ``ref.name``'s kind re-expanded at the searched value."""
    entry = next(a for a in sweep.averagers if a.kind == ref.name)
    fixed = entry.model_copy(update={str(ref.param): [value]})
    p = fixed.points()[0]
    keep = [a for a in points if a.kind != ref.name]
    return [*keep, AveragerPoint(kind=p.kind, params=dict(p.params), label=p.label, start_fraction=p.start_fraction)]
