"""The training loop of one lineage: plan the work → replay/continue the trunk → run branches.

Reads top to bottom (nanoGPT style). :func:`run_lineage` asks :func:`trials.work.plan_work`
what is missing, then runs each trunk pass: restore the checkpoint it starts from (or a fresh
model), train step by step — evaluate at eval points, fork each cooldown branch at its fork
step (run it, then restore the trunk), report rows and checkpoint at boundaries. Divergence ends
the trunk (or a branch) as ``"diverged"`` with the rows it had; it never raises.

A replay (a pass below the trunk's frontier) writes no train rows: it checks each recomputed
loss against the stored one (when the sink can tell) and stops the lineage with
:class:`ReplayMismatch` rather than ever mixing two trajectories.

The data position is the step itself: every workload draws the batch of update ``t`` from
``(seed, t)`` alone, so a resumed run and a fork see exactly the batches of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from trials._lineage_steps import (
    _averagers,
    _build,
    _capture,
    _Components,
    _evaluate,
    _kept_averagers,
    _lr,
    _restore,
    _train_row,
    _train_step,
    _update_averagers,
    trunk_schedule,
)
from trials.averaging import AveragerSet
from trials.checkpoint import CheckpointStore
from trials.identity import TRUNK
from trials.lineage_spec import LineageSpec
from trials.sinks import MemorySink, Sink
from trials.throughput import StepClock, device_name
from trials.work import BranchTask, StoredLineage, TrunkPass, Work, plan_work

if TYPE_CHECKING:
    from trials.data_parallel import DataParallel

__all__ = ["BranchResult", "LineageResult", "ReplayMismatch", "run_lineage", "trunk_schedule"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int, float], None]  # (branch, step, end, train loss of the update)


class ReplayMismatch(RuntimeError):
    """A replayed trunk step gave a different loss than the stored run (another torch build or
    machine?): the lineage stops instead of mixing two trajectories."""


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
    branches: list[BranchResult] = field(default_factory=list)  # rows finished by this run
    n_params: int = 0
    tokens_per_step: int = 0
    flops_per_step: float = 0.0
    run_steps: int = 0
    replay_steps: int = 0
    resumed_from: int | None = None  # the trunk frontier this run started from, if any

    @property
    def steps_trained(self) -> int:
        return self.run_steps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _replay_key(start: int, end: int, rows: list[dict[str, Any]]) -> str:
    names = sorted(f"{r['step']}:{r['weights']}" for r in rows)
    return f"r{start:010d}-{end:010d}-{hashlib.sha256(','.join(names).encode()).hexdigest()[:12]}"


class _Diverged(Exception):
    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"loss {loss!r} at step {step}")
        self.step = step


# ---------------------------------------------------------------------------------- one lineage
@dataclass
class _Run:
    """Everything a running lineage shares between its passes and branches."""

    spec: LineageSpec
    c: _Components
    sink: Sink
    checkpoints: CheckpointStore | None
    work: Work
    progress: Progress | None
    results: list[BranchResult] = field(default_factory=list)
    clock: StepClock = field(default_factory=StepClock)

    def finish(self, result: BranchResult) -> None:
        """Report a finished branch (or the trunk) with the workload's compute numbers and the
        throughput of the updates this run timed for it (``trials/throughput.py``)."""
        w, spec = self.c.workload, self.spec
        timed_steps, train_time = self.clock.of(result.branch)
        self.sink.finished({**asdict(result), "n_params": w.n_params, "tokens_per_step": w.tokens_per_step,
                            "flops_per_step": w.flops_per_step, "replayed_steps": self.work.replay_steps,
                            "timed_steps": timed_steps, "train_time_s": train_time, "device": device_name(spec.device),
                            "workers": spec.workers, "precision": spec.precision})
        self.results.append(result)

    def step(self, branch: str, t: int, multiplier: float) -> float:
        """One timed update of ``branch``."""
        return self.clock.timed(branch, _train_step, self.c, t, multiplier)

    def save_trunk(self, step: int, averagers: AveragerSet) -> None:
        if self.checkpoints is None:
            return
        keys = _kept_averagers(self.spec, averagers, step)
        self.checkpoints.save_trunk(step, _capture(self.c, averagers, keys), keys)

    # -- a branch ---------------------------------------------------------------------------
    def branch(self, task: BranchTask, fork: dict[str, Any] | None) -> None:
        spec, c = self.spec, self.c
        b = spec.branch(task.name)
        averagers = _averagers(c, spec, task.averagers)
        if task.resume:
            assert self.checkpoints is not None
            _restore(c, self.checkpoints.load_branch(b.name, task.start), averagers)
        else:
            assert fork is not None
            _restore(c, fork, averagers)
        evals: dict[int, list[str]] = {}
        for step, label in task.evals:
            evals.setdefault(step, []).append(label)
        began = time.perf_counter()
        rows: list[dict[str, Any]] = []
        status, error, t, seg_start = "completed", None, task.start, task.start
        if t == b.end and t in evals:  # a zero-length cooldown: only its evaluation
            rows += _evaluate(c, spec, averagers, b.name, t, spec.peak_lr, evals[t])
        every = spec.checkpoint_every
        try:
            while t < b.end:
                mult = b.multiplier(t)
                loss = self.step(b.name, t, mult)
                if task.emit_train and t % spec.log_every == 0:
                    rows.append(_train_row(spec, c, b.name, t, spec.peak_lr * mult, loss))
                if c.monitor.diverged(loss):
                    raise _Diverged(t, loss)
                t += 1
                _update_averagers(c, averagers, t)
                if t in evals:
                    rows += _evaluate(c, spec, averagers, b.name, t, spec.peak_lr * mult, evals[t])
                if self.progress is not None:
                    self.progress(b.name, t, b.end, loss)
                if task.emit_train and every > 0 and t % every == 0 and t < b.end:
                    self.sink.segment(b.name, f"{seg_start:010d}-{t:010d}", rows)
                    if self.checkpoints is not None:
                        self.checkpoints.save_branch(b.name, t, _capture(c, averagers), averagers.labels)
                    seg_start, rows = t, []
        except _Diverged as exc:
            status, error, t = "diverged", str(exc), exc.step + 1
        if task.emit_train:
            self.sink.segment(b.name, f"{seg_start:010d}-{t:010d}", rows)
            result = BranchResult(branch=b.name, parent=TRUNK, fork_step=b.fork_step, horizons=(b.end,),
                                  max_step=t if status == "diverged" else b.end, status=status,
                                  steps_trained=t - b.fork_step, wall_time_s=time.perf_counter() - began, error=error)
            self.finish(result)
            if self.checkpoints is not None:
                self.checkpoints.clear_branch(b.name)
        elif rows:
            self.sink.segment(b.name, _replay_key(task.start, b.end, rows), rows)

    # -- a trunk pass -----------------------------------------------------------------------
    def trunk_pass(self, p: TrunkPass) -> int | None:
        """Run one pass; returns the step the trunk diverged at, if it did."""
        spec, c, frontier = self.spec, self.c, self.work.frontier
        averagers = _averagers(c, spec, p.averagers)
        if p.start == 0:
            _restore(c, c.initial, None)
        else:
            assert self.checkpoints is not None
            _restore(c, self.checkpoints.load_trunk(p.start), averagers)
        existing = set(self.checkpoints.trunk_checkpoints()) if self.checkpoints is not None else set()
        forks: dict[int, list[BranchTask]] = {}
        for task in p.forks:
            forks.setdefault(task.start, []).append(task)
        emit_from = p.emit_from
        kept = set(spec.checkpoint_steps)
        every = spec.checkpoint_every
        stored = self.sink.stored_train_losses(TRUNK, p.start, min(p.end, frontier)) if p.start < frontier else None
        rows: list[dict[str, Any]] = []
        replay_rows: list[dict[str, Any]] = []
        t = p.start
        seg_start = emit_from if emit_from is not None else None

        def run_forks(step: int) -> None:
            if step not in forks:
                return
            state = _capture(c, averagers)
            for task in forks[step]:
                self.branch(task, state)
            _restore(c, state, averagers)

        if t in p.evals:  # an evaluation lost at the very step this pass starts from
            out = _evaluate(c, spec, averagers, TRUNK, t, spec.peak_lr * _lr(c, spec, t - 1, None), p.evals[t])
            (rows if emit_from is not None and t > frontier else replay_rows).extend(out)
        run_forks(t)
        began = time.perf_counter()
        try:
            while t < p.end:
                mult = _lr(c, spec, t, None)
                loss = self.step(TRUNK, t, mult)
                emitting = emit_from is not None and t >= emit_from
                if emitting and t % spec.log_every == 0:
                    rows.append(_train_row(spec, c, TRUNK, t, spec.peak_lr * mult, loss))
                if not emitting and stored and t in stored and stored[t] != loss:
                    raise ReplayMismatch(
                        f"lineage {spec.lineage_id}: replayed trunk step {t} gave loss {loss!r}, the stored run "
                        f"{stored[t]!r}; this machine or torch build does not reproduce the stored trunk")
                if c.monitor.diverged(loss):
                    if not emitting:
                        raise ReplayMismatch(f"lineage {spec.lineage_id}: the trunk replay diverged at step {t}, "
                                             "which the stored run did not")
                    raise _Diverged(t, loss)
                t += 1
                _update_averagers(c, averagers, t)
                if t in p.evals:
                    out = _evaluate(c, spec, averagers, TRUNK, t, spec.peak_lr * mult, p.evals[t])
                    (rows if emit_from is not None and t > frontier else replay_rows).extend(out)
                if self.progress is not None:
                    self.progress(TRUNK, t, p.end, loss)
                boundary = t in kept or t in forks or t == p.end or (every > 0 and t % every == 0)
                if boundary and emit_from is not None and t > emit_from:
                    self.sink.segment(TRUNK, f"{seg_start:010d}-{t:010d}", rows)
                    self.save_trunk(t, averagers)
                    seg_start, rows = t, []
                elif t in kept and t not in existing and t <= frontier:
                    self.save_trunk(t, averagers)  # e.g. a fork added inside the trained trunk
                run_forks(t)
        except _Diverged as exc:
            self.sink.segment(TRUNK, f"{seg_start:010d}-{exc.step + 1:010d}", rows)
            self.flush_replay(p, replay_rows)
            return exc.step
        finally:
            log.debug("lineage %s: pass %d..%d in %.2f s", spec.lineage_id, p.start, p.end, time.perf_counter() - began)
        self.flush_replay(p, replay_rows)
        return None

    def flush_replay(self, p: TrunkPass, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.sink.segment(TRUNK, _replay_key(p.start, p.end, rows), rows)


def run_lineage(
    spec: LineageSpec, *, sink: Sink | None = None, checkpoints: CheckpointStore | None = None,
    stored: StoredLineage | None = None, progress: Progress | None = None,
    data_parallel: DataParallel | None = None,
) -> LineageResult:
    """Make the sink hold everything ``spec`` asks, given what is ``stored`` (default: nothing).

    Args:
        spec: the lineage, as planned.
        sink: where rows and finished branches go (default: a :class:`~trials.sinks.MemorySink`).
        checkpoints: where trunk checkpoints are kept and resumed from (default: none kept).
        stored: what the sink and ``checkpoints`` already hold (:class:`~trials.work.StoredLineage`).
        progress: called as ``progress(branch, step, end, loss)`` after every update.
        data_parallel: this process's rank; ``None`` with ``spec.workers > 1`` makes this
            process rank 0 and starts the others (:func:`trials.data_parallel.run_data_parallel`).
    """
    sink = sink if sink is not None else MemorySink()
    if spec.workers > 1 and data_parallel is None:
        from trials.data_parallel import run_data_parallel

        return run_data_parallel(spec, sink=sink, checkpoints=checkpoints, stored=stored, progress=progress)
    stored = stored or StoredLineage()
    work = plan_work(spec, stored)
    c = _build(spec, data_parallel)
    result = LineageResult(lineage_id=spec.lineage_id, status=stored.trunk_status or "completed",
                           n_params=c.workload.n_params, tokens_per_step=c.workload.tokens_per_step,
                           flops_per_step=c.workload.flops_per_step, run_steps=work.run_steps,
                           replay_steps=work.replay_steps,
                           resumed_from=work.frontier if work.frontier > 0 else None)
    if work.empty:
        return result
    for branch, step in work.truncate.items():
        sink.truncate(branch, step)
    run = _Run(spec, c, sink, checkpoints, work, progress)
    for task in work.resumes:
        run.branch(task, None)
    began = time.perf_counter()
    diverged_at: int | None = None
    continued = False
    for p in work.passes:
        continued = continued or p.emit_from is not None
        diverged_at = run.trunk_pass(p)
        if diverged_at is not None:
            break
    unreached = list(work.diverged_forks)
    if diverged_at is not None:
        done = {r.branch for r in run.results}
        unreached += [t.name for p in work.passes for t in p.forks
                      if t.emit_train and t.name not in done and t.start > diverged_at]
    for name in unreached:
        b = spec.branch(name)
        at = diverged_at if diverged_at is not None else work.frontier - 1
        r = BranchResult(branch=name, parent=TRUNK, fork_step=b.fork_step, horizons=(b.end,), max_step=b.fork_step,
                         status="diverged", steps_trained=0, wall_time_s=0.0,
                         error=f"trunk diverged at step {at}, before the fork at {b.fork_step}")
        run.finish(r)
    if continued or stored.trunk_status is None:
        # a stored divergence is a result and stays; any other stored status (``failed``: a crash,
        # a full disk, a lost node) belonged to the attempt that wrote it, not to this run
        kept = "diverged" if stored.trunk_status == "diverged" else None
        status = "diverged" if diverged_at is not None else (kept or "completed")
        max_step = diverged_at + 1 if diverged_at is not None else max(spec.trunk_end, work.frontier)
        trunk = BranchResult(branch=TRUNK, parent=None, fork_step=None, horizons=spec.trunk_horizons,
                             max_step=max_step, status=status, steps_trained=max_step,
                             wall_time_s=time.perf_counter() - began, error=None if diverged_at is None else
                             f"diverged at step {diverged_at}")
        run.finish(trunk)
        result.status = status
    if checkpoints is not None:
        checkpoints.prune_trunk(set(spec.checkpoint_steps))
    result.branches = run.results
    if any(r.status == "diverged" for r in run.results):
        result.status = "diverged"
    return result
