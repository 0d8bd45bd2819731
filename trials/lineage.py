"""The training loop of one lineage: build → train → evaluate → report → checkpoint.

Reads top to bottom (nanoGPT style). One lineage is a ``main`` branch, or a WSD trunk with a
cooldown branch forked at each horizon's decay start; a branch's state is forked in memory,
the cooldown runs, reports, and the trunk continues from where it forked. Divergence ends the
lineage (or a branch) as ``"diverged"`` with the rows it had; it never raises.

Checkpoints (see :mod:`trials.checkpoint`) hold the model, optimizer, averagers and RNG, the
trunk state at the current fork and the branches already done. The data position is the step
itself: every workload draws the batch of update ``t`` from ``(seed, t)`` alone.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from trials.averaging import AveragerSet
from trials.branches import BranchPlan, plan_branches
from trials.checkpoint import Checkpointer, NullCheckpointer
from trials.curve import Reporter, Segment
from trials.divergence import DivergenceMonitor
from trials.eval_point import is_schedule_free, schedule_free_x, swapped_in
from trials.lineage_spec import LineageSpec
from trials.optimizers import build_optimizer
from trials.schedules import Schedule, build_schedule
from trials.workloads import Workload, build_workload

__all__ = ["BranchResult", "LineageResult", "run_lineage"]

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
Progress = Callable[[str, int, int], None]  # (branch, step, end)


@dataclass(frozen=True, kw_only=True)
class BranchResult:
    branch: str
    parent: str | None
    fork_step: int | None
    horizons: tuple[int, ...]
    max_step: int
    status: str  # "completed" | "diverged"
    steps_trained: int
    wall_time_s: float
    error: str | None = None


@dataclass(kw_only=True)
class LineageResult:
    lineage_id: str
    status: str
    branches: list[BranchResult] = field(default_factory=list)
    n_params: int = 0
    tokens_per_step: int = 0
    flops_per_step: float = 0.0
    resumed_from: int | None = None  # trunk step of the checkpoint resumed from, if any

    @property
    def steps_trained(self) -> int:
        return sum(b.steps_trained for b in self.branches)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Components:
    workload: Workload
    optimizer: torch.optim.Optimizer
    schedule: Schedule | None
    averagers: AveragerSet
    params: list[torch.nn.Parameter]
    grad_clip: float | None
    monitor: DivergenceMonitor


# ---------------------------------------------------------------------------------- build
def _build(spec: LineageSpec) -> _Components:
    torch.manual_seed(spec.seed)
    workload = build_workload(
        spec.workload, seed=spec.seed, batch_size=spec.batch_size, device=spec.device, **spec.workload_params
    )
    hyper = dict(spec.optimizer_params)
    grad_clip = hyper.pop("grad_clip", None)
    named = list(workload.model.named_parameters())
    if spec.schedule is None:  # schedule-free: warmup lives inside the optimizer (ALGORITHMS §2)
        hyper.setdefault("warmup_steps", spec.warmup)
    optimizer = build_optimizer(spec.optimizer, named, lr=spec.peak_lr, **hyper)
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
    schedule = None
    if spec.schedule is not None:
        schedule = build_schedule(spec.schedule, warmup=spec.warmup, **spec.schedule_params)
    params = [p for _, p in named]
    averagers = AveragerSet(params, spec.averagers)
    if is_schedule_free(optimizer):
        optimizer.train()
    return _Components(workload, optimizer, schedule, averagers, params, grad_clip,
                       DivergenceMonitor(spec.divergence_factor))


def _lr_multiplier(c: _Components, spec: LineageSpec, step: int, horizon: int | None) -> float:
    if c.schedule is None:  # schedule-free optimizers warm up internally; mirror it for the logs
        return min(1.0, (step + 1) / spec.warmup) if spec.warmup > 0 else 1.0
    return c.schedule.multiplier(step, horizon)


def _set_lr(c: _Components, multiplier: float) -> None:
    if c.schedule is None:
        return
    for group in c.optimizer.param_groups:
        group["lr"] = group["base_lr"] * multiplier


# ---------------------------------------------------------------------------------- state
def _capture(c: _Components) -> dict[str, Any]:
    return {
        "model": {k: v.detach().clone() for k, v in c.workload.model.state_dict().items()},
        "optimizer": copy.deepcopy(c.optimizer.state_dict()),
        "averagers": copy.deepcopy(c.averagers.state_dict()),
        "rng": torch.get_rng_state(),
        "monitor": c.monitor.state_dict(),
    }


def _restore(c: _Components, state: dict[str, Any]) -> None:
    c.workload.model.load_state_dict(state["model"])
    c.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
    c.averagers.load_state_dict(copy.deepcopy(state["averagers"]))
    torch.set_rng_state(state["rng"])
    c.monitor.load_state_dict(state["monitor"])


# ---------------------------------------------------------------------------------- evaluate
def _evaluate(c: _Components, spec: LineageSpec, branch: BranchPlan, step: int, lr: float) -> list[dict]:
    w = c.workload
    base = {"lineage_id": spec.lineage_id, "branch": branch.name, "step": step,
            "tokens": step * w.tokens_per_step, "flops": step * w.flops_per_step, "lr": lr, "split": "eval"}
    rows = [dict(base, weights="raw", loss=w.eval_loss())]
    if is_schedule_free(c.optimizer):
        with swapped_in(c.params, schedule_free_x(c.optimizer, c.params)):
            rows.append(dict(base, weights="x", loss=w.eval_loss()))
    for key in c.averagers.labels:
        if c.averagers.is_ready(key, step):
            with c.averagers.swapped(key):
                rows.append(dict(base, weights=c.averagers.weights_label(key), loss=w.eval_loss()))
    return rows


def _update_averagers(c: _Components, step: int) -> None:
    if not c.averagers.labels:
        return
    if is_schedule_free(c.optimizer):  # average the evaluation point x, not y (NOTES §6.7)
        with swapped_in(c.params, schedule_free_x(c.optimizer, c.params)):
            c.averagers.update(step)
    else:
        c.averagers.update(step)


# ---------------------------------------------------------------------------------- train
def _train_step(c: _Components, step: int) -> float:
    c.optimizer.zero_grad(set_to_none=True)
    loss = c.workload.train_loss(step)
    loss.backward()
    if c.grad_clip:
        torch.nn.utils.clip_grad_norm_(c.params, c.grad_clip)
    c.optimizer.step()
    return float(loss.detach())


def _boundaries(start: int, end: int, every: int) -> list[int]:
    points = {end}
    if every > 0:
        points.update(range((start // every + 1) * every, end, every))
    return sorted(p for p in points if p > start)


class _Diverged(Exception):
    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"loss {loss!r} at step {step}")
        self.step = step


def _run_span(
    c: _Components, spec: LineageSpec, branch: BranchPlan, start: int, end: int, *,
    report: Reporter, save: Callable[[int], None], progress: Progress | None,
) -> None:
    """Train updates ``start .. end-1`` of ``branch``; report and checkpoint at each boundary.

    Raises :class:`_Diverged` after reporting the rows up to the diverging update.
    """
    evals = set(branch.eval_steps)
    tps, fps = c.workload.tokens_per_step, c.workload.flops_per_step
    rows: list[dict] = []
    opens_branch = start == branch.start and (start == 0 or branch.start == branch.end)
    if opens_branch and start in evals:
        rows += _evaluate(c, spec, branch, start, spec.peak_lr * _lr_multiplier(c, spec, start, branch.schedule_horizon))
    if end <= start:  # a zero-length cooldown: only its evaluation
        report(Segment(spec.lineage_id, branch.name, start, start, rows))
        return
    seg_start, t = start, start
    for boundary in _boundaries(start, end, spec.checkpoint_every):
        while t < boundary:
            mult = _lr_multiplier(c, spec, t, branch.schedule_horizon)
            _set_lr(c, mult)
            loss = _train_step(c, t)
            if t % spec.log_every == 0:
                rows.append({"lineage_id": spec.lineage_id, "branch": branch.name, "step": t,
                             "tokens": t * tps, "flops": t * fps, "lr": spec.peak_lr * mult,
                             "split": "train", "weights": "raw", "loss": loss})
            if c.monitor.diverged(loss):
                report(Segment(spec.lineage_id, branch.name, seg_start, t + 1, rows))
                raise _Diverged(t, loss)
            t += 1
            _update_averagers(c, t)
            if t in evals:
                rows += _evaluate(c, spec, branch, t, spec.peak_lr * mult)
            if progress is not None:
                progress(branch.name, t, branch.end)
        report(Segment(spec.lineage_id, branch.name, seg_start, boundary, rows))
        save(boundary)
        seg_start, rows = boundary, []


# ---------------------------------------------------------------------------------- lineage
def run_lineage(
    spec: LineageSpec, *, report: Reporter, checkpointer: Checkpointer | None = None,
    progress: Progress | None = None,
) -> LineageResult:
    """Train one lineage, reporting curve segments; resume from ``checkpointer`` if it holds one.

    Args:
        spec: the lineage, as planned.
        report: called with each :class:`~trials.curve.Segment` before the checkpoint after it.
        checkpointer: where checkpoints go (default: none kept).
        progress: called as ``progress(branch, step, branch_end)`` after every update.
    """
    c = _build(spec)
    trunk, forks = plan_branches(spec, c.schedule)
    ck = checkpointer if checkpointer is not None else NullCheckpointer()
    book: dict[str, Any] = {"done": [], "results": [], "wall": {}}
    position, active, snapshot = 0, None, None
    saved = ck.load()
    result = LineageResult(lineage_id=spec.lineage_id, status="completed", n_params=c.workload.n_params,
                           tokens_per_step=c.workload.tokens_per_step, flops_per_step=c.workload.flops_per_step)
    if saved is not None:
        if saved.get("version") != CHECKPOINT_VERSION or saved.get("lineage_id") != spec.lineage_id:
            raise ValueError(f"checkpoint does not belong to lineage {spec.lineage_id!r} (version {saved.get('version')!r})")
        book = saved["book"]
        position = saved["trunk"]["step"]
        snapshot = saved["trunk"]["state"]
        _restore(c, snapshot)
        active = saved["branch"]
        result.resumed_from = position
        log.info("lineage %s: resuming at trunk step %d", spec.lineage_id, position)

    def save_trunk(step: int) -> None:
        ck.save({"version": CHECKPOINT_VERSION, "lineage_id": spec.lineage_id,
                 "trunk": {"step": step, "state": _capture(c)}, "branch": None, "book": book})

    def run_branch(plan: BranchPlan, start: int, fork_state: dict[str, Any]) -> None:
        def save_branch(step: int) -> None:
            ck.save({"version": CHECKPOINT_VERSION, "lineage_id": spec.lineage_id,
                     "trunk": {"step": plan.start, "state": fork_state},
                     "branch": {"name": plan.name, "step": step, "state": _capture(c)}, "book": book})

        status, error, done_to = "completed", None, plan.end
        began = time.perf_counter()
        try:
            _run_span(c, spec, plan, start, plan.end, report=report,
                      save=save_branch, progress=progress)
        except _Diverged as exc:
            status, error, done_to = "diverged", str(exc), exc.step + 1
        wall = book["wall"].get(plan.name, 0.0) + time.perf_counter() - began
        branch_walls.append(time.perf_counter() - began)
        book["results"].append(asdict(BranchResult(
            branch=plan.name, parent=plan.parent, fork_step=plan.start, horizons=plan.horizons,
            max_step=plan.end, status=status, steps_trained=done_to - plan.start, wall_time_s=wall, error=error)))
        book["done"].append(plan.name)

    trunk_began = time.perf_counter()
    branch_walls: list[float] = []
    trunk_status, trunk_error, trunk_to = "completed", None, trunk.end
    try:
        if active is not None:  # a cooldown branch was in flight when the last run stopped
            plan = next(f for f in forks if f.name == active["name"])
            _restore(c, active["state"])
            run_branch(plan, active["step"], snapshot)
            _restore(c, snapshot)
            save_trunk(position)
        for plan in forks:
            if plan.name in book["done"]:
                continue
            if position < plan.start:
                _run_span(c, spec, trunk, position, plan.start, report=report,
                          save=save_trunk, progress=progress)
                position = plan.start
            fork_state = _capture(c)
            run_branch(plan, plan.start, fork_state)
            _restore(c, fork_state)
            save_trunk(position)
        if trunk.name not in book["done"]:
            if position < trunk.end or (position == 0 and trunk.end == 0):
                _run_span(c, spec, trunk, position, trunk.end, report=report,
                          save=save_trunk, progress=progress)
    except _Diverged as exc:
        trunk_status, trunk_error, trunk_to = "diverged", str(exc), exc.step + 1
    if trunk.name not in book["done"]:
        wall = book["wall"].get(trunk.name, 0.0) + time.perf_counter() - trunk_began - sum(branch_walls)
        book["results"].append(asdict(BranchResult(
            branch=trunk.name, parent=None, fork_step=None, horizons=trunk.horizons, max_step=trunk.end,
            status=trunk_status, steps_trained=trunk_to, wall_time_s=wall, error=trunk_error)))
        book["done"].append(trunk.name)
        for plan in forks:  # forks the trunk never reached
            if plan.name not in book["done"]:
                book["results"].append(asdict(BranchResult(
                    branch=plan.name, parent=plan.parent, fork_step=plan.start, horizons=plan.horizons,
                    max_step=plan.end, status="diverged", steps_trained=0, wall_time_s=0.0,
                    error=f"trunk diverged before step {plan.start}")))
                book["done"].append(plan.name)
        save_trunk(min(trunk_to, trunk.end))
    result.branches = [BranchResult(**{**r, "horizons": tuple(r["horizons"])}) for r in book["results"]]
    if any(b.status == "diverged" for b in result.branches):
        result.status = "diverged"
    return result
