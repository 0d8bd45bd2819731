"""Identity of trunks and branches: the one rule every entry point hashes by (docs/design.md §4).

A **trunk** is one training trajectory. It is identified only by what determines its weights:
the workload and its parameters (model size, data, how losses are measured), the optimizer and
its hyperparameters, the peak LR, the warmup, the batch size, the seed (model init and data
order: a workload draws the batch of update ``t`` from ``(seed, t)`` alone), the trunk's own
LR *rule*, and how its arithmetic runs when that differs from the default (``runtime``: a
``precision`` other than fp32, ``compile``, more than one data-parallel ``worker`` — each
changes the rounding, so the weights' bits; ``trials/runtime.py``) — never horizons,
cooldowns, eval points or averagers. Rules:

- ``constant``: the LR of the ``constant`` schedule and of every WSD schedule before its decay
  start, so ``constant`` and every WSD variant at the same LR share one trunk;
- ``polynomial`` (``gamma``, ``t0``) and ``inverse_sqrt`` (``tau``): horizon-free decays;
- ``schedule_free``: a schedule-free optimizer (its warmup lives inside the optimizer);
- ``cosine`` / ``linear`` (``final_fraction``, ``horizon``): horizon-dependent, so one trunk per
  horizon (nothing can be shared).

A **branch** is a WSD cooldown forked from a constant trunk at its decay start ``S`` for horizon
``T``; it is identified by the trunk, ``S``, ``T`` and the cooldown's shape and final fraction
(the cooldown fraction only matters through ``S``). Both ``orchestrator.planner`` and
``python -m trials`` call these functions, so they agree on every id.

Pure Python: importing this module imports neither torch nor ray.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = [
    "HORIZON_FREE_RULES",
    "TRUNK",
    "branch_id",
    "branch_name",
    "canonical_hash",
    "trunk_id",
    "runtime_key",
    "trunk_rule",
]

TRUNK = "trunk"  # the branch name of every trunk's own rows
HORIZON_FREE_RULES = ("constant", "polynomial", "inverse_sqrt", "schedule_free")


def canonical_hash(obj: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-able object (sorted keys): identity, never a hand-made name."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def trunk_rule(schedule: str | None, schedule_params: dict[str, Any], horizon: int | None) -> tuple[str, dict[str, Any]]:
    """The LR rule of the trunk a setting runs on, and its parameters.

    Args:
        schedule: the setting's schedule name, ``None`` for a schedule-free optimizer.
        schedule_params: the schedule's full parameters (defaults filled in), without warmup.
        horizon: the horizon, needed only for horizon-dependent schedules (cosine, linear).
    """
    if schedule is None:
        return "schedule_free", {}
    if schedule in ("constant", "wsd"):
        return "constant", {}
    if schedule in ("polynomial", "inverse_sqrt"):
        return schedule, dict(schedule_params)
    if horizon is None:
        raise ValueError(f"schedule {schedule!r} is horizon-dependent: its trunk needs a horizon")
    return schedule, {**schedule_params, "horizon": int(horizon)}


def trunk_id(
    *, workload: str, workload_params: dict[str, Any], optimizer: str, optimizer_params: dict[str, Any],
    peak_lr: float, warmup: int, batch_size: int, seed: int, rule: str, rule_params: dict[str, Any],
    runtime: dict[str, Any] | None = None,
) -> str:
    """The id of the trunk these values determine (the lineage id of the lineage that runs it).

    ``runtime``: :func:`runtime_key`; empty (the default: fp32, not compiled, one worker) adds
    nothing to the hash, so every id from before these options existed is unchanged.
    """
    key = {
        "workload": workload, "workload_params": workload_params,
        "optimizer": optimizer, "optimizer_params": optimizer_params,
        "peak_lr": float(peak_lr), "warmup": int(warmup), "batch_size": int(batch_size), "seed": int(seed),
        "rule": rule, "rule_params": rule_params,
    }
    if runtime:
        key["runtime"] = runtime
    return canonical_hash(key)


def runtime_key(*, precision: str = "fp32", compile: bool = False, workers: int = 1) -> dict[str, Any]:
    """The runtime choices that enter a trunk's id: only those that differ from the default."""
    out: dict[str, Any] = {}
    if precision != "fp32":
        out["precision"] = precision
    if compile:
        out["compile"] = True
    if workers != 1:
        out["workers"] = int(workers)
    return out


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def branch_name(*, fork_step: int, end: int, shape: str, final_fraction: float) -> str:
    """``h=<T>/<shape>@<S>`` (plus ``/f=<f>`` for a non-zero final fraction): unique per trunk."""
    name = f"h={end}/{shape}@{fork_step}"
    return name if not final_fraction else f"{name}/f={_number(final_fraction)}"


def branch_id(trunk: str, *, fork_step: int, end: int, shape: str, final_fraction: float) -> str:
    """The id of a cooldown branch: trunk + fork step + cooldown parameters + horizon."""
    return canonical_hash({"trunk": trunk, "fork_step": int(fork_step), "end": int(end), "shape": shape,
                           "final_fraction": float(final_fraction)})
