"""Loading a sweep file: TOML or YAML text -> data -> a validated :class:`SweepSpec`.

:func:`load_spec` reads and validates a file; :func:`parse_spec` validates already-parsed data
(relative paths resolve against ``base_dir``); :func:`spec_hash` is the identity of what a sweep
asks: the canonical dump minus ``store`` and ``resources`` (where a sweep runs, and the bounds it
must stay within, are not what it asks). Every failure is ONE :class:`SpecError` line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.spec.errors import SpecError, describe_error, path_of
from orchestrator.spec.sweep import SweepSpec, sweep_model
from orchestrator.spec_input import SweepFileError, read_sweep_file
from trials import catalog
from trials.errors import ConfigError
from trials.identity import canonical_hash

__all__ = ["load_spec", "parse_spec", "spec_hash"]


def _read(path: Path) -> Any:
    try:
        return read_sweep_file(path)  # duplicate keys, alias bombs, deep nesting: spec_input.py
    except SweepFileError as exc:
        raise SpecError(str(exc), source=str(path)) from None


def parse_spec(data: Any, *, base_dir: str | os.PathLike[str] | None = None, source: str | None = None) -> SweepSpec:
    """Validate already-parsed sweep data; relative paths (corpus) resolve against ``base_dir``."""
    if not isinstance(data, dict):
        raise SpecError(f"the sweep file must be a table of keys, got {type(data).__name__}", source=source)
    model = sweep_model(_plugin_model(data, source))
    try:
        return model.model_validate(data, context={"base_dir": str(base_dir) if base_dir else None})
    except ValidationError as exc:
        # an unknown key explains the rest (a misspelt required key is also "missing"): report it first
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        message = describe_error(first, data)
        more = len({path_of(e["loc"]) for e in errors[1:]} - {path_of(first["loc"])})
        if more:
            message += f" (and {more} more error{'s' if more > 1 else ''})"
        raise SpecError(message, source=source, field=path_of(first["loc"], data) or None, value=first.get("input")) from None


def _plugin_model(data: dict[str, Any], source: str | None) -> type | None:
    """The generated ``[workload]`` model when the sweep names a workload plugin (any name but
    a built-in's); a plugin that cannot be used is refused here, in one line naming it."""
    workload = data.get("workload")
    name = workload.get("name") if isinstance(workload, dict) else None
    if not isinstance(name, str) or name in catalog.WORKLOADS:
        return None
    from orchestrator.spec.plugin_workload import plugin_workload_model

    try:
        return plugin_workload_model(name)
    except ConfigError as exc:
        message = str(exc) if exc.field != "workload.name" or str(exc).startswith("workload.name") else f"workload.name: {exc}"
        raise SpecError(message, source=source, field="workload.name", value=name) from None


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read, parse and validate a sweep file (``.toml``, ``.yaml`` or ``.yml``).

    Raises:
        SpecError: one line naming the file, the field, the value and what was expected.
    """
    p = Path(path)
    return parse_spec(_read(p), base_dir=p.parent, source=str(p))


def identity_dump(spec: SweepSpec) -> dict[str, Any]:
    """The canonical dump minus ``store`` and ``resources``, with how lineages run as their
    trunk ids see it (``trials.identity.runtime_key``): nothing when precision, compile and
    workers are the defaults, so hashes of sweeps from before ``[runtime]`` are unchanged."""
    from trials.identity import runtime_key

    dump = spec.model_dump(mode="json", exclude={"store", "resources", "runtime"})
    runtime = runtime_key(precision=spec.runtime.precision, compile=spec.runtime.compile,
                          workers=spec.resources.workers)
    if runtime:
        dump["runtime"] = runtime
    return dump


def spec_hash(spec: SweepSpec) -> str:
    """Identity of what a sweep asks: :func:`identity_dump`, hashed."""
    return canonical_hash(identity_dump(spec))
