"""What a lineage still has to do, given what is stored: the work plan of one trial.

A lineage (:class:`~trials.lineage_spec.LineageSpec`) asks for a trunk to ``trunk_end`` with
evaluations at its eval points, and cooldown branches with theirs. The store may already hold
part of it (a finished sweep that was extended, a trial killed mid-way): :class:`StoredLineage`
says what — kept trunk checkpoints (and which averagers each holds), how far the trunk's rows
reach (the *frontier*), which (step, weights) evaluations exist per branch, which branches
finished, and in-flight branch checkpoints. :func:`plan_work` returns the cheapest
:class:`Work` that completes the lineage:

- the trunk *continues* from its frontier to ``trunk_end`` (from the frontier's checkpoint);
- anything missing *below* the frontier — a fork added inside the trained trunk, a trunk eval
  at a new horizon, a new averager — is served by *replaying* the trunk from the latest kept
  checkpoint at or before it that is valid for what it needs. An averager is valid at a
  checkpoint if the checkpoint holds its state, or if it is still empty there (its first
  update comes later, :func:`first_update`); step 0 is always available (a fresh model).
  Replays write no trunk train rows (they exist) and only the missing evaluations;
- unfinished branches rerun from their fork (or resume from their own in-flight checkpoint);
  finished branches missing an averager's evaluations are replayed from the fork.

Training is deterministic, so a replay reproduces the stored trajectory bit for bit, and the
store after the work equals what a fresh run of the same lineage writes. The same function runs
on the driver (``lrsweep plan`` reports ``run_steps``) and in the trial, so they agree.

A lineage a search *stopped* (status ``stopped``, :mod:`orchestrator.search`) ends at its
frontier: its trunk is not continued and its stopped branches are not run; evaluations missing
below the frontier are still replayed.

Which evaluations exist at a step is decided here (:func:`wanted_evals`) for both.
Pure Python: no torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from trials.identity import TRUNK
from trials.lineage_spec import AveragerSpec, LineageSpec

__all__ = ["BranchTask", "StoredLineage", "TrunkPass", "Work", "first_update", "plan_work", "wanted_evals"]

Eval = tuple[int, str]  # (step, weights label)
FINISHED = ("completed", "diverged")  # a stored branch row with one of these needs no training
STOPPED = "stopped"  # a search stopped it there: not continued, not rerun


def first_update(averager: AveragerSpec) -> int:
    """The first step (updates completed) whose iterate the averager absorbs: it has no data
    before it (``trials.averaging``: EMA and poly take every step from 1, SWA the steps
    ``start + every, ...``, LAWA snapshots at multiples of ``every``)."""
    params = averager.params
    if averager.kind == "swa":
        return int(params.get("start", 0)) + int(params.get("every", 1))
    if averager.kind == "lawa":
        return int(params.get("every", 1))
    return 1


def wanted_evals(spec: LineageSpec, where: str, step: int) -> list[tuple[str, str | None]]:
    """(weights label, averager key or ``None``) evaluated at eval point ``step`` of the trunk
    (``where == "trunk"``) or of branch ``where``: the raw weights, ``x`` for a schedule-free
    optimizer, and every averager of that branch that has data by then. A per-horizon window
    is read only at its horizon, on the trunk only if the trunk answers that horizon."""
    out: list[tuple[str, str | None]] = [("raw", None)]
    if spec.schedule_free:
        out.append(("x", None))
    if where == TRUNK:
        pool = [a for a in spec.averagers
                if a.eval_at is None or (a.eval_at == step and step in spec.trunk_horizons)]
    else:
        pool = [a for a in (spec.averager(k) for k in spec.branch(where).averagers)
                if a.eval_at is None or a.eval_at == step]
    out += [(a.label, a.key) for a in pool if first_update(a) <= step]
    return out


@dataclass(frozen=True, kw_only=True)
class StoredLineage:
    """What the store and the checkpoint directory hold of one lineage.

    Attributes:
        checkpoints: kept trunk checkpoint step -> keys of the averagers whose state it holds.
        rows_frontier: trunk rows are complete up to this step per the stored trunk row
            (0 if none): train rows of updates ``< rows_frontier`` and evals at steps ``<=`` it.
        trunk_status: the stored trunk row's status (``completed``/``diverged``), if any.
        evals: per branch (``"trunk"`` or a branch name), the stored (step, weights) evals.
        branch_status: branches with a stored row, and its status.
        inflight: unfinished branch -> (step, averager keys) of its in-flight checkpoint.
    """

    checkpoints: dict[int, frozenset[str]] = field(default_factory=dict)
    rows_frontier: int = 0
    trunk_status: str | None = None
    evals: dict[str, frozenset[Eval]] = field(default_factory=dict)
    branch_status: dict[str, str] = field(default_factory=dict)
    inflight: dict[str, tuple[int, frozenset[str]]] = field(default_factory=dict)

    @property
    def frontier(self) -> int:
        """How far the trunk's rows are trusted: the stored trunk row, or a later checkpoint
        (written after every row before it)."""
        return max(self.rows_frontier, max(self.checkpoints, default=0))

    @property
    def diverged(self) -> bool:
        return self.trunk_status == "diverged"

    @property
    def stopped(self) -> bool:
        return self.trunk_status == STOPPED


@dataclass(frozen=True, kw_only=True)
class BranchTask:
    """Run (or replay) one branch from ``start`` to its end.

    ``emit_train``: the branch is unfinished: write its train rows from ``start`` and every eval
    in ``evals``, then its row. Otherwise a replay that writes only ``evals`` (missing ones).
    ``resume``: start from the branch's own in-flight checkpoint instead of the trunk's fork.
    """

    name: str
    start: int
    end: int
    resume: bool
    emit_train: bool
    evals: tuple[Eval, ...]
    averagers: tuple[str, ...]

    @property
    def steps(self) -> int:
        return self.end - self.start


@dataclass(kw_only=True)
class TrunkPass:
    """Train the trunk from the checkpoint at ``start`` (0: a fresh model) to ``end``.

    ``averagers``: the averager keys carried (all valid at ``start``). ``evals``: trunk step ->
    weights labels to evaluate there. ``forks``: branch tasks forked on the way.
    ``emit_from``: train rows of updates ``>= emit_from`` are written (the continuation past the
    frontier), ``None`` for a pure replay.
    """

    start: int
    end: int
    averagers: tuple[str, ...]
    evals: dict[int, tuple[str, ...]] = field(default_factory=dict)
    forks: list[BranchTask] = field(default_factory=list)
    emit_from: int | None = None

    @property
    def steps(self) -> int:
        return self.end - self.start


@dataclass(kw_only=True)
class Work:
    """Everything one trial does for its lineage (empty when the store is complete)."""

    frontier: int
    passes: list[TrunkPass] = field(default_factory=list)
    resumes: list[BranchTask] = field(default_factory=list)
    truncate: dict[str, int] = field(default_factory=dict)
    diverged_forks: list[str] = field(default_factory=list)

    @property
    def branch_tasks(self) -> list[BranchTask]:
        return [t for p in self.passes for t in p.forks] + list(self.resumes)

    @property
    def run_steps(self) -> int:
        """Every update this work trains: trunk passes (replays included) and branches."""
        return sum(p.steps for p in self.passes) + sum(t.steps for t in self.branch_tasks)

    @property
    def replay_steps(self) -> int:
        """Updates recomputed only to reach a stored state: trunk below the frontier, and
        branch replays that add evaluations to a finished branch."""
        trunk = sum(max(0, min(p.end, self.frontier) - p.start) for p in self.passes)
        return trunk + sum(t.steps for t in self.branch_tasks if not t.emit_train)

    @property
    def empty(self) -> bool:
        return not (self.passes or self.resumes or self.diverged_forks)


@dataclass
class _Need:
    x: int
    order: int  # eval < branch < continuation at the same step
    averagers: set[str]
    evals: list[str] = field(default_factory=list)
    task: BranchTask | None = None
    continuation: bool = False


def _all_evals(spec: LineageSpec, where: str, steps: Iterable[int]) -> list[tuple[int, str, str | None]]:
    return [(e, w, k) for e in steps for w, k in wanted_evals(spec, where, e)]


def plan_work(spec: LineageSpec, stored: StoredLineage | None = None) -> Work:
    """The cheapest work that makes the store hold everything ``spec`` asks (module docstring)."""
    stored = stored or StoredLineage()
    by_key = {a.key: a for a in spec.averagers}
    frontier = stored.frontier
    reach = frontier - 1 if stored.diverged else frontier  # last trunk state that exists
    work = Work(frontier=frontier, truncate={TRUNK: frontier})
    needs: list[_Need] = []

    # -- the trunk's evaluations: missing ones at or below the frontier, all of them beyond
    have = stored.evals.get(TRUNK, frozenset())
    later: dict[int, list[tuple[str, str | None]]] = {}
    for e in spec.eval_steps:
        wanted = wanted_evals(spec, TRUNK, e)
        if e <= frontier:
            missing = [(w, k) for w, k in wanted if (e, w) not in have]
            if missing and e <= reach:
                needs.append(_Need(e, 0, {k for _, k in missing if k}, evals=[w for w, _ in missing]))
        elif not stored.diverged and not stored.stopped:
            later[e] = wanted

    # -- branches
    later_forks: list[BranchTask] = []
    for b in spec.branches:
        status = stored.branch_status.get(b.name)
        if status == STOPPED or (stored.stopped and b.fork_step >= frontier):
            continue
        if status not in FINISHED:  # a branch that failed every retry is run again
            status = None
        wanted = _all_evals(spec, b.name, b.eval_steps)
        if status is not None:  # finished: only averager evaluations can be missing
            stored_b = stored.evals.get(b.name, frozenset())
            missing = [(e, w, k) for e, w, k in wanted if (e, w) not in stored_b]
            if status == "diverged" or not missing or b.fork_step > reach:
                continue
            task = BranchTask(name=b.name, start=b.fork_step, end=b.end, resume=False, emit_train=False,
                              evals=tuple((e, w) for e, w, _ in missing),
                              averagers=tuple(sorted({k for _, _, k in missing if k})))
            needs.append(_Need(b.fork_step, 1, set(task.averagers), task=task))
            continue
        inflight = stored.inflight.get(b.name)
        if inflight is not None:
            step, held = inflight
            needed = {k for k in b.averagers if first_update(by_key[k]) <= step}
            if b.fork_step <= step < b.end and needed <= held:
                work.resumes.append(BranchTask(
                    name=b.name, start=step, end=b.end, resume=True, emit_train=True,
                    evals=tuple((e, w) for e, w, _ in wanted if e > step), averagers=b.averagers))
                work.truncate[b.name] = step
                continue
        work.truncate[b.name] = b.fork_step
        task = BranchTask(name=b.name, start=b.fork_step, end=b.end, resume=False, emit_train=True,
                          evals=tuple((e, w) for e, w, _ in wanted), averagers=b.averagers)
        if stored.diverged and b.fork_step > reach:
            work.diverged_forks.append(b.name)
        elif b.fork_step >= frontier and not stored.diverged:
            later_forks.append(task)
        else:
            needs.append(_Need(b.fork_step, 1, set(b.averagers), task=task))

    # -- the continuation past the frontier
    if not stored.diverged and not stored.stopped and (spec.trunk_end > frontier or later_forks):
        carried = {k for wanted in later.values() for _, k in wanted if k}
        carried |= {k for t in later_forks for k in t.averagers}
        cont = _Need(frontier, 2, carried, continuation=True)
        needs.append(cont)

    _group(spec, stored, by_key, needs, later, later_forks, work)
    return work


def _group(spec: LineageSpec, stored: StoredLineage, by_key: dict[str, AveragerSpec], needs: list[_Need],
           later: dict[int, list[tuple[str, str | None]]], later_forks: list[BranchTask], work: Work) -> None:
    """Assign needs (sorted by step) to trunk passes: continue the current pass while that is
    no dearer than restarting from the best checkpoint, and while it carries what is needed."""
    checkpoints = dict(stored.checkpoints)
    checkpoints.setdefault(0, frozenset())

    def valid(key: str, at: int) -> bool:
        return key in checkpoints.get(at, frozenset()) or first_update(by_key[key]) > at

    def best_start(need: _Need) -> int:
        return max(c for c in checkpoints if c <= need.x and all(valid(k, c) for k in need.averagers))

    def carried(start: int) -> tuple[str, ...]:  # every averager valid at the start rides along
        return tuple(a.key for a in spec.averagers if valid(a.key, start))

    current: TrunkPass | None = None
    for need in sorted(needs, key=lambda n: (n.x, n.order)):
        start = best_start(need)
        keeps = current is not None and start <= current.end and all(valid(k, current.start) for k in need.averagers)
        if not keeps:
            current = TrunkPass(start=start, end=start, averagers=carried(start))
            work.passes.append(current)
        assert current is not None
        current.end = max(current.end, need.x)
        if need.task is not None:
            current.forks.append(need.task)
        if need.evals:
            current.evals[need.x] = tuple(sorted(set(current.evals.get(need.x, ())) | set(need.evals)))
        if need.continuation:
            current.end = spec.trunk_end
            current.emit_from = need.x
            for e, wanted in later.items():
                current.evals[e] = tuple(w for w, _ in wanted)
            current.forks.extend(later_forks)
    for p in work.passes:
        p.forks.sort(key=lambda t: (t.start, t.end, t.name))
