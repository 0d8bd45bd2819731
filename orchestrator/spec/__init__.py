"""The sweep file: pydantic models generated from the catalogs, loading, one-line errors.

A sweep file names a grid; lists are axes, scalars are one-element axes (``lr = 3e-3`` is
``lr = [3e-3]``). ``examples/README.md`` documents every key. :func:`load_spec` returns a
:class:`SweepSpec` whose ``model_dump()`` is canonical and :func:`spec_hash` is the hash of
that dump minus ``store`` and ``resources``.

Every mistake becomes ONE :class:`SpecError` line naming the file, the dotted field path, the
bad value and what was expected, e.g. ``sweep.toml: optimizers[0].params.betas must be two
numbers in [0, 1), got [0.9, 1.5]`` — including everything a trial would reject or never
finish (:mod:`orchestrator.spec.budget`), so a bad spec fails ``lrsweep plan`` and never reaches
Ray.

What the spec knows about components comes from :mod:`trials.catalog` (pure Python): the
optimizer, schedule and averager entry models and the workload parameter models are generated
from its cards. Modules, by concept: :mod:`~.errors`, :mod:`~.axes`, :mod:`~.params` (fields
from catalog parameters), :mod:`~.workload` (with :mod:`~.corpus`), :mod:`~.optimizers`,
:mod:`~.schedules`, :mod:`~.averagers`, :mod:`~.sections` (horizons, eval, resources),
:mod:`~.sweep`, :mod:`~.budget`, :mod:`~.loading`.
"""

from __future__ import annotations

from orchestrator.spec.averagers import AveragerPoint, averager_entry_models
from orchestrator.spec.errors import SpecError, describe_error
from orchestrator.spec.loading import load_spec, parse_spec, spec_hash
from orchestrator.spec.optimizers import optimizer_entry_models
from orchestrator.spec.schedules import schedule_entry_models
from orchestrator.spec.sweep import SweepSpec, sweep_model
from orchestrator.spec.workload import ModelSize, gpt_param_count

__all__ = [
    "AveragerPoint",
    "ModelSize",
    "SpecError",
    "SweepSpec",
    "averager_entry_models",
    "describe_error",
    "gpt_param_count",
    "load_spec",
    "optimizer_entry_models",
    "parse_spec",
    "schedule_entry_models",
    "spec_hash",
    "sweep_model",
]
