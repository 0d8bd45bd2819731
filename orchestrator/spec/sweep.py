"""The sweep: :class:`SweepSpec`, one validated sweep file, and the checks across its tables.

``model_dump()`` is canonical (every axis a list, every default filled in). The entry types of
``optimizers``, ``schedules`` and ``averagers`` are generated from the catalogs; when a catalog
changes after import (a card registered at run time), :func:`sweep_model` builds the matching
subclass, so adding a component needs no edit here. A sweep naming a workload plugin gets a
subclass whose ``workload`` union also holds the plugin's generated model
(``orchestrator/spec/plugin_workload.py``).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, create_model, model_validator

from orchestrator.search.spec import SearchSpec
from orchestrator.spec import budget
from orchestrator.spec.averagers import AveragerPoint, averager_entry_union
from orchestrator.spec.axes import Axis, Model, NonNegInt, PosInt
from orchestrator.spec.errors import bad, said
from orchestrator.spec.optimizers import optimizer_entry_union
from orchestrator.spec.schedules import schedule_entry_union
from orchestrator.spec.sections import EvalSpec, Horizons, Resources, Runtime
from orchestrator.spec.workload import CharGPTWorkload, LinRegWorkload, Workload
from orchestrator.spec_input import StoreRoot, SweepName
from trials import catalog
from trials.identity import canonical_hash

__all__ = ["SweepSpec", "sweep_model"]


if TYPE_CHECKING:  # the generated unions' common bases
    from orchestrator.spec.averagers import AveragerEntryBase as AveragerEntry
    from orchestrator.spec.optimizers import OptimizerEntryBase as OptimizerEntry
    from orchestrator.spec.schedules import ScheduleEntryBase as ScheduleEntry
else:
    OptimizerEntry = optimizer_entry_union()
    ScheduleEntry = schedule_entry_union()
    AveragerEntry = averager_entry_union()


class SweepSpec(Model):
    """A validated sweep file. See ``examples/README.md`` for every key."""

    name: SweepName  # the store's sweep_id rule (orchestrator/sweep_name.py)
    store: StoreRoot = "./lrsweep-results"
    workload: Workload
    optimizers: Annotated[list[OptimizerEntry], Field(min_length=1)]
    schedules: list[ScheduleEntry] = []
    warmup: Axis[NonNegInt] = [0]
    batch_size: Axis[PosInt] = [32]
    seeds: Axis[NonNegInt] = [0]
    horizons: Horizons
    averagers: list[AveragerEntry] = []
    eval: EvalSpec = EvalSpec()
    resources: Resources = Resources()
    runtime: Runtime = Runtime()
    divergence_factor: Annotated[float, Field(gt=1, allow_inf_nan=False)] = 5.0
    search: SearchSpec | None = None  # orchestrator/search/spec.py

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        budget.check_grid_size(self)
        budget.check_horizon_range(self)
        self._check_schedules()
        self._check_horizons()
        self._check_averagers()
        self._check_runtime()
        if self.search is not None:
            self.search.check(self)
        if self.eval.batches is not None and self.workload.name == "linreg":
            raise said("eval.batches", "linreg evaluates its exact risk; remove eval.batches")
        if self.eval.batches is not None and self.workload.card.param("eval_batches") is None:
            raise said("eval.batches", f"workload {self.workload.name!r} has no `eval_batches` parameter; "
                                       "remove eval.batches")
        budget.check_budget(self)
        return self

    def _check_schedules(self) -> None:
        names = [s.name for s in self.schedules]
        stepped = [(i, o) for i, o in enumerate(self.optimizers) if not o.schedule_free]
        if stepped and not self.schedules:
            i, o = stepped[0]
            raise said("schedules", f"at least one schedule is required for optimizers[{i}] {o.name!r}")
        if self.schedules and not stepped:
            raise said("schedules", "every optimizer is schedule-free, so the schedules would be unused; remove them")
        for i, o in stepped:
            for name in o.schedules or []:
                if name not in names:
                    raise bad(f"optimizers[{i}].schedules", name, f"one of the sweep's schedules {sorted(set(names))}")
        seen: dict[str, int] = {}
        for i, entry in enumerate(self.schedules):
            for sched in entry.settings(0):
                params = {k: v for k, v in sched.params().items() if k != "warmup"}
                key = canonical_hash([sched.name, params])
                if key in seen:
                    raise said(f"schedules[{i}]", f"repeats a schedule setting of schedules[{seen[key]}] ({sched.name} {params})")
                seen.setdefault(key, i)
        seen = {}
        for i, o in enumerate(self.optimizers):
            for lr, hyper in o.settings():
                key = canonical_hash([o.name, lr, hyper])
                if key in seen and seen[key] != i:
                    raise said(f"optimizers[{i}]", f"repeats a setting of optimizers[{seen[key]}] ({o.name}, lr={lr}, {hyper})")
                seen.setdefault(key, i)

    def _check_horizons(self) -> None:
        unit = self.horizons.unit
        longest_warmup = max(self.warmup)
        for size in self.workload.model_sizes():
            for batch in self.batch_size:
                tps = size.tokens_per_step(batch)
                steps = self.horizons.to_steps(size.n_params, tps)
                for j, (value, s) in enumerate(zip(self.horizons.values, steps, strict=True)):
                    where = f"horizons.{unit}[{j}]" if len(steps) > 1 else f"horizons.{unit}"
                    context = "" if unit == "steps" else f" ({s} steps for size {size.label}, batch {batch}: {tps} tokens/step)"
                    if s <= longest_warmup:
                        raise bad(where, value, f"longer than the warmup of {longest_warmup} steps{context}")
                    if s in steps[:j]:
                        raise bad(where, value, f"a different number of steps from horizons.{unit}[{steps.index(s)}]{context}")

    def _check_averagers(self) -> None:
        seen: dict[str, int] = {}
        for i, entry in enumerate(self.averagers):
            for point in entry.points():
                if point.label in seen:
                    raise said(f"averagers[{i}]", f"repeats the averager {point.label!r} of averagers[{seen[point.label]}]")
                seen[point.label] = i

    def _check_runtime(self) -> None:
        """Precision and workers against the devices a trial gets (docs/gpus.md)."""
        gpu, workers = self.resources.gpu, self.resources.workers
        if self.runtime.precision != "fp32" and gpu == 0:
            raise bad("runtime.precision", self.runtime.precision,
                      "'fp32' when resources.gpu = 0 (tf32 and bf16 need CUDA; CPUs here only emulate bfloat16)")
        if workers > 1:
            if gpu and not float(gpu).is_integer():
                raise bad("resources.gpu", gpu, f"0 or a whole number when resources.workers = {workers} "
                                                "(each worker needs a GPU of its own)")
            for i, b in enumerate(self.batch_size):
                if b % workers:
                    where = f"batch_size[{i}]" if len(self.batch_size) > 1 else "batch_size"
                    raise bad(where, b, f"a multiple of resources.workers ({workers}): each worker takes an equal share")

    def averager_points(self) -> list[AveragerPoint]:
        return [p for entry in self.averagers for p in entry.points()]


_BUILT_FOR = catalog.fingerprint()


@functools.lru_cache(maxsize=4)
def _regenerated(fingerprint: Any) -> type[SweepSpec]:
    fields: dict[str, Any] = {
        "optimizers": (Annotated[list[optimizer_entry_union()], Field(min_length=1)], ...),  # type: ignore[misc]
        "schedules": (list[schedule_entry_union()], []),  # type: ignore[misc]
        "averagers": (list[averager_entry_union()], []),  # type: ignore[misc]
    }
    return create_model("SweepSpec", __base__=SweepSpec, **fields)


def sweep_model(plugin: type | None = None) -> type[SweepSpec]:
    """:class:`SweepSpec` for the catalogs as they are now (itself, unless a card was added);
    with ``plugin`` (a workload plugin's generated model) a subclass whose ``workload`` may be it."""
    now = catalog.fingerprint()
    base = SweepSpec if now == _BUILT_FOR else _regenerated(now)
    return base if plugin is None else _with_plugin(base, plugin)


@functools.lru_cache(maxsize=16)
def _with_plugin(base: type[SweepSpec], plugin: type) -> type[SweepSpec]:
    union = Annotated[CharGPTWorkload | LinRegWorkload | plugin, Field(discriminator="name")]  # type: ignore[valid-type]
    return create_model("SweepSpec", __base__=base, workload=(union, ...))
