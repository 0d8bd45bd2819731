"""One lineage's building blocks: the model, optimizer and schedule it trains; capturing and
restoring their state around forks and checkpoints; one update; the eval and train rows.

:mod:`trials.lineage` strings these together into passes and branches.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from trials.averaging import AveragerSet
from trials.divergence import DivergenceMonitor
from trials.eval_point import is_schedule_free, schedule_free_x, swapped_in
from trials.lineage_spec import BranchSpec, LineageSpec
from trials.optimizers import build_optimizer
from trials.runtime import autocast, check_runtime, compile_model, configure_backends
from trials.schedules import Schedule, build_schedule
from trials.workloads import Workload, build_workload

if TYPE_CHECKING:
    from trials.data_parallel import DataParallel

__all__ = ["trunk_schedule"]


@dataclass
class _Components:
    workload: Workload
    optimizer: torch.optim.Optimizer
    schedule: Schedule | None
    params: list[torch.nn.Parameter]
    grad_clip: float | None
    monitor: DivergenceMonitor
    precision: str = "fp32"
    dp: DataParallel | None = None  # this process's rank, when the lineage spans several workers
    initial: dict[str, Any] = field(default_factory=dict)

    @property
    def evaluates(self) -> bool:
        """Only rank 0 evaluates (and writes rows); one worker always does."""
        return self.dp is None or self.dp.is_main


def trunk_schedule(spec: LineageSpec) -> Schedule | None:
    """The schedule the trunk's rule denotes (``None`` for schedule-free optimizers)."""
    if spec.rule == "schedule_free":
        return None
    params = {k: v for k, v in spec.rule_params.items() if k != "horizon"}
    return build_schedule(spec.rule, warmup=spec.warmup, **params)


# ---------------------------------------------------------------------------------- build
def _build(spec: LineageSpec, dp: DataParallel | None = None) -> _Components:
    check_runtime(spec.precision, spec.compile, spec.device)
    configure_backends(spec.precision, spec.device)
    torch.manual_seed(spec.seed)
    workload = build_workload(
        spec.workload, seed=spec.seed, batch_size=spec.batch_size, device=spec.device, **spec.workload_params
    )
    workload.shard(dp.rank if dp is not None else 0, dp.world if dp is not None else 1)
    if spec.compile:
        compile_model(workload.model)
    hyper = dict(spec.optimizer_params)
    grad_clip = hyper.pop("grad_clip", None)
    named = list(workload.model.named_parameters())
    if spec.rule == "schedule_free":  # schedule-free: warmup lives inside the optimizer (docs/equations.md §1.2)
        hyper.setdefault("warmup_steps", spec.warmup)
    # the model itself: the Muon family routes tensors by module role (embedding, head, norm)
    optimizer = build_optimizer(spec.optimizer, workload.model, lr=spec.peak_lr, **hyper)
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
    if is_schedule_free(optimizer):
        optimizer.train()
    # The divergence rule's scale: the initial weights' loss on the fixed held-out set, measured
    # before any update so that an explosion inside the warmup cannot contaminate it. Every rank
    # measures it alike (the held-out set is not sharded), so every rank decides alike.
    with autocast(spec.precision, workload.device):
        scale = workload.eval_loss()
    c = _Components(workload, optimizer, trunk_schedule(spec), [p for _, p in named], grad_clip,
                    DivergenceMonitor(spec.divergence_factor, scale=scale), precision=spec.precision, dp=dp)
    c.initial = _capture(c, None)
    return c


def _averagers(c: _Components, spec: LineageSpec, keys: tuple[str, ...] | list[str]) -> AveragerSet:
    return AveragerSet(c.params, [spec.averager(k) for k in keys])


# ---------------------------------------------------------------------------------- state
def _capture(c: _Components, averagers: AveragerSet | None, keys: list[str] | None = None) -> dict[str, Any]:
    return {
        "model": {k: v.detach().clone() for k, v in c.workload.model.state_dict().items()},
        "optimizer": copy.deepcopy(c.optimizer.state_dict()),
        "averagers": copy.deepcopy(averagers.state_dict(keys)) if averagers is not None else None,
        "rng": torch.get_rng_state(),
        "monitor": c.monitor.state_dict(),
    }


def _restore(c: _Components, state: dict[str, Any], averagers: AveragerSet | None) -> None:
    c.workload.model.load_state_dict(state["model"])
    c.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
    torch.set_rng_state(state["rng"])
    c.monitor.load_state_dict(state["monitor"])
    if averagers is not None and state.get("averagers") is not None:
        averagers.load_state_dict(copy.deepcopy(state["averagers"]), strict=False)


def _kept_averagers(spec: LineageSpec, averagers: AveragerSet, step: int) -> list[str]:
    """The averagers worth keeping in a checkpoint at ``step``: all but per-horizon windows
    already read (their horizon is behind; nothing forks for them any more)."""
    return [k for k in averagers.labels if (spec.averager(k).eval_at or step) >= step]


# ---------------------------------------------------------------------------------- steps
def _lr(c: _Components, spec: LineageSpec, step: int, branch: BranchSpec | None) -> float:
    """The LR multiplier of the update at ``step`` on the trunk or on ``branch``."""
    if branch is not None:
        return branch.multiplier(step)
    if c.schedule is None:  # schedule-free optimizers warm up internally; mirror it for the logs
        return min(1.0, (step + 1) / spec.warmup) if spec.warmup > 0 else 1.0
    return c.schedule.multiplier(step, spec.rule_params.get("horizon"))


def _train_step(c: _Components, step: int, multiplier: float) -> float:
    if c.schedule is not None:  # schedule-free optimizers keep their own (warmed-up) LR
        for group in c.optimizer.param_groups:
            group["lr"] = group["base_lr"] * multiplier
    c.optimizer.zero_grad(set_to_none=True)
    with autocast(c.precision, c.workload.device):
        loss = c.workload.train_loss(step)
    loss.backward()
    if c.dp is not None:  # gradients and loss: means over the workers' equal shares of the batch
        loss = loss.detach().float().reshape(1)
        c.dp.average_([p.grad for p in c.params if p.grad is not None] + [loss])
    if c.grad_clip:
        torch.nn.utils.clip_grad_norm_(c.params, c.grad_clip)
    value = float(loss.detach())
    if getattr(c.optimizer, "needs_loss", False):  # ScheduleFree+: a Polyak step from the loss at y
        c.optimizer.step_func(value)
    else:
        c.optimizer.step()
    return value


def _update_averagers(c: _Components, averagers: AveragerSet, step: int) -> None:
    if not averagers.labels:
        return
    if is_schedule_free(c.optimizer):  # average the evaluation point x, not y (docs/equations.md §6.5)
        with swapped_in(c.params, schedule_free_x(c.optimizer, c.params)):
            averagers.update(step)
    else:
        averagers.update(step)


def _evaluate(c: _Components, spec: LineageSpec, averagers: AveragerSet, branch: str, step: int,
              lr: float, labels: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    """Eval rows for the weights ``labels`` at ``step`` (``raw``, ``x`` or averager labels);
    none on data-parallel ranks other than 0."""
    if not c.evaluates:
        return []
    with autocast(c.precision, c.workload.device):
        return _eval_rows(c, spec, averagers, branch, step, lr, labels)


def _eval_rows(c: _Components, spec: LineageSpec, averagers: AveragerSet, branch: str, step: int,
               lr: float, labels: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    w = c.workload
    base = {"lineage_id": spec.lineage_id, "branch": branch, "step": step, "tokens": step * w.tokens_per_step,
            "flops": step * w.flops_per_step, "lr": lr, "split": "eval"}
    rows = []
    for label in labels:
        if label == "raw":
            rows.append(dict(base, weights="raw", loss=w.eval_loss()))
        elif label == "x":
            with swapped_in(c.params, schedule_free_x(c.optimizer, c.params)):
                rows.append(dict(base, weights="x", loss=w.eval_loss()))
        else:
            keys = [k for k in averagers.labels if averagers.weights_label(k) == label
                    and spec.averager(k).eval_at in (None, step)]
            key = keys[0] if len(keys) == 1 else None
            if key is None or not averagers.is_ready(key, step):
                raise RuntimeError(f"lineage {spec.lineage_id}: averager {label!r} was planned at step {step} "
                                   f"on {branch} but has no data there (a planner/runtime mismatch)")
            with averagers.swapped(key):
                rows.append(dict(base, weights=label, loss=w.eval_loss()))
    return rows


def _train_row(spec: LineageSpec, c: _Components, branch: str, step: int, lr: float, loss: float) -> dict[str, Any]:
    w = c.workload
    return {"lineage_id": spec.lineage_id, "branch": branch, "step": step, "tokens": step * w.tokens_per_step,
            "flops": step * w.flops_per_step, "lr": lr, "split": "train", "weights": "raw", "loss": loss}
